"""Run a test MCP server over stdio (no arguments) or streamable HTTP (``http PORT``)."""

from __future__ import annotations

import sys
from typing import Any


def serve(server: Any) -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
