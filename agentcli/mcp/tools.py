"""MCP tools as ordinary agentcli ``Tool`` objects.

Each one keeps the server's ``inputSchema`` as its hand-written schema, so its
arguments go through the same validation, approval, policies, limits, audit
and stats as any other tool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ToolError
from ..tools.base import Tool
from ..tools.runner import WithImages
from .manager import McpManager, ServerState
from .naming import tool_name
from .results import images_of, result_text


def mcp_tools(manager: McpManager, only: list[str] | None = None) -> tuple[list[Tool], list[str]]:
    """The tools of every running server (or those in ``only``), and one warning
    line per problem."""
    tools: list[Tool] = []
    warnings: list[str] = []
    owners: dict[str, str] = {}
    for state in manager.servers.values():
        if only is not None and state.name not in only:
            continue
        if state.status != "ready":
            warnings.append(manager.unavailable(state))
            continue
        for spec in offered(state, warnings):
            made = _tool(manager, state, spec, warnings)
            if made is None:
                continue
            if made.name in owners:
                warnings.append(f"MCP tools {owners[made.name]} and {state.name}/{spec.name} "
                                f"both get the name {made.name}; the second was skipped")
                continue
            owners[made.name] = f"{state.name}/{spec.name}"
            tools.append(made)
    return tools, warnings


def offered(state: ServerState, warnings: list[str]) -> list[Any]:
    """The server's tools that ``include`` and ``exclude`` let through."""
    cfg = state.config
    names = {spec.name for spec in state.tools}
    for missing in sorted(set(cfg.include or []) - names):
        warnings.append(f"MCP server {state.name}: include names {missing!r}, which it does not offer")
    return [spec for spec in state.tools
            if (cfg.include is None or spec.name in cfg.include) and spec.name not in cfg.exclude]


def _tool(manager: McpManager, state: ServerState, spec: Any,
          warnings: list[str]) -> Tool | None:
    schema = dict(spec.input_schema or {})
    schema.setdefault("type", "object")
    if schema.get("type") == "object":
        schema.setdefault("properties", {})
    try:
        made = Tool(_caller(manager, state, spec.name), name=tool_name(state.name, spec.name),
                    description=" ".join((spec.description or "").split()),
                    parameters=schema, timeout=state.config.tool_timeout,
                    side_effects=not _read_only(spec), untrusted_output=True)
    except ValueError as exc:
        warnings.append(f"MCP server {state.name}: tool {spec.name!r} skipped: {exc}")
        return None
    made.source = f"mcp:{state.name}"
    return made


def _read_only(spec: Any) -> bool:
    """Whether the server marks the tool read-only (``annotations.readOnlyHint``)."""
    return bool(getattr(getattr(spec, "annotations", None), "read_only_hint", False))


def _caller(manager: McpManager, state: ServerState,
            name: str) -> Callable[..., str | WithImages]:
    timeout = state.config.tool_timeout

    def call(**arguments: Any) -> str | WithImages:
        result = manager.call(state.name, name, arguments, timeout)
        text = result_text(result)
        if getattr(result, "is_error", False):
            raise ToolError(text or f"the MCP tool {name} failed and gave no reason")
        images = images_of(result)
        return WithImages(text, images) if images else text
    call.__name__ = name if name.isidentifier() else "mcp_tool"
    return call
