"""How a server's tool-call stream departs from OpenAI's, read from its raw chunks.

The providers already cope with every one of these (``providers.assemble``
and ``providers.base``: SPEC section 4); nothing here changes a reply. ``agentcli
doctor`` holds the raw chunks of a probe next to the calls the provider
assembled from them, and names each departure with what agentcli does
about it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .messages import ToolCall


@dataclass(frozen=True)
class Quirk:
    """One departure: a stable ``name``, what was ``seen``, and its ``handling``."""

    name: str
    seen: str
    handling: str


KNOWN = {
    "no_index": ("tool-call deltas carry no index",
                 "deltas are matched by id, else joined to the latest call"),
    "index_zero": ("several calls share index 0",
                   "a new id, or a new name after whole arguments, starts a new call"),
    "missing_id": ("a call came without an id", "ids are filled in"),
    "duplicate_id": ("two calls share one id", "the second call gets a fresh id"),
    "whole_call": ("each call came whole in one chunk", "taken as it is"),
    "args_object": ("arguments came as a JSON object, not a string",
                    "encoded back to a JSON string"),
    "empty_args": ("arguments came as an empty string", "read as no arguments ({})"),
    "stop_finish": ('finish_reason "stop" although tool calls came',
                    "read as tool_calls"),
    "cut_by_length": ("the reply hit the token limit inside a call",
                      "the cut call is never run; the model is told"),
}


def quirk(name: str) -> Quirk:
    seen, handling = KNOWN[name]
    return Quirk(name, seen, handling)


def dropped(field: str) -> Quirk:
    """The server refused an optional request field (the provider sent again without it)."""
    if field in ("max_tokens", "max_output_tokens"):
        return Quirk(f"rejects_{field}", f"the server rejected {field}",
                     "sent only when max_tokens is configured: leave it unset for this model")
    return Quirk(f"rejects_{field}", f"the server rejected {field}",
                 "dropped and remembered (sent again without it)")


def _entries(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every tool-call element of every streamed delta, in arrival order."""
    out = []
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") or {}
            out += [tc for tc in delta.get("tool_calls") or [] if isinstance(tc, dict)]
    return out


def _finish_reason(chunks: list[dict[str, Any]]) -> str | None:
    reason = None
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("finish_reason"):
                reason = choice["finish_reason"]
    return reason


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole(entry: dict[str, Any]) -> bool:
    """Whether one delta element holds a complete call: a name and whole arguments."""
    args = (entry.get("function") or {}).get("arguments")
    if isinstance(args, (dict, list)):
        return True
    if not isinstance(args, str) or not args.strip():
        return False
    try:
        json.loads(args)
    except ValueError:
        return False
    return True


def tool_call_quirks(chunks: list[dict[str, Any]], calls: list[ToolCall]) -> list[Quirk]:
    """The departures visible in a streamed reply's raw ``chunks``.

    Args:
        chunks: The chunks as the server sent them (``chunk.to_dict()``).
        calls: The calls the provider assembled from those chunks.
    """
    entries = _entries(chunks)
    heads = [e for e in entries if (e.get("function") or {}).get("name")]
    names: list[str] = []
    if any(not _is_index(e.get("index")) for e in entries):
        names.append("no_index")
    ids = [e.get("id") for e in heads]
    if len(heads) > 1 and all(e.get("index") == 0 for e in heads):
        names.append("index_zero")
    if any(not call_id for call_id in ids):
        names.append("missing_id")
    present = [i for i in ids if i]
    if len(present) != len(set(present)):
        names.append("duplicate_id")
    if any(isinstance((e.get("function") or {}).get("arguments"), (dict, list)) for e in entries):
        names.append("args_object")
    if heads and all(_whole(e) for e in heads) and "args_object" not in names:
        names.append("whole_call")
    if any(not c.arguments.strip() and not c.truncated for c in calls):
        names.append("empty_args")
    if calls and _finish_reason(chunks) == "stop":
        names.append("stop_finish")
    if any(c.truncated for c in calls):
        names.append("cut_by_length")
    return [quirk(name) for name in names]
