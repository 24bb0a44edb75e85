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

from .base import Provider, Reply
from .chat import ChatProvider
from .responses import ResponsesProvider

__all__ = ["ChatProvider", "Provider", "Reply", "ResponsesProvider"]
