"""``agentcli mcp serve``: agentcli's own tools offered to any MCP client over stdio.

Every call goes through the same ``ToolExecutor`` as ``agentcli tools call``:
validation, hooks, rules, the calculator's sandbox, the SSRF guard, time-outs,
rate limits, circuit breakers, the output cap and the audit log.

No one is at a terminal. A call that asks is put to the client as an
elicitation (a form with one "always" box): before the 2026-07-28 protocol as
an ``elicitation/create`` request in the middle of the call, from then on as an
``InputRequiredResult`` the client answers by calling again. A tool that may ask
is listed only for a client that can answer elicitations, or when ``--allow``
names it; a tool the policy denies is never listed.

The wire is a private copy of the process's stdin and stdout: file descriptor 1
points at stderr and 0 at the null device for as long as the server runs, so
nothing a plugin, a hook or a child process writes can reach the protocol.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import hmac
import io
import json
import os
import secrets
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from ..audit import AuditLog
from ..config import ToolSettings
from ..conversation import Conversation, new_id
from ..errors import UsageError
from ..events import ApprovalRequest, Decision, ToolRecord
from ..executor import Limits, ToolExecutor
from ..messages import ToolCall
from ..nesting import shape_problem
from ..policy import Rules, canonical
from ..tools.base import Tool
from ..tools.guards import Guards
from ..tools.registry import ToolRegistry
from ..tools.runner import Outcome
from ..ui.safe_text import visible

APPROVAL_KEY = "agentcli_approval"
"""The key of the approval question in an ``InputRequiredResult``."""
INPUT_REQUIRED_VERSION = "2026-07-28"
"""The first protocol revision that elicits through ``InputRequiredResult``."""
MAX_SHOWN = 2_000
"""Most characters of the arguments shown in an approval question."""
MAX_WAITING = 256
"""Most calls whose pre_tool hooks' answer is kept until the client answers the question."""


# --- which tools are served ----------------------------------------------------------------

def never_runs(name: str, registry: ToolRegistry, rules: Rules) -> bool:
    """Whether every call of ``name`` would be denied: policy "deny", a rule denying
    it whatever the arguments, or ``--policy`` with no rule that names it."""
    if registry.policy(name) == "deny":
        return True
    matching = [r for r in rules.rules if fnmatch.fnmatchcase(name, r.tool)]
    if any(r.action == "deny" and not r.args for r in matching):
        return True
    return rules.strict and not any(r.action != "deny" for r in matching)


def may_ask(name: str, registry: ToolRegistry, rules: Rules) -> bool:
    """Whether some call of ``name`` would ask for approval (its policy, or a rule)."""
    matching = [r for r in rules.rules if fnmatch.fnmatchcase(name, r.tool)]
    if any(r.action == "ask" for r in matching):
        return True
    if rules.strict:
        return False  # under --policy only a rule can let a call through
    first = matching[0] if matching else None
    allowed_outright = first is not None and first.action == "auto" and not first.args
    return registry.policy(name) == "ask" and not allowed_outright


@dataclass
class Selection:
    """What is served to one client, and why the rest is not."""

    tools: list[Tool]
    hidden: dict[str, str]


def select(registry: ToolRegistry, rules: Rules, *, allow: set[str],
           can_elicit: bool) -> Selection:
    """The tools a client sees: never a denied one; one that may ask only when the
    client can answer an elicitation or ``allow`` names it."""
    tools: list[Tool] = []
    hidden: dict[str, str] = {}
    for tool in registry.all():
        if never_runs(tool.name, registry, rules):
            hidden[tool.name] = "its policy denies every call"
        elif may_ask(tool.name, registry, rules) and not can_elicit and tool.name not in allow:
            hidden[tool.name] = ("it asks for approval and this client cannot be asked; "
                                 "serve it with --allow NAME")
        else:
            tools.append(tool)
    return Selection(tools, hidden)


def unknown_allowed(registry: ToolRegistry, allow: list[str]) -> list[str]:
    return [name for name in allow if name not in registry]


