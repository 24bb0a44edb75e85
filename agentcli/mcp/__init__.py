"""Tools from MCP (Model Context Protocol) servers.

Nothing here imports the ``mcp`` SDK at module level: it is loaded only when a
server is configured and the command offers tools to a model.
"""
