"""Running one tool: timeout, exceptions turned into results, output cap.

``execute`` never raises for a tool's own failure: the model gets a message
it can act on, and the history stays valid.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import AgentCLIError
from .base import Tool

Status = Literal["ok", "error", "denied", "timeout", "cancelled"]


@dataclass
class Outcome:
    status: Status
    result: str
    duration_ms: int = 0
    output: str = ""


def serialise(value: Any) -> str:
    """A tool's return value as text: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, default=_fallback)
    except ValueError:
        return json.dumps(_finite(value), ensure_ascii=False, default=_fallback)


def _fallback(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def cap(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return text[:limit] + f"\n[... output truncated: {cut:,} of {len(text):,} characters cut]"


def call(tool: Tool, kwargs: dict[str, Any], timeout: float) -> Any:
    """Invoke the function; async tools get their own event loop and a real timeout."""
    if tool.is_async:
        async def bounded() -> Any:
            return await asyncio.wait_for(tool.func(**kwargs), timeout)
        return asyncio.run(bounded())
    return tool.func(**kwargs)


@dataclass
class Job:
    tool: Tool
    kwargs: dict[str, Any]
    timeout: float


class _Captured(threading.local):
    buffer: io.StringIO | None = None


_captured = _Captured()


class _RoutedStream(io.TextIOBase):
    """Stands in for stdout/stderr while tools run: a tool thread's writes go to
    that thread's buffer; every other thread writes through to the real stream."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def write(self, text: str) -> int:
        buffer = _captured.buffer
        return buffer.write(text) if buffer is not None else self.real.write(text)

    def flush(self) -> None:
        if _captured.buffer is None:
            self.real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def route_tool_output() -> None:
    """Install the routing streams (once). They stay, so that a tool still running
    after its time-out cannot print into the answer either."""
    if not isinstance(sys.stdout, _RoutedStream):
        sys.stdout = _RoutedStream(sys.stdout)
    if not isinstance(sys.stderr, _RoutedStream):
        sys.stderr = _RoutedStream(sys.stderr)


def _start(job: Job, outputs: dict[Future[Any], io.StringIO]) -> Future[Any]:
    """Run one job in its own daemon thread, so a hung tool never blocks the rest."""
    future: Future[Any] = Future()
    outputs[future] = io.StringIO()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        _captured.buffer = outputs[future]
        try:
            future.set_result(call(job.tool, job.kwargs, job.timeout))
        except BaseException as exc:  # delivered to the waiting side
            future.set_exception(exc)

    threading.Thread(target=target, name=f"tool-{job.tool.name}", daemon=True).start()
    return future


def _outcome(job: Job, future: Future[Any], max_output: int) -> Outcome:
    exc = future.exception()
    if exc is None:
        return Outcome("ok", cap(serialise(future.result()), max_output))
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) and job.tool.is_async:
        return _timed_out(job)
    if isinstance(exc, AgentCLIError):
        return Outcome("error", f"error: {exc}")
    return Outcome("error", f"error: {type(exc).__name__}: {exc}")


def _timed_out(job: Job) -> Outcome:
    return Outcome("timeout", f"timed out after {job.timeout:g} s: {job.tool.name} did not finish")


def run_batch(jobs: list[Job], results: list[Outcome | None], *, max_parallel: int,
              max_output: int) -> None:
    """Run ``jobs`` at most ``max_parallel`` at a time, each with its own deadline.

    ``results[i]`` is filled as job ``i`` ends, so after a KeyboardInterrupt
    the caller knows which calls finished and which to mark cancelled.
    """
    route_tool_output()
    _run_all(jobs, results, max_parallel, max_output)


def _run_all(jobs: list[Job], results: list[Outcome | None], max_parallel: int,
             max_output: int) -> None:
    waiting = list(range(len(jobs)))
    running: dict[Future[Any], tuple[int, float]] = {}
    outputs: dict[Future[Any], io.StringIO] = {}
    while waiting or running:
        while waiting and len(running) < max_parallel:
            index = waiting.pop(0)
            running[_start(jobs[index], outputs)] = (index, time.monotonic())
        soonest = min(started + jobs[i].timeout for i, started in running.values())
        done, _ = wait(running, timeout=max(0.0, soonest - time.monotonic()),
                       return_when=FIRST_COMPLETED)
        now = time.monotonic()
        for future, (index, started) in list(running.items()):
            if future in done:
                outcome = _outcome(jobs[index], future, max_output)
            elif now >= started + jobs[index].timeout:
                outcome = _timed_out(jobs[index])
            else:
                continue
            outcome.duration_ms = int((now - started) * 1000)
            outcome.output = cap(outputs.pop(future).getvalue(), max_output)
            results[index] = outcome
            del running[future]