# --- approval ------------------------------------------------------------------------------

APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "always": {"type": "boolean", "title": "Allow this tool without asking again",
                   "description": "Until this server stops.", "default": False},
    },
}


def question(request: ApprovalRequest) -> str:
    """The approval question: the tool, its source and its arguments (escaped, cut)."""
    shown = json.dumps(request.arguments, ensure_ascii=False, sort_keys=True)
    if len(shown) > MAX_SHOWN:
        shown = shown[:MAX_SHOWN] + f"... ({len(shown) - MAX_SHOWN:,} more characters)"
    lines = [f"Allow agentcli to run the tool {request.tool.name} "
             f"({visible(request.tool.source)})?", f"Arguments: {visible(shown)}"]
    if request.scope:
        lines.append(f"'Always' would allow: {visible(request.scope)}")
    if request.why:
        lines.append(visible(request.why))
    return "\n".join(lines)


def decision_of(result: Any) -> Decision:
    """An ``ElicitResult`` as an approval: accept runs the call, anything else does not."""
    if isinstance(result, _Failed):
        return Decision(False, reason=f"the MCP client could not ask the user ({result.reason})")
    if getattr(result, "action", None) != "accept":
        return Decision(False, reason="the user declined it in the MCP client")
    content = getattr(result, "content", None) or {}
    return Decision(True, always=content.get("always") is True)


class NeedsApproval(Exception):
    """The call must be put to the client first (2026-07-28: ``InputRequiredResult``)."""

    def __init__(self, request: ApprovalRequest) -> None:
        super().__init__(request.tool.name)
        self.request = request


# --- running calls -------------------------------------------------------------------------

HookAnswer = tuple[Outcome | dict[str, Any] | None, str | None]
"""What the pre_tool hooks answered for a call (new arguments or None), and which hook."""


@dataclass
class Service:
    """What every call shares: tools, rules, guards, "always" answers and the audit log."""

    registry: ToolRegistry
    rules: Rules
    settings: ToolSettings
    allow: set[str]
    audit: AuditLog | None = None
    guards: Guards = field(init=False)
    always: set[str] = field(default_factory=set)
    scopes: set[tuple[str, str]] = field(default_factory=set)
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    #: One audit session for everything this server runs.
    session: str = field(default_factory=new_id)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The pre_tool hooks' answer for calls put to the client, by question token.
    hooked: OrderedDict[str, HookAnswer] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self.guards = Guards(self.settings)

    def run(self, name: str, arguments: dict[str, Any],
            approve: Callable[[ApprovalRequest], Decision], token: str = "") -> ToolRecord:
        """One call through the executor. Calls run one at a time (a running tool may
        point file descriptor 1 elsewhere), but not while one waits for the user's answer.

        ``token`` names the question of a call the client is asked about by a second
        call (``InputRequiredResult``): the pre_tool hooks run for the first one only,
        and the second uses their answer, as in chat, where they run once before the
        question is asked.
        """
        def approver(request: ApprovalRequest) -> Decision:
            if request.tool.name in self.allow:
                return Decision(True)
            self.lock.release()
            try:
                return approve(request)
            finally:
                self.lock.acquire()

        t = self.settings
        executor = _HooksOnce(self.registry, approve=approver, tool_settings=t,
                              rules=self.rules, audit=self.audit,
                              limits=Limits(max_parallel=1, tool_timeout=t.timeout,
                                            max_output=t.max_output))
        executor.guards, executor.always, executor.scopes = self.guards, self.always, self.scopes
        executor.hooked, executor.token = self.hooked, token
        try:
            text = json.dumps(arguments, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError):  # too deep, or NaN: the executor says so
            text = "[arguments that cannot be written as JSON]"
        call = ToolCall(id="call_mcp", name=name, arguments=text)
        with self.lock:
            try:
                return executor.run(Conversation(id=self.session), [call])[0]
            except NeedsApproval:
                self.guards.uncount(name)  # it is counted when the answer comes
                executor.keep_hooked()
                raise

    def token(self, name: str, arguments: dict[str, Any]) -> str:
        """Binds an answer to the exact call it was asked about."""
        try:
            message = canonical(name, arguments).encode("utf-8", "surrogatepass")
        except (ValueError, RecursionError):  # such a call fails before anything is asked
            return ""
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()


