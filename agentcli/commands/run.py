"""``agentcli run``: one task, no conversation with a person, output for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from ..agent import Agent
from ..config import Settings
from ..conversation import Conversation, new_id
from ..endpoint import resolve
from ..errors import (
    AgentCLIError,
    Interrupted,
    MaxStepsReached,
    SchemaMismatch,
    SessionError,
    UsageError,
)
from ..events import Event, Notice, TextDelta, ToolFinished, TurnResult
from ..schema import AnswerSchema, load_schema, request_format
from ..schema import answer as schema_answer
from ..sessions import SessionStore
from ..ui.console import stderr_console
from ..ui.render import for_output, notice_line, plugin_output, tool_result_line
from ..ui.safe_text import json_visible, visible
from .common import (
    CommonOptions,
    build_agent,
    build_registry,
    choose_approver,
    load_rules,
    load_settings,
    reported,
    stderr,
    stdin_is_terminal,
    tool_choice,
)

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class RunOptions(CommonOptions):
    query: str | None = None
    json: bool = False
    no_stream: bool = False
    session: str | None = None
    save: bool = False
    schema: str | None = None


def read_query(query: str | None) -> tuple[str, bool]:
    """The query from the argument, ``-`` (stdin), or the argument extended by piped
    stdin; and whether piped stdin is part of it (text from outside)."""
    piped = None if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    if query == "-":
        query = None
    parts = [p for p in (query, piped) if p and p.strip()]
    if not parts:
        raise UsageError("no query: pass it as an argument, or pipe it on stdin "
                         "(agentcli run \"what is 17*23?\")")
    return "\n\n".join(p.strip("\n") for p in parts), bool(piped and piped.strip())


class _Output:
    """Streams the answer to stdout (plain mode) and tool lines to stderr.

    On a terminal, control sequences in the answer are made visible (each
    character on its own, so a sequence split across two deltas is caught);
    piped or redirected, the answer is written byte for byte.
    """

    def __init__(self, opts: RunOptions, console: Console) -> None:
        self.opts, self.console = opts, console
        self.ends_with_newline = True
        self.shown = False  # some answer text is on stdout
        self.terminal = sys.stdout.isatty()
        #: With --schema the answer is printed once checked, never streamed.
        self.streams = not opts.json and not opts.schema
        self.known: dict[str, object] = {}  # --json fields known so far, for an error

    def __call__(self, event: Event) -> None:
        if isinstance(event, TextDelta) and self.streams and event.text:
            sys.stdout.write(for_output(event.text, terminal=self.terminal))
            sys.stdout.flush()
            self.ends_with_newline = event.text.endswith("\n")
            self.shown = True
        elif isinstance(event, ToolFinished):
            if not self.opts.quiet:
                self.console.print(tool_result_line(event.record))
            if event.record.output.strip():
                self.console.print(plugin_output(event.record))
        elif isinstance(event, Notice):
            self.notice(event.text)

    def notice(self, text: str) -> None:
        self.console.print(notice_line(text))

    @contextmanager
    def failing(self) -> Iterator[None]:
        """An error after answer text was printed ends that line on stdout, and
        its message says the text above is incomplete."""
        try:
            yield
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None
        except MaxStepsReached:
            raise
        except AgentCLIError as exc:
            if self.shown:
                self._end_line()
                exc.args = (f"{exc}; the text above is incomplete",)
            raise

    def _print(self, obj: object) -> None:
        print(json_visible(obj, indent=None) if self.terminal
              else json.dumps(obj, ensure_ascii=False), flush=True)

    def _end_line(self) -> None:
        if not self.ends_with_newline:
            sys.stdout.write("\n")
            sys.stdout.flush()
            self.ends_with_newline = True

    def failed(self, exc: AgentCLIError) -> None:
        """``--json``: one object with the fields known so far and the error."""
        self._print({**self.known, "error": {"message": str(exc), "exit_code": exc.exit_code}})

    def finish(self, result: TurnResult, session_id: str | None, data: object = None) -> None:
        if self.opts.json:
            obj = _json(result, session_id)
            if self.opts.schema:
                obj["data"] = data
            self._print(obj)
        elif self.opts.schema:
            self._print(data)
        else:
            self._end_line()
        if result.finish_reason == "length":
            self.console.print("agentcli: warning: the answer was cut off by the token limit "
                               "(max_tokens)")


def _json(result: TurnResult, session_id: str | None) -> dict[str, object]:
    return {"answer": result.answer, "model": result.model, "steps": result.steps,
            "tool_calls": [r.as_json() for r in result.tool_calls],
            "usage": asdict(result.usage), "session_id": session_id}


def run_command(opts: RunOptions) -> int:
    console = stderr(opts)
    output = _Output(opts, console)
    on_error = output.failed if opts.json else None
    with reported(verbose=opts.verbose, on_error=on_error) as code, output.failing():
        code[0] = _run(opts, console, output)
    return code[0]


def _run(opts: RunOptions, console: Console, output: _Output) -> int:
    schema = load_schema(opts.schema) if opts.schema is not None else None
    loaded = load_settings(opts, console)
    query, piped = read_query(opts.query)
    settings = loaded.settings
    api_key = settings.api_key()
    notice = output.notice
    store = SessionStore(secrets=[api_key] if api_key else [])
    saved_conv = store.load(opts.session) if opts.session else None  # before any request
    settings = resolve(settings, api_key, notice)
    output.known["model"] = settings.model
    registry = build_registry(settings, opts, console)
    conv = _conversation(opts, settings, saved_conv)
    approve = choose_approver(yes=opts.yes and opts.policy is None,
                              can_ask=stdin_is_terminal() and opts.query != "-")
    agent = build_agent(settings, registry, approve=approve, on_event=output, notice=notice,
                        stream=not opts.no_stream, verbose=opts.verbose,
                        rules=load_rules(opts, loaded))
    if piped:
        agent.tools.outside = "piped stdin"
    saving = opts.save or opts.session is not None
    wanted = conv.id
    choice = tool_choice(opts.tool_choice, registry)
    data = None
    try:
        result, data = _turn(agent, conv, query, choice, schema)
    except (MaxStepsReached, SchemaMismatch) as exc:
        saved = _save(store, conv, console) if saving else None
        output.known = _json(exc.result, saved)
        if opts.schema:
            output.known["data"] = None
        if not opts.json and not opts.schema and isinstance(exc, MaxStepsReached):
            output.finish(exc.result, saved)
        raise
    except BaseException as exc:
        if isinstance(exc, Interrupted):
            conv.repair("cancelled: the user interrupted the run")
        if saving:
            output.known["session_id"] = _save(store, conv, console)
        raise
    saved = _save(store, conv, console) if saving else None
    output.finish(result, saved, data)
    return 1 if saving and saved != wanted else 0


def _turn(agent: Agent, conv: Conversation, query: str, choice: object,
          schema: AnswerSchema | None) -> tuple[TurnResult, object]:
    """The turn, and with --schema the answer checked (and repaired once) against it."""
    if schema is None:
        return agent.run_turn(conv, query, tool_choice=choice), None
    agent.provider.answer_format = request_format(schema)
    return schema_answer(agent, conv, query, schema, tool_choice=choice)


def _conversation(opts: RunOptions, settings: Settings, saved: Conversation | None) -> Conversation:
    """The saved session to continue, or a new conversation; with the system prompt."""
    conv = saved if saved is not None else Conversation(model=settings.model)
    if settings.system and (opts.system or not opts.session):
        conv.set_system(settings.system)
    return conv


def _save(store: SessionStore, conv: Conversation, console: Console) -> str | None:
    """Save the session and return the id it went to (None: not saved).

    A failure is one line on stderr, even with --quiet; the answer is printed
    all the same. When the session cannot take the turn (locked by another process
    for too long, or made unreadable meanwhile), the turn is kept under a new id.
    """
    try:
        if store.save(conv).merged:
            console.print(f"agentcli: session {conv.id} was also saved by another process "
                          "meanwhile; this turn was added after what it saved")
        return conv.id
    except SessionError as exc:
        where = _save_elsewhere(store, conv)
        kept = f"this turn was saved as session {where} instead" if where else "this turn was not saved"
        stderr_console().print(f"agentcli: error: {visible(str(exc))}; {kept}")
        return where


def _save_elsewhere(store: SessionStore, conv: Conversation) -> str | None:
    """Save ``conv`` under a new id; the id, or None if that failed too."""
    old, conv.id = conv.id, new_id()
    try:
        store.save(conv)
    except SessionError:
        conv.id = old
        return None
    return conv.id
