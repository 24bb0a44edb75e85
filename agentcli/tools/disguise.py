"""Finding a secret in the forms a model can write it in.

A model that was shown, or guesses, the API key can put it into a request in
disguise: percent-encoded (once or twice, ``+`` for space), with its case
changed, split by spaces, as ``\\u00xx``, ``\\xNN`` or HTML escapes, in hex, or
in base64 or base64url (alone, or inside ``Bearer KEY`` or ``user:KEY`` as in
Basic auth, with or without padding). :class:`SecretForms` knows every such
form of a set of secrets; ``find`` says which one a text holds.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

MIN_SECRET = 8
"""Shorter "keys" (dummies such as "x" for local servers) are not looked for."""
MAX_STRINGS = 100_000
"""More values than this in one request are refused rather than searched."""
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})")
_SPACE = re.compile(r"\s+")


class SecretForms:
    """Every disguise of ``secrets`` that :func:`find` looks for."""

    def __init__(self, secrets: Iterable[str]) -> None:
        keys = sorted({s for s in secrets if len(s) >= MIN_SECRET})
        self.folded = [_SPACE.sub("", k).lower() for k in keys]
        self.hex = [k.encode("utf-8").hex() for k in keys]
        self.base64 = [core for k in keys for core in _base64_cores(k.encode("utf-8"))]

    def __bool__(self) -> bool:
        return bool(self.folded)

    def find(self, text: str) -> str | None:
        """The form in which ``text`` holds a secret ("as is", "base64", "hex"), or None."""
        for variant in _decodings(text):
            bare = _SPACE.sub("", variant)
            folded = bare.lower()
            if any(k in folded for k in self.folded):
                return "as is" if variant == text else "encoded"
            if any(h in folded for h in self.hex):
                return "in hex"
            if any(b in bare for b in self.base64):
                return "in base64"
        return None


def _base64_cores(secret: bytes) -> Iterator[str]:
    """The base64 and base64url characters that encode ``secret`` at each of the three
    byte offsets it can start at, so it is found inside ``Bearer KEY`` or ``user:KEY``.

    The characters shared with the neighbouring bytes are left out at both ends.
    """
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret).decode("ascii")
        start = -(-offset * 8 // 6)
        end = (offset + len(secret)) * 8 // 6
        core = encoded[start:end]
        yield core
        yield core.replace("+", "-").replace("/", "_")


def _decodings(text: str, rounds: int = 3) -> list[str]:
    """``text`` and what it becomes after up to ``rounds`` of URL decoding (with and
    without ``+`` for space) and unescaping of ``\\u00xx``, ``\\xNN`` and HTML escapes."""
    seen = [text]
    frontier = [text]
    for _ in range(rounds):
        found = []
        for item in frontier:
            for decoded in (urllib.parse.unquote(item), urllib.parse.unquote_plus(item),
                            _unescape(item)):
                if decoded not in seen and decoded not in found:
                    found.append(decoded)
        seen += found
        frontier = found
    return seen


def _unescape(text: str) -> str:
    """``\\u0073`` and ``\\x73`` escapes (as a JSON or JavaScript reader would) and HTML ones."""
    import html  # its entity table costs a few ms: loaded with the first tool call checked

    text = _ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), text)
    return html.unescape(text)


def strings(value: Any) -> Iterator[str]:
    """Every string in ``value`` (dict keys included, numbers as text), without recursion.

    Raises:
        ValueError: ``value`` holds more than ``MAX_STRINGS`` items.
    """
    stack = [value]
    count = 0
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_STRINGS:
            raise ValueError(f"more than {MAX_STRINGS:,} values")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif item is not None:
            yield str(item)
