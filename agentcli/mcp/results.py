"""An MCP tool result as the text the model gets.

Text parts are joined; structured content is sent as JSON; images, audio and
binary resources become one line each (Chat Completions tool messages carry
text only); resource links are shown as links. The objects are read by their
attributes, so this module does not import the SDK.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, cast

from ..tools.runner import serialise


def result_text(result: Any) -> str:
    """The text for the model from a ``CallToolResult``.

    Structured content is sent as JSON after the parts, unless it only repeats
    the text: the same JSON, or a one-key wrapper such as ``{"result": text}``
    (then the text alone is sent).
    """
    blocks = list(result.content or [])
    parts = [part_text(block) for block in blocks]
    structured = getattr(result, "structured_content", None)
    if structured is None:
        return "\n".join(p for p in parts if p)
    text = "".join(b.text for b in blocks if getattr(b, "type", None) == "text")
    if text and _wraps(structured, text):
        return "\n".join(p for p in parts if p)
    if _same_json(text, structured):
        parts = [p for p, b in zip(parts, blocks, strict=False) if getattr(b, "type", None) != "text"]
    parts.append(json.dumps(structured) if isinstance(structured, str) else serialise(structured))
    return "\n".join(p for p in parts if p)


_IMAGE_TYPE = re.compile(r"image/[A-Za-z0-9.+-]{1,64}")
MAX_IMAGE_BYTES = 10_000_000
"""Larger images stay a one-line summary: they are not sent to the model."""


def images_of(result: Any) -> list[dict[str, str]]:
    """The result's images that can go to a model (``{"mime_type", "data"}``): valid
    base64 of an ``image/*`` type, at most MAX_IMAGE_BYTES each."""
    images = []
    for block in result.content or []:
        if getattr(block, "type", None) != "image":
            continue
        mime = str(getattr(block, "mime_type", "") or "")
        if not _IMAGE_TYPE.fullmatch(mime):
            continue
        try:
            size = len(base64.b64decode(block.data, validate=True))
        except (binascii.Error, ValueError, TypeError):
            continue
        if 0 < size <= MAX_IMAGE_BYTES:
            images.append({"mime_type": mime, "data": "".join(str(block.data).split())})
    return images


def _wraps(structured: Any, text: str) -> bool:
    """Whether ``structured`` is ``{key: value}`` where value is the text (or its JSON)."""
    if not isinstance(structured, dict) or len(structured) != 1:
        return False
    value = next(iter(structured.values()))
    return value == text or _same_json(text, value)


def part_text(block: Any) -> str:
    """One content block as text (a one-line summary for what is not text)."""
    kind = getattr(block, "type", None)
    if kind == "text":
        return cast(str, block.text)
    if kind in ("image", "audio"):
        return f"[{kind}: {block.mime_type}, {_size(block.data):,} bytes]"
    if kind == "resource_link":
        return _link(block)
    if kind == "resource":
        return _embedded(block.resource)
    return f"[{kind or 'unknown'} content]"


def _link(block: Any) -> str:
    label = getattr(block, "title", None) or block.name or str(block.uri)
    mime = getattr(block, "mime_type", None)
    return f"[{label}]({block.uri})" + (f" ({mime})" if mime else "")


def _embedded(resource: Any) -> str:
    text = getattr(resource, "text", None)
    if text is not None:
        return cast(str, text)
    mime = getattr(resource, "mime_type", None) or "application/octet-stream"
    return f"[resource {resource.uri}: {mime}, {_size(resource.blob):,} bytes]"


def _size(data: str) -> int:
    """Bytes in base64 ``data`` (an estimate if it is not valid base64)."""
    try:
        return len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        return len(data) * 3 // 4


def _same_json(text: str, value: Any) -> bool:
    try:
        return bool(json.loads(text) == value)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's limit
        return False
