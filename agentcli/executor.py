"""Carrying out the tool calls of one reply: parse, validate, guard, approve,
run, audit, and answer every call id exactly once.

Used by the agent loop for the model's calls and by ``agentcli tools call``
for a call typed by a person, so both go through the same checks.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .audit import AuditLog
from .config import DEFAULT_CONTEXT, ToolSettings
from .conversation import Conversation
from .errors import Interrupted, InvalidArguments, ToolError
from .events import ApprovalRequest, Approver, Decision, Event, ToolFinished, ToolRecord
from .hooks import Hook, HookFailed, result_text
from .messages import Message, ToolCall
from .nesting import MAX_DEPTH, shape_problem
from .policy import LoopGuard, Rules, Verdict, canonical
from .tools.base import Tool
from .tools.guards import Guards
from .tools.registry import ToolRegistry
from .tools.runner import Job, Outcome, run_batch

CANCELLED = "cancelled: the user interrupted the turn before this call finished"
NOT_RUN = "cancelled by the user: the turn was stopped before this call ran"
EDITED = "the user edited the arguments before running: "
UNATTENDED = "denied: no one was there to approve it"


@dataclass
class Limits:
    max_steps: int = 10
    max_parallel: int = 4
    tool_timeout: float = 30.0
    max_output: int = 16_000
    context_window: int = DEFAULT_CONTEXT  # tokens; older turns are dropped to fit
    reply_tokens: int = 0  # room kept for the reply (max_tokens)


class ToolExecutor:
    def __init__(self, registry: ToolRegistry, *, approve: Approver,
                 on_event: Callable[[Event], None] = lambda _: None,
                 limits: Limits | None = None, tool_settings: ToolSettings | None = None,
                 audit: AuditLog | None = None, rules: Rules | None = None) -> None:
        self.registry = registry
        self.approve = approve
        self.on_event = on_event
        self.limits = limits or Limits()
        settings = tool_settings or ToolSettings(timeout=self.limits.tool_timeout)
        self.guards = Guards(settings)
        self.audit = audit
        self.always: set[str] = set()
        #: (tool, scope) pairs approved with "always".
        self.scopes: set[tuple[str, str]] = set()
        self.rules = rules or Rules()
        self.loop_guard = LoopGuard(settings.repeat_limit)
        #: Why the conversation holds text from outside (None: it does not, as far as known).
        self.outside: str | None = None
        self._session: str | None = None

    def run(self, conv: Conversation, calls: list[ToolCall]) -> list[ToolRecord]:
        """Approve calls one by one, run the approved ones together, answer every id."""
        records = [ToolRecord(c.id, c.name, parse_lenient(c.arguments)) for c in calls]
        self._session = conv.id
        self.outside = self.outside or outside_in(conv, self.registry)
        outcomes: list[Outcome | None] = [None] * len(calls)
        jobs: dict[int, Job] = {}
        try:
            for index, call in enumerate(calls):
                job_or_outcome = self._prepare(call, records[index])
                if isinstance(job_or_outcome, Outcome):
                    outcomes[index] = job_or_outcome
                else:
                    jobs[index] = job_or_outcome
        except (KeyboardInterrupt, Interrupted) as exc:
            # Ctrl-C (or Ctrl-D) at an approval question: nothing has run yet, and
            # nothing will: every call still pending, approved ones included, is cancelled.
            self._answer(conv, calls, records, outcomes, missing=NOT_RUN)
            if isinstance(exc, Interrupted):
                raise
            raise Interrupted("interrupted before the tools ran") from None
        try:
            self._execute(jobs, outcomes, records)
            self._post_hooks(sorted(jobs), calls, outcomes, records)
        except KeyboardInterrupt:
            self._answer(conv, calls, records, outcomes)
            raise Interrupted("interrupted while tools were running") from None
        self._answer(conv, calls, records, outcomes)
        return records

    def refuse(self, conv: Conversation, calls: list[ToolCall], reason: str) -> list[ToolRecord]:
        """Answer ``calls`` without running them (status cancelled)."""
        records = []
        for call in calls:
            records.append(ToolRecord(call.id, call.name, parse_lenient(call.arguments),
                                      status="cancelled", result=reason))
            conv.add(Message(role="tool", tool_call_id=call.id, content=reason))
        return records

    def _prepare(self, call: ToolCall, record: ToolRecord) -> Job | Outcome:
        if call.truncated:
            return Outcome("error", "not run: the reply was cut off by the token limit before "
                                    "this call's arguments were complete")
        try:
            tool = self.registry.get(call.name)
            arguments = parse_arguments(call.arguments)
            kwargs = tool.validate(arguments)
        except ToolError as exc:
            return Outcome("error", f"error: {exc}")
        if self.loop_guard.over(tool.name, arguments):
            record.decision = "denied"
            return Outcome("denied", self.loop_guard.reason(tool.name))
        if self.registry.policy(tool.name) != "deny":
            refusal = self.guards.refusal(tool)
            if refusal:
                return Outcome("error", f"error: {refusal}")
        changed = self._pre_hooks(tool.name, arguments, record)
        if isinstance(changed, Outcome):
            return changed
        if changed is not None:
            arguments = record.arguments = changed
            try:
                kwargs = tool.validate(arguments)
            except ToolError as exc:
                return Outcome("error", f"error: the hook {record.hook} changed the arguments "
                                        f"into ones that are not valid: {exc}")
        record.scope = scope_of(tool, kwargs)
        decision = self._decide(call, tool, arguments, record)
        if not decision.approved:
            return Outcome("denied", _denial_text(call.name, decision))
        if decision.arguments is not None:
            record.arguments = decision.arguments
            try:
                kwargs = tool.validate(decision.arguments)
            except ToolError as exc:
                return Outcome("error", f"error: {exc}")
        return Job(tool, kwargs, self.guards.timeout(tool))

    def _decide(self, call: ToolCall, tool: Tool, arguments: dict[str, Any],
                record: ToolRecord) -> Decision:
        """Rules first (deny beats all), then the tool's policy and "always" answers;
        a call with side effects after outside text asks unless a rule allows it."""
        verdict = self.rules.judge(tool.name, arguments)
        record.rule = verdict.rule.origin if verdict.rule else None
        action = self._action(tool, verdict, record.scope)
        if action == "deny":
            record.decision = "denied"
            return Decision(False, reason=self._denial(tool, verdict))
        why = None if verdict.action == "auto" else self._why_ask(tool)
        if action == "auto" and why is None:
            record.decision = "auto"
            return Decision(True)
        return self._ask(ApprovalRequest(call=call, tool=tool, arguments=arguments,
                                         scope=record.scope, why=why), record)

    def _action(self, tool: Tool, verdict: Verdict, scope: str | None) -> str:
        if self.registry.policy(tool.name) == "deny":
            return "deny"
        if verdict.action is not None:
            return verdict.action
        if self.registry.policy(tool.name) == "auto" or tool.name in self.always:
            return "auto"
        return "auto" if scope is not None and (tool.name, scope) in self.scopes else "ask"

    def _denial(self, tool: Tool, verdict: Verdict) -> str:
        if self.registry.policy(tool.name) == "deny":
            return f"the tool '{tool.name}' is disabled by policy"
        if verdict.rule is not None:
            return f"a policy rule denies this call ({verdict.rule.origin})"
        return "no rule of the policy allows this call (deny by default under --policy)"

    def _why_ask(self, tool: Tool) -> str | None:
        if not tool.side_effects or self.outside is None:
            return None
        return (f"{tool.name} changes things and the conversation now holds text from outside "
                f"({self.outside}) that may try to steer it, so it asks even if approved before")

    def _ask(self, request: ApprovalRequest, record: ToolRecord) -> Decision:
        record.decision = "cancelled"  # until an answer comes
        decision = self.approve(request)
        if decision.approved and decision.always:
            if request.scope is not None:
                self.scopes.add((request.tool.name, request.scope))
            else:
                self.always.add(request.tool.name)
        record.decision = ("denied" if not decision.approved else
                           "edited" if decision.arguments is not None else "approved")
        return decision

    def _execute(self, jobs: dict[int, Job], outcomes: list[Outcome | None],
                 records: list[ToolRecord]) -> None:
        if not jobs:
            return
        order = sorted(jobs)
        results: list[Outcome | None] = [None] * len(order)
        started = time.monotonic()
        try:
            printed = run_batch([jobs[i] for i in order], results,
                                max_parallel=self.limits.max_parallel,
                                max_output=self.limits.max_output)
        finally:
            elapsed = int((time.monotonic() - started) * 1000)
            for index, outcome in zip(order, results, strict=False):
                outcomes[index] = outcome
                records[index].duration_ms = outcome.duration_ms if outcome else elapsed
                if outcome is not None:
                    records[index].output = outcome.output
                    self.guards.record(jobs[index].tool, outcome.status)
        _attach_fd_output(records[order[0]], printed, len(order))

    def _answer(self, conv: Conversation, calls: list[ToolCall], records: list[ToolRecord],
                outcomes: list[Outcome | None], missing: str = CANCELLED) -> None:
        """One tool message per call (``missing`` for calls with no outcome); audit; events."""
        for call, record, outcome in zip(calls, records, outcomes, strict=False):
            outcome = outcome or Outcome("cancelled", missing)
            record.status, record.result = outcome.status, outcome.result
            record.images = outcome.images if outcome.status == "ok" else []
            conv.add(Message(role="tool", tool_call_id=call.id, content=_tool_message(record),
                             images=record.images))
            self._note_outside(record)
            if self.audit is not None:
                self.audit.write(record, session=conv.id)
            self.on_event(ToolFinished(record))


    def _hooks(self, event: str, name: str) -> list[Hook]:
        return [h for h in self.registry.hooks if h.event == event and h.applies(name)]

    def _payload(self, name: str, arguments: Any) -> dict[str, Any]:
        return {"tool": name, "arguments": arguments, "session": self._session,
                "cwd": os.getcwd()}

    def _pre_hooks(self, name: str, arguments: dict[str, Any],
                   record: ToolRecord) -> Outcome | dict[str, Any] | None:
        """Run the pre_tool hooks in order: new arguments, a denial, or an error result."""
        changed = None
        for hook in self._hooks("pre_tool", name):
            try:
                answer = hook.run(self._payload(name, changed or arguments))
                if answer.arguments is not None:
                    changed = _as_arguments(answer.arguments)
            except HookFailed as exc:
                record.hook = hook.name
                return Outcome("error", f"error: the pre_tool hook {hook.name} failed ({exc}); "
                                        "the call was not run")
            if answer.deny is not None:
                record.hook, record.decision = hook.name, "denied"
                return Outcome("denied", f"denied by the hook {hook.name}: {answer.deny}")
            if answer.arguments is not None:
                record.hook = hook.name
        return changed

    def _post_hooks(self, order: list[int], calls: list[ToolCall],
                    outcomes: list[Outcome | None], records: list[ToolRecord]) -> None:
        """Run the post_tool hooks on each call that ran; they may replace its result."""
        for index in order:
            outcome = outcomes[index]
            for hook in self._hooks("post_tool", calls[index].name):
                if outcome is None or outcome.status == "denied":
                    break
                outcome = self._post_hook(hook, records[index], outcome)
            outcomes[index] = outcome

    def _post_hook(self, hook: Hook, record: ToolRecord, outcome: Outcome) -> Outcome:
        payload = {**self._payload(record.name, record.arguments), "status": outcome.status,
                   "result": outcome.result}
        try:
            answer = hook.run(payload)
            text = result_text(answer.result) if answer.has_result else None
        except HookFailed as exc:
            record.hook = hook.name
            return replace(outcome, status="error", result=f"error: the post_tool hook "
                           f"{hook.name} failed ({exc}); the result is withheld")
        if answer.deny is not None:
            record.hook = hook.name
            return replace(outcome, status="denied",
                           result=f"denied by the hook {hook.name}: {answer.deny}")
        if text is not None:
            record.hook = hook.name
            return replace(outcome, result=text, images=[])  # what the model sees is the hook's
        return outcome

    def _note_outside(self, record: ToolRecord) -> None:
        """A successful result of a tool that reads from outside marks the conversation."""
        if record.status == "ok" and self.outside is None and record.name in self.registry \
                and self.registry.get(record.name).untrusted_output:
            self.outside = f"a result of {record.name}"


NOT_RUN_PREFIXES = ("denied", "error", "cancelled", "not run")


def outside_in(conv: Conversation, registry: ToolRegistry) -> str | None:
    """Whether a saved history (a resumed session) already holds a result from outside."""
    names: dict[str, str] = {}
    for message in conv.messages:
        names.update({c.id: c.name for c in message.tool_calls})
        name = names.get(message.tool_call_id or "")
        if message.role != "tool" or name is None or name not in registry:
            continue
        if registry.get(name).untrusted_output and \
                not (message.content or "").startswith(NOT_RUN_PREFIXES):
            return f"a result of {name}"
    return None


def _as_arguments(value: dict[str, Any]) -> dict[str, Any]:
    """Arguments from a hook, held to the rules for a model's (JSON, bounded depth)."""
    try:
        return parse_arguments(json.dumps(value))
    except (TypeError, ValueError, RecursionError, InvalidArguments) as exc:
        raise HookFailed(f"answered with arguments that cannot be used ({exc})") from None


