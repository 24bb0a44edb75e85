"""``agentcli chat``: the interactive REPL around the same agent loop as ``run``.

``ChatSession`` owns one chat: settings, tools, the provider, the ``Agent``,
the current conversation and its session file. A turn shows a spinner, the
streamed Markdown answer and a line per tool call (``ui/stream.py``), asks
for approval with single keys (``ui/chat_approve.py``), and is saved when it
ends, however it ends. Ctrl-C cancels the turn and keeps the conversation
valid; errors are one line, never a traceback.
"""

from __future__ import annotations

import os
import signal
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from .. import audit, paths, trust
from ..agent import CANCELLED, no_answer_reason
from ..config import Settings
from ..conversation import Conversation, new_id
from ..endpoint import resolve
from ..errors import AgentCLIError, Interrupted, NoSuchSession, SessionError, UsageError
from ..events import Event, ToolFinished, ToolRecord
from ..messages import Message, Usage
from ..policy import Rules
from ..sessions import Saved, SessionStore
from ..ui.chat_approve import ask_choice, ask_yes_no, chat_approver, muted_input
from ..ui.console import stdout_console
from ..ui.repl import ChatCompleter, Prompt, SlashCommands
from ..ui.safe_text import visible
from ..ui.stream import TurnView
from .common import (
    CommonOptions,
    approve_all,
    build_agent,
    build_registry,
    load_rules,
    load_settings,
    reported,
    tool_choice,
)
from .sessions_cmd import print_conversation, session_table

TRUST_QUESTION = "Trust this directory's tools.d and agentcli.toml? [y/N] "


@dataclass
class ChatOptions(CommonOptions):
    """The common options plus ``--resume [ID]`` (``session_id`` is the optional ID)."""

    resume: bool = False
    session_id: str | None = None


def chat_command(opts: ChatOptions) -> int:
    """Run the REPL; the exit code (0 when the user leaves, 2 for usage, 1 for errors)."""
    console = stdout_console()  # everything in chat goes to the terminal on stdout
    with reported(verbose=opts.verbose) as code:
        if not (os.isatty(0) and os.isatty(1)):
            raise UsageError("chat needs a terminal; for scripts use: agentcli run QUERY")
        if opts.session_id and not opts.resume:
            raise UsageError(f"to continue a session use: agentcli chat --resume {opts.session_id}")
        with sigterm_ends_chat():
            code[0] = unexpected_guard(console, opts.verbose, lambda: run_chat(opts, console))
    return code[0]


def run_chat(opts: ChatOptions, console: Console) -> int:
    """Open the chat and run it; 143 when SIGTERM ends it before the REPL starts."""
    try:
        return ChatSession.open(opts, console).loop()
    except Terminated:
        console.show_cursor(True)
        return 143


class Terminated(BaseException):
    """SIGTERM arrived: the chat restores the terminal, saves and exits 143."""


@contextmanager
def sigterm_ends_chat() -> Iterator[None]:
    """Turn SIGTERM into ``Terminated`` (so every ``finally`` restoring the terminal runs)."""
    def handler(signum: int, frame: Any) -> None:
        raise Terminated
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def unexpected_guard(console: Console, verbose: bool, body: Callable[[], int]) -> int:
    """Run ``body()``; an exception that is not ours becomes one line (exit 1)."""
    try:
        return body()
    except AgentCLIError:
        raise
    except Exception as exc:
        console.print(unexpected_line(exc, verbose))
        return 1


def unexpected_line(exc: BaseException, verbose: bool) -> Text:
    """One line for a bug (the traceback, escaped, only with ``-v``)."""
    if verbose:
        return Text(visible(traceback.format_exc(), keep_newlines=True), style="red")
    return Text(f"agentcli: unexpected error: {type(exc).__name__}: {visible(str(exc))} "
                "(run with -v for details)", style="red")


def ask_trust(console: Console, cwd: Path) -> None:
    """The first-run question: use this directory's own tools.d and agentcli.toml?"""
    local = [p.name for p in (cwd / "tools.d", cwd / "agentcli.toml") if p.exists()]
    if not local or trust.is_trusted(cwd):
        return
    console.print(f"This directory has its own {' and '.join(local)}: plugins are code and "
                  "run with your rights.")
    if ask_yes_no(TRUST_QUESTION):
        console.print(f"trusted {visible(str(trust.trust(cwd)))}")
    else:
        console.print("not trusted: skipped for this session (agentcli trust to change that)")


