"""The shapes of what a model server sends, checked before anything reads it.

The SDK builds its reply objects without validating them, so a chunk whose
``content`` is a number or whose ``choices`` is a string reaches the caller
as is. ``check`` walks a reply against a small spec and raises ``Malformed``
naming the first field of the wrong kind (``choices[0].delta.content is a
number, not text``). Only the fields agentcli reads are checked; unknown
fields pass, and ``null`` or a missing field is always allowed.

A spec is a type or tuple of types, a dict of field specs (an object), or a
one-item list holding the spec of every element (a list).
"""

from __future__ import annotations

from typing import Any

_NAMES = {str: "text", bool: "true or false", int: "a whole number", float: "a number",
          dict: "an object", list: "a list"}


class Malformed(Exception):
    """A reply of the wrong shape; the message names the field and what it was."""


def check(value: Any, spec: Any, label: str) -> None:
    """Raise ``Malformed`` if ``value`` does not fit ``spec``; ``label`` names the top.

    Called for every streamed chunk, so the walk builds no text unless a field is
    wrong: the place is put together as the error travels back up.
    """
    try:
        _walk(value, spec)
    except _Wrong as wrong:
        place = "".join(reversed(wrong.path))
        where = place[1:] if place.startswith(".") else label + place
        raise Malformed(f"{where} is {kind(wrong.value)}, not {wrong.wanted}") from None


class _Wrong(Exception):
    """A field of the wrong kind; ``path`` holds its place, innermost part first."""

    def __init__(self, value: Any, wanted: str) -> None:
        self.value, self.wanted = value, wanted
        self.path: list[str] = []


def _walk(value: Any, spec: Any) -> None:
    if value is None:
        return
    if type(spec) is dict:
        if not isinstance(value, dict):
            raise _Wrong(value, _NAMES[dict])
        for key, sub in spec.items():
            item = value.get(key)
            if item is not None:
                try:
                    _walk(item, sub)
                except _Wrong as wrong:
                    wrong.path.append(f".{key}")
                    raise
    elif type(spec) is list:
        if not isinstance(value, list):
            raise _Wrong(value, _NAMES[list])
        for position, item in enumerate(value):
            try:
                _walk(item, spec[0])
            except _Wrong as wrong:
                wrong.path.append(f"[{position}]")
                raise
    elif not isinstance(value, spec) or (type(value) is bool and not _takes_bool(spec)):
        kinds = spec if isinstance(spec, tuple) else (spec,)
        raise _Wrong(value, " or ".join(_NAMES.get(k, k.__name__) for k in kinds))


def _takes_bool(spec: type | tuple[type, ...]) -> bool:
    return bool in spec if isinstance(spec, tuple) else spec is bool


def kind(value: Any) -> str:
    """What a JSON value is, in words: 'text', 'a number', 'a list'..."""
    if value is None:
        return "null"
    for known in (bool, str, int, float, dict, list):
        if isinstance(value, known):
            return _NAMES[known]
    return type(value).__name__


_TOOL_CALL = {"index": int, "id": str, "type": str,
              "function": {"name": str, "arguments": (str, dict, list)}}
_USAGE = {"prompt_tokens": int, "completion_tokens": int, "total_tokens": int}

#: A streamed Chat Completions chunk.
CHAT_CHUNK = {"model": str, "usage": _USAGE,
              "choices": [{"finish_reason": str,
                           "delta": {"content": str, "tool_calls": [_TOOL_CALL]}}]}
#: A whole (non-streamed) chat completion.
CHAT_COMPLETION = {"model": str, "usage": _USAGE,
                   "choices": [{"finish_reason": str,
                                "message": {"content": str, "tool_calls": [_TOOL_CALL]}}]}

_RESPONSES_ITEM = {"type": str, "call_id": str, "name": str, "arguments": str,
                   "content": [{"type": str, "text": str}]}
#: A whole Responses API response (also the ``response`` of its final events).
RESPONSE = {"model": str, "status": str, "output": [_RESPONSES_ITEM],
            "usage": {"input_tokens": int, "output_tokens": int, "total_tokens": int},
            "incomplete_details": {"reason": str}, "error": dict}
#: Responses stream events, by type; other types are only required to be objects.
RESPONSES_EVENTS: dict[str, Any] = {
    "response.output_text.delta": {"delta": str},
    "response.output_item.added": {"output_index": int, "item": _RESPONSES_ITEM},
    "response.function_call_arguments.delta": {"output_index": int, "delta": str},
    "response.completed": {"response": RESPONSE},
    "response.incomplete": {"response": RESPONSE},
    "response.failed": {"response": RESPONSE},
}
