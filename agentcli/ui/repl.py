"""The chat REPL's input side: the prompt, its keys, completion, toolbar, slash commands.

``Prompt.read()`` returns the next line the user submits (None at Ctrl-D on
an empty line); Enter submits, Esc Enter (Alt-Enter) inserts a newline and
Ctrl-C clears the line. ``SlashCommands`` runs ``/help``, ``/model``... on a
``ChatControl``, the chat session object built by ``commands/chat.py``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from prompt_toolkit import PromptSession
from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import Output, create_output

from .render import Styled
from .safe_text import visible

if TYPE_CHECKING:  # the agent loop and the SDK load after the prompt is up
    from rich.console import Console

    from ..agent import Agent
    from ..conversation import Conversation
    from ..events import ToolRecord

PROMPT = "agentcli> "
COMMANDS = {
    "/help": "show this help",
    "/tools": "list the tools and their policies",
    "/model": "[NAME]  show or switch the model",
    "/system": "[TEXT]  show or set the system prompt",
    "/clear": "start a new conversation (a new session)",
    "/history": "show the conversation so far",
    "/undo": "remove the last exchange",
    "/retry": "remove the last exchange and ask its question again",
    "/save": "[NAME]  save now, optionally under a new name",
    "/sessions": "list saved sessions",
    "/load": "ID  switch to a saved session",
    "/approve": "TOOL|all|reset  stop asking for TOOL / for every tool / ask again",
    "/reload": "re-read the tools directories",
    "/stats": "tool calls in this session: calls, failures, mean and p95 time, errors",
    "/exit": "leave (Ctrl-D on an empty line works too)",
}
KEYS = "Enter sends · Esc Enter (Alt-Enter) adds a line · Ctrl-C cancels · Ctrl-D exits"


class ChatControl(Protocol):
    """What slash commands need from the chat session."""

    console: Console
    conv: Conversation
    records: list[ToolRecord]

    @property
    def agent(self) -> Agent: ...

    def send(self, text: str) -> None: ...
    def new_conversation(self) -> None: ...
    def save(self, name: str | None = None) -> None: ...
    def load(self, session_id: str) -> None: ...
    def reload(self) -> None: ...
    def show_sessions(self) -> None: ...
    def show_history(self) -> None: ...
    def session_ids(self) -> list[str]: ...
    def call_entries(self) -> list[dict[str, Any]]: ...
    def starting_servers(self) -> list[str]: ...


def _model_name_ok(name: str) -> bool:
    """A model id is one printable word (no spaces, tabs or control characters)."""
    return name.isprintable() and not any(ch.isspace() for ch in name)


class _QuietHistory(FileHistory):
    """A history file that never stops the REPL: unreadable or unwritable is ignored."""

    def load_history_strings(self) -> Iterable[str]:
        try:
            yield from list(super().load_history_strings())
        except (OSError, UnicodeDecodeError):
            return

    def store_string(self, string: str) -> None:
        with contextlib.suppress(OSError):
            super().store_string(string)


class ChatCompleter(Completer):
    """Slash commands at the start of the line; tool names and session ids after them."""

    def __init__(self, tool_names: Callable[[], list[str]],
                 session_ids: Callable[[], list[str]]) -> None:
        self.tool_names = tool_names
        self.session_ids = session_ids

    def get_completions(self, document: Document,
                        complete_event: CompleteEvent) -> Iterator[Completion]:
        text = document.text_before_cursor
        if text.startswith("/") and " " not in text:
            for name, meta in COMMANDS.items():
                if name.startswith(text):
                    yield Completion(name, -len(text), display_meta=meta)
            return
        word = document.get_word_before_cursor(WORD=True)
        if text.startswith("/approve "):
            candidates = [*self.tool_names(), "all", "reset"]
        elif text.startswith("/load "):
            candidates = self.session_ids()
        elif text.startswith("/") or len(word) < 2:
            return
        else:
            candidates = self.tool_names()
        for candidate in candidates:
            if candidate.startswith(word) and candidate != word:
                yield Completion(candidate, -len(word))


def _bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("enter")
    def _submit(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    @bindings.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return bindings


def _terminal_output() -> Output | None:
    """prompt_toolkit's output on a copy of file descriptor 1 (None: the default).

    Plugins load in the background while the prompt is up, and while one is
    imported fd 1 points at a file that catches what it prints: the prompt
    and the keys typed must reach the terminal all the same.
    """
    try:
        fd = os.dup(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    stream = open(fd, "w", encoding=sys.stdout.encoding or "utf-8",  # noqa: SIM115  (lives as long as the chat)
                  errors="replace")
    return create_output(stdout=stream)


class Prompt:
    """The REPL's prompt_toolkit session.

    Args:
        history_file: Persistent input history.
        completer: Completion for slash commands and tool names.
        toolbar: Text for the bottom toolbar, asked for at every redraw.
        shown: Called once, right after the prompt is first on the screen.
    """

    def __init__(self, history_file: Path, completer: Completer,
                 toolbar: Callable[[], str], shown: Callable[[], None] | None = None) -> None:
        with contextlib.suppress(OSError):
            history_file.parent.mkdir(parents=True, exist_ok=True)
        slash = Condition(lambda: self.session.default_buffer.text.startswith("/"))
        self.session: PromptSession[str] = PromptSession(
            PROMPT, history=_QuietHistory(str(history_file)), completer=completer,
            complete_while_typing=slash, bottom_toolbar=toolbar, multiline=True,
            prompt_continuation="... ", key_bindings=_bindings(), output=_terminal_output())
        if shown is not None:
            self._once_shown(shown)

    def _once_shown(self, shown: Callable[[], None]) -> None:
        """Call ``shown`` once, right after the prompt is first drawn."""
        event = self.session.app.after_render

        def handler(_: object) -> None:
            event.remove_handler(handler)
            shown()
        event.add_handler(handler)

    def print_above(self, show: Callable[[], None]) -> None:
        """From any thread: run ``show`` (which prints) above the prompt while it is
        up, and draw the prompt again after; nothing when it is not up."""
        app = self.session.app
        loop, context = app.loop, app.context
        if not app.is_running or loop is None or context is None:
            return

        def run() -> None:
            if app.is_running:
                run_in_terminal(show)
        with contextlib.suppress(RuntimeError):  # the prompt ended and its loop closed
            loop.call_soon_threadsafe(run, context=context.copy())

    def read(self) -> str | None:
        """The next submitted text; Ctrl-C clears the line, Ctrl-D on an empty line is None."""
        while True:
            try:
                return self.session.prompt()
            except KeyboardInterrupt:
                continue
            except EOFError:
                return None


class SlashCommands:
    """Runs one ``/command`` line against the chat session."""

    def __init__(self, chat: ChatControl) -> None:
        self.chat = chat

    @property
    def console(self) -> Console:
        """The chat's console."""
        return self.chat.console

    def run(self, line: str) -> bool:
        """Run ``line``; False means leave the REPL."""
        name, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        if name in ("/exit", "/quit"):
            return False
        handler = getattr(self, "do_" + name[1:], None) if name in COMMANDS else None
        if handler is None:
            self.console.print(f"unknown command {visible(name)} (see /help)")
        else:
            handler(arg)
        return True

    def do_help(self, arg: str) -> None:
        from rich.table import Table
        from rich.text import Text

        table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
        for name, meta in COMMANDS.items():
            table.add_row(Text(name, style="bold"), Text(meta))
        self.console.print(table)
        self.console.print(Styled(KEYS, "dim"))

    def do_tools(self, arg: str) -> None:
        from rich.table import Table
        from rich.text import Text

        from .render import short

        registry = self.chat.agent.registry
        starting = self.chat.starting_servers()
        if not len(registry) and not starting:
            self.console.print("no tools (started with --no-tools?)")
            return
        table = Table("tool", "policy", "source", "description", box=None, padding=(0, 2, 0, 0))
        for tool in registry.all():
            policy = "always (this session)" if tool.name in self.chat.agent.always \
                else registry.policy(tool.name)
            table.add_row(Text(visible(tool.name), style="bold"), Text(policy),
                          Text(visible(tool.source), style="dim"), Text(short(tool.description, 60)))
        if len(registry):
            self.console.print(table)
        if starting:
            names = ", ".join(visible(name) for name in starting)
            self.console.print(Styled(f"MCP server{'s' if len(starting) > 1 else ''} still "
                                      f"starting: {names} (their tools are listed once they are "
                                      "up)", "yellow"))

    def do_model(self, arg: str) -> None:
        provider = self.chat.agent.provider
        if arg and not _model_name_ok(arg):
            self.console.print(f"agentcli: '{visible(arg)}' is not a model name: names have no "
                               "spaces or control characters; the model is still "
                               f"{visible(provider.model or '(server default)')}")
            return
        if arg:
            provider.model = arg
            self.chat.conv.model = arg
        self.console.print(f"model: {visible(provider.model or '(server default)')}")

    def do_system(self, arg: str) -> None:
        if arg:
            self.chat.conv.set_system(arg)
            self.console.print("system prompt set")
            return
        first = self.chat.conv.messages[:1]
        current = first[0].content if first and first[0].role == "system" else None
        self.console.print(Styled(visible(current, keep_newlines=True)) if current
                           else "no system prompt (set one with /system TEXT)")

    def do_clear(self, arg: str) -> None:
        self.chat.new_conversation()

    def do_history(self, arg: str) -> None:
        self.chat.show_history()

    def do_undo(self, arg: str) -> None:
        if self.chat.conv.undo() is None:
            self.console.print("nothing to undo")
            return
        self.chat.save()
        self.console.print("removed the last exchange")

    def do_retry(self, arg: str) -> None:
        text = self.chat.conv.undo()
        if text is None:
            self.console.print("nothing to retry")
            return
        from .render import short

        self.console.print(Styled(f"retrying: {short(text, 70)}", "dim"))
        self.chat.send(text)

    def do_save(self, arg: str) -> None:
        self.chat.save(arg or None)

    def do_sessions(self, arg: str) -> None:
        self.chat.show_sessions()

    def do_load(self, arg: str) -> None:
        if not arg:
            self.console.print("usage: /load ID (see /sessions)")
            return
        self.chat.load(arg.split()[0])

    def do_approve(self, arg: str) -> None:
        agent = self.chat.agent
        if arg == "reset":
            agent.always.clear()
            agent.scopes.clear()
            self.console.print("every tool follows its configured policy again "
                               "(approvals for tools and scopes forgotten)")
        elif arg == "all":
            agent.always.update(t.name for t in agent.registry.all())
            self.console.print("every tool runs without asking for the rest of this session "
                               "(tools with policy deny stay denied)")
        elif arg:
            self._approve_one(arg)
        else:
            names = ", ".join(sorted(agent.always)) or "none"
            self.console.print(f"running without asking this session: {visible(names)}")
            scopes = ", ".join(f"{tool} for {scope}" for tool, scope in sorted(agent.scopes))
            self.console.print(f"approved scopes this session: {visible(scopes or 'none')}")

    def _approve_one(self, name: str) -> None:
        agent = self.chat.agent
        if name not in agent.registry:
            self.console.print(f"no tool named {visible(name)} (see /tools)")
            return
        agent.always.add(name)
        note = " (its policy is deny, so it stays denied)" if agent.registry.policy(name) == "deny" else ""
        self.console.print(f"{visible(name)} runs without asking for the rest of this session{note}")

    def do_reload(self, arg: str) -> None:
        self.chat.reload()

    def do_stats(self, arg: str) -> None:
        """This session's tool calls, summarised as ``agentcli tools stats`` does."""
        entries = self.chat.call_entries()
        if not entries:
            self.console.print("no tool calls in this session yet")
            return
        from .. import audit
        from .render import stats_text

        self.console.print(Styled(stats_text(audit.stats(entries))))


