"""The Chat Completions protocol (``api = "chat"``, the default).

Builds ``/v1/chat/completions`` requests and reads their replies: streamed
chunks (text as it comes, tool-call deltas assembled by ``assemble``) or a
whole completion. Retries, the fallback model and error mapping are the base
``Provider``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..messages import Usage
from . import shapes
from .assemble import ToolCallAssembler, bounded
from .base import Provider, Reply, checked, finalise


class ChatProvider(Provider):
    takes_images = False
    """Chat Completions tool messages are text only: tool results' images are not sent."""

    def build_request(self, model: str, messages: list[dict[str, Any]],
                      tools: list[dict[str, Any]], tool_choice: Any,
                      stream: bool) -> dict[str, Any]:
        s = self.settings
        request: dict[str, Any] = {"model": model, "messages": messages}
        if tools:
            request["tools"] = tools
            if tool_choice is not None:
                request["tool_choice"] = tool_choice
            if s.parallel_tool_calls is not None:
                request["parallel_tool_calls"] = s.parallel_tool_calls
        for key in ("temperature", "top_p", "max_tokens", "seed", "extra_body"):
            if getattr(s, key) is not None:
                request[key] = getattr(s, key)
        if stream:
            request["stream"] = True
            request["stream_options"] = {"include_usage": True}
        if self.answer_format is not None:
            request["response_format"] = {"type": "json_schema", "json_schema": self.answer_format}
        for name in self.dropped_fields:
            request.pop(name, None)
        return request

    def create(self, request: dict[str, Any]) -> Any:
        return self.client.chat.completions.create(**request)

    def _read_stream(self, stream: Any, reply: Reply, calls: ToolCallAssembler,
                     text: list[str], on_text: Callable[[str], None]) -> None:
        with stream:
            for chunk in bounded(stream):
                data = checked(chunk, shapes.CHAT_CHUNK, "a chunk")
                reply.model = data.get("model") or reply.model
                if data.get("usage"):
                    reply.usage = _usage(data["usage"])
                for choice in data.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if delta.get("content"):
                        text.append(delta["content"])
                        on_text(delta["content"])
                    for tc in delta.get("tool_calls") or []:
                        calls.feed(tc)
                    if choice.get("finish_reason"):
                        reply.finish_reason = choice["finish_reason"]

    def read_whole(self, completion: Any, on_text: Callable[[str], None]) -> Reply:
        data = checked(completion, shapes.CHAT_COMPLETION, "the reply")
        choice = (data.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        reply = Reply(model=data.get("model") or self.model,
                      finish_reason=choice.get("finish_reason") or "stop",
                      usage=_usage(data["usage"]) if data.get("usage") else None)
        calls = ToolCallAssembler()
        for index, tc in enumerate(message.get("tool_calls") or []):
            calls.feed({**tc, "index": index})
        if message.get("content"):
            on_text(message["content"])
        return finalise(reply, message.get("content") or "", calls)


def _usage(data: dict[str, Any]) -> Usage:
    return Usage(prompt_tokens=data.get("prompt_tokens") or 0,
                 completion_tokens=data.get("completion_tokens") or 0,
                 total_tokens=data.get("total_tokens") or 0)
