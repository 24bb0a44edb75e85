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


def check(value: Any, spec: Any, label: str, path: str = "") -> None:
    """Raise ``Malformed`` if ``value`` does not fit ``spec``; ``label`` names the top."""
    if value is None:
        return
    where = path or label
    if isinstance(spec, dict):
        _expect(value, dict, where)
        for key, sub in spec.items():
            check(value.get(key), sub, label, f"{path}.{key}" if path else key)
    elif isinstance(spec, list):
        _expect(value, list, where)
        for position, item in enumerate(value):
            check(item, spec[0], label, f"{where}[{position}]")
    else:
        _expect(value, spec, where)


def _expect(value: Any, kinds: type | tuple[type, ...], where: str) -> None:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
        return
    wanted = " or ".join(_NAMES.get(k, k.__name__) for k in kinds)
    raise Malformed(f"{where} is {kind(value)}, not {wanted}")


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
