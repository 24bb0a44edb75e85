"""What the agent loop reports to whoever drives it (a terminal UI, a script).

The loop never prints. It calls ``on_event`` with these, and asks an
``Approver`` before running any call whose policy is ``ask``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .messages import ToolCall, Usage

if TYPE_CHECKING:  # the tools (and pydantic's models for them) load with the registry
    from .tools.base import Tool

Status = Literal["ok", "error", "denied", "timeout", "cancelled"]


@dataclass
class TextDelta:
    text: str


@dataclass
class ReplyDone:
    """The model finished one reply (text and/or tool calls)."""

    content: str
    tool_calls: list[ToolCall]
    finish_reason: str | None


@dataclass
class ToolRecord:
    """One call, from proposal to result; what ``--json`` and the audit log show."""

    id: str
    name: str
    arguments: Any
    status: Status = "ok"
    result: str = ""
    duration_ms: int = 0
    decision: str = "not asked"  # auto, approved, denied, edited; "not asked" if refused before
    output: str = ""  # what the tool printed; shown as plugin output, never in answers
    rule: str | None = None  # the policy rule (file:line) that decided, if one did
    scope: str | None = None  # the tool's approval scope for these arguments
    hook: str | None = None  # the hook that denied or changed the call, if one did
    images: list[dict[str, str]] = field(default_factory=list)  # {"mime_type", "data"}

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments,
                "status": self.status, "result": self.result, "duration_ms": self.duration_ms}


@dataclass
class ToolFinished:
    record: ToolRecord


@dataclass
class Notice:
    """Something the user should know that is not part of the answer."""

    text: str


Event = TextDelta | ReplyDone | ToolFinished | Notice


@dataclass
class ApprovalRequest:
    call: ToolCall
    tool: Tool
    arguments: dict[str, Any]
    scope: str | None = None  # what "always" would approve (None: the whole tool)
    why: str | None = None  # why it asks although it would not otherwise


@dataclass
class Decision:
    """The answer to an approval request; ``arguments`` replaces the model's when edited."""

    approved: bool
    reason: str | None = None
    always: bool = False
    arguments: dict[str, Any] | None = None
    unattended: bool = False


class Approver(Protocol):
    def __call__(self, request: ApprovalRequest) -> Decision: ...


@dataclass
class TurnResult:
    answer: str = ""
    model: str = ""
    steps: int = 0
    tool_calls: list[ToolRecord] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
