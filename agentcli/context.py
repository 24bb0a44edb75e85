"""What is sent when the conversation outgrows the model's context window.

``fit()`` never changes the conversation: it returns the messages for one
request, and the saved conversation keeps everything. When the whole
history does not fit:

1. Long texts (a message's content, a call's arguments) are shortened, as
   little as needed, each keeping its start and a marker saying how much was
   cut; but none below an eighth of the budget at this stage, so one huge
   text does not push every earlier turn out, and ordinary ones are not cut.
2. If that is not enough, the oldest turns are left out whole (a user
   message and everything up to the next one), so tool calls always leave
   together with their results. The system message and the latest turn stay.
3. If the latest turn still does not fit, its long texts are shortened further.

Shortened arguments stay a JSON object, so the sequence is still one the
API accepts. When even that cannot fit, ``fit()`` returns None: nothing is
sent over the window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from .messages import Message, ToolCall

CUT = "[... {count:,} characters cut to fit the context window]"
CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1_000
"""What one image in a tool result is counted as, where images are sent (the Responses
API): about what vision models charge for a picture of a megapixel or so at full detail.
Images are never shortened; they leave with their turn."""


@dataclass
class Fitted:
    """The messages to send, and what was done to them."""

    messages: list[Message]
    dropped: int = 0  # messages left out (whole turns)
    shortened: int = 0  # texts sent shortened


def estimate(message: Message, *, images: bool = False) -> int:
    """A rough token count of one message: characters / 4, plus a little per message;
    with ``images`` (they are sent), ``IMAGE_TOKENS`` for each image."""
    size = len(message.content or "") + sum(len(c.name) + len(c.arguments) for c in message.tool_calls)
    pictures = len(message.images) * IMAGE_TOKENS if images else 0
    return size // CHARS_PER_TOKEN + 4 + pictures


def fit(messages: list[Message], budget: int, *, images: bool = False) -> Fitted | None:
    """The messages to send within ``budget`` tokens; None if they cannot fit.
    ``images``: tool results' images are sent, and count (``IMAGE_TOKENS`` each)."""
    if budget <= 0:
        return None
    longest = max((_longest(m) for m in messages), default=0)
    if _size(messages, longest, images) <= budget:
        return Fitted(list(messages))
    floor = min(longest, budget * CHARS_PER_TOKEN // 8)
    kept, dropped = list(messages), 0
    if _size(kept, floor, images) > budget:
        kept, dropped = _drop_oldest_turns(messages, budget, floor, images)
    limit = _largest_limit(kept, budget, longest, images)
    if limit is None:
        return None
    shortened = [shorten(m, limit) for m in kept]
    return Fitted([m for m, _ in shortened], dropped, sum(n for _, n in shortened))


def _longest(message: Message) -> int:
    return max([len(message.content or ""), *(len(c.arguments) for c in message.tool_calls)])


def _drop_oldest_turns(messages: list[Message], budget: int,
                       limit: int, images: bool) -> tuple[list[Message], int]:
    first = 1 if messages and messages[0].role == "system" else 0
    sizes = [estimate(shorten(m, limit)[0], images=images) for m in messages]
    starts = [i for i, m in enumerate(messages) if m.role == "user" and i > first]
    total, start = sum(sizes), first
    for later in starts:
        if total <= budget:
            break
        total -= sum(sizes[start:later])
        start = later
    return messages[:first] + messages[start:], start - first


def _largest_limit(messages: list[Message], budget: int, high: int,
                   images: bool) -> int | None:
    """The longest text length (at most ``high``) at which ``messages`` fit; None if none."""
    low = 0
    if _size(messages, low, images) > budget:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if _size(messages, middle, images) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def _size(messages: list[Message], limit: int, images: bool) -> int:
    return sum(estimate(shorten(m, limit)[0], images=images) for m in messages)


def shorten(message: Message, limit: int) -> tuple[Message, int]:
    """``message`` with each text cut to about ``limit`` characters; and how many were cut."""
    content = shorten_text(message.content or "", limit)
    calls = [_shorten_call(c, limit) for c in message.tool_calls]
    cut = (content is not (message.content or "")) + sum(
        c is not o for c, o in zip(calls, message.tool_calls, strict=False))
    if not cut:
        return message, 0
    return replace(message, content=content, tool_calls=calls), cut


def shorten_text(text: str, limit: int) -> str:
    """The start of ``text`` and a marker saying how much was cut (unchanged if it fits)."""
    if len(text) <= limit:
        return text
    keep = max(0, limit - len(CUT.format(count=len(text))) - 1)
    short = text[:keep] + ("\n" if keep else "") + CUT.format(count=len(text) - keep)
    return short if len(short) < len(text) else text


def _shorten_call(call: ToolCall, limit: int) -> ToolCall:
    if len(call.arguments) <= limit:
        return call
    start = shorten_text(call.arguments, max(0, limit - 20))
    arguments = json.dumps({"cut": start}, ensure_ascii=False)
    if len(arguments) >= len(call.arguments):
        return call
    return replace(call, arguments=arguments)
