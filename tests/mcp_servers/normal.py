"""A well-behaved MCP server: text, structured content, a resource link, a long name."""

from __future__ import annotations

import sys

from _serve import serve
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel

server = MCPServer("normal", log_level="WARNING")


class Sum(BaseModel):
    total: int


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    print(f"echo called with {text!r}", file=sys.stderr, flush=True)
    return f"echo: {text}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> Sum:
    """Add two integers."""
    return Sum(total=a + b)


@server.tool(name="find.docs")
def find_docs(topic: str) -> list[str]:
    """A tool whose name has a character the model APIs do not allow."""
    return [f"notes about {topic}"]


@server.tool()
def hidden() -> str:
    """A tool the tests exclude."""
    return "hidden"


if __name__ == "__main__":
    print("normal server starting (this line goes to the log)", file=sys.stderr, flush=True)
    serve(server)
