"""The agent loop, shared by ``run`` and ``chat``; it knows nothing of terminals.

One turn: send the conversation and the tool schemas, stream the reply, and
for each proposed call parse, validate, approve and run it, then send the
results back, until the model answers in plain text or ``max_steps`` runs out.
Every tool call id gets exactly one tool message whatever happens, so the
history stays valid for the API.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from . import collector
from .audit import AuditLog
from .config import DEFAULT_CONTEXT, ToolSettings
from .context import CHARS_PER_TOKEN, fit
from .conversation import Conversation, check
from .errors import ContextTooLarge, Interrupted, MaxStepsReached, ModelError, TruncatedReply
from .events import Approver, Event, Notice, ReplyDone, TextDelta, TurnResult
from .executor import (
    CANCELLED,
    UNATTENDED,
    Limits,
    ToolExecutor,
    parse_arguments,
    parse_lenient,
)
from .messages import Message
from .policy import Rules
from .providers import Provider, Reply
from .tools.registry import ToolRegistry

__all__ = ["CANCELLED", "DEFAULT_CONTEXT", "UNATTENDED", "Agent", "Limits", "parse_arguments",
           "parse_lenient"]


class Agent:
    def __init__(self, provider: Provider, registry: ToolRegistry, *, approve: Approver,
                 on_event: Callable[[Event], None] = lambda _: None,
                 limits: Limits | None = None, stream: bool = True,
                 tool_settings: ToolSettings | None = None, audit: AuditLog | None = None,
                 strict: bool = False, rules: Rules | None = None) -> None:
        self.provider = provider
        self.registry = registry
        self.on_event = on_event
        self.limits = limits or Limits()
        self.stream = stream
        self.strict = strict
        self.tools = ToolExecutor(registry, approve=approve, on_event=on_event,
                                  limits=self.limits, tool_settings=tool_settings, audit=audit,
                                  rules=rules)
        #: Tools approved with "always" for this session (shared with the executor).
        self.always: set[str] = self.tools.always
        #: (tool, scope) pairs approved with "always" (shared with the executor).
        self.scopes: set[tuple[str, str]] = self.tools.scopes

    @property
    def approve(self) -> Approver:
        return self.tools.approve

    @approve.setter
    def approve(self, approver: Approver) -> None:
        self.tools.approve = approver

    def run_turn(self, conv: Conversation, text: str | None, *,
                 tool_choice: Any = None, use_tools: bool = True) -> TurnResult:
        """Add ``text`` as a user message and drive the loop to an answer.

        However the turn ends, the history stays valid, and a turn that got no
        reply at all gets an assistant message ``[no answer: why]``, so user
        and assistant messages keep alternating.

        Raises:
            MaxStepsReached: the model kept calling tools; ``.result`` holds the turn so far.
            Interrupted: Ctrl-C; the conversation was left valid first.
            ModelError: the server failed (after retries).
            ContextTooLarge: the request could not be made to fit ``context_window``.
        """
        collector.resume()  # set-up is over: see agentcli.collector
        if text is not None:
            conv.add(Message(role="user", content=text))
        self.tools.loop_guard.new_turn()
        try:
            return self._loop(conv, tool_choice, use_tools)
        except BaseException as exc:
            conv.mark_unanswered(no_answer_reason(exc))
            raise

    def _loop(self, conv: Conversation, tool_choice: Any, use_tools: bool) -> TurnResult:
        result = TurnResult(model=self.provider.model)
        self.registry.refresh()
        schemas = self.registry.schemas(strict=self.strict) if use_tools and len(self.registry) else []
        choice = tool_choice if schemas else None
        for step in range(1, self.limits.max_steps + 1):
            if step > 1 and use_tools and self.registry.refresh():  # a tool list changed
                schemas = self.registry.schemas(strict=self.strict)
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
        error.result = result
        raise error

    def fit_context(self, conv: Conversation,
                    schemas: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The messages to send: the history, fitted to the model's context window.

        The conversation itself is not changed (the saved session keeps
        everything); what was left out or shortened is told in a notice.
        """
        window = self.limits.context_window
        fixed = len(json.dumps(schemas)) // CHARS_PER_TOKEN if schemas else 0
        budget = window - min(self.limits.reply_tokens, window // 2) - fixed
        fitted = fit(conv.messages, budget, images=self.provider.takes_images)
        if fitted is None:
            raise ContextTooLarge(
                f"this request cannot fit the model's context (context_window = {window:,} tokens, "
                f"of which the tool schemas take ~{fixed:,}); raise context_window, offer fewer "
                "tools, or start a new conversation")
        check(fitted.messages)
        self._tell_fitted(fitted.dropped, fitted.shortened, window)
        return [m.to_api(images=self.provider.takes_images) for m in fitted.messages]

    def _tell_fitted(self, dropped: int, shortened: int, window: int) -> None:
        if dropped:
            self.on_event(Notice(f"context: dropped the {dropped} oldest messages from this request "
                                 f"to stay within the model's context (~{window:,} tokens); the "
                                 "saved conversation keeps them"))
        if shortened:
            self.on_event(Notice(f"context: sent {shortened} long text(s) shortened to stay within "
                                 f"the model's context (~{window:,} tokens); the saved "
                                 "conversation keeps them whole"))

    def _ask_model(self, conv: Conversation, schemas: list[dict[str, Any]], choice: Any) -> Reply:
        messages = self.fit_context(conv, schemas)
        partial: list[str] = []

        def on_text(text: str) -> None:
            partial.append(text)
            self.on_event(TextDelta(text))
        try:
            return self.provider.complete(messages, schemas, tool_choice=choice,
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


def no_answer_reason(exc: BaseException) -> str:
    """Why a turn got no reply, for its ``[no answer: ...]`` message."""
    if isinstance(exc, (Interrupted, KeyboardInterrupt)):
        return "interrupted"
    detail = " ".join(str(exc).split())[:300]
    if isinstance(exc, ModelError):
        return f"the server failed: {detail}"
    if isinstance(exc, ContextTooLarge):
        return f"the request was not sent: {detail}"
    return f"error: {type(exc).__name__}: {detail}"
