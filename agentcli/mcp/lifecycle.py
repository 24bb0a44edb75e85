"""The servers of this process: started for a command, stopped at its end.

One set of servers runs at a time; starting again (chat's ``/reload``) stops
the old set first. They are stopped at exit however the process ends normally,
Ctrl-C and errors included.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable, Mapping

from ..config import McpServer
from ..tools.base import Tool
from .manager import McpManager
from .tools import mcp_tools

_current: list[McpManager] = []


def start_servers(servers: Mapping[str, McpServer]) -> McpManager:
    """Start ``servers`` (all at once) and wait until each is up or has failed."""
    stop_servers()
    manager = McpManager(servers)
    if not _current:
        atexit.register(stop_servers)
    _current.append(manager)
    manager.start()
    manager.wait_ready()
    return manager


def stop_servers() -> None:
    """Stop the running servers, if any."""
    while _current:
        _current.pop().stop()


def load_tools(servers: Mapping[str, McpServer], warn: Callable[[str], None]) -> list[Tool]:
    """Start the servers and return their tools; each problem is one line to ``warn``."""
    manager = start_servers(servers)
    tools, warnings = mcp_tools(manager)
    for line in warnings:
        warn(line)
    return tools
