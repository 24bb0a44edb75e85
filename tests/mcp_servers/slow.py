"""An MCP server that takes ``SLOW_START`` seconds (default 30) before it serves,
or, when ``SLOW_GATE`` names a file, waits until that file exists."""

from __future__ import annotations

import os
import time
from pathlib import Path

from _serve import serve
from mcp.server.mcpserver import MCPServer

server = MCPServer("slow", log_level="WARNING")


@server.tool()
def ping() -> str:
    """Answers pong."""
    return "pong"


if __name__ == "__main__":
    gate = os.environ.get("SLOW_GATE")
    if gate:
        while not Path(gate).exists():
            time.sleep(0.05)
    else:
        time.sleep(float(os.environ.get("SLOW_START", "30")))
    serve(server)
