"""Tool names for MCP tools: ``SERVER__TOOL``, fitted to the model APIs' name rule."""

from __future__ import annotations

import hashlib
import re

from ..tools.base import NAME_RE

LIMIT = 64
_BAD = re.compile(r"[^a-zA-Z0-9_-]")
HASH_LENGTH = 6


def tool_name(server: str, tool: str) -> str:
    """``SERVER__TOOL``; a name that is too long or has other characters than
    letters, digits, ``_`` and ``-`` is cleaned, cut and given a short stable hash
    of the full name, so two different tools never end up with the same name by
    being cut alike."""
    full = f"{server}__{tool}"
    if NAME_RE.fullmatch(full):
        return full
    digest = hashlib.sha256(full.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]
    cleaned = _BAD.sub("_", full)[:LIMIT - HASH_LENGTH - 1]
    return f"{cleaned}_{digest}"
