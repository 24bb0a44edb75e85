"""``agentcli chat``: the interactive REPL around the same agent loop as ``run``.

``ChatSession`` owns one chat: settings, tools, the provider, the ``Agent``,
the current conversation and its session file. A turn shows a spinner, the
streamed Markdown answer and a line per tool call (``ui/stream.py``), asks
for approval with single keys (``ui/chat_approve.py``), and is saved when it
ends, however it ends. Ctrl-C cancels the turn and keeps the conversation
valid; errors are one line, never a traceback.

The prompt comes first: what only a request needs (the openai SDK and its
client, the tools with their plugins, the MCP servers, the answer's Markdown
renderer) is made by ``Startup`` in a background thread once the prompt is on
the screen. The first request, or a slash command that needs the agent, waits
for it; a request also waits for MCP servers still starting, with a spinner
naming them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import collector, paths, trust
from ..config import DEFAULT_CONTEXT, Settings
from ..conversation import Conversation, new_id
from ..endpoint import resolve
from ..errors import AgentCLIError, Interrupted, NoSuchSession, SessionError, UsageError
from ..messages import Message, Usage
from ..policy import Rules
from ..sessions import Saved, SessionStore
from ..ui.chat_approve import ask_choice, ask_yes_no, muted_input
from ..ui.console import stdout_console
from ..ui.render import Styled
from ..ui.repl import ChatCompleter, Prompt, SlashCommands
from ..ui.safe_text import visible
from .common import (
    CommonOptions,
    approve_all,
    build_agent,
    build_registry,
    load_rules,
    load_settings,
    reported,
    start_mcp,
    tool_choice,
)

if TYPE_CHECKING:  # loaded after the prompt is up (see Startup)
    from rich.console import Console

    from ..agent import Agent
    from ..events import Event, ToolRecord
    from ..ui.stream import TurnView

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


def unexpected_line(exc: BaseException, verbose: bool) -> Styled:
    """One line for a bug (the traceback, escaped, only with ``-v``)."""
    if verbose:
        return Styled(visible(traceback.format_exc(), keep_newlines=True), style="red")
    return Styled(f"agentcli: unexpected error: {type(exc).__name__}: {visible(str(exc))} "
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


class Notes:
    """Lines printed while the tools are made in the background: kept until the
    main thread shows them (at the next prompt or request), then printed at once."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._kept: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self._live = False
        self._lock = threading.Lock()

    def print(self, *objects: Any, **options: Any) -> None:
        with self._lock:
            if not self._live:
                self._kept.append((objects, options))
                return
        self.console.print(*objects, **options)

    def __bool__(self) -> bool:
        """Whether lines are waiting to be shown."""
        with self._lock:
            return bool(self._kept)

    def show(self, *, live: bool = False) -> None:
        """Print the lines kept so far; with ``live``, later lines are printed at once."""
        with self._lock:
            kept, self._kept = self._kept, []
            self._live = self._live or live
        for objects, options in kept:
            self.console.print(*objects, **options)


class Startup:
    """Runs ``build`` once in a background thread, then ``done`` there; ``result()``
    waits for it (starting it if nobody has) and raises what it raised."""

    def __init__(self, build: Callable[[], Agent], done: Callable[[], None]) -> None:
        self._build = build
        self._on_done = done
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._agent: Agent | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="chat-startup",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        try:
            self._agent = self._build()
        except BaseException as exc:  # re-raised in the main thread by result()
            self._error = exc
        finally:
            collector.resume()  # set-up is over: see agentcli.collector
            self._done.set()
        with contextlib.suppress(Exception):  # only early: the lines show at the next prompt
            self._on_done()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def ready(self) -> Agent | None:
        """The agent if it is made, else None (never waits)."""
        return self._agent if self._done.is_set() else None

    def result(self) -> Agent:
        self.start()
        while not self._done.wait(0.1):  # a short wait, so Ctrl-C and SIGTERM get through
            pass
        if self._error is not None:
            raise self._error
        assert self._agent is not None
        return self._agent


def _warm(provider: Any, api: str | None) -> None:
    """Load the SDK's request code for ``api`` now rather than at the first request
    (the SDK loads it on first use: 30-100 ms)."""
    client: Any = getattr(provider, "client", None)
    with contextlib.suppress(Exception):  # only a head start: the request loads it anyway
        client.responses if api == "responses" else client.chat.completions  # noqa: B018