class _HooksOnce(ToolExecutor):
    """An executor whose pre_tool hooks run once for a call asked about by a second call.

    The first call runs the hooks and keeps their answer under the question's token
    (``keep_hooked``, when the question is sent); the call that brings the answer
    takes it instead of running them again.
    """

    hooked: OrderedDict[str, HookAnswer]
    token = ""
    _hooks_said: HookAnswer | None = None

    def _pre_hooks(self, name: str, arguments: dict[str, Any],
                   record: ToolRecord) -> Outcome | dict[str, Any] | None:
        kept = self.hooked.pop(self.token, None) if self.token else None
        if kept is not None:
            changed, record.hook = kept
            return changed
        changed = super()._pre_hooks(name, arguments, record)
        self._hooks_said = (changed, record.hook)
        return changed

    def keep_hooked(self) -> None:
        """The client is asked: keep the hooks' answer for the call that answers."""
        if self.token and self._hooks_said is not None:
            self.hooked[self.token] = self._hooks_said
            while len(self.hooked) > MAX_WAITING:  # questions never answered
                self.hooked.popitem(last=False)


def unattended(request: ApprovalRequest) -> Decision:
    return Decision(False, unattended=True)


# --- the protocol --------------------------------------------------------------------------

def claim_stdio() -> tuple[BinaryIO, BinaryIO]:
    """Private copies of stdin and stdout for the wire; fd 0 then reads the null device
    and fd 1 writes to stderr, so stray output cannot corrupt the protocol."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
        wire_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
        wire_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    except (OSError, ValueError) as exc:
        raise UsageError(f"mcp serve talks to its client over stdin and stdout, and one of "
                         f"them is closed ({exc})") from None
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return os.fdopen(wire_in, "rb", buffering=0), os.fdopen(wire_out, "wb", buffering=0)


def serve(service: Service, wire: tuple[BinaryIO, BinaryIO],
          log: Callable[[str], None]) -> None:
    """Answer one MCP client on ``wire`` until it goes away."""
    import anyio

    anyio.run(_serve, service, wire, log)


async def _serve(service: Service, wire: tuple[BinaryIO, BinaryIO],
                 log: Callable[[str], None]) -> None:
    import anyio
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    from .. import __version__

    server: Server[Any] = Server("agentcli", version=__version__,
                                 on_list_tools=_lister(service, log),
                                 on_call_tool=_caller(service, log))
    stdin = anyio.wrap_file(io.TextIOWrapper(wire[0], encoding="utf-8", errors="replace"))
    stdout = anyio.wrap_file(io.TextIOWrapper(wire[1], encoding="utf-8", write_through=True))
    async with stdio_server(cast(Any, _Bounded(stdin, log)), stdout) as (read, write):
        await server.run(read, write, server.create_initialization_options())


WIRE_DEPTH = 100
"""Most levels of nesting in a message from the client (the SDK's JSON parser stops
near 200 and then drops the message without an answer)."""


class _Bounded:
    """The client's lines; a request nested deeper than ``WIRE_DEPTH`` is replaced by
    one with the same id and empty parameters, which the SDK answers with an "invalid
    parameters" error (a tool call needs a name): else the SDK drops it and the client
    waits for ever."""

    def __init__(self, lines: Any, log: Callable[[str], None]) -> None:
        self.lines, self.log = lines, log

    async def __aiter__(self) -> Any:
        async for line in self.lines:
            yield self.bounded(line)

    def bounded(self, line: str) -> str:
        if line.count("[") + line.count("{") <= WIRE_DEPTH:
            return line  # cannot be too deep
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            return line  # the SDK reports what it cannot read
        if not isinstance(message, dict) or "id" not in message or "method" not in message \
                or shape_problem(message, WIRE_DEPTH) is None:
            return line
        self.log(f"the request {visible(json.dumps(message['id']))[:80]} "
                 f"({visible(str(message['method']))[:80]}) is nested deeper than {WIRE_DEPTH} "
                 "levels; it is answered with an error")
        return json.dumps({"jsonrpc": "2.0", "id": message["id"], "method": message["method"],
                           "params": {}})


def _can_elicit(ctx: Any) -> bool:
    capabilities = ctx.session.client_capabilities
    elicitation = getattr(capabilities, "elicitation", None)
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def _selection(service: Service, ctx: Any) -> Selection:
    return select(service.registry, service.rules, allow=service.allow,
                  can_elicit=_can_elicit(ctx))


def _lister(service: Service, log: Callable[[str], None]) -> Any:
    import mcp_types as types

    said: set[str] = set()

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        selection = _selection(service, ctx)
        unasked = sorted(n for n, why in selection.hidden.items() if "--allow" in why)
        if unasked and ",".join(unasked) not in said:
            said.add(",".join(unasked))
            log(f"this client cannot be asked for approval, so these tools are not offered: "
                f"{', '.join(unasked)} (serve them with --allow NAME, or give them policy "
                "\"auto\" in [tools.policy])")
        offered = [types.Tool(name=t.name, description=t.description or None,
                              input_schema=t.parameters) for t in selection.tools]
        return types.ListToolsResult(tools=offered)
    return list_tools


def _caller(service: Service, log: Callable[[str], None]) -> Any:
    import anyio.from_thread
    import anyio.to_thread
    import mcp_types as types
    from mcp_types.version import is_version_at_least

    def result(text: str, error: bool) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(text=text)], is_error=error)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> Any:
        selection = _selection(service, ctx)
        arguments = dict(params.arguments or {})
        if params.name not in {t.name for t in selection.tools}:
            why = selection.hidden.get(params.name)
            offered = ", ".join(t.name for t in selection.tools) or "none"
            return result(f"error: the tool '{params.name}' is not served here ("
                          f"{why or 'no such tool'}); tools served: {offered}", True)
        modern = is_version_at_least(ctx.protocol_version, INPUT_REQUIRED_VERSION)
        can_ask = _can_elicit(ctx)
        token = service.token(params.name, arguments)
        answer = (params.input_responses or {}).get(APPROVAL_KEY)
        if answer is not None and not (token and hmac.compare_digest(params.request_state or "",
                                                                    token)):
            answer = None  # an answer to some other question

        def approve(request: ApprovalRequest) -> Decision:
            if not can_ask:
                return unattended(request)
            if modern:
                if answer is None:
                    raise NeedsApproval(request)
                return decision_of(answer)
            return decision_of(anyio.from_thread.run(_elicit, ctx, question(request)))

        try:
            record = await anyio.to_thread.run_sync(service.run, params.name, arguments, approve,
                                                    token if modern and can_ask else "")
        except NeedsApproval as need:
            ask = types.ElicitRequest(params=types.ElicitRequestFormParams(
                message=question(need.request), requested_schema=APPROVAL_SCHEMA))
            return types.InputRequiredResult(input_requests={APPROVAL_KEY: ask},
                                             request_state=token)
        if record.output.strip():
            log(f"{record.name}: plugin output:\n{visible(record.output.strip(), keep_newlines=True)}")
        return result(record.result, record.status != "ok")
    return call_tool


async def _elicit(ctx: Any, message: str) -> Any:
    """Ask the client (protocols before 2026-07-28); a failed question is a denial."""
    try:
        return await ctx.session.elicit_form(message, APPROVAL_SCHEMA,
                                             related_request_id=ctx.request_id)
    except Exception as exc:  # the client failed to answer: nothing runs
        return _Failed(str(exc) or type(exc).__name__)


@dataclass
class _Failed:
    """An elicitation that got no answer."""

    reason: str