def scope_of(tool: Tool, kwargs: dict[str, Any]) -> str | None:
    """The tool's scope for these arguments; one that cannot be worked out is the exact call."""
    if tool.scope is None:
        return None
    try:
        scope = tool.scope(kwargs)
    except Exception:  # a plugin's scope function failing must not widen "always"
        scope = None
    if not isinstance(scope, str) or not scope:
        return "exactly " + canonical(tool.name, kwargs)[:200]
    return scope[:200]


def _attach_fd_output(record: ToolRecord, printed: str, batch: int) -> None:
    """What the batch wrote straight to file descriptor 1, shown with the first call's output."""
    if not printed.strip():
        return
    if batch > 1:
        printed = f"(written to file descriptor 1 by one of the {batch} calls run together)\n{printed}"
    record.output = f"{record.output}\n{printed}" if record.output.strip() else printed


def _tool_message(record: ToolRecord) -> str:
    """What the model reads: the result, after a line with the arguments if the user edited them."""
    if record.decision != "edited":
        return record.result
    edited = json.dumps(record.arguments, ensure_ascii=False)
    return f"{EDITED}{edited}\n{record.result}"


def _denial_text(name: str, decision: Decision) -> str:
    if decision.unattended:
        return UNATTENDED
    if decision.reason:
        return f"denied: {decision.reason}"
    return f"denied: the user did not allow this call to {name}"


def parse_arguments(text: str) -> dict[str, Any]:
    """Strict JSON object: no duplicate keys, no NaN/Infinity, no trailing junk."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:
        raise InvalidArguments(f"the arguments are not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidArguments(f"the arguments must be a JSON object, not {type(value).__name__}")
    problem = shape_problem(value)
    if problem is not None:
        raise InvalidArguments(f"the arguments cannot be used ({problem}); send simpler arguments")
    return value


def _too_deep() -> InvalidArguments:
    return InvalidArguments(f"the arguments cannot be used (nested deeper than {MAX_DEPTH} levels); "
                            "send simpler arguments")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def parse_lenient(text: str) -> Any:
    """Arguments for display and ``--json``: the object if it parses, else the raw text."""
    try:
        return parse_arguments(text)
    except InvalidArguments:
        return text
