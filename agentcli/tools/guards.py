"""Per-tool guards: a rate limit and a circuit breaker.

``refusal(tool)`` says why a call may not run now (or None); ``record`` feeds
the outcome back. Limits come from ``[tools.limits.NAME]``, then the
decorator, then the ``[tools]`` defaults.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable

from ..config import ToolSettings
from .base import Tool

FAILURES = ("error", "timeout")


class Guards:
    def __init__(self, settings: ToolSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._calls: dict[str, deque[float]] = defaultdict(deque)
        self._failures: dict[str, int] = defaultdict(int)
        self._open_until: dict[str, float] = {}

    def timeout(self, tool: Tool) -> float:
        limit = self.settings.limits.get(tool.name)
        return (limit and limit.timeout) or tool.timeout or self.settings.timeout

    def _rate(self, tool: Tool) -> int | None:
        limit = self.settings.limits.get(tool.name)
        return (limit and limit.max_calls_per_minute) or tool.max_calls_per_minute

    def _breaker(self, tool: Tool) -> tuple[int, float]:
        limit = self.settings.limits.get(tool.name)
        failures = (limit and limit.breaker_failures) or self.settings.breaker_failures
        cooldown = limit.breaker_cooldown if limit and limit.breaker_cooldown is not None else None
        return failures, cooldown if cooldown is not None else self.settings.breaker_cooldown

    def refusal(self, tool: Tool) -> str | None:
        """Why ``tool`` may not run now, or None; a call that may run is counted."""
        now = self.clock()
        until = self._open_until.get(tool.name, 0.0)
        if now < until:
            return (f"{tool.name} is temporarily unavailable after repeated failures; "
                    f"try again in {until - now:.0f} s or use another approach")
        rate = self._rate(tool)
        calls = self._calls[tool.name]
        while calls and now - calls[0] >= 60:
            calls.popleft()
        if rate is not None and len(calls) >= rate:
            wait = 60 - (now - calls[0])
            return (f"rate limited: {tool.name} may run at most {rate} times a minute; "
                    f"try again in {wait:.0f} s")
        calls.append(now)
        return None

    def uncount(self, name: str) -> None:
        """Forget the last call of ``name`` that ``refusal`` counted: it was not run after
        all (it waits for an answer that comes with a new call)."""
        calls = self._calls.get(name)
        if calls:
            calls.pop()

    def record(self, tool: Tool, status: str) -> None:
        """Count consecutive failures; open the breaker when they reach the limit."""
        if status not in FAILURES:
            if status == "ok":
                self._failures[tool.name] = 0
            return
        self._failures[tool.name] += 1
        failures, cooldown = self._breaker(tool)
        if self._failures[tool.name] >= failures:
            self._open_until[tool.name] = self.clock() + cooldown
            self._failures[tool.name] = 0
