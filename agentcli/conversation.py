"""The conversation and its invariant: sent to the API, it is always valid.

Valid means every assistant tool call is answered by exactly one tool message
before the next user or assistant message. ``repair()`` restores the
invariant after a crash or an interruption; ``to_api()`` refuses to send a
history that breaks it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .context import estimate
from .messages import Message, ToolCall

SCHEMA_VERSION = 1
INTERRUPTED = "interrupted: the call was not completed (agentcli stopped before it finished)"


def new_id() -> str:
    """A sortable, unique session id: UTC time then a random suffix."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Conversation:
    schema_version: int = SCHEMA_VERSION
    id: str = field(default_factory=new_id)
    model: str | None = None
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    messages: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The conversation owns its list: adding to it leaves the caller's list as it was.
        self.messages = list(self.messages)

    def add(self, message: Message) -> None:
        self.messages.append(message)
        self.updated = _now()

    def set_system(self, text: str | None) -> None:
        """Replace (or drop) the leading system message."""
        if self.messages and self.messages[0].role == "system":
            self.messages.pop(0)
        if text:
            self.messages.insert(0, Message(role="system", content=text))

    def unanswered(self) -> list[ToolCall]:
        """Tool calls of the last assistant message that have no tool message yet."""
        for index in range(len(self.messages) - 1, -1, -1):
            msg = self.messages[index]
            if msg.role == "assistant":
                answered = {m.tool_call_id for m in self.messages[index + 1:] if m.role == "tool"}
                return [c for c in msg.tool_calls if c.id not in answered]
            if msg.role == "user":
                return []
        return []

    def repair(self, reason: str = INTERRUPTED) -> int:
        """Answer every unanswered tool call with ``reason``; return how many."""
        missing = self.unanswered()
        for call in missing:
            self.add(Message(role="tool", tool_call_id=call.id, content=reason))
        return len(missing)

    def check(self) -> None:
        """Raise ValueError if the history would be rejected by the API."""
        check(self.messages)

    def to_api(self) -> list[dict[str, Any]]:
        self.check()
        return [m.to_api() for m in self.messages]

    def estimate_tokens(self, *, images: bool = False) -> int:
        """A rough token count (characters / 4) of everything that would be sent;
        ``images``: tool results' images are sent, and count."""
        return sum(estimate(m, images=images) for m in self.messages)

    def _turn_starts(self) -> list[int]:
        return [i for i, m in enumerate(self.messages) if m.role == "user"]

    def mark_unanswered(self, why: str) -> bool:
        """After a turn that ended before any reply, add ``[no answer: why]``.

        Keeps user and assistant messages alternating (chat templates reject
        two user messages in a row) and tells the model what happened.
        """
        if not self.messages or self.messages[-1].role != "user":
            return False
        self.add(Message(role="assistant", content=f"[no answer: {why}]", interrupted=True))
        return True

    def undo(self) -> str | None:
        """Remove the last turn; return the text of its user message (None if none)."""
        starts = self._turn_starts()
        if not starts:
            return None
        text = self.messages[starts[-1]].content
        del self.messages[starts[-1]:]
        self.updated = _now()
        return text or ""


def check(messages: list[Message]) -> None:
    """Raise ValueError if ``messages`` would be rejected by the API."""
    pending: set[str] = set()
    for msg in messages:
        if msg.role == "tool":
            if msg.tool_call_id not in pending:
                raise ValueError(f"tool message for unknown call {msg.tool_call_id!r}")
            pending.discard(msg.tool_call_id)
            continue
        if pending:
            raise ValueError(f"tool calls left unanswered: {sorted(pending)}")
        if msg.role == "assistant":
            pending = {c.id for c in msg.tool_calls}
    if pending:
        raise ValueError(f"tool calls left unanswered: {sorted(pending)}")