class ChatSession:
    """One chat: the agent, the current conversation, and what happened in it."""

    def __init__(self, opts: ChatOptions, settings: Settings, console: Console,
                 store: SessionStore, notice: Callable[[str], None],
                 rules: Rules | None = None) -> None:
        self.opts, self.settings, self.console, self.store = opts, settings, console, store
        registry = build_registry(settings, opts, console)
        yes = opts.yes and opts.policy is None  # under --policy only rules allow without asking
        approver = approve_all if yes else chat_approver(console)
        self.agent = build_agent(settings, registry, approve=approver, on_event=self._on_event,
                                 notice=notice, verbose=opts.verbose, rules=rules)
        self.choice = tool_choice(opts.tool_choice, registry)
        self.conv = self._fresh()
        self.records: list[ToolRecord] = []
        self.usage = Usage()
        self._view: TurnView | None = None

    @classmethod
    def open(cls, opts: ChatOptions, console: Console) -> ChatSession:
        """Ask the trust question, load settings and tools, open or resume the conversation."""
        ask_trust(console, Path.cwd())
        loaded = load_settings(opts, console)
        rules = load_rules(opts, loaded)
        settings = loaded.settings
        api_key = settings.api_key()
        notice = lambda text: console.print(Text(f"agentcli: {visible(text)}", style="dim"))  # noqa: E731
        settings = resolve(settings, api_key, notice)
        chat = cls(opts, settings, console, SessionStore(secrets=[api_key] if api_key else []),
                   notice, rules)
        if opts.resume:
            chat.resume(opts.session_id)
        return chat

    def _fresh(self) -> Conversation:
        conv = Conversation(model=self.agent.provider.model or None)
        conv.set_system(self.settings.system)
        return conv

    def resume(self, session_id: str | None) -> None:
        """Continue a saved session (the latest when no id); a corrupt one is left alone."""
        if session_id is None:
            session_id = self.store.latest(free=True)
            if session_id is None:
                self.console.print("no saved session to resume; starting a new one")
                return
            self._say_picked(session_id)
        file = self.store.path(session_id)
        if not (file.exists() or file.is_symlink()):
            raise NoSuchSession(f"no saved session '{session_id}' (see: agentcli sessions list)")
        try:
            conv = self.store.load(session_id)
        except SessionError as exc:
            self.console.print(Text(f"agentcli: error: {visible(str(exc))}", style="red"))
            self.console.print(f"starting a new session ({self.conv.id}) instead")
            return
        self._switch(conv, "resumed")

    def _say_picked(self, session_id: str) -> None:
        """Say which session a bare ``--resume`` picked, and why when it is not the newest."""
        newest = self.store.latest()
        if newest == session_id:
            self.console.print(f"resuming the latest session, {session_id}")
        elif self.store.open_elsewhere(session_id):
            self.console.print(f"resuming the latest session, {session_id} (every saved "
                               "session is open in another agentcli chat)")
        else:
            self.console.print(f"resuming {session_id}, the latest session not open in another "
                               f"agentcli chat ({newest} is open in one)")

    def _switch(self, conv: Conversation, verb: str) -> None:
        if self.opts.system:
            conv.set_system(self.settings.system)
        self.conv = conv
        turns = sum(1 for m in conv.messages if m.role == "user")
        self.console.print(f"{verb} session {visible(conv.id)} ({turns} exchanges; /history shows them)")
        if not self.store.mark_open(conv.id):
            self._open_elsewhere(conv)

    def _open_elsewhere(self, conv: Conversation) -> None:
        """The session is open in another chat: fork it (the default) or share it."""
        self.console.print(Text(
            f"Session {conv.id} is open in another agentcli chat.\n"
            "  f  fork it: continue a copy under a new id (the other chat keeps the original)\n"
            "  c  continue it anyway: both chats save into it, each after what the other saved",
            style="yellow"))
        if ask_choice("Fork or continue? [F/c] ", "fc", default="f") == "c":
            self.console.print(f"continuing session {conv.id} together with the other chat")
            return
        original = conv.id
        conv.id = new_id()
        self.save(quiet=True)
        self.console.print(f"forked session {original} as {conv.id}: this chat continues the "
                           "copy")

    # ---- the REPL

    def loop(self) -> int:
        """Read, run, repeat; 0 when the user leaves.

        Between prompts the terminal does not echo and passes keys through
        untouched, so typeahead waits for the next prompt as typed.
        """
        prompt = Prompt(paths.history_file(),
                        ChatCompleter(lambda: [t.name for t in self.agent.registry.all()],
                                      self.session_ids), self.toolbar)
        commands = SlashCommands(self)
        if not self.opts.quiet:
            self.console.print(Text(f"agentcli chat · model {visible(self.agent.provider.model)} · "
                                    f"session {self.conv.id} · /help for commands, Ctrl-D to exit",
                                    style="dim"))
        with muted_input():
            try:
                return self._repl(prompt, commands)
            except Terminated:
                self._interrupted()
                self.save(quiet=True)
                self.console.show_cursor(True)
                self.console.print(Text("agentcli: terminated (SIGTERM)", style="yellow"))
                return 143

    def _repl(self, prompt: Prompt, commands: SlashCommands) -> int:
        while True:
            try:
                line = prompt.read()
                if line is None or (line.startswith("/") and not commands.run(line)):
                    return self._goodbye()
                if line.strip() and not line.startswith("/"):
                    self.send(line)
            except KeyboardInterrupt:
                self._interrupted()

    def _goodbye(self) -> int:
        if self.store.path(self.conv.id).exists() and not self.opts.quiet:
            self.console.print(Text(f"session saved; continue it with: agentcli chat --resume "
                                    f"{self.conv.id}", style="dim"))
        return 0

    def toolbar(self) -> str:
        """The bottom toolbar: model, session, tokens used and the context estimate."""
        model = visible(self.agent.provider.model or "?")
        return (f" {model} · session {self.conv.id} · {self.usage.total_tokens:,} tokens used"
                f" · context ~{self.conv.estimate_tokens():,}/{self.context_window():,}")

    def context_window(self) -> int:
        """The model's context in tokens, from ``context_window`` in the config."""
        return self.agent.limits.context_window

    # ---- one turn

    def send(self, text: str) -> None:
        """Run one turn for ``text``; whatever happens, the conversation stays valid,
        user and assistant messages keep alternating, and it is saved."""
        self.conv.add(Message(role="user", content=text))
        view = self._view = TurnView(self.console)
        problem: Text | None = None
        why = "interrupted"
        try:
            view.start()
            result = self.agent.run_turn(self.conv, None, tool_choice=self.choice)
            self.usage.add(result.usage)
            if result.finish_reason == "length":
                problem = Text("agentcli: the answer was cut off by the token limit (max_tokens)",
                               style="yellow")
        except (Interrupted, KeyboardInterrupt):
            problem = Text("⏹ interrupted: the turn was cancelled", style="yellow")
        except AgentCLIError as exc:
            problem = Text(f"agentcli: error: {visible(str(exc))}", style="red")
            why = no_answer_reason(exc)
        except Exception as exc:
            problem = unexpected_line(exc, self.opts.verbose)
            why = no_answer_reason(exc)
        finally:
            view.close()
            self._view = None
            self._settle(why)
        if problem is not None:
            self.console.print(problem)
        self.save(quiet=True)

    def _settle(self, why: str) -> None:
        """Answer unanswered calls and mark a turn that got no reply (the agent
        does this too; this covers a turn stopped before the agent started)."""
        self.conv.repair(CANCELLED)
        self.conv.mark_unanswered(why)

    def _interrupted(self) -> None:
        if self._view is not None:
            self._view.close()
            self._view = None
        self._settle("interrupted")
        self.console.print(Text("⏹ interrupted", style="yellow"))

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ToolFinished):
            self.records.append(event.record)
        if self._view is not None:
            self._view(event)

    # ---- sessions

    def save(self, name: str | None = None, *, quiet: bool = False) -> None:
        """Save the conversation (as ``name`` if given); an empty one only on request."""
        if quiet and not any(m.role == "user" for m in self.conv.messages):
            return
        old_id = self.conv.id
        try:
            if name and name != old_id:
                if self.store.path(name).exists():
                    raise SessionError(f"a session named '{name}' exists already")
                self.conv.id = name
            saved = self.store.save(self.conv)
        except SessionError as exc:
            self.conv.id = old_id
            self.console.print(Text(f"agentcli: error: {visible(str(exc))} "
                                    "(the conversation is still here: the next exchange or "
                                    "/save NAME tries again)", style="red"))
            return
        self._saved(saved, quiet)

    def _saved(self, saved: Saved, quiet: bool) -> None:
        if self.store.marked_open != self.conv.id:
            self.store.mark_open(self.conv.id)
        if saved.merged:
            self.console.print(Text(
                f"agentcli: session {self.conv.id} was also saved by another agentcli meanwhile: "
                "its new messages are kept, before this exchange (/history shows them)",
                style="yellow"))
        if not quiet:
            self.console.print(f"saved session {self.conv.id} ({visible(str(saved.path))})")

    def load(self, session_id: str) -> None:
        """Save the current conversation and continue a saved one (``/load``)."""
        try:
            conv = self.store.load(session_id)
        except SessionError as exc:
            self.console.print(Text(f"agentcli: error: {visible(str(exc))}", style="red"))
            return
        self.save(quiet=True)
        self._switch(conv, "loaded")

    def new_conversation(self) -> None:
        """Save the current conversation and start an empty one (``/clear``)."""
        self.save(quiet=True)
        self.store.close_marker()
        self.conv = self._fresh()
        self.console.print(f"new conversation: session {self.conv.id}")

    def reload(self) -> None:
        """Re-read the tools directories; "always" answers stay."""
        registry = build_registry(self.settings, self.opts, self.console)
        self.agent.registry = self.agent.tools.registry = registry  # the loop and its executor
        self.console.print(f"{len(registry)} tools loaded")

    def show_sessions(self) -> None:
        """The 20 newest saved sessions (``/sessions``)."""
        self.console.print(session_table(self.store, limit=20))

    def show_history(self) -> None:
        """The conversation so far (``/history``)."""
        if not self.conv.messages:
            self.console.print("nothing yet")
            return
        print_conversation(self.console, self.conv)

    def call_entries(self) -> list[dict[str, Any]]:
        """This session's tool calls, from the audit log entries with its id (so a
        resumed session counts its earlier calls too); the calls made here when
        the log cannot be written."""
        log = self.agent.tools.audit
        if log is None or log.failed is not None:
            return [audit.entry(r, None) for r in self.records]
        return [e for e in audit.read(log.path) if e.get("session") == self.conv.id]

    def session_ids(self) -> list[str]:
        """Saved session ids, newest first (for completion)."""
        return [p.stem for p in self.store.list()]
