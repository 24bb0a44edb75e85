"""The Realtime API as a third wire protocol behind the provider interface.

Selected with ``api = "realtime"``. Text only: the session asks for text
output and no audio is sent or read. One WebSocket connection (the openai
SDK's realtime client, over the ``websockets`` library) lives for the whole
``run`` or ``chat`` and is reused between model steps: the server keeps the
conversation, so each step sends only what is new since the last one
(``conversation.item.create``), the tools and instructions when they change
(``session.update``), then ``response.create``. The reply's text comes from
``response.output_text.delta``; calls are assembled from
``response.output_item.added`` and ``response.function_call_arguments.*``;
usage and the finish come from ``response.done``.

When the conversation sent no longer continues what the server holds (the
history was shortened to fit the context, a new chat, another model) or the
connection failed, the connection is closed and the next step opens a new
one and sends the whole conversation again. Retries, the fallback model and
the rule "retry only while no text was shown" are the base ``Provider``'s.
This module, and ``websockets`` with it, is imported only when
``api = "realtime"``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, cast

import openai
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from ..errors import (
    AuthError,
    MalformedReply,
    ModelConnectionError,
    ModelError,
    ModelTimeout,
    RateLimited,
    StreamError,
)
from ..messages import Message, Usage
from . import shapes
from .assemble import MAX_REPLY_CHARS, MAX_REPLY_EVENTS, ToolCallAssembler
from .base import DropField, Provider, Reply, Retry, ServerError, checked, finalise, said
from .responses import (  # the same flat function tools and call items
    call_item,
    output_item,
    to_tool_choice,
    to_tools,
)

#: Session fields some models reject; dropped and remembered after an error naming them.
OPTIONAL_SESSION = ("parallel_tool_calls",)
#: Largest event accepted from the server (a whole reply fits many times over).
MAX_EVENT = 16 * 1024 * 1024
#: Seconds a close handshake may take before the socket is simply dropped.
CLOSE_TIMEOUT = 2.0

_ITEM = {"type": str, "call_id": str, "name": str, "arguments": str,
         "content": [{"type": str, "text": str, "transcript": str}]}
_RESPONSE = {"status": str, "output": [_ITEM],
             "status_details": {"type": str, "reason": str,
                                "error": {"message": str, "code": str, "type": str}},
             "usage": {"input_tokens": int, "output_tokens": int, "total_tokens": int}}
#: Events whose ``delta`` is the answer's text (a transcript, if a server answers in audio).
TEXT_DELTAS = ("response.output_text.delta", "response.output_audio_transcript.delta")
#: Server events by type; other types are only required to be objects.
EVENTS: dict[str, Any] = {
    "response.output_text.delta": {"delta": str},
    "response.output_audio_transcript.delta": {"delta": str},
    "response.output_item.added": {"output_index": int, "item": _ITEM},
    "response.output_item.done": {"output_index": int, "item": _ITEM},
    "response.function_call_arguments.delta": {"output_index": int, "call_id": str, "delta": str},
    "response.function_call_arguments.done": {"output_index": int, "call_id": str, "name": str,
                                              "arguments": str},
    "response.done": {"response": _RESPONSE},
    "error": {"error": {"message": str, "code": str, "type": str}},
}


def to_session(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """Chat Completions messages as the session's instructions (the leading system
    messages) and Realtime conversation items (everything after them)."""
    leading: list[str] = []
    start = 0
    while start < len(messages) and messages[start]["role"] == "system":
        leading.append(messages[start].get("content") or "")
        start += 1
    return ("\n\n".join(leading) if leading else None), to_items(messages[start:])


def to_items(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat Completions messages as Realtime conversation items."""
    items: list[dict[str, Any]] = []
    for msg in messages:
        role = msg["role"]
        if role == "tool":
            items.append(output_item(msg))
            continue
        text = msg.get("content") or ""
        if role != "assistant":
            items.append({"type": "message", "role": role,
                          "content": [{"type": "input_text", "text": text}]})
        elif text:
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": text}]})
        items += [call_item(call) for call in msg.get("tool_calls") or []]
    return items


