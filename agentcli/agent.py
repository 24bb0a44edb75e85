"""The agent loop, shared by ``run`` and ``chat``; it knows nothing of terminals.

One turn: send the conversation and the tool schemas, stream the reply, and
for each proposed call parse, validate, approve and run it, then send the
results back, until the model answers in plain text or ``max_steps`` runs out.
Every tool call id gets exactly one tool message whatever happens, so the
history stays valid for the API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .conversation import Conversation
from .errors import (Interrupted, InvalidArguments, MaxStepsReached, ToolError, TruncatedReply)
from .events import (ApprovalRequest, Approver, Decision, Event, ReplyDone, TextDelta,
                     ToolFinished, ToolRecord, TurnResult)
from .messages import Message, ToolCall
from .provider import ChatProvider, Reply
from .tools.base import Tool
from .tools.registry import ToolRegistry
from .tools.runner import Job, Outcome, run_batch

CANCELLED = "cancelled: the user interrupted the turn before this call finished"
UNATTENDED = "denied: no one was there to approve it"


@dataclass
class Limits:
    max_steps: int = 10
    max_parallel: int = 4
    tool_timeout: float = 30.0
    max_output: int = 16_000


class Agent:
    def __init__(self, provider: ChatProvider, registry: ToolRegistry, *, approve: Approver,
                 on_event: Callable[[Event], None] = lambda _: None,
                 limits: Limits | None = None, stream: bool = True) -> None:
        self.provider = provider
        self.registry = registry
        self.approve = approve
        self.on_event = on_event
        self.limits = limits or Limits()
        self.stream = stream
        self.always: set[str] = set()

    def run_turn(self, conv: Conversation, text: str | None, *,
                 tool_choice: Any = None, use_tools: bool = True) -> TurnResult:
        """Add ``text`` as a user message and drive the loop to an answer.

        Raises:
            MaxStepsReached: the model kept calling tools; ``.result`` holds the turn so far.
            Interrupted: Ctrl-C; the conversation was left valid first.
            ModelError: the server failed (after retries).
        """
        if text is not None:
            conv.add(Message(role="user", content=text))
        result = TurnResult(model=self.provider.model)
        schemas = self.registry.schemas() if use_tools and len(self.registry) else []
        choice = tool_choice if schemas else None
        for step in range(1, self.limits.max_steps + 1):
            reply = self._ask_model(conv, schemas, choice)
            result.steps, result.model = step, reply.model or result.model
            result.usage.add(reply.usage)
            result.finish_reason = reply.finish_reason
            conv.add(Message(role="assistant", content=reply.content, tool_calls=reply.tool_calls))
            self.on_event(ReplyDone(reply.content, reply.tool_calls, reply.finish_reason))
            result.answer = reply.content
            if not reply.tool_calls:
                return result
            if step == self.limits.max_steps:
                self._refuse_all(conv, reply.tool_calls, result,
                                 f"not run: the step limit ({self.limits.max_steps}) was reached")
                break
            result.tool_calls += self._run_calls(conv, reply.tool_calls)
            self._stop_if_truncated(reply)
            if choice not in (None, "none", "auto"):
                choice = "auto"
        error = MaxStepsReached(f"stopped after {self.limits.max_steps} steps: the model was still "
                                "calling tools (raise --max-steps to allow more)")
        error.result = result  # type: ignore[attr-defined]
        raise error

    def _ask_model(self, conv: Conversation, schemas: list[dict[str, Any]], choice: Any) -> Reply:
        partial: list[str] = []

        def on_text(text: str) -> None:
            partial.append(text)
            self.on_event(TextDelta(text))
        try:
            return self.provider.complete(conv.to_api(), schemas, tool_choice=choice,
                                          stream=self.stream, on_text=on_text)
        except KeyboardInterrupt:
            if partial:
                conv.add(Message(role="assistant", content="".join(partial) + "\n[interrupted]",
                                 interrupted=True))
            raise Interrupted("interrupted while the model was answering") from None

    def _stop_if_truncated(self, reply: Reply) -> None:
        cut = [c for c in reply.tool_calls if c.truncated]
        if cut:
            raise TruncatedReply(
                f"the reply was cut off by the token limit in the middle of a call to "
                f"'{cut[0].name}'; that call was not run (raise max_tokens and try again)")

    def _refuse_all(self, conv: Conversation, calls: list[ToolCall], result: TurnResult,
                    reason: str) -> None:
        for call in calls:
            record = ToolRecord(call.id, call.name, parse_lenient(call.arguments),
                                status="cancelled", result=reason)
            conv.add(Message(role="tool", tool_call_id=call.id, content=reason))
            result.tool_calls.append(record)

    def _run_calls(self, conv: Conversation, calls: list[ToolCall]) -> list[ToolRecord]:
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
            self._execute(jobs, outcomes, records)
        except KeyboardInterrupt:
            self._answer(conv, calls, records, outcomes)
            raise Interrupted("interrupted while tools were running") from None
        self._answer(conv, calls, records, outcomes)
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
        decision = self._decide(call, tool, arguments, record)
        if not decision.approved:
            return Outcome("denied", _denial_text(call.name, decision))
        if decision.arguments is not None:
            record.arguments = decision.arguments
            try:
                kwargs = tool.validate(decision.arguments)
            except ToolError as exc:
                return Outcome("error", f"error: {exc}")
        timeout = tool.timeout or self.limits.tool_timeout
        return Job(tool, kwargs, timeout)

    def _decide(self, call: ToolCall, tool: Tool, arguments: dict[str, Any],
                record: ToolRecord) -> Decision:
        policy = self.registry.policy(tool.name)
        if policy == "deny":
            record.decision = "denied"
            return Decision(False, reason=f"the tool '{tool.name}' is disabled by policy")
        if policy == "auto" or tool.name in self.always:
            record.decision = "auto"
            return Decision(True)
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
            run_batch([jobs[i] for i in order], results, max_parallel=self.limits.max_parallel,
                      max_output=self.limits.max_output)
        finally:
            elapsed = int((time.monotonic() - started) * 1000)
            for index, outcome in zip(order, results):
                outcomes[index] = outcome
                records[index].duration_ms = outcome.duration_ms if outcome else elapsed

    def _answer(self, conv: Conversation, calls: list[ToolCall], records: list[ToolRecord],
                outcomes: list[Outcome | None]) -> None:
        for call, record, outcome in zip(calls, records, outcomes):
            outcome = outcome or Outcome("cancelled", CANCELLED)
            record.status, record.result = outcome.status, outcome.result
            conv.add(Message(role="tool", tool_call_id=call.id, content=outcome.result))
            self.on_event(ToolFinished(record))


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
    except (ValueError, RecursionError) as exc:
        raise InvalidArguments(f"the arguments are not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidArguments(f"the arguments must be a JSON object, not {type(value).__name__}")
    return value


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
