"""An MCP server whose ``grow`` tool adds a tool and says its tool list changed."""

from __future__ import annotations

from _serve import serve
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("changer", log_level="WARNING")


def extra(word: str) -> str:
    """A tool that exists only after grow was called."""
    return f"extra: {word}"


@server.tool()
async def grow(ctx: Context) -> str:
    """Adds the tool 'extra' and tells the client."""
    server.add_tool(extra)
    await ctx.session.send_tool_list_changed()
    return "grown"


if __name__ == "__main__":
    serve(server)
