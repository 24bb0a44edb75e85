"""Turning streamed Chat Completions deltas into whole tool calls.

Servers differ, and this is where the differences stop: arguments sent as a
JSON object instead of a string, missing or empty ids, a missing ``index``,
several calls that share index 0 but carry distinct ids (Ollama), a whole
call in one chunk, two calls that share one id (kept apart, the second given
a fresh id), and a reply cut off by the token limit in the middle of a
call's arguments. Works on plain dicts (``chunk.to_dict()``), so a field the
SDK's types do not expect cannot trip it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..messages import ToolCall


@dataclass
class _Partial:
    index: int | None
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)


MAX_REPLY_CHARS = 4_000_000
"""Most characters of text, or of tool-call arguments, one reply may bring: a server
that never ends its reply is stopped there instead of filling memory."""


MAX_REPLY_EVENTS = 1_000_000
"""Most events (chunks) one streamed reply may bring, whatever they carry: a server
that keeps sending empty ones and never ends is stopped there instead of holding the
run for ever. A reply of ``MAX_REPLY_CHARS`` takes far fewer."""


class ReplyTooLong(Exception):
    """A reply passed ``MAX_REPLY_CHARS`` (or, with ``events``, ``MAX_REPLY_EVENTS``)
    without ending."""

    def __init__(self, *, events: bool = False) -> None:
        super().__init__("events" if events else "characters")
        self.events = events


def bounded(events: Any) -> Any:
    """The events of ``events`` (an iterable), raising ``ReplyTooLong`` after
    ``MAX_REPLY_EVENTS`` of them."""
    limit = MAX_REPLY_EVENTS
    for count, event in enumerate(events, 1):
        if count > limit:
            raise ReplyTooLong(events=True)
        yield event


class ToolCallAssembler:
    """Collects tool-call deltas in arrival order; ``finish()`` yields ToolCalls.

    Raises ``ReplyTooLong`` once the arguments fed pass ``MAX_REPLY_CHARS``.
    """

    def __init__(self) -> None:
        self._calls: list[_Partial] = []
        self._size = 0

    def __bool__(self) -> bool:
        return bool(self._calls)

    def feed(self, delta: dict[str, Any]) -> None:
        """Apply one element of a delta's ``tool_calls`` list."""
        function = delta.get("function") or {}
        name = function.get("name")
        partial = self._target(delta.get("index"), delta.get("id") or "", bool(name))
        if name and not partial.name:
            partial.name = name
        args = function.get("arguments")
        if isinstance(args, (dict, list)):
            args = json.dumps(args, ensure_ascii=False)
            partial.parts = [args]
        elif isinstance(args, str):
            partial.parts.append(args)
        else:
            return
        self._size += len(args)  # what this delta brought, once
        if self._size > MAX_REPLY_CHARS:
            raise ReplyTooLong()

    def _target(self, index: Any, call_id: str, named: bool) -> _Partial:
        """The call a delta continues, or a new one.

        A call is known by its index when the server sends one, else by its id,
        else it is the latest call. A delta naming a function for a call that is
        already named and complete starts another call, even with the same
        index or id: a server that repeats an id must not merge two calls.
        """
        index = index if isinstance(index, int) and not isinstance(index, bool) else None
        partial = self._find(index, call_id)
        if partial is None or (named and partial.name and _is_json("".join(partial.parts))):
            return self._new(index, call_id)
        partial.id = partial.id or call_id
        return partial

    def _find(self, index: int | None, call_id: str) -> _Partial | None:
        for partial in reversed(self._calls):
            if index is not None and partial.index == index:
                # Ollama sends every call with index 0: a new id is a new call.
                return None if call_id and partial.id and partial.id != call_id else partial
            if index is None and (not call_id or partial.id == call_id):
                return partial
        return None

    def _new(self, index: int | None, call_id: str) -> _Partial:
        partial = _Partial(index=index, id=call_id)
        self._calls.append(partial)
        return partial

    def finish(self, finish_reason: str | None) -> list[ToolCall]:
        """Whole calls in arrival order; a call cut by ``length`` is marked truncated."""
        calls = []
        seen: set[str] = set()
        for position, partial in enumerate(self._calls):
            call_id = partial.id if partial.id and partial.id not in seen else _synth_id()
            seen.add(call_id)
            arguments = "".join(partial.parts)
            last = position == len(self._calls) - 1
            truncated = finish_reason == "length" and last and not _is_json(arguments)
            calls.append(ToolCall(id=call_id, name=partial.name, arguments=arguments,
                                  truncated=truncated))
        return calls


def _synth_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
