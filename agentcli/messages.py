"""The conversation's data: messages, tool calls and token usage.

Plain dataclasses, so importing them costs next to nothing. They are not
validated when built: what comes from outside (a session file, a server's
reply) is checked where it comes in (``sessions.parse``, ``providers.shapes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]


@dataclass
class ToolCall:
    """One call proposed by the model, as normalised by the provider.

    ``arguments`` is the JSON text exactly as the model sent it. ``truncated``
    marks a call cut off by the token limit: it is never run, and is sent back
    to the API with empty arguments so strict servers still accept the history.
    """

    id: str
    name: str
    arguments: str = ""
    truncated: bool = False

    def to_api(self) -> dict[str, Any]:
        args = "{}" if self.truncated or not self.arguments.strip() else self.arguments
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": args}}


@dataclass
class Message:
    role: Role
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    interrupted: bool = False
    images: list[dict[str, str]] = field(default_factory=list)
    """A tool result's images (``{"mime_type", "data"}``, base64); its text has a line for each."""

    def __post_init__(self) -> None:
        # The message owns its lists: changing the caller's list later does not change it.
        self.tool_calls = list(self.tool_calls)
        self.images = [dict(image) for image in self.images]

    def to_api(self, *, images: bool = False) -> dict[str, Any]:
        """The message as the Chat Completions API wants it (no nulls, no extras);
        ``images``: a tool result keeps its images under "images" (for the Responses API)."""
        out: dict[str, Any] = {"role": self.role}
        if self.role == "assistant":
            out["content"] = self.content or ""
            if self.tool_calls:
                out["tool_calls"] = [call.to_api() for call in self.tool_calls]
        else:
            out["content"] = self.content or ""
        if self.role == "tool":
            out["tool_call_id"] = self.tool_call_id
            if images and self.images:
                out["images"] = self.images
        return out


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def add(self, other: Usage | None) -> None:
        if other is None:
            return
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.total_tokens += other.total_tokens
