"""The wire protocols that talk to a model server, behind one interface.

``Provider.complete`` sends one model request and returns a ``Reply`` (text,
whole tool calls, finish reason, usage), whatever the protocol:

- ``base``: what every protocol shares: the retry loop, the fallback model,
  dropping a rejected optional field, SDK errors as ``ModelError``;
- ``chat``: Chat Completions (``api = "chat"``, the default);
- ``responses``: the Responses API (``api = "responses"``);
- ``realtime``: the Realtime API over a WebSocket (``api = "realtime"``),
  imported only when chosen, as it loads ``websockets``;
- ``assemble``: streamed tool-call deltas turned into whole calls;
- ``shapes``: the shape of what a server sends, checked before it is read.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Provider, Reply
from .chat import ChatProvider
from .responses import ResponsesProvider

__all__ = ["ChatProvider", "Provider", "Reply", "ResponsesProvider", "provider_class"]


def provider_class(api: str | None) -> type[Provider]:
    """The provider for ``api`` (the ``api`` setting); the realtime one, and
    ``websockets`` with it, is imported only when ``api = "realtime"``."""
    if api == "realtime":
        try:
            from .realtime import RealtimeProvider
        except ImportError as exc:
            package = (exc.name or "websockets").split(".")[0]
            raise ConfigError(f'api = "realtime" needs the {package} package '
                              '(pip install "openai[realtime]")') from None
        return RealtimeProvider
    return ResponsesProvider if api == "responses" else ChatProvider