class RealtimeProvider(Provider):
    api = "realtime"
    unsent = ("temperature", "top_p", "seed")  # the Realtime API has no parameter for them

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._forget()

    def _forget(self) -> None:
        """No connection, and nothing known to be on the server."""
        self._conn: Any = None
        #: The model and instructions the open connection was started with.
        self._key_sent: tuple[str, str | None] | None = None
        #: The session settings last sent on it (``session.update``).
        self._session_sent: dict[str, Any] | None = None
        #: The conversation items the server holds, in our own terms.
        self._items_sent: list[dict[str, Any]] = []
        #: Closes the connection when this provider is dropped, or at exit.
        self._closer: weakref.finalize[Any, Any] | None = None
        #: The model of the latest connection asked for; whether any event came since.
        self._asked = ""
        self._nothing_came = True

    def __copy__(self) -> RealtimeProvider:
        """A copy (``batch`` makes one per task) opens a connection of its own."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._forget()
        return twin

    def close(self) -> None:
        """Close the connection, if one is open (also run at exit)."""
        closer, self._closer, self._conn = self._closer, None, None
        self._key_sent, self._session_sent, self._items_sent = None, None, []
        if closer is not None:
            closer()

    def build_request(self, model: str, messages: list[dict[str, Any]],
                      tools: list[dict[str, Any]], tool_choice: Any,
                      stream: bool) -> dict[str, Any]:
        s = self.settings
        instructions, items = to_session(messages)
        session: dict[str, Any] = {"type": "realtime", "output_modalities": ["text"],
                                   "tools": to_tools(tools)}
        if s.parallel_tool_calls is not None and tools:
            session["parallel_tool_calls"] = s.parallel_tool_calls
        if s.max_tokens is not None:
            session["max_output_tokens"] = s.max_tokens
        session.update(s.extra_body or {})
        for name in self.dropped_fields:
            session.pop(name, None)
        response: dict[str, Any] = {}
        if tools and tool_choice is not None:
            response["tool_choice"] = to_tool_choice(tool_choice)
        return {"model": model, "instructions": instructions, "input": items, "tools": tools,
                "session": session, "response": response, "stream": stream}

    def _log_request(self, request: dict[str, Any]) -> None:
        if self._debug is not None:
            self._log(f"request: realtime response.create at {self.where()} "
                      f"model={request['model']} items={len(request['input'])} "
                      f"tools={len(request['tools'])} response={request['response']}")

    def _send(self, request: dict[str, Any], stream: bool, on_text: Callable[[str], None]) -> Reply:
        reused = self._conn is not None
        try:
            return self._exchange(request, stream, on_text)
        except Retry as retry:
            # A connection kept from an earlier step may have been closed by the server
            # meanwhile: open a new one at once, without spending a retry on it.
            if not (reused and isinstance(retry.error, StreamError) and self._nothing_came):
                raise
            self._log("the kept realtime connection was closed; connecting again")
            return self._exchange(request, stream, on_text)

    def _exchange(self, request: dict[str, Any], stream: bool,
                  on_text: Callable[[str], None]) -> Reply:
        self._nothing_came = True
        try:
            conn = self._connect(request)
            self._sync(conn, request)
            conn.send(cast(Any, {"type": "response.create", "response": request["response"]}))
            reply = self._read(conn, request["session"], stream, on_text)
        except BaseException as exc:
            self.close()  # whatever the server holds now is unknown: start afresh next time
            if isinstance(exc, Exception):
                raise self._translate_ws(exc) from None
            raise
        self._items_sent += to_items([Message(role="assistant", content=reply.content,
                                              tool_calls=reply.tool_calls).to_api()])
        return reply

    def _connect(self, request: dict[str, Any]) -> Any:
        """The open connection if it can continue ``request``; else a new one."""
        key = (request["model"], request["instructions"])
        items = request["input"]
        if (self._conn is not None and self._key_sent == key
                and items[:len(self._items_sent)] == self._items_sent):
            return self._conn
        if self._conn is not None:
            self._log("the conversation no longer continues the server's; starting a new "
                      "realtime connection")
            self.close()
        options = {"open_timeout": self.settings.request_timeout, "close_timeout": CLOSE_TIMEOUT,
                   "max_size": MAX_EVENT, "compression": None}
        self._asked = request["model"]
        manager = self.client.realtime.connect(model=request["model"],
                                               websocket_connection_options=cast(Any, options))
        self._conn = manager.enter()
        self._closer = weakref.finalize(self, _close_quietly, self._conn)
        self._key_sent = key
        self._log(f"connected to the realtime API at {self.where()} (model={request['model']})")
        return self._conn

    def _sync(self, conn: Any, request: dict[str, Any]) -> None:
        """Send the session settings if changed, and the items the server lacks."""
        session = dict(request["session"])
        if request["instructions"] is not None:
            session["instructions"] = request["instructions"]
        if session != self._session_sent:
            conn.send(cast(Any, {"type": "session.update", "session": session}))
            self._session_sent = session
        items = request["input"]
        for item in items[len(self._items_sent):]:
            conn.send(cast(Any, {"type": "conversation.item.create", "item": item}))
        self._items_sent = list(items)

    def _read(self, conn: Any, session: dict[str, Any], stream: bool,
              on_text: Callable[[str], None]) -> Reply:
        """Events up to ``response.done``, turned into a Reply."""
        reply = Reply(model=self.model)
        calls = _Calls()
        text: list[str] = []
        size = 0  # characters of text and arguments so far
        count = 0  # events so far
        watch = _Watchdog(conn, self.settings.request_timeout)
        try:
            while True:
                try:
                    event = conn.recv()
                except ConnectionClosed:
                    if watch.fired:
                        raise Retry(ModelTimeout(
                            f"no answer from {self.where()} within "
                            f"{self.settings.request_timeout:g} s"), 0) from None
                    raise
                watch.poke()
                self._nothing_came = False
                count += 1
                if count > MAX_REPLY_EVENTS:
                    raise self.too_long(events=True)
                data = checked(event, {"type": str}, "an event")
                kind = data.get("type") or ""
                shapes.check(data, EVENTS.get(kind, {}), "an event")
                index = data.get("output_index")
                size += len(data.get("delta") or "") if kind.endswith(".delta") else 0
                if size > MAX_REPLY_CHARS:
                    raise self.too_long()
                if kind in TEXT_DELTAS and data.get("delta"):
                    text.append(data["delta"])
                    if stream:
                        on_text(data["delta"])
                elif kind == "response.output_item.added":
                    calls.item(index, data.get("item") or {}, final=False)
                elif kind == "response.output_item.done":
                    calls.item(index, data.get("item") or {}, final=True)
                elif kind == "response.function_call_arguments.delta":
                    calls.delta(index, data.get("item_id") or "", data.get("call_id") or "",
                                data.get("delta") or "")
                elif kind == "response.function_call_arguments.done":
                    calls.item(index, {**data, "type": "function_call"}, final=True)
                elif kind == "response.done":
                    response = data.get("response") or {}
                    if not text and not calls:
                        _from_output(response, calls, text)
                        if text and stream:
                            on_text("".join(text))
                    self._finish(reply, response, bool(calls))
                    break
                elif kind == "error":
                    error = data.get("error") or {}
                    self._drop_rejected(error, session)
                    detail = error.get("message") or error.get("code") or "unknown error"
                    raise ModelError(f"{self.where()} reported an error: {said(self.scrub(detail))}")
        finally:
            watch.stop()
        content = "".join(text)
        if content and not stream:
            on_text(content)
        return finalise(reply, content, calls.assembled())

    def _drop_rejected(self, error: dict[str, Any], session: dict[str, Any]) -> None:
        """An error naming an optional session field that was sent: leave it out from
        now on and send again (``DropField``), as for Chat Completions."""
        message = f"{error.get('param') or ''} {error.get('message') or ''}"
        for name in OPTIONAL_SESSION:
            if name in session and name not in self.dropped_fields and name in message:
                self.dropped_fields.add(name)
                raise DropField()

    def _finish(self, reply: Reply, response: dict[str, Any], has_calls: bool) -> None:
        usage = response.get("usage") or {}
        if usage:
            reply.usage = Usage(prompt_tokens=usage.get("input_tokens") or 0,
                                completion_tokens=usage.get("output_tokens") or 0,
                                total_tokens=usage.get("total_tokens") or 0)
        status = response.get("status") or "completed"
        details = response.get("status_details") or {}
        reason = details.get("reason")
        if status == "failed":
            error = details.get("error") or {}
            detail = said(self.scrub(error.get("message") or error.get("code")
                                     or "no reason given"))
            if "server_error" in (error.get("type"), error.get("code")):
                # like a 5xx: tried again while no text was shown
                raise Retry(ServerError(f"server error from {self.where()}: {detail}"), 0)
            raise ModelError(f"{self.where()} failed the response: {detail}")
        if status == "cancelled":
            raise ModelError(f"{self.where()} cancelled the response "
                             f"({said(reason or 'no reason given')})")
        if status == "incomplete" and reason == "max_output_tokens":
            reply.finish_reason = "length"
        elif status == "incomplete" and reason == "content_filter":
            reply.finish_reason = "content_filter"
        else:
            reply.finish_reason = "tool_calls" if has_calls else "stop"

    def _translate_ws(self, exc: Exception) -> Exception:
        """A WebSocket or socket failure as our error; ``Retry`` where a retry may help."""
        where = self.where()
        if isinstance(exc, (ModelError, Retry, DropField)):
            return exc
        if isinstance(exc, (shapes.Malformed, json.JSONDecodeError)):
            # Like a dropped connection: retried only while no text was shown.
            what = exc if isinstance(exc, shapes.Malformed) else f"an event is not valid JSON: {exc}"
            return Retry(MalformedReply(f"{where} sent a malformed event "
                                        f"({self.scrub(str(what))})"), 0)
        if isinstance(exc, ConnectionClosed):
            return Retry(StreamError(f"{where} closed the realtime connection in the middle "
                                     f"of the reply ({_closed(exc)})"), 0)
        if isinstance(exc, InvalidStatus):
            return self._refused(exc)
        if isinstance(exc, TimeoutError):
            return Retry(ModelTimeout(f"no answer from {where} within "
                                      f"{self.settings.request_timeout:g} s"), 0)
        if isinstance(exc, InvalidURI):
            return ModelError(f"cannot open a WebSocket to {where}: {self.scrub(str(exc))}")
        if isinstance(exc, InvalidHandshake):
            return ModelError(f"{where} did not accept a realtime WebSocket connection "
                              f"({self.scrub(f'{type(exc).__name__}: {exc}')}); is it a "
                              "server of the Realtime API?")
        if isinstance(exc, OSError):
            return Retry(ModelConnectionError(f"cannot reach the model server at {where}: "
                                              f"{self.scrub(f'{type(exc).__name__}: {exc}')}"), 0)
        if isinstance(exc, openai.OpenAIError):
            return ModelError(f"realtime connection to {where}: {self.scrub(str(exc))}")
        return Retry(StreamError(f"the realtime connection to {where} failed mid-reply "
                                 f"({self.scrub(f'{type(exc).__name__}: {exc}')})"), 0)

    def _refused(self, exc: InvalidStatus) -> Exception:
        """The HTTP answer that refused the WebSocket upgrade, as for Chat Completions."""
        where = self.where()
        status = exc.response.status_code
        detail = said(self.scrub(_body_message(exc.response.body) or exc.response.reason_phrase))
        if status in (401, 403):
            var = self.settings.api_key_env or "OPENAI_API_KEY"
            return AuthError(f"{where} refused the request ({status}): {detail.rstrip('.')}. "
                             f"Check the key in ${var}.")
        if status == 429:
            return Retry(RateLimited(f"rate limited by {where} (429): {detail}"), 0)
        if status == 404:
            return ModelError(f"{where} has no realtime model '{self._asked}' or no "
                              f"realtime endpoint (404): {detail}")
        if status >= 500:
            return Retry(ServerError(f"server error from {where} ({status}): {detail}"), 0)
        return ModelError(f"{where} refused the realtime connection ({status}): {detail}")

    def read_whole(self, completion: Any, on_text: Callable[[str], None]) -> Reply:
        raise AssertionError("the realtime provider reads events, not whole replies")


class _Watchdog:
    """Closes the connection when no event has come for ``seconds`` (the SDK's
    receive has no timeout of its own); ``fired`` says it did."""

    def __init__(self, conn: Any, seconds: float) -> None:
        self._conn, self._seconds = conn, seconds
        self._last = time.monotonic()
        self._done = threading.Event()
        self.fired = False
        self._thread = threading.Thread(target=self._watch, name="realtime-watchdog", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._last = time.monotonic()

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(min(1.0, self._seconds / 4)):
            if time.monotonic() - self._last > self._seconds:
                self.fired = True
                # The reader sees the connection closed either way.
                with contextlib.suppress(Exception):
                    self._conn.close()
                return


class _Calls:
    """Function calls of one response, keyed by ``output_index`` (else the item's id,
    else ``call_id``).

    Arguments come as fragments (``.delta``) and again whole (``.done``, the
    item's ``done``); the whole text wins, else the fragments, so they never
    double. A call cut off before its ``done`` keeps only its fragments.
    """

    def __init__(self) -> None:
        self._calls: dict[Any, dict[str, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def _entry(self, index: Any, item_id: str, call_id: str) -> dict[str, Any]:
        key: Any = index if isinstance(index, int) else (item_id or call_id or len(self._calls))
        return self._calls.setdefault(key, {"id": "", "name": "", "start": "", "parts": [],
                                            "whole": None})

    def item(self, index: Any, item: dict[str, Any], *, final: bool) -> None:
        if item.get("type") != "function_call":
            return
        entry = self._entry(index, item.get("item_id") or item.get("id") or "",
                            item.get("call_id") or "")
        entry["id"] = entry["id"] or item.get("call_id") or ""
        entry["name"] = entry["name"] or item.get("name") or ""
        arguments = item.get("arguments")
        if arguments and final:
            entry["whole"] = arguments
        elif arguments:
            entry["start"] = arguments

    def delta(self, index: Any, item_id: str, call_id: str, fragment: str) -> None:
        entry = self._entry(index, item_id, call_id)
        entry["id"] = entry["id"] or call_id
        entry["parts"].append(fragment)

    def assembled(self) -> ToolCallAssembler:
        calls = ToolCallAssembler()
        for position, entry in enumerate(self._calls.values()):
            arguments = entry["whole"]
            if arguments is None:
                arguments = "".join(entry["parts"]) if entry["parts"] else entry["start"]
            calls.feed({"index": position, "id": entry["id"],
                        "function": {"name": entry["name"], "arguments": arguments}})
        return calls


def _from_output(response: dict[str, Any], calls: _Calls, text: list[str]) -> None:
    """A server that sent only ``response.done``: text and calls from its output."""
    for index, item in enumerate(response.get("output") or []):
        if item.get("type") == "message":
            text += [part.get("text") or part.get("transcript") or ""
                     for part in item.get("content") or []]
        calls.item(index, item, final=True)


def _close_quietly(conn: Any) -> None:
    """Close a connection; a socket already broken has nothing left to save."""
    with contextlib.suppress(Exception):
        conn.close()


def _closed(exc: ConnectionClosed) -> str:
    """How the connection ended: 'no close frame' or 'code 1011: reason'."""
    if exc.rcvd is not None:
        frame = exc.rcvd
        return f"close code {frame.code}" + (f": {frame.reason}" if frame.reason else "")
    if exc.sent is not None and exc.sent.code == 1009:
        return f"an event was larger than {MAX_EVENT // (1024 * 1024)} MiB"
    return "the connection dropped without a close frame"


def _body_message(body: bytes | None) -> str:
    """The ``error.message`` of a JSON error body, or the body's first line."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    inner = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(inner, dict) and inner.get("message"):
        return str(inner["message"])[:300]
    return " ".join(text.split())[:300]
