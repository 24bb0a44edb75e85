"""Running one tool: timeout, exceptions turned into results, output cap.

``execute`` never raises for a tool's own failure: the model gets a message
it can act on, and the history stays valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import AgentCLIError, ToolError
from ..nesting import shape_problem
from .base import Tool
from .isolate import run_isolated

Status = Literal["ok", "error", "denied", "timeout", "cancelled"]


@dataclass
class Outcome:
    status: Status
    result: str
    duration_ms: int = 0
    output: str = ""
    images: list[dict[str, str]] = field(default_factory=list)


@dataclass
class WithImages:
    """A tool's result with images beside its text (an MCP tool's). The text, which
    summarises each image in a line, is what every API gets; the images themselves
    (``{"mime_type", "data"}``, base64) go only where the protocol carries them."""

    text: str
    images: list[dict[str, str]]


class ResultNotText(AgentCLIError):
    """A tool's return value could not be turned into text for the model."""


def serialise(value: Any) -> str:
    """A tool's return value as text: strings as they are, the rest as JSON.

    Raises:
        ResultNotText: the value is too deep, contains itself, holds an int too
            long to print, or converting it raised (e.g. its ``__str__``).
    """
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    problem = shape_problem(value)
    if problem is None:
        try:
            return _json(value)
        except RecursionError:
            problem = "nested too deeply"
        except BaseException as exc:  # a plugin's __str__ or model_dump can raise anything
            problem = _why(exc)[:200]
    raise ResultNotText(f"the tool's return value could not be converted to text ({problem}); "
                        "return a string, or plain JSON data")


def _json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, default=_fallback)
    except ValueError as exc:
        if "out of range float" not in str(exc).lower():
            raise
        return json.dumps(_finite(value), ensure_ascii=False, default=_fallback)


