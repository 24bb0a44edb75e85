"""Running a computation in a forked worker with a wall-clock and memory limit.

Signal alarms only work in the main thread and do not bound memory; a child
process can be killed at any moment and given its own address-space limit.
The fork is cheap (a few ms) while the parent is small.
"""

from __future__ import annotations

import gc
import math
import os
import resource
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import NoReturn

from ..errors import ToolError

_FORK_LOCK = threading.Lock()


def run_isolated(job: Callable[[], str], *, timeout: float, memory_mb: int | None,
                 error: type[ToolError] = ToolError,
                 describe: Callable[[BaseException], str] = str, what: str = "computation",
                 stop: threading.Event | None = None,
                 timeout_error: type[BaseException] | None = None) -> str:
    """Run ``job`` in a forked worker with a memory cap, SIGKILLed after ``timeout`` seconds
    or as soon as ``stop`` is set (another thread cancelling it).

    Args:
        job: Called in the child; returns the text to send back.
        timeout: Wall-clock seconds before the child is killed.
        memory_mb: Address space the child may add to what it inherits (None: no cap).
        error: The ToolError subclass raised for every failure.
        describe: Turns an exception raised by ``job`` into a message.
        what: Names the work in messages ("the calculation took too long").
        stop: When set, the worker is killed and ``error`` says it was cancelled.
        timeout_error: Raised instead of ``error`` when the time is up, for a caller that
            reports time-outs apart from failures.
    """
    with _FORK_LOCK:  # so that no other worker inherits this pipe's write end
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            _worker(job, read_fd, write_fd, memory_mb, describe)
        os.close(write_fd)
    data: bytes | None = None
    try:
        data = _read_reply(read_fd, time.monotonic() + timeout, stop)
    finally:
        os.close(read_fd)
        if data is None:  # timed out, cancelled, or the caller was interrupted
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    if data is None and stop is not None and stop.is_set():
        raise error(f"the {what} was cancelled and its worker process stopped")
    if data is None:
        raise (timeout_error or error)(f"the {what} took too long (over {timeout:g} s) and was stopped")
    kind, body = data[:1], data[1:].decode("utf-8", "replace")
    if kind == b"R":
        return body
    if kind in (b"E", b"M"):
        limit = f" (limit {memory_mb} MB)" if memory_mb is not None else ""
        raise error(body or f"the {what} ran out of memory{limit}")
    ending = (f"was killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
              else f"exited with code {os.waitstatus_to_exitcode(status)}")
    raise error(f"the {what} failed: the worker process {ending} without an answer")


def _read_reply(fd: int, deadline: float, stop: threading.Event | None) -> bytes | None:
    """Read from ``fd`` until end of file; None if the deadline passes or ``stop`` is set first."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or (stop is not None and stop.is_set()):
            return None
        slice_ms = math.ceil((remaining if stop is None else min(remaining, 0.05)) * 1000)
        if not poller.poll(slice_ms):
            continue  # look at the deadline and the stop flag again
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _worker(job: Callable[[], str], read_fd: int, write_fd: int, memory_mb: int | None,
            describe: Callable[[BaseException], str]) -> NoReturn:
    """In the forked child: cap memory, run ``job``, send R<text>, E<message> or M, exit."""
    code = 0
    try:
        gc.disable()  # no finalizers from the parent's other threads, fewer copied pages
        os.close(read_fd)
        if memory_mb is not None:
            _limit_memory(memory_mb)
        sys.set_int_max_str_digits(0)  # results are capped by size; render them exactly
        try:
            reply = b"R" + job().encode()
        except MemoryError:
            reply = b"M"  # allocates nothing
        except BaseException as exc:
            reply = b"E" + describe(exc).encode()
        view = memoryview(reply)
        while view:
            view = view[os.write(write_fd, view):]
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def _limit_memory(memory_mb: int) -> None:
    """Cap the address space at its current size plus ``memory_mb`` (needs Linux /proc)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[0])
        limit = pages * os.sysconf("SC_PAGE_SIZE") + memory_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (OSError, ValueError, IndexError):
        pass  # no /proc or no RLIMIT_AS here: the timeout still applies
