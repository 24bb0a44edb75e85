"""The servers of this process: started for a command, stopped at its end.

One set of servers runs at a time; starting again (chat's ``/reload``) stops
the old set first. They are stopped at exit however the process ends normally,
Ctrl-C and errors included.
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..config import McpServer
from ..tools.registry import ToolRegistry
from .manager import McpManager
from .tools import mcp_tools

_current: list[McpManager] = []


def start_servers(servers: Mapping[str, McpServer], *, wait: bool = True) -> McpManager:
    """Start ``servers`` (all at once) and, with ``wait``, wait until each is up or has failed."""
    stop_servers()
    manager = McpManager(servers)
    if not _current:
        atexit.register(stop_servers)
        _exit_on_sigterm()
    _current.append(manager)
    manager.start()
    if wait:
        manager.wait_ready()
    return manager


def _exit_on_sigterm() -> None:
    """Make SIGTERM a normal exit (status 143), so the servers are stopped on the way
    out; left alone if someone else handles SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminated)


def _terminated(signum: int, frame: Any) -> None:
    sys.stderr.write("agentcli: terminated\n")
    sys.exit(128 + signum)


def stop_servers() -> None:
    """Stop the running servers, if any."""
    while _current:
        _current.pop().stop()


def starting() -> list[str]:
    """The names of the servers still starting (none when no servers run)."""
    return [s.name for m in _current for s in m.servers.values() if s.status == "starting"]


def wait_started(show: Callable[[list[str]], None], poll: float = 0.1) -> None:
    """Wait until no server is still starting; ``show`` gets the names of those
    still starting, first and whenever they change."""
    shown: list[str] | None = None
    while names := starting():
        if names != shown:
            show(names)
            shown = names
        time.sleep(poll)


def add_tools(registry: ToolRegistry, servers: Mapping[str, McpServer],
              warn: Callable[[str], None], *, manager: McpManager | None = None) -> None:
    """Start the servers and register their tools; each problem is one line to ``warn``.

    Given a ``manager`` that ``start_servers(..., wait=False)`` started, the
    tools are added at the registry's first ``refresh``, which waits for the
    servers still starting (chat's prompt does not wait for them).

    A server that says its tool list changed has its tools read again before
    the registry's next ``refresh`` (the agent refreshes before each request).
    """
    started = manager or start_servers(servers)
    unlisted = [manager is not None]  # tools not added yet (the servers may still be starting)

    def add(reg: ToolRegistry) -> None:
        started.wait_ready()
        tools, warnings = mcp_tools(started)
        for line in warnings:
            warn(line)
        reg.extend(tools)

    def refresh(reg: ToolRegistry) -> bool:
        if unlisted[0]:
            unlisted[0] = False
            add(reg)
            return True
        return _refresh(started, reg, warn)

    if not unlisted[0]:
        add(registry)
    registry.refreshers.append(refresh)


def _refresh(manager: McpManager, registry: ToolRegistry, warn: Callable[[str], None]) -> bool:
    changed = manager.refresh_stale()
    if not changed:
        return False
    for name in changed:
        registry.remove_source(f"mcp:{name}")
    tools, warnings = mcp_tools(manager, only=changed)
    for line in warnings:
        warn(line)
    registry.extend(tools)
    return True
