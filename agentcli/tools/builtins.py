"""Built-in tools, declared with the same ``@tool`` decorator as any plugin."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ToolError
from .base import Tool, tool
from .calculator import evaluate


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "17*23" or "sqrt(2)**2".

    Args:
        expression: Numbers, + - * / // % **, parentheses, and math functions
            such as sqrt, log, sin, factorial, with the constants pi, e and tau.
    """
    return evaluate(expression)


@tool
def current_time(timezone: str = "UTC") -> str:
    """The current date and time as ISO 8601 in an IANA time zone.

    Args:
        timezone: IANA zone name such as "UTC", "Europe/Paris" or "Asia/Tokyo".
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {timezone!r}: use an IANA name such as "
                        "'Europe/Paris' or 'UTC'") from None
    return datetime.now(zone).isoformat(timespec="seconds")


def builtin_tools() -> list[Tool]:
    """The built-in tools that need no configuration."""
    return [calculator, current_time]
