"""The Responses API as a second wire protocol behind the provider interface.

Selected with ``api = "responses"`` (at the top level or in a profile). The
conversation stays in Chat Completions shape everywhere else; this module
translates it to Responses input items on the way out (tool calls become
``function_call`` items, tool results ``function_call_output`` items) and
turns the typed stream events back into the same ``Reply``. Retries,
fallback and error mapping are the base ``Provider``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ModelError
from ..messages import Usage
from . import shapes
from .assemble import ToolCallAssembler, bounded
from .base import Provider, Reply, checked, finalise


def to_input(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions messages as Responses input items.

    Images of tool results follow the ``function_call_output`` items of their
    reply as ``input_image`` parts of one user message (a function's output is
    text only).
    """
    items: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    for msg in messages:
        if msg["role"] == "tool":
            items.append(output_item(msg))
            images += image_parts(msg["tool_call_id"], msg.get("images") or [])
            continue
        if images:
            items.append({"role": "user", "content": images})
            images = []
        if msg.get("content") or msg["role"] != "assistant":
            items.append({"role": msg["role"], "content": msg.get("content") or ""})
        items += [call_item(call) for call in msg.get("tool_calls") or []]
    if images:
        items.append({"role": "user", "content": images})
    return items


def call_item(call: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions tool call as a ``function_call`` item (Responses, Realtime)."""
    return {"type": "function_call", "call_id": call["id"], "name": call["function"]["name"],
            "arguments": call["function"]["arguments"]}


def output_item(msg: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions tool message as a ``function_call_output`` item."""
    return {"type": "function_call_output", "call_id": msg["tool_call_id"],
            "output": msg.get("content") or ""}


def image_parts(call_id: str, images: list[dict[str, str]]) -> list[dict[str, Any]]:
    """A line naming the call, then each image as an ``input_image`` data URL."""
    if not images:
        return []
    label = "image" if len(images) == 1 else f"{len(images)} images"
    parts: list[dict[str, Any]] = [{"type": "input_text",
                                    "text": f"The {label} returned by the tool call {call_id}:"}]
    for image in images:
        parts.append({"type": "input_image",
                      "image_url": f"data:{image['mime_type']};base64,{image['data']}"})
    return parts


def to_tools(schemas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions tool schemas flattened to Responses function tools."""
    return [{"type": "function", **schema["function"]} for schema in schemas]


def to_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict):
        return {"type": "function", "name": choice["function"]["name"]}
    return choice


class ResponsesProvider(Provider):
    takes_images = True
    api = "responses"
    unsent = ("seed",)  # the Responses API has no parameter for it

    def build_request(self, model: str, messages: list[dict[str, Any]],
                      tools: list[dict[str, Any]], tool_choice: Any,
                      stream: bool) -> dict[str, Any]:
        s = self.settings
        request: dict[str, Any] = {"model": model, "input": to_input(messages)}
        if tools:
            request["tools"] = to_tools(tools)
            if tool_choice is not None:
                request["tool_choice"] = to_tool_choice(tool_choice)
            if s.parallel_tool_calls is not None:
                request["parallel_tool_calls"] = s.parallel_tool_calls
        for key in ("temperature", "top_p", "extra_body"):
            if getattr(s, key) is not None:
                request[key] = getattr(s, key)
        if s.max_tokens is not None:
            request["max_output_tokens"] = s.max_tokens
        if stream:
            request["stream"] = True
        if self.answer_format is not None:
            request["text"] = {"format": {"type": "json_schema", **self.answer_format}}
        for name in self.dropped_fields:
            request.pop(name, None)
        return request

    def create(self, request: dict[str, Any]) -> Any:
        return self.client.responses.create(**request)

    def _read_stream(self, stream: Any, reply: Reply, calls: ToolCallAssembler,
                     text: list[str], on_text: Callable[[str], None]) -> None:
        with stream:
            for event in bounded(stream):
                data = checked(event, {"type": str}, "an event")
                kind = data.get("type") or ""
                shapes.check(data, shapes.RESPONSES_EVENTS.get(kind, {}), "an event")
                if kind == "response.output_text.delta" and data.get("delta"):
                    text.append(data["delta"])
                    on_text(data["delta"])
                elif kind == "response.output_item.added":
                    _add_call(calls, data.get("output_index"), data.get("item") or {})
                elif kind == "response.function_call_arguments.delta":
                    calls.feed({"index": data.get("output_index"),
                                "function": {"arguments": data.get("delta") or ""}})
                elif kind in ("response.completed", "response.incomplete"):
                    _finish(reply, data.get("response") or {}, bool(calls))
                elif kind in ("response.failed", "error"):
                    raise ModelError(f"{self.where()} failed the response: {_failure(data)}")

    def read_whole(self, response: Any, on_text: Callable[[str], None]) -> Reply:
        data = checked(response, shapes.RESPONSE, "the response")
        calls = ToolCallAssembler()
        parts: list[str] = []
        for index, item in enumerate(data.get("output") or []):
            if item.get("type") == "message":
                parts += [c.get("text") or "" for c in item.get("content") or []
                          if c.get("type") == "output_text"]
            _add_call(calls, index, item)
        reply = Reply(model=data.get("model") or self.model)
        _finish(reply, data, bool(calls))
        content = "".join(parts)
        if content:
            on_text(content)
        return finalise(reply, content, calls)


def _add_call(calls: ToolCallAssembler, index: Any, item: dict[str, Any]) -> None:
    if item.get("type") == "function_call":
        calls.feed({"index": index, "id": item.get("call_id") or "",
                    "function": {"name": item.get("name") or "",
                                 "arguments": item.get("arguments") or ""}})


def _finish(reply: Reply, response: dict[str, Any], has_calls: bool) -> None:
    reply.model = response.get("model") or reply.model
    usage = response.get("usage") or {}
    if usage:
        reply.usage = Usage(prompt_tokens=usage.get("input_tokens") or 0,
                            completion_tokens=usage.get("output_tokens") or 0,
                            total_tokens=usage.get("total_tokens") or 0)
    reason = (response.get("incomplete_details") or {}).get("reason")
    if response.get("status") == "incomplete" and reason == "max_output_tokens":
        reply.finish_reason = "length"
    else:
        reply.finish_reason = "tool_calls" if has_calls else "stop"


def _failure(data: dict[str, Any]) -> str:
    error = (data.get("response") or {}).get("error") or data
    return str(error.get("message") or error.get("code") or "unknown error")