class ChatSession:
    """One chat: the agent, the current conversation, and what happened in it."""

    def __init__(self, opts: ChatOptions, settings: Settings, console: Console,
                 store: SessionStore, notice: Callable[[str], None],
                 rules: Rules | None = None) -> None:
        self.opts, self.settings, self.console, self.store = opts, settings, console, store
        self.notice, self.rules = notice, rules
        self.notes = Notes(console)
        self.choice: Any = None
        self._closed = False
        self._mcp = False  # whether MCP servers were started
        self._mcp_lock = threading.Lock()
        self.startup = Startup(self._build, self._built)
        self._prompt: Prompt | None = None
        self.conv = self._fresh()
        self.records: list[ToolRecord] = []
        self.usage = Usage()
        self._view: TurnView | None = None
        if opts.tool_choice not in (None, "auto", "none", "required"):
            self.ready()  # a tool's name is checked against the tools before the prompt

    def _build(self) -> Agent:
        """The tools and the agent (run by ``Startup`` while the prompt waits for input).

        MCP servers are started first: they take longest.
        """
        console: Any = self.notes
        with self._mcp_lock:  # not after the chat ended: nothing would stop the servers
            manager = None if self._closed else start_mcp(self.settings, self.opts, console)
            self._mcp = manager is not None
        from ..ui import stream  # noqa: F401  (the answer's renderer, rich.markdown)
        from ..ui.chat_approve import chat_approver

        registry = build_registry(self.settings, self.opts, console, with_mcp=False, mcp=manager)
        yes = self.opts.yes and self.opts.policy is None  # under --policy only rules allow without asking
        approver = approve_all if yes else chat_approver(self.console)
        agent = build_agent(self.settings, registry, approve=approver, on_event=self._on_event,
                            notice=self.notice, verbose=self.opts.verbose, rules=self.rules)
        self.choice = tool_choice(self.opts.tool_choice, registry)
        _warm(agent.provider, self.settings.api)
        return agent

    def _built(self) -> None:
        """What the build printed goes above the prompt at once (or before the next one)."""
        if self._prompt is not None and self.notes:
            self._prompt.print_above(self.notes.show)

    @property
    def agent(self) -> Agent:
        """The agent; waits (with a spinner) while it is still being made."""
        agent = self.startup.ready()
        if agent is None:
            if self.startup.done:
                agent = self.startup.result()  # raises what went wrong
            else:
                from rich.text import Text

                with self.console.status(Text("loading tools…", style="dim"), spinner="dots"):
                    agent = self.startup.result()
        self.notes.show(live=True)
        return agent

    def ready(self) -> Agent:
        """Wait for the tools and the agent (``agent`` does the same)."""
        return self.agent

    def close(self) -> None:
        """The chat ends: MCP servers not started yet are not started at all."""
        with self._mcp_lock:
            self._closed = True

    def model(self) -> str:
        agent = self.startup.ready()
        return agent.provider.model if agent is not None else (self.settings.model or "")

    def starting_servers(self) -> list[str]:
        """MCP servers still starting (their tools are not listed yet)."""
        if not self._mcp:
            return []
        from ..mcp.lifecycle import starting

        return starting()

    def wait_for_servers(self, show: Callable[[str], None]) -> None:
        """Wait for MCP servers still starting; ``show`` puts the spinner's text naming them."""
        if not self.starting_servers():
            return
        from ..mcp.lifecycle import wait_started

        def waiting(names: list[str]) -> None:
            plural = "s" if len(names) > 1 else ""
            show(f"waiting for MCP server{plural} {', '.join(visible(n) for n in names)}…")
        wait_started(waiting)

    @classmethod
    def open(cls, opts: ChatOptions, console: Console) -> ChatSession:
        """Ask the trust question, load the settings, open or resume the conversation
        (the tools are loaded once the prompt is up)."""
        ask_trust(console, Path.cwd())
        loaded = load_settings(opts, console)
        rules = load_rules(opts, loaded)
        settings = loaded.settings
        api_key = settings.api_key()
        notice = lambda text: console.print(Styled(f"agentcli: {visible(text)}", style="dim"))  # noqa: E731
        settings = resolve(settings, api_key, notice)
        chat = cls(opts, settings, console, SessionStore(secrets=[api_key] if api_key else []),
                   notice, rules)
        if opts.resume:
            chat.resume(opts.session_id)
        return chat

    def _fresh(self) -> Conversation:
        conv = Conversation(model=self.model() or None)
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
            self.console.print(Styled(f"agentcli: error: {visible(str(exc))}", style="red"))
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
        self.console.print(Styled(
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
        prompt = self._prompt = Prompt(paths.history_file(),
                                       ChatCompleter(self.tool_names, self.session_ids),
                                       self.toolbar, shown=self.startup.start)
        commands = SlashCommands(self)
        if not self.opts.quiet:
            self.console.print(Styled(f"agentcli chat · model {visible(self.model())} · "
                                    f"session {self.conv.id} · /help for commands, Ctrl-D to exit",
                                    style="dim"))
        with muted_input():
            try:
                return self._repl(prompt, commands)
            except Terminated:
                self._interrupted()
                self.save(quiet=True)
                self.console.show_cursor(True)
                self.console.print(Styled("agentcli: terminated (SIGTERM)", style="yellow"))
                return 143
            finally:
                self.close()

    def _repl(self, prompt: Prompt, commands: SlashCommands) -> int:
        while True:
            try:
                self.notes.show()
                line = prompt.read()
                if line is None or (line.startswith("/") and not commands.run(line)):
                    return self._goodbye()
                if line.strip() and not line.startswith("/"):
                    self.send(line)
            except KeyboardInterrupt:
                self._interrupted()

    def _goodbye(self) -> int:
        if self.store.path(self.conv.id).exists() and not self.opts.quiet:
            self.console.print(Styled(f"session saved; continue it with: agentcli chat --resume "
                                    f"{self.conv.id}", style="dim"))
        return 0

    def toolbar(self) -> str:
        """The bottom toolbar: model, session, tokens used and the context estimate."""
        model = visible(self.model() or "?")
        return (f" {model} · session {self.conv.id} · {self.usage.total_tokens:,} tokens used"
                f" · context ~{self.conv.estimate_tokens(images=self.sends_images()):,}"
                f"/{self.context_window():,}")

    def sends_images(self) -> bool:
        """Whether tool results' images go to the model (so count in the context)."""
        agent = self.startup.ready()
        if agent is not None:
            return agent.provider.takes_images
        return self.settings.api == "responses"

    def context_window(self) -> int:
        """The model's context in tokens, from ``context_window`` in the config."""
        agent = self.startup.ready()
        if agent is not None:
            return agent.limits.context_window
        return self.settings.context_window or DEFAULT_CONTEXT

    def tool_names(self) -> list[str]:
        """The tools' names, for completion (none until they are loaded)."""
        agent = self.startup.ready()
        return [t.name for t in agent.registry.all()] if agent is not None else []

    # ---- one turn

    def send(self, text: str) -> None:
        """Run one turn for ``text``; whatever happens, the conversation stays valid,
        user and assistant messages keep alternating, and it is saved.

        Waits first for the tools, and for MCP servers still starting."""
        from ..agent import no_answer_reason
        from ..ui.stream import TurnView

        agent = self.agent
        self.conv.add(Message(role="user", content=text))
        view = self._view = TurnView(self.console)
        problem: Styled | None = None
        why = "interrupted"
        try:
            view.start()
            self.wait_for_servers(view.start)
            view.start()  # "thinking…" again
            result = agent.run_turn(self.conv, None, tool_choice=self.choice)
            self.usage.add(result.usage)
            if result.finish_reason == "length":
                problem = Styled("agentcli: the answer was cut off by the token limit (max_tokens)",
                               style="yellow")
        except (Interrupted, KeyboardInterrupt):
            problem = Styled("⏹ interrupted: the turn was cancelled", style="yellow")
        except AgentCLIError as exc:
            problem = Styled(f"agentcli: error: {visible(str(exc))}", style="red")
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
        from ..executor import CANCELLED

        self.conv.repair(CANCELLED)
        self.conv.mark_unanswered(why)

    def _interrupted(self) -> None:
        if self._view is not None:
            self._view.close()
            self._view = None
        self._settle("interrupted")
        self.console.print(Styled("⏹ interrupted", style="yellow"))

    def _on_event(self, event: Event) -> None:
        from ..events import ToolFinished

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
            self.console.print(Styled(f"agentcli: error: {visible(str(exc))} "
                                    "(the conversation is still here: the next exchange or "
                                    "/save NAME tries again)", style="red"))
            return
        self._saved(saved, quiet)

    def _saved(self, saved: Saved, quiet: bool) -> None:
        if self.store.marked_open != self.conv.id:
            self.store.mark_open(self.conv.id)
        if saved.merged:
            self.console.print(Styled(
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
            self.console.print(Styled(f"agentcli: error: {visible(str(exc))}", style="red"))
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
        """Re-read the tools directories and restart the MCP servers; "always" answers stay."""
        from rich.text import Text

        agent = self.agent
        with self.console.status(Text("loading tools…", style="dim"), spinner="dots") as status:
            manager = start_mcp(self.settings, self.opts, self.console)
            self._mcp = manager is not None
            registry = build_registry(self.settings, self.opts, self.console, with_mcp=False,
                                      mcp=manager)
            self.wait_for_servers(lambda text: status.update(Text(text, style="dim")))
            registry.refresh()  # the MCP servers' tools
        agent.registry = agent.tools.registry = registry  # the loop and its executor
        self.console.print(f"{len(registry)} tools loaded")

    def show_sessions(self) -> None:
        """The 20 newest saved sessions (``/sessions``)."""
        from .sessions_cmd import session_table

        self.console.print(session_table(self.store, limit=20))

    def show_history(self) -> None:
        """The conversation so far (``/history``)."""
        if not self.conv.messages:
            self.console.print("nothing yet")
            return
        from .sessions_cmd import print_conversation

        print_conversation(self.console, self.conv)

    def call_entries(self) -> list[dict[str, Any]]:
        """This session's tool calls, from the audit log entries with its id (so a
        resumed session counts its earlier calls too); the calls made here when
        the log cannot be written."""
        from .. import audit

        log = self.agent.tools.audit
        if log is None or log.failed is not None:
            return [audit.entry(r, None) for r in self.records]
        return [e for e in audit.read(log.path) if e.get("session") == self.conv.id]

    def session_ids(self) -> list[str]:
        """Saved session ids, newest first (for completion)."""
        return [p.stem for p in self.store.list()]
