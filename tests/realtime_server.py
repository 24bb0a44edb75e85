"""A scripted Realtime API server for the tests: a real WebSocket server on
``127.0.0.1`` (port 0), in a daemon thread, speaking the GA event names.

Each ``response.create`` the client sends plays the next queued script: a
list of server events (dicts), with ``DROP`` to cut the socket without a
close frame and ``SILENCE`` to send nothing more. Every client event is
recorded, with the connection it came on, so tests check what was sent:

    >>> server.enqueue(text_response("Hello"))
    >>> ... run agentcli with --base-url server.base_url ...
    >>> server.sent("conversation.item.create")[0]["item"]["content"][0]["text"]
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

DROP = "drop"
SILENCE = "silence"
_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids)}"


@dataclass
class Received:
    connection: int
    event: dict[str, Any]


@dataclass
class RealtimeServer:
    scripts: deque[list[Any]] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    #: The request target and Authorization header of each connection, in order.
    connections: list[tuple[str, str]] = field(default_factory=list)
    #: ``(status, body)``: refuse the WebSocket upgrade with that HTTP answer.
    refuse: tuple[int, str] | None = None
    #: How many connections have ended (the client closed or dropped them).
    ended: int = 0
    _server: Server | None = None

    def start(self) -> RealtimeServer:
        self._server = serve(self._handle, "127.0.0.1", 0, process_request=self._admit,
                             compression=None)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        self.scripts.clear()
        self.received.clear()
        self.connections.clear()
        self.refuse = None
        self.ended = 0

    def enqueue(self, *scripts: list[Any]) -> None:
        self.scripts.extend(scripts)

    def sent(self, kind: str) -> list[dict[str, Any]]:
        """The client events of one type, in order."""
        return [r.event for r in self.received if r.event.get("type") == kind]

    def _admit(self, connection: ServerConnection, request: Request) -> Response | None:
        self.connections.append((request.path, request.headers.get("Authorization", "")))
        if self.refuse is not None:
            status, body = self.refuse
            return connection.respond(status, body)
        return None

    def _handle(self, ws: ServerConnection) -> None:
        try:
            self._converse(ws)
        finally:
            self.ended += 1

    def _converse(self, ws: ServerConnection) -> None:
        number = len(self.connections)
        self._send(ws, {"type": "session.created", "session": {"type": "realtime",
                                                              "id": _id("sess")}})
        try:
            for message in ws:
                event = json.loads(message)
                self.received.append(Received(number, event))
                kind = event.get("type")
                if kind == "session.update":
                    self._send(ws, {"type": "session.updated", "session": event["session"]})
                elif kind == "conversation.item.create":
                    item = {"id": _id("item"), "object": "realtime.item", **event["item"]}
                    self._send(ws, {"type": "conversation.item.added", "item": item})
                elif kind == "response.create" and not self._play(ws):
                    return
        except ConnectionClosed:
            return

    def _play(self, ws: ServerConnection) -> bool:
        """Send the next script; False when the connection is gone or must stay quiet."""
        script = self.scripts.popleft() if self.scripts else text_response("(no script left)")
        for step in script:
            if step == DROP:
                ws.socket.shutdown(socket.SHUT_RDWR)
                ws.socket.close()
                return False
            if step == SILENCE:
                return True
            self._send(ws, step)
        return True

    @staticmethod
    def _send(ws: ServerConnection, event: dict[str, Any]) -> None:
        ws.send(json.dumps({"event_id": _id("event"), **event}))


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "output_tokens": completion,
            "total_tokens": prompt + completion,
            "input_token_details": {"text_tokens": prompt, "audio_tokens": 0, "cached_tokens": 0},
            "output_token_details": {"text_tokens": completion, "audio_tokens": 0}}


def done(response_id: str, output: list[dict[str, Any]], *, status: str = "completed",
         reason: str | None = None, usage: tuple[int, int] = (10, 5),
         error: dict[str, Any] | None = None) -> dict[str, Any]:
    details: dict[str, Any] | None = None
    if status != "completed":
        details = {"type": status, "reason": reason, "error": error}
    return {"type": "response.done",
            "response": {"id": response_id, "object": "realtime.response", "status": status,
                         "status_details": details, "output": output,
                         "output_modalities": ["text"], "usage": _usage(*usage)}}


def text_events(response_id: str, index: int, text: str, size: int = 4) -> list[dict[str, Any]]:
    """A message item whose text streams in ``size``-character deltas."""
    item_id = _id("msg")
    item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
            "status": "in_progress", "content": []}
    where = {"response_id": response_id, "item_id": item_id, "output_index": index,
             "content_index": 0}
    part = {"type": "output_text", "text": text}
    return [{"type": "response.output_item.added", "response_id": response_id,
             "output_index": index, "item": item},
            {"type": "response.content_part.added", **where,
             "part": {"type": "output_text", "text": ""}},
            *[{"type": "response.output_text.delta", **where, "delta": text[i:i + size]}
              for i in range(0, len(text), size)],
            {"type": "response.output_text.done", **where, "text": text},
            {"type": "response.content_part.done", **where, "part": part},
            {"type": "response.output_item.done", "response_id": response_id,
             "output_index": index, "item": {**item, "status": "completed", "content": [part]}}]


def created(response_id: str) -> dict[str, Any]:
    return {"type": "response.created",
            "response": {"id": response_id, "object": "realtime.response",
                         "status": "in_progress", "output": []}}


def text_response(text: str, usage: tuple[int, int] = (10, 5)) -> list[dict[str, Any]]:
    rid = _id("resp")
    events = text_events(rid, 0, text)
    return [created(rid), *events, done(rid, [events[-1]["item"]], usage=usage)]


def call_item(name: str, call_id: str) -> dict[str, Any]:
    return {"id": _id("fc"), "object": "realtime.item", "type": "function_call",
            "status": "in_progress", "call_id": call_id, "name": name, "arguments": ""}


def call_response(*calls: tuple[str, str, str], interleave: bool = False,
                  usage: tuple[int, int] = (20, 8)) -> list[dict[str, Any]]:
    """Function calls ``(name, arguments, call_id)``, arguments in 3-character deltas;
    with ``interleave``, the calls' deltas alternate."""
    rid = _id("resp")
    items = [call_item(name, call_id) for name, _, call_id in calls]
    added = [{"type": "response.output_item.added", "response_id": rid, "output_index": n,
              "item": item} for n, item in enumerate(items)]
    streams = [[{"type": "response.function_call_arguments.delta", "response_id": rid,
                 "item_id": item["id"], "output_index": n, "call_id": item["call_id"],
                 "delta": args[i:i + 3]} for i in range(0, len(args), 3)]
               for n, (item, (_, args, _)) in enumerate(zip(items, calls, strict=True))]
    if interleave:
        deltas = [d for group in itertools.zip_longest(*streams) for d in group if d]
    else:
        deltas = [d for stream in streams for d in stream]
    finals = []
    whole = []
    for n, (item, (name, args, call_id)) in enumerate(zip(items, calls, strict=True)):
        complete = {**item, "status": "completed", "arguments": args}
        whole.append(complete)
        finals += [{"type": "response.function_call_arguments.done", "response_id": rid,
                    "item_id": item["id"], "output_index": n, "call_id": call_id,
                    "name": name, "arguments": args},
                   {"type": "response.output_item.done", "response_id": rid, "output_index": n,
                    "item": complete}]
    if interleave:
        return [created(rid), *added, *deltas, *finals, done(rid, whole, usage=usage)]
    body = []
    for n in range(len(items)):
        body += [added[n], *streams[n], *finals[2 * n:2 * n + 2]]
    return [created(rid), *body, done(rid, whole, usage=usage)]


def cut_call_response(name: str, partial_args: str) -> list[dict[str, Any]]:
    """A call whose arguments stop short: the response ends incomplete at max tokens."""
    rid = _id("resp")
    item = call_item(name, "call_cut")
    deltas = [{"type": "response.function_call_arguments.delta", "response_id": rid,
               "item_id": item["id"], "output_index": 0, "call_id": "call_cut",
               "delta": partial_args[i:i + 3]} for i in range(0, len(partial_args), 3)]
    return [created(rid),
            {"type": "response.output_item.added", "response_id": rid, "output_index": 0,
             "item": item},
            *deltas,
            done(rid, [{**item, "status": "incomplete", "arguments": partial_args}],
                 status="incomplete", reason="max_output_tokens")]


def error_event(message: str, code: str = "invalid_value",
                param: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "code": code,
                                       "message": message, "param": param, "event_id": None}}
