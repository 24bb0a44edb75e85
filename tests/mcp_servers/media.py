"""An MCP server whose tools return an image, an error and a resource link."""

from __future__ import annotations

from _serve import serve
from mcp.server.mcpserver import Image, MCPServer
from mcp.types import CallToolResult, ResourceLink, TextContent

server = MCPServer("media", log_level="WARNING")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(12_337)


@server.tool()
def snapshot() -> list:
    """A caption and an image."""
    return ["the chart", Image(data=PNG, format="png")]


@server.tool()
def broken(reason: str) -> CallToolResult:
    """Always reports an error."""
    return CallToolResult(content=[TextContent(type="text", text=f"cannot do that: {reason}")],
                          is_error=True)


@server.tool()
def link() -> list:
    """A resource link."""
    return [ResourceLink(type="resource_link", name="report", uri="file:///srv/report.pdf",
                         mime_type="application/pdf")]


@server.tool(name="x__echo")
def x_echo(text: str) -> str:
    """A name that, on a server called m, collides with echo on a server called m__x."""
    return text


if __name__ == "__main__":
    serve(server)
