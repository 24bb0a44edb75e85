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
from collections.abc import Callable, Mapping
from typing import Any

from ..config import McpServer
from ..tools.registry import ToolRegistry
from .manager import McpManager
from .tools import mcp_tools

_current: list[McpManager] = []


def start_servers(servers: Mapping[str, McpServer]) -> McpManager:
    """Start ``servers`` (all at once) and wait until each is up or has failed."""
    stop_servers()
    manager = McpManager(servers)
    if not _current:
        atexit.register(stop_servers)
        _exit_on_sigterm()
    _current.append(manager)
    manager.start()
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


def add_tools(registry: ToolRegistry, servers: Mapping[str, McpServer],
              warn: Callable[[str], None]) -> None:
    """Start the servers and register their tools; each problem is one line to ``warn``.

    A server that says its tool list changed has its tools read again before
    the registry's next ``refresh`` (the agent refreshes before each request).
    """
    manager = start_servers(servers)
    tools, warnings = mcp_tools(manager)
    for line in warnings:
        warn(line)
    registry.extend(tools)
    registry.refreshers.append(lambda reg: _refresh(manager, reg, warn))


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
