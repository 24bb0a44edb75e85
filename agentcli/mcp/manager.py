"""MCP servers for one command: started together, kept up, stopped at the end.

Every server lives in one task on a single background event loop thread. The
agent loop is synchronous and runs each tool call in a thread of its own; a
call is handed to the loop with ``run_coroutine_threadsafe`` and waited for
with a deadline. A server's stderr goes to its log file, never the terminal.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO, cast

from .. import paths
from ..config import McpServer, expand
from ..errors import AgentCLIError, ToolError

STOP_WAIT = 8.0
"""Seconds to wait for all servers to stop (the SDK closes stdin, then kills)."""


@dataclass
class ServerState:
    """One configured server and what is known about it."""

    name: str
    config: McpServer
    log_path: Path
    status: str = "starting"  # starting, ready, failed, stopped
    error: str = ""
    tools: list[Any] = field(default_factory=list)
    started_at: float | None = None
    client: Any = None
    stale: bool = False
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def transport(self) -> str:
        return "stdio" if self.config.command is not None else "http"

    def fail(self, error: str) -> None:
        self.status, self.error = "failed", error
        self.ready.set()


class McpManager:
    """Starts the enabled servers concurrently and runs tool calls on them."""

    def __init__(self, servers: Mapping[str, McpServer]) -> None:
        log_dir = paths.state_dir() / "mcp"
        self.servers = {name: ServerState(name, cfg, log_dir / f"{name}.log")
                        for name, cfg in servers.items() if cfg.enabled}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: dict[str, concurrent.futures.Future[None]] = {}
        self._stops: dict[str, asyncio.Event] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start every server; returns at once (see ``wait_ready``)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp", daemon=True)
        self._thread.start()
        for state in self.servers.values():
            self._tasks[state.name] = asyncio.run_coroutine_threadsafe(self._serve(state), self._loop)

    def wait_ready(self) -> None:
        """Block until every server is up or has failed (each within its startup_timeout)."""
        for state in self.servers.values():
            state.ready.wait()

    def stop(self) -> None:
        """Stop every server and the loop; safe to call more than once."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        for stop in list(self._stops.values()):
            loop.call_soon_threadsafe(stop.set)
        for state in self.servers.values():
            if state.status == "starting":
                self._tasks[state.name].cancel()
        concurrent.futures.wait(list(self._tasks.values()), timeout=STOP_WAIT)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=2)

    def call(self, server: str, tool: str, arguments: dict[str, Any], timeout: float) -> Any:
        """Call ``tool`` on ``server``; ToolError when the server cannot answer."""
        state = self.servers[server]
        loop = self._loop
        if state.status != "ready" or loop is None:
            raise ToolError(self.unavailable(state))
        future = asyncio.run_coroutine_threadsafe(self._call(state, tool, arguments), loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ToolError(f"timed out after {timeout:g} s: MCP server {server} did not "
                            f"answer (log: {state.log_path})") from None

    def unavailable(self, state: ServerState) -> str:
        why = state.error or state.status
        return f"MCP server {state.name} is not available: {why} (log: {state.log_path})"

    async def _call(self, state: ServerState, tool: str, arguments: dict[str, Any]) -> Any:
        try:
            return await state.client.call_tool(tool, arguments)
        except Exception as exc:  # the connection broke, or the server sent garbage
            if _connection_lost(exc):
                state.status, state.error = "failed", "it stopped during a call"
            raise ToolError(f"MCP server {state.name} failed during the call: {describe(exc)} "
                            f"(log: {state.log_path})") from None

    async def _serve(self, state: ServerState) -> None:
        """The server's whole life: connect, list tools, wait for stop, disconnect."""
        stop = self._stops[state.name] = asyncio.Event()
        task = asyncio.current_task()
        timer = asyncio.get_running_loop().call_later(
            state.config.startup_timeout, _give_up, state, task)
        log: IO[str] | None = None
        try:
            log = _open_log(state)
            async with contextlib.AsyncExitStack() as stack:
                state.client = await stack.enter_async_context(_client(state, log, self))
                state.tools = await list_tools(state.client)
                timer.cancel()
                state.status, state.started_at = "ready", time.time()
                state.ready.set()
                await stop.wait()
            state.status = "stopped" if state.status == "ready" else state.status
        except asyncio.CancelledError:
            state.fail(state.error or "stopped before it was ready")
        except Exception as exc:
            state.fail(state.error or _start_error(state, exc))
            _note(log, f"agentcli: {state.error}")
        finally:
            timer.cancel()
            state.ready.set()
            if log is not None:
                log.close()

    async def refresh(self, state: ServerState) -> None:
        """Read the server's tool list again (after ``tools/list_changed``)."""
        state.stale = False
        state.tools = await list_tools(state.client)

    def refresh_stale(self) -> list[str]:
        """Re-read the tool lists of servers that said theirs changed; their names."""
        loop = self._loop
        stale = [s for s in self.servers.values() if s.stale and s.status == "ready"]
        if not stale or loop is None:
            return []
        for state in stale:
            future = asyncio.run_coroutine_threadsafe(self.refresh(state), loop)
            with contextlib.suppress(Exception):
                future.result(state.config.tool_timeout)
        return [state.name for state in stale]


def _give_up(state: ServerState, task: asyncio.Task[Any] | None) -> None:
    if state.status == "starting" and task is not None:
        state.error = (f"it did not start within {state.config.startup_timeout:g} s; "
                       "raise startup_timeout if it is slow to start")
        task.cancel()


def _connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the server is gone (not a bad reply from a live server)."""
    import anyio

    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    lost = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)
    return isinstance(exc, lost) or "connection closed" in str(exc).lower()


def _open_log(state: ServerState) -> IO[str]:
    state.log_path.parent.mkdir(parents=True, exist_ok=True)
    log = state.log_path.open("a", encoding="utf-8", errors="replace")
    where = state.config.command or state.config.url
    log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {where}\n")
    log.flush()
    return log


def _note(log: IO[str] | None, text: str) -> None:
    if log is not None and not log.closed:
        with contextlib.suppress(OSError, ValueError):
            log.write(text + "\n")
            log.flush()


def _client(state: ServerState, log: IO[str], manager: McpManager) -> Any:
    """The SDK's client for the server (imported here: only when a server is used)."""
    from mcp import Client, StdioServerParameters, stdio_client

    cfg = state.config

    async def on_message(message: Any) -> None:
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            state.stale = True

    if cfg.command is not None:
        params = StdioServerParameters(
            command=cfg.command, args=list(cfg.args), cwd=cfg.cwd,
            env={k: expand(v) for k, v in cfg.env.items()})
        transport: Any = stdio_client(params, errlog=cast(TextIO, log))
    else:
        transport = _http_transport(cfg)
    return Client(transport, message_handler=on_message, cache=None, mode="legacy")


def _http_transport(cfg: McpServer) -> Any:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    headers = {k: expand(v) for k, v in cfg.headers.items()}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))
    return streamable_http_client(str(cfg.url), http_client=http)


async def list_tools(client: Any) -> list[Any]:
    """Every tool the server offers, following pagination (at most 100 pages)."""
    tools: list[Any] = []
    cursor = None
    for _ in range(100):
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _start_error(state: ServerState, exc: BaseException) -> str:
    cwd = state.config.cwd
    if isinstance(exc, OSError) and cwd is not None and not Path(cwd).expanduser().is_dir():
        return f"it cannot be started: its cwd {cwd!r} is not a directory"
    if isinstance(exc, FileNotFoundError) and state.config.command:
        return f"it cannot be started: the command {state.config.command!r} was not found"
    if "connection closed" in str(exc).lower() and state.config.command:
        return "it exited before it was ready"
    return f"it could not be started: {describe(exc)}"


def describe(exc: BaseException) -> str:
    """An exception as a short phrase; the first real error of an exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if "connection closed" in str(exc).lower():
        return "the connection to it closed (did it exit?)"
    if isinstance(exc, AgentCLIError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
