"""Carrying out the tool calls of one reply: parse, validate, guard, approve,
run, audit, and answer every call id exactly once.

Used by the agent loop for the model's calls and by ``agentcli tools call``
for a call typed by a person, so both go through the same checks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .audit import AuditLog
from .config import DEFAULT_CONTEXT, ToolSettings
from .conversation import Conversation
from .errors import Interrupted, InvalidArguments, ToolError
from .events import ApprovalRequest, Approver, Decision, Event, ToolFinished, ToolRecord
from .messages import Message, ToolCall
from .nesting import MAX_DEPTH, shape_problem
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
                 audit: AuditLog | None = None) -> None:
        self.registry = registry
        self.approve = approve
        self.on_event = on_event
        self.limits = limits or Limits()
        settings = tool_settings or ToolSettings(timeout=self.limits.tool_timeout)
        self.guards = Guards(settings)
        self.audit = audit
        self.always: set[str] = set()

    def run(self, conv: Conversation, calls: list[ToolCall]) -> list[ToolRecord]:
        """Approve calls one by one, run the approved ones together, answer every id."""
        records = [ToolRecord(c.id, c.name, parse_lenient(c.arguments)) for c in calls]
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
        if self.registry.policy(tool.name) != "deny":
            refusal = self.guards.refusal(tool)
            if refusal:
                return Outcome("error", f"error: {refusal}")
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
        policy = self.registry.policy(tool.name)
        if policy == "deny":
            record.decision = "denied"
            return Decision(False, reason=f"the tool '{tool.name}' is disabled by policy")
        if policy == "auto" or tool.name in self.always:
            record.decision = "auto"
            return Decision(True)
        record.decision = "cancelled"  # until an answer comes
        decision = self.approve(ApprovalRequest(call=call, tool=tool, arguments=arguments))
        if decision.approved and decision.always:
            self.always.add(tool.name)
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
            for index, outcome in zip(order, results):
                outcomes[index] = outcome
                records[index].duration_ms = outcome.duration_ms if outcome else elapsed
                if outcome is not None:
                    records[index].output = outcome.output
                    self.guards.record(jobs[index].tool, outcome.status)
        _attach_fd_output(records[order[0]], printed, len(order))

    def _answer(self, conv: Conversation, calls: list[ToolCall], records: list[ToolRecord],
                outcomes: list[Outcome | None], missing: str = CANCELLED) -> None:
        """One tool message per call (``missing`` for calls with no outcome); audit; events."""
        for call, record, outcome in zip(calls, records, outcomes):
            outcome = outcome or Outcome("cancelled", missing)
            record.status, record.result = outcome.status, outcome.result
            conv.add(Message(role="tool", tool_call_id=call.id, content=_tool_message(record)))
            if self.audit is not None:
                self.audit.write(record, session=conv.id)
            self.on_event(ToolFinished(record))


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
