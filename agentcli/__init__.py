"""agentcli: a terminal agent shell for tool-calling models.

The public API for plugins is ``from agentcli import tool`` (and ``hook``). Names are
resolved lazily so that ``agentcli --version`` imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real names for type checkers; at run time they load lazily
    from .conversation import Conversation
    from .hooks import hook
    from .tools.base import Tool, tool
    from .tools.registry import ToolRegistry

__version__ = "0.1.0"

__all__ = ["Conversation", "Tool", "ToolRegistry", "__version__", "hook", "tool"]

_LAZY = {
    "tool": ("agentcli.tools.base", "tool"),
    "hook": ("agentcli.hooks", "hook"),
    "Tool": ("agentcli.tools.base", "Tool"),
    "ToolRegistry": ("agentcli.tools.registry", "ToolRegistry"),
    "Conversation": ("agentcli.conversation", "Conversation"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'agentcli' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
