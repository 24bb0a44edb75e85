"""One bound on how deeply nested the data from a model or a plugin may be.

Tool arguments, tool results and plugin schemas are walked by code that
recurses (redaction, display, JSON encoding, validation). Checking the depth
first, without recursion, keeps every such walk far from Python's recursion
limit: data past the bound is refused as one error, never a RecursionError.
"""

from __future__ import annotations

from typing import Any

#: Most levels of objects and arrays in tool arguments and results.
MAX_DEPTH = 64
#: JSON cannot print an int with more decimal digits than Python converts.
MAX_INT_DIGITS = 4300


def _children(value: Any) -> list[Any] | None:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)
    return None


def shape_problem(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """Why ``value`` cannot be walked safely, or None if it can.

    Too deep (more than ``limit`` levels of containers), containing itself,
    or holding an int too long to print. Iterative, so any input is safe.
    """
    stack: list[tuple[Any, int, bool]] = [(value, 1, False)]
    open_ids: set[int] = set()
    finished: set[int] = set()
    while stack:
        item, depth, leaving = stack.pop()
        if leaving:
            open_ids.discard(id(item))
            finished.add(id(item))
            continue
        if isinstance(item, int) and not isinstance(item, bool) and _too_long(item):
            return f"holds an integer with more than {MAX_INT_DIGITS:,} digits"
        children = _children(item)
        if children is None or id(item) in finished:
            continue
        if id(item) in open_ids:
            return "contains itself"
        if depth > limit:
            return f"nested deeper than {limit} levels"
        open_ids.add(id(item))
        stack.append((item, depth, True))
        stack.extend((child, depth + 1, False) for child in children)
    return None


def _too_long(number: int) -> bool:
    """True if ``str(number)`` would pass Python's digit limit (checked cheaply first)."""
    bits = abs(number).bit_length()
    if bits < 14_000:  # at most 4,215 digits
        return False
    return bool(abs(number) >= 10 ** MAX_INT_DIGITS)

