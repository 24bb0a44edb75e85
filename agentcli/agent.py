"""The agent loop, shared by ``run`` and ``chat``; it knows nothing of terminals.

One turn: send the conversation and the tool schemas, stream the reply, and
for each proposed call parse, validate, approve and run it, then send the
results back, until the model answers in plain text or ``max_steps`` runs out.
Every tool call id gets exactly one tool message whatever happens, so the
history stays valid for the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .audit import AuditLog
from .config import ToolSettings
from .conversation import Conversation
from .errors import Interrupted, MaxStepsReached, TruncatedReply
from .events import Approver, Event, Notice, ReplyDone, TextDelta, TurnResult
from .executor import (CANCELLED, DEFAULT_CONTEXT, UNATTENDED, Limits, ToolExecutor,
                       parse_arguments, parse_lenient)
from .messages import Message
from .provider import ChatProvider, Reply
from .tools.registry import ToolRegistry

__all__ = ["CANCELLED", "DEFAULT_CONTEXT", "UNATTENDED", "Agent", "Limits", "parse_arguments",
           "parse_lenient"]


class Agent:
    def __init__(self, provider: ChatProvider, registry: ToolRegistry, *, approve: Approver,
                 on_event: Callable[[Event], None] = lambda _: None,
                 limits: Limits | None = None, stream: bool = True,
                 tool_settings: ToolSettings | None = None, audit: AuditLog | None = None,
                 strict: bool = False) -> None:
        self.provider = provider
        self.registry = registry
        self.on_event = on_event
        self.limits = limits or Limits()
        self.stream = stream
        self.strict = strict
        self.tools = ToolExecutor(registry, approve=approve, on_event=on_event,
                                  limits=self.limits, tool_settings=tool_settings, audit=audit)
        #: Tools approved with "always" for this session (shared with the executor).
        self.always: set[str] = self.tools.always

    @property
    def approve(self) -> Approver:
        return self.tools.approve

    @approve.setter
    def approve(self, approver: Approver) -> None:
        self.tools.approve = approver

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
        schemas = self.registry.schemas(strict=self.strict) if use_tools and len(self.registry) else []
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
                result.tool_calls += self.tools.refuse(
                    conv, reply.tool_calls,
                    f"not run: the step limit ({self.limits.max_steps}) was reached")
                break
            result.tool_calls += self.tools.run(conv, reply.tool_calls)
            self._stop_if_truncated(reply)
            if choice not in (None, "none", "auto"):
                choice = "auto"
        error = MaxStepsReached(f"stopped after {self.limits.max_steps} steps: the model was still "
                                "calling tools (raise --max-steps to allow more)")
        error.result = result  # type: ignore[attr-defined]
        raise error

    def fit_context(self, conv: Conversation) -> int:
        """Drop the oldest whole turns until the history fits the model's context."""
        window = self.limits.context_window
        dropped = conv.trim(window - min(self.limits.reply_tokens, window // 2))
        if dropped:
            self.on_event(Notice(f"context: dropped the {dropped} oldest messages to stay within "
                                 f"the model's context (~{window:,} tokens)"))
        return dropped

    def _ask_model(self, conv: Conversation, schemas: list[dict[str, Any]], choice: Any) -> Reply:
        self.fit_context(conv)
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
