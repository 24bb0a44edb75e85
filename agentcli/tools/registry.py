"""The tool registry: every tool by name, where it came from, and its policy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import ToolNotFound
from .base import Policy, Tool


class ToolRegistry:
    """An explicit, non-global set of tools; one is built per command."""

    def __init__(self, policies: Mapping[str, Policy] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        self.policies: dict[str, Policy] = dict(policies or {})
        self.warnings: list[str] = []
        #: Hooks around every call (``agentcli.hooks.Hook``), commands and plugin functions.
        self.hooks: list[Any] = []
        #: Called by ``refresh``: each updates the tools of a source whose list
        #: changed (an MCP server's ``tools/list_changed``) and says if it did.
        self.refreshers: list[Callable[[ToolRegistry], bool]] = []
        self.skipped: list[str] = []  # plugin tools refused (also in warnings)

    def register(self, tool: Tool) -> None:
        """Add a tool; a plugin can replace a less local plugin but never a built-in."""
        old = self._tools.get(tool.name)
        if old is not None:
            if old.source == "builtin":
                message = (f"{tool.source}: tool '{tool.name}' is built in and cannot be "
                           "replaced by a plugin; the plugin's tool was skipped (rename it)")
                self.warnings.append(message)
                self.skipped.append(message)
                return
            self.warnings.append(f"tool '{tool.name}' is defined in {old.source} and {tool.source}; "
                                 f"using {tool.source}")
        self._tools[tool.name] = tool

    def extend(self, tools: Iterable[Tool]) -> None:
        for t in tools:
            self.register(t)

    def remove_source(self, source: str) -> None:
        """Drop every tool that came from ``source``."""
        for name in [n for n, t in self._tools.items() if t.source == source]:
            del self._tools[name]

    def refresh(self) -> bool:
        """Let sources whose tools changed update them; True if any did."""
        return any([refresh(self) for refresh in self.refreshers])

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            known = ", ".join(sorted(self._tools)) or "none"
            raise ToolNotFound(f"unknown tool '{name}' (available tools: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def all(self) -> list[Tool]:
        return sorted(self._tools.values(), key=lambda t: t.name)

    def policy(self, name: str) -> Policy:
        """Config wins over the decorator; the default is to ask."""
        if name in self.policies:
            return self.policies[name]
        tool = self._tools.get(name)
        return (tool.policy if tool and tool.policy else "ask")

    def schemas(self, *, strict: bool = False) -> list[dict[str, Any]]:
        return [t.schema(strict=strict) for t in self.all()]
