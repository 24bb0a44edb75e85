"""An MCP server that takes ``SLOW_START`` seconds (default 30) before it serves."""

from __future__ import annotations

import os
import time

from _serve import serve
from mcp.server.mcpserver import MCPServer

server = MCPServer("slow", log_level="WARNING")


@server.tool()
def ping() -> str:
    """Answers pong."""
    return "pong"


if __name__ == "__main__":
    time.sleep(float(os.environ.get("SLOW_START", "30")))
    serve(server)
