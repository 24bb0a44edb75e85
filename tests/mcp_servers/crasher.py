"""An MCP server that dies in the middle of a call to ``crash``."""

from __future__ import annotations

import os
import sys

from _serve import serve
from mcp.server.mcpserver import MCPServer

server = MCPServer("crasher", log_level="WARNING")


@server.tool()
def crash() -> str:
    """Exits the server process without answering."""
    print("crasher: going down now", file=sys.stderr, flush=True)
    os._exit(3)


@server.tool()
def hang(seconds: float) -> str:
    """Never answers in time."""
    import time

    time.sleep(seconds)
    return "late"


if __name__ == "__main__":
    serve(server)