def _why(exc: BaseException) -> str:
    """``Type: message`` for an exception a plugin raised, whatever its ``__str__`` does."""
    detail = _text_of(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _text_of(exc: BaseException) -> str:
    """``str(exc)``, or a note saying it could not be read."""
    try:
        return str(exc)
    except BaseException:  # a plugin's exception whose __str__ raises
        return "(its message could not be read)"


def _fallback(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)


def _finite(value: Any) -> Any:
    """Non-finite floats as strings; ``value`` was checked to be at most MAX_DEPTH deep."""
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


class Stopper:
    """How to stop one running call, when its kind of tool can be stopped.

    The tool's thread arms it with an action (cancel the task, kill the
    worker); ``stop`` runs that action, now or as soon as it is armed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._action: Any = None
        self.requested = False

    def arm(self, action: Any) -> None:
        """Set the action that stops the call (None once the call has ended)."""
        with self._lock:
            self._action = action
            now = self.requested and action is not None
        if now:
            action()

    def stop(self) -> None:
        with self._lock:
            self.requested = True
            action = self._action
        if action is not None:
            action()


def stoppable(tool: Tool) -> bool:
    """Whether a running call of ``tool`` can really be stopped (a thread cannot)."""
    return tool.is_async or tool.isolated


def call(tool: Tool, kwargs: dict[str, Any], timeout: float, stopper: Stopper | None = None) -> Any:
    """Invoke the function: isolated tools in a worker process, async tools in their own
    event loop with a real timeout; both stop when ``stopper`` is told to."""
    if tool.isolated:
        return _call_isolated(tool, kwargs, timeout, stopper or Stopper())
    return _call_here(tool, kwargs, timeout, stopper)


def _call_here(tool: Tool, kwargs: dict[str, Any], timeout: float, stopper: Stopper | None) -> Any:
    if tool.is_async:
        return asyncio.run(_bounded(tool, kwargs, timeout, stopper))
    return tool.func(**kwargs)


async def _bounded(tool: Tool, kwargs: dict[str, Any], timeout: float,
                   stopper: Stopper | None) -> Any:
    """Await the tool with a deadline; ``stopper`` cancels the task from another thread."""
    task, loop = asyncio.current_task(), asyncio.get_running_loop()

    def cancel() -> None:
        with contextlib.suppress(RuntimeError):  # the loop has already closed
            loop.call_soon_threadsafe(task.cancel)  # type: ignore[union-attr]
    if stopper is not None:
        stopper.arm(cancel)
    try:
        return await asyncio.wait_for(tool.func(**kwargs), timeout)
    finally:
        if stopper is not None:
            stopper.arm(None)


def _call_isolated(tool: Tool, kwargs: dict[str, Any], timeout: float, stopper: Stopper) -> str:
    """Run the call in a forked worker; its printed text joins this thread's output."""
    stop = threading.Event()
    stopper.arm(stop.set)
    try:
        reply = run_isolated(lambda: _in_worker(tool, kwargs, timeout), timeout=timeout,
                             memory_mb=None, error=ToolError, describe=_why,
                             what=f"tool {tool.name}", stop=stop, timeout_error=TimeoutError)
    finally:
        stopper.arm(None)
    parts = json.loads(reply)
    if parts["output"] and _captured.buffer is not None:
        _captured.buffer.write(parts["output"])
    return str(parts["result"])


def _in_worker(tool: Tool, kwargs: dict[str, Any], timeout: float) -> str:
    """In the worker process: call the tool, send back its result and printed text as JSON."""
    printed = io.StringIO()
    _captured.buffer = printed
    result = serialise(_call_here(tool, kwargs, timeout, None))
    return json.dumps({"result": result, "output": printed.getvalue()})


@dataclass
class Job:
    tool: Tool
    kwargs: dict[str, Any]
    timeout: float
    stopper: Stopper = field(default_factory=Stopper)


class _Captured(threading.local):
    buffer: io.StringIO | None = None


_captured = _Captured()


class _RoutedStream(io.TextIOBase):
    """Stands in for stdout/stderr while tools run: a tool thread's writes go to
    that thread's buffer; every other thread writes through to the real stream
    (or, while file descriptor 1 is captured, to a copy of the real stdout)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.detour: Any = None

    def write(self, text: str) -> int:
        buffer = _captured.buffer
        if buffer is not None:
            return buffer.write(text)
        written: int = (self.detour or self.real).write(text)
        return written

    def flush(self) -> None:
        if _captured.buffer is None:
            (self.detour or self.real).flush()

    def isatty(self) -> bool:
        """Whether the real stream is a terminal (``TextIOBase`` would say False)."""
        return bool(self.real.isatty())

    def fileno(self) -> int:
        return int(self.real.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def capture_thread_output(buffer: io.StringIO | None) -> None:
    """Send this thread's ``print`` (stdout and stderr) to ``buffer`` (None: stop)."""
    _captured.buffer = buffer


def route_tool_output() -> None:
    """Install the routing streams (once). They stay, so that a tool still running
    after its time-out cannot print into the answer either."""
    if not isinstance(sys.stdout, _RoutedStream):
        sys.stdout = _RoutedStream(sys.stdout)
    if not isinstance(sys.stderr, _RoutedStream):
        sys.stderr = _RoutedStream(sys.stderr)


@contextlib.contextmanager
def fd1_captured(limit: int = 1_000_000) -> Iterator[list[str]]:
    """Point file descriptor 1 at a temporary file while the block runs.

    Plugins that write to fd 1 directly (``os.write(1, ...)``, C code, child
    processes) cannot reach the answer on stdout. Their text (at most ``limit``
    bytes) is in the yielded list afterwards. Python-level writes of other
    threads to ``sys.stdout`` still reach the real stdout through a copy of fd 1.
    """
    captured: list[str] = []
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no fd 1 to protect
        yield captured
        return
    with tempfile.TemporaryFile() as spool:
        os.dup2(spool.fileno(), 1)
        routed = _detour_stdout(saved)
        try:
            yield captured
        finally:
            if routed is not None:
                routed.detour = None
            os.dup2(saved, 1)
            os.close(saved)
            spool.seek(0)
            captured.append(spool.read(limit).decode("utf-8", errors="replace"))


def _detour_stdout(saved: int) -> _RoutedStream | None:
    """Send other threads' ``sys.stdout`` writes to ``saved`` (the real fd 1)."""
    routed = sys.stdout
    if not isinstance(routed, _RoutedStream):
        return None
    try:
        if routed.real.fileno() != 1:
            return None
    except (OSError, ValueError, AttributeError):
        return None
    raw = io.FileIO(saved, "w", closefd=False)
    routed.detour = io.TextIOWrapper(raw, encoding=routed.real.encoding,
                                     errors=routed.real.errors, write_through=True)
    return routed


def _start(job: Job, outputs: dict[Future[Any], io.StringIO]) -> Future[Any]:
    """Run one job in its own daemon thread, so a hung tool never blocks the rest."""
    future: Future[Any] = Future()
    outputs[future] = io.StringIO()

    def target() -> None:
        if not future.set_running_or_notify_cancel():
            return
        _captured.buffer = outputs[future]
        future.set_result(_run_one(job))

    threading.Thread(target=target, name=f"tool-{job.tool.name}", daemon=True).start()
    return future


def _run_one(job: Job) -> Outcome:
    """Call the tool and turn what it returns or raises into an outcome.

    This runs in the tool's thread, inside its time limit: converting a value
    or an exception to text runs plugin code (``__str__``) that may hang too.
    """
    try:
        value = call(job.tool, job.kwargs, job.timeout, job.stopper)
        if isinstance(value, WithImages):
            return Outcome("ok", value.text, images=value.images)
        return Outcome("ok", serialise(value))
    except AgentCLIError as exc:
        return Outcome("error", f"error: {_text_of(exc)}")
    except BaseException as exc:  # a plugin must not stop us: SystemExit, KeyboardInterrupt too
        if isinstance(exc, TimeoutError) and stoppable(job.tool):
            # an async tool's wait_for, or an isolated tool's worker, ran out of time: the
            # same time-out as when this thread's caller stops waiting first
            return _timed_out(job)
        return Outcome("error", f"error: {_why(exc)}")


def _outcome(future: Future[Any], max_output: int) -> Outcome:
    """The job's outcome with its text capped: an error message can be as long as any
    output (an exception's text, an MCP server's error result)."""
    outcome: Outcome = future.result()
    outcome.result = cap(outcome.result, max_output)
    return outcome


def _timed_out(job: Job) -> Outcome:
    """Async and isolated tools are stopped; a thread cannot be and is left running."""
    job.stopper.stop()
    left = "" if stoppable(job.tool) else " (it may still be running in the background)"
    return Outcome("timeout", f"timed out after {job.timeout:g} s: {job.tool.name} did not finish{left}")


def _cancelled(job: Job) -> Outcome:
    """The user interrupted the turn: stop the call if it can be, and say which it was."""
    job.stopper.stop()
    if stoppable(job.tool):
        return Outcome("cancelled", "cancelled: the user interrupted the turn, and the call "
                                    "was stopped before it finished")
    return Outcome("cancelled", "cancelled: the user interrupted the turn before this call "
                                "finished; it could not be stopped and may still finish "
                                "in the background")


def run_batch(jobs: list[Job], results: list[Outcome | None], *, max_parallel: int,
              max_output: int) -> str:
    """Run ``jobs`` at most ``max_parallel`` at a time, each with its own deadline.

    ``results[i]`` is filled as job ``i`` ends, so after a KeyboardInterrupt
    the caller knows which calls finished and which to mark cancelled.
    Returns what the batch wrote straight to file descriptor 1 (capped).
    """
    route_tool_output()
    with fd1_captured(limit=4 * max_output) as printed:
        _run_all(jobs, results, max_parallel, max_output)
    return cap("".join(printed), max_output)


def _run_all(jobs: list[Job], results: list[Outcome | None], max_parallel: int,
             max_output: int) -> None:
    running: dict[Future[Any], tuple[int, float]] = {}
    outputs: dict[Future[Any], io.StringIO] = {}
    try:
        _run_loop(jobs, results, max_parallel, max_output, running, outputs)
    except KeyboardInterrupt:
        _cancel_running(jobs, results, max_output, running, outputs)
        raise


def _cancel_running(jobs: list[Job], results: list[Outcome | None], max_output: int,
                    running: dict[Future[Any], tuple[int, float]],
                    outputs: dict[Future[Any], io.StringIO]) -> None:
    """Answer every running call "cancelled", stopping those that can be stopped
    (and waiting a moment for them to end)."""
    now = time.monotonic()
    for future, (index, started) in running.items():
        outcome = _cancelled(jobs[index])
        outcome.duration_ms = int((now - started) * 1000)
        outcome.output = cap(outputs[future].getvalue(), max_output)
        results[index] = outcome
    wait([f for f, (i, _) in running.items() if stoppable(jobs[i].tool)], timeout=2.0)


def _run_loop(jobs: list[Job], results: list[Outcome | None], max_parallel: int,
              max_output: int, running: dict[Future[Any], tuple[int, float]],
              outputs: dict[Future[Any], io.StringIO]) -> None:
    waiting = list(range(len(jobs)))
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
                outcome = _outcome(future, max_output)
            elif now >= started + jobs[index].timeout:
                outcome = _timed_out(jobs[index])
            else:
                continue
            outcome.duration_ms = int((now - started) * 1000)
            outcome.output = cap(outputs.pop(future).getvalue(), max_output)
            results[index] = outcome
            del running[future]
