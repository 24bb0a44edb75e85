"""Making untrusted text safe to show: every control, escape, bidi, zero-width
and tag character becomes a visible escape, so what the terminal shows is
what the text is. Used for model output in panels and tool arguments.

Answers printed on a terminal use the lighter ``prose`` form: only what can
steer the terminal or reorder the line is escaped (C0 controls other than
newline and tab, DEL, C1 controls, bidi embeddings, overrides and isolates,
line and paragraph separators, lone surrogates), so emoji joined with ZWJ
and Persian words with ZWNJ print as written. Every character is judged on
its own, so an escape sequence split across two streamed pieces is caught
in both.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

# Categories that can hide, move or restyle text: controls (ESC, CR, BS...),
# format characters (bidi overrides, zero-width, tags), private use,
# surrogates, unassigned, line and paragraph separators.
_UNSAFE = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
_UNSAFE_IN_PROSE = frozenset({"Cc", "Cs", "Zl", "Zp"})
#: Bidi embeddings and overrides (U+202A-202E) and isolates (U+2066-2069).
_BIDI = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    high, low = divmod(code - 0x10000, 0x400)
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"


def visible(text: str, *, keep_newlines: bool = False, prose: bool = False) -> str:
    """Replace every unsafe character with a ``\\uXXXX`` escape.

    Args:
        text: Untrusted text.
        keep_newlines: Keep newlines; tabs become four spaces.
        prose: Escape only what can steer a terminal or reorder text, and keep
            newlines and tabs as they are (for answers, see the module docstring).
    """
    if prose:
        return "".join(_escape(ch) if _unsafe_in_prose(ch) else ch for ch in text)
    out = []
    for ch in text:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch == "\t" and keep_newlines:
            out.append("    ")
        elif unicodedata.category(ch) in _UNSAFE:
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def _unsafe_in_prose(ch: str) -> bool:
    if ch in "\n\t":
        return False
    return ch in _BIDI or unicodedata.category(ch) in _UNSAFE_IN_PROSE


def fold(value: Any, limit: int = 400, keep: int = 150) -> tuple[Any, bool]:
    """Shorten long strings to head … tail, recursively; report whether anything was cut."""
    if isinstance(value, str) and len(value) > limit:
        cut = len(value) - 2 * keep
        return f"{value[:keep]} … [{cut:,} more characters, {len(value):,} in all] … {value[-keep:]}", True
    if isinstance(value, dict):
        items = {k: fold(v, limit, keep) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(f for _, f in items.values())
    if isinstance(value, list):
        items_l = [fold(v, limit, keep) for v in value]
        return [v for v, _ in items_l], any(f for _, f in items_l)
    return value, False


def json_visible(value: Any, *, indent: int | None = 2) -> str:
    """JSON text with every unsafe character escaped (still valid JSON, same value).

    Newlines are kept: json.dumps escapes those inside strings, so the only raw
    ones are the indentation's.
    """
    return visible(json.dumps(value, indent=indent, ensure_ascii=False), keep_newlines=True)
