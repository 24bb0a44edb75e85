"""Scripted OpenAI-compatible HTTP server for the test suite.

The server listens on ``127.0.0.1`` on a free port, in a daemon thread, and
answers ``POST /v1/chat/completions`` (and ``POST /v1/responses``) with replies
queued by the test, in order. Everything goes over real sockets so the real
``openai`` SDK (and its HTTP stack) is exercised end to end.

Example:
    >>> with OpenAIServer() as server:
    ...     server.enqueue(text("Hello!"), tool_calls(Call("ls", {"path": "."})))
    ...     client = openai.OpenAI(api_key="test", base_url=server.base_url, max_retries=0)

HTTP details worth knowing:

* Every response carries ``Connection: close``; the client never reuses a
  connection, so no handler thread lingers in keep-alive.
* Streams use HTTP/1.1 chunked transfer encoding, like api.openai.com. A
  :func:`cut` stream therefore ends with the socket closed *before* the final
  zero-length chunk, which the client sees as an incomplete body.
* Only JSON and SSE replies are produced; header names in :class:`Recorded`
  are lowercased and looked up case-insensitively.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "DEFAULT_MODEL",
    "QUIRKS",
    "Call",
    "Headers",
    "OpenAIServer",
    "Recorded",
    "Reply",
    "cut",
    "drip",
    "error",
    "fixture_path",
    "json_reply",
    "openai_server",
    "raw_sse",
    "slow",
    "text",
    "tool_calls",
]

DEFAULT_MODEL = "test-model"
CHAT_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
QUIRKS = frozenset(
    {
        "no_index",
        "index_zero",
        "whole",
        "args_object",
        "no_id",
        "empty_id",
        "stop_finish",
        "empty_args",
        "null_content_first",
    }
)
AUTO: Any = object()
"""Sentinel: compute the value (usage) from the request and the reply."""

_ids = itertools.count(1)
_CREATED = 1_700_000_000


def _next_call_id() -> str:
    """Return a process-unique tool call id such as ``call_auto7``."""
    return f"call_auto{next(_ids)}"


# --------------------------------------------------------------------------- records


class Headers(dict[str, str]):
    """A dict of request headers with lowercased keys and case-blind lookups."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        """Return the header value for ``key`` (any case), or ``default``."""
        return super().get(key.lower(), default)


@dataclass
class Recorded:
    """One request received on a completion endpoint.

    Attributes:
        path: Request path without the query string, e.g. ``/v1/chat/completions``.
        headers: Request headers (lowercased keys, case-blind lookups).
        body: The parsed JSON body (``{}`` if it was empty or not JSON).
        at: When it arrived (``time.monotonic()``).
    """

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)

    @property
    def stream(self) -> bool:
        """Whether the request asked for a streamed answer."""
        return bool(self.body.get("stream"))

    @property
    def include_usage(self) -> bool:
        """Whether the request set ``stream_options.include_usage``."""
        options = self.body.get("stream_options") or {}
        return isinstance(options, dict) and bool(options.get("include_usage"))


# --------------------------------------------------------------------------- exchange


class _Exchange:
    """One request being answered: the handler plus modifiers set by wrappers.

    Attributes:
        handler: The live request handler (socket writer).
        request: The recorded request being answered.
        interval: Seconds to sleep between SSE events (set by :func:`drip`).
        limit: Maximum number of events to send (set by :func:`cut`).
        graceful: With ``limit``, end the chunked body cleanly instead of dropping.
        started: Whether a status line has been written.
    """

    def __init__(self, handler: _Handler, request: Recorded, stopping: threading.Event) -> None:
        self.handler = handler
        self.request = request
        self.stopping = stopping
        self.interval = 0.0
        self.limit: int | None = None
        self.graceful = False
        self.started = False

    @property
    def wants_stream(self) -> bool:
        """Whether to answer with SSE: the request streams, or a cut forces it."""
        return self.request.stream or self.limit is not None

    def pause(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the server stops; return False if it stopped."""
        return not self.stopping.wait(seconds) if seconds > 0 else not self.stopping.is_set()

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        """Write a complete JSON response."""
        payload = json.dumps(obj).encode()
        self._start(status, "application/json", headers)
        self.handler.send_header("Content-Length", str(len(payload)))
        self.handler.end_headers()
        self.handler.wfile.write(payload)
        self.handler.wfile.flush()

    def send_sse(self, events: list[bytes]) -> None:
        """Write SSE ``events`` as a chunked body, honouring drip and cut."""
        if self.limit is not None:
            events = _leading_events(events, self.limit)
        self._start(200, "text/event-stream", {"Cache-Control": "no-cache"})
        self.handler.send_header("Transfer-Encoding", "chunked")
        self.handler.end_headers()
        for number, event in enumerate(events):
            if number and not self.pause(self.interval):
                return
            self._write_chunk(event)
        if self.limit is None or self.graceful:
            self._write_chunk(b"")

    def _start(self, status: int, content_type: str, headers: dict[str, str] | None) -> None:
        """Write the status line and the common headers."""
        self.started = True
        self.handler.send_response(status)
        self.handler.send_header("Content-Type", content_type)
        self.handler.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.handler.send_header(name, value)

    def _write_chunk(self, data: bytes) -> None:
        """Write one HTTP chunk (an empty ``data`` writes the terminating chunk)."""
        self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.handler.wfile.flush()


def _sse(obj: Any) -> bytes:
    """Encode one SSE event carrying ``obj`` as JSON (or a raw string)."""
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _split_events(data: bytes) -> list[bytes]:
    """Split raw SSE bytes after each blank line; joining the parts gives ``data``."""
    events, start = [], 0
    while (end := data.find(b"\n\n", start)) != -1:
        events.append(data[start : end + 2])
        start = end + 2
    if start < len(data):
        events.append(data[start:])
    return events


def _is_terminal(event: bytes) -> bool:
    """Whether an SSE event is ``[DONE]``, carries a finish_reason, or is the usage chunk."""
    for line in event.decode("utf-8", "replace").splitlines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return True
        try:
            chunk = json.loads(data)
        except ValueError:
            continue
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if choices == [] or any(c.get("finish_reason") for c in choices or [] if isinstance(c, dict)):
            return True
    return False


def _leading_events(events: list[bytes], limit: int) -> list[bytes]:
    """Return at most ``limit`` events from the start, stopping before any terminal one."""
    kept: list[bytes] = []
    for event in events:
        if len(kept) >= limit or _is_terminal(event):
            break
        kept.append(event)
    return kept


def _error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    """Build an OpenAI-style error body."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


# --------------------------------------------------------------------------- replies


class Reply:
    """A scripted answer to one POST; subclasses write themselves to the exchange."""

    def send(self, ex: _Exchange) -> None:
        """Write this reply for the request in ``ex``."""
        raise NotImplementedError


@dataclass
class _Json(Reply):
    """Arbitrary JSON with a status code and extra headers."""

    obj: Any
    status: int = 200
    headers: dict[str, str] | None = None

    def send(self, ex: _Exchange) -> None:
        """Write the JSON body."""
        ex.send_json(self.status, self.obj, self.headers)


@dataclass
class _RawSse(Reply):
    """Pre-recorded SSE bytes sent verbatim."""

    data: bytes

    def send(self, ex: _Exchange) -> None:
        """Write the bytes, one HTTP chunk per SSE event."""
        ex.send_sse(_split_events(self.data))


@dataclass
class _Wrapper(Reply):
    """Base for replies that modify how another reply is sent."""

    reply: Reply

    def __post_init__(self) -> None:
        if not isinstance(self.reply, Reply):
            raise TypeError(f"expected a Reply, got {self.reply!r}")


@dataclass
class _Slow(_Wrapper):
    """Wait before answering; gives up silently if the server stops meanwhile."""

    delay: float = 0.0

    def send(self, ex: _Exchange) -> None:
        """Sleep, then send the wrapped reply."""
        if ex.pause(self.delay):
            self.reply.send(ex)


@dataclass
class _Drip(_Wrapper):
    """Sleep between SSE events of the wrapped reply."""

    interval: float = 0.0

    def send(self, ex: _Exchange) -> None:
        """Set the pacing, then send the wrapped reply."""
        ex.interval = self.interval
        self.reply.send(ex)


@dataclass
class _Cut(_Wrapper):
    """Send only the first events of a stream, then drop (or end) the body."""

    after_chunks: int = 0
    graceful: bool = False

    def send(self, ex: _Exchange) -> None:
        """Set the limit, then send the wrapped reply (always as SSE)."""
        ex.limit = self.after_chunks
        ex.graceful = self.graceful
        self.reply.send(ex)


# --------------------------------------------------------------------------- chat replies


def _pieces(value: str, size: int) -> list[str]:
    """Split ``value`` into consecutive pieces of ``size`` characters."""
    return [value[i : i + size] for i in range(0, len(value), size)]


def _auto_usage(request: Recorded, completion_text: str) -> dict[str, int]:
    """Estimate token usage (about four characters a token) deterministically."""
    prompt = max(1, len(json.dumps(request.body.get("messages", request.body.get("input", "")))) // 4)
    completion = max(1, len(completion_text) // 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _ChatReply(Reply):
    """A chat completion answer that can be sent streamed or whole.

    Subclasses provide :meth:`deltas`, :meth:`message`, :meth:`finish` and
    :meth:`completion_text`; this class frames them as OpenAI does.
    """

    model: str | None = None
    usage: Any = AUTO
    completion_id = "chatcmpl-test"

    def deltas(self) -> list[dict[str, Any]]:
        """Return the ``delta`` objects of the streamed chunks, in order."""
        raise NotImplementedError

    def message(self) -> dict[str, Any]:
        """Return the assistant ``message`` of the non-streamed completion."""
        raise NotImplementedError

    def finish(self) -> str:
        """Return the finish_reason."""
        raise NotImplementedError

    def completion_text(self) -> str:
        """Return the generated text used to estimate completion tokens."""
        raise NotImplementedError

    def send(self, ex: _Exchange) -> None:
        """Answer with SSE chunks if the request streams, else with one JSON object."""
        if ex.request.path != CHAT_PATH:
            raise ValueError(f"{type(self).__name__} builds chat completions, not answers for {ex.request.path}")
        if ex.wants_stream:
            ex.send_sse(self.events(ex.request))
        else:
            ex.send_json(200, self.completion(ex.request))

    def events(self, request: Recorded) -> list[bytes]:
        """Return every SSE event of the streamed answer, ``[DONE]`` included."""
        head = self._head(request, "chat.completion.chunk")
        extra = {"usage": None} if request.include_usage else {}
        chunks = [self._chunk(head, delta, None) | extra for delta in self.deltas()]
        chunks.append(self._chunk(head, {}, self.finish()) | extra)
        usage = self._usage(request)
        if request.include_usage and usage is not None:
            chunks.append(head | {"choices": [], "usage": usage})
        return [_sse(chunk) for chunk in chunks] + [_sse("[DONE]")]

    def completion(self, request: Recorded) -> dict[str, Any]:
        """Return the non-streamed ``chat.completion`` object."""
        choice = {"index": 0, "message": self.message(), "logprobs": None, "finish_reason": self.finish()}
        body = self._head(request, "chat.completion") | {"choices": [choice]}
        usage = self._usage(request)
        return body | ({"usage": usage} if usage is not None else {})

    def _head(self, request: Recorded, obj: str) -> dict[str, Any]:
        """Return the fields shared by every chunk (or the whole completion)."""
        model = self.model or request.body.get("model") or DEFAULT_MODEL
        return {
            "id": self.completion_id,
            "object": obj,
            "created": _CREATED,
            "model": model,
            "system_fingerprint": "fp_test",
        }

    @staticmethod
    def _chunk(head: dict[str, Any], delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        """Build one ChatCompletionChunk with a single choice."""
        return head | {"choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def _usage(self, request: Recorded) -> dict[str, Any] | None:
        """Return the usage object: given, computed (``AUTO``) or absent (None)."""
        return _auto_usage(request, self.completion_text()) if self.usage is AUTO else self.usage


class _Text(_ChatReply):
    """A plain text answer."""

    def __init__(self, content: str, chunk_size: int, usage: Any, finish_reason: str, model: str | None) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.content, self.chunk_size, self.usage = content, chunk_size, usage
        self.finish_reason, self.model = finish_reason, model
        self.completion_id = f"chatcmpl-test{next(_ids)}"

    def deltas(self) -> list[dict[str, Any]]:
        """Role first (with empty content, as OpenAI does), then the fragments."""
        first = {"role": "assistant", "content": "", "refusal": None}
        return [first] + [{"content": piece} for piece in _pieces(self.content, self.chunk_size)]

    def message(self) -> dict[str, Any]:
        """The whole assistant message."""
        return {"role": "assistant", "content": self.content, "refusal": None}

    def finish(self) -> str:
        """The configured finish_reason."""
        return self.finish_reason

    def completion_text(self) -> str:
        """The content."""
        return self.content


@dataclass
class Call:
    """One tool call for :func:`tool_calls`.

    Attributes:
        name: Function name.
        arguments: JSON arguments, as a string (sent verbatim) or a dict
            (encoded compactly, like OpenAI).
        id: Call id; auto-generated (``call_autoN``) by default; None omits it.
    """

    name: str
    arguments: str | dict[str, Any] = "{}"
    id: str | None = field(default_factory=_next_call_id)

    def arguments_text(self) -> str:
        """Return the arguments as a JSON string."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"))

    def arguments_object(self) -> Any:
        """Return the arguments as a decoded JSON value."""
        if isinstance(self.arguments, str):
            return json.loads(self.arguments) if self.arguments.strip() else {}
        return self.arguments


class _ToolCalls(_ChatReply):
    """An answer made of tool calls, optionally preceded by text."""

    def __init__(self, calls: tuple[Call, ...], content: str | None, split: int, finish_reason: str,
                 quirks: frozenset[str], usage: Any, model: str | None) -> None:
        unknown = set(quirks) - QUIRKS
        if unknown:
            raise ValueError(f"unknown quirks {sorted(unknown)}; known: {sorted(QUIRKS)}")
        if split < 1:
            raise ValueError("split must be at least 1")
        if not calls:
            raise ValueError("tool_calls() needs at least one Call")
        self.calls, self.content, self.split, self.quirks = calls, content, split, frozenset(quirks)
        self.finish_reason, self.usage, self.model = finish_reason, usage, model
        self.completion_id = f"chatcmpl-test{next(_ids)}"

    def deltas(self) -> list[dict[str, Any]]:
        """Optional null-content chunk, text fragments, then each call's deltas."""
        out: list[dict[str, Any]] = []
        if "null_content_first" in self.quirks:
            out.append({"role": "assistant", "content": None})
        if self.content:
            out.append({"role": "assistant", "content": "", "refusal": None})
            out += [{"content": piece} for piece in _pieces(self.content, self.split)]
        for position, call in enumerate(self.calls):
            out += self._call_deltas(position, call)
        if "role" not in out[0]:
            out[0] = {"role": "assistant", "content": None} | out[0] | {"refusal": None}
        return out

    def _call_deltas(self, position: int, call: Call) -> list[dict[str, Any]]:
        """Header delta (id, name) then argument fragments for one call."""
        index = 0 if "index_zero" in self.quirks else position
        args = self._arguments(call)
        whole = bool({"whole", "args_object"} & self.quirks) or not isinstance(args, str) or args == ""
        head = self._entry(index, call, args if whole else "")
        if whole:
            return [{"tool_calls": [head]}]
        where = {} if "no_index" in self.quirks else {"index": index}
        rest = [{"tool_calls": [where | {"function": {"arguments": p}}]} for p in _pieces(args, self.split)]
        return [{"tool_calls": [head]}, *rest]

    def _entry(self, index: int | None, call: Call, arguments: Any) -> dict[str, Any]:
        """Build a full tool call entry (index and id subject to quirks)."""
        entry: dict[str, Any] = {}
        if index is not None and "no_index" not in self.quirks:
            entry["index"] = index
        call_id = "" if "empty_id" in self.quirks else call.id
        if call_id is not None and "no_id" not in self.quirks:
            entry["id"] = call_id
        return entry | {"type": "function", "function": {"name": call.name, "arguments": arguments}}

    def _arguments(self, call: Call) -> Any:
        """The arguments to send: string, object (args_object) or empty (empty_args)."""
        if "args_object" in self.quirks:
            return {} if "empty_args" in self.quirks else call.arguments_object()
        return "" if "empty_args" in self.quirks else call.arguments_text()

    def message(self) -> dict[str, Any]:
        """The whole assistant message with its ``tool_calls``."""
        calls = [self._entry(None, call, self._arguments(call)) for call in self.calls]
        return {"role": "assistant", "content": self.content, "refusal": None, "tool_calls": calls}

    def finish(self) -> str:
        """``stop`` with the stop_finish quirk, else the configured finish_reason."""
        return "stop" if "stop_finish" in self.quirks else self.finish_reason

    def completion_text(self) -> str:
        """Content plus every call's name and arguments."""
        return (self.content or "") + "".join(c.name + c.arguments_text() for c in self.calls)


# --------------------------------------------------------------------------- builders


def text(content: str, *, chunk_size: int = 3, usage: dict[str, Any] | None = AUTO,
         finish_reason: str = "stop", model: str | None = None) -> Reply:
    """Build a text answer, streamed or whole depending on the request.

    Args:
        content: The assistant text.
        chunk_size: Characters per streamed content fragment.
        usage: Usage object; computed from the request by default; None sends none.
            Streams carry it only when the request sets ``stream_options.include_usage``.
        finish_reason: Finish reason of the final chunk / choice.
        model: Model name to report; defaults to the request's ``model``.

    Returns:
        The reply.
    """
    return _Text(content, chunk_size, usage, finish_reason, model)


def tool_calls(*calls: Call, content: str | None = None, split: int = 4, finish_reason: str = "tool_calls",
               quirks: set[str] | frozenset[str] = frozenset(), usage: dict[str, Any] | None = AUTO,
               model: str | None = None) -> Reply:
    """Build an answer made of (parallel) tool calls, streamed like OpenAI.

    Each call first gets a header delta (index, id, type, name, arguments
    ``""``), then deltas of ``split`` argument characters carrying only index
    and ``function.arguments``. The first delta also carries ``role`` and
    ``content: null``, as in OpenAI's recordings. Quirks (any combination):

    * ``no_index``: no ``index`` in any tool-call delta.
    * ``index_zero``: every call uses index 0 (distinct ids), Ollama style.
    * ``whole``: each call complete in one delta (id, name, full arguments).
    * ``args_object``: arguments as a JSON object, whole in one delta.
    * ``no_id`` / ``empty_id``: the id is omitted / ``""``.
    * ``stop_finish``: finish_reason ``stop`` instead of ``tool_calls``.
    * ``empty_args``: arguments ``""`` (``{}`` with ``args_object``), one delta.
    * ``null_content_first``: a separate first chunk ``{"role": "assistant",
      "content": null}`` before the calls.

    Non-streamed answers apply the quirks that make sense there (ids,
    arguments, finish_reason).

    Args:
        *calls: The calls, given indexes 0, 1, 2...
        content: Optional text streamed before the calls.
        split: Characters per argument (and content) fragment.
        finish_reason: Finish reason of the final chunk / choice.
        quirks: Deviations from OpenAI's stream, any combination of :data:`QUIRKS`.
        usage: As for :func:`text`.
        model: As for :func:`text`.

    Returns:
        The reply.

    Raises:
        ValueError: On an unknown quirk, no call, or ``split < 1``.
    """
    return _ToolCalls(calls, content, split, finish_reason, frozenset(quirks), usage, model)


def raw_sse(data: bytes) -> Reply:
    """Build a reply that sends ``data`` byte for byte as a ``text/event-stream`` body."""
    return _RawSse(bytes(data))


def error(status: int, message: str | None = None, *, type: str | None = None, code: str | None = None,
          param: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    """Build an OpenAI-style JSON error.

    Args:
        status: HTTP status code.
        message: Error message; a generic one naming the status by default.
        type: Error type; ``invalid_request_error`` (4xx) or ``server_error`` (5xx) by default.
        code: Error code, e.g. ``rate_limit_exceeded``.
        param: Offending parameter, if any.
        headers: Extra response headers, e.g. ``{"Retry-After": "0"}``.

    Returns:
        The reply.
    """
    message = message or f"Scripted error (HTTP {status})"
    type = type or ("server_error" if status >= 500 else "invalid_request_error")
    return _Json(_error_body(message, type, param, code), status, headers)


def cut(after_chunks: int, reply: Reply, *, graceful: bool = False) -> Reply:
    """Send the first ``after_chunks`` SSE events of ``reply``, then stop.

    Events from the first one carrying a finish_reason, the usage chunk or
    ``[DONE]`` are never sent. The reply is sent as SSE even if the request
    did not ask to stream.

    Args:
        after_chunks: Number of events to send.
        reply: A streaming reply (``text``, ``tool_calls``, ``raw_sse``, possibly wrapped).
        graceful: If False (default) the connection closes mid-body, before the
            terminating HTTP chunk (a dropped stream); if True the body ends
            properly, only without ``[DONE]`` (a truncated stream).

    Returns:
        The reply.
    """
    return _Cut(reply, after_chunks, graceful)


def slow(delay: float, reply: Reply) -> Reply:
    """Wait ``delay`` seconds (less if the server stops) before sending ``reply``."""
    return _Slow(reply, delay)


def drip(interval: float, reply: Reply) -> Reply:
    """Sleep ``interval`` seconds between the SSE events of ``reply``."""
    return _Drip(reply, interval)


def json_reply(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """Build a reply with arbitrary JSON ``obj`` and ``status``."""
    return _Json(obj, status, headers)


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the owning :class:`OpenAIServer`; quiet on disconnects."""

    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _HTTPServer

    def setup(self) -> None:
        """Register the connection so ``stop()`` can unblock it."""
        super().setup()
        self.server.owner._register(self.connection)

    def handle(self) -> None:
        """Serve the request, ignoring a client that went away."""
        try:
            super().handle()
        except OSError:  # reset, broken pipe, timeout, or shut down by stop()
            self.close_connection = True

    def finish(self) -> None:
        """Flush and close quietly, then unregister the connection."""
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._unregister(self.connection)

    def do_GET(self) -> None:
        """Serve the models endpoints."""
        self.server.owner._get(self)

    def do_POST(self) -> None:
        """Serve the completion endpoints."""
        self.server.owner._post(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""


class _HTTPServer(ThreadingHTTPServer):
    """Threading server whose errors go to ``owner.errors`` instead of stderr."""

    daemon_threads = True
    owner: OpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record the exception quietly."""
        self.owner.errors.append(sys.exc_info()[1])


class OpenAIServer:
    """OpenAI-compatible server on 127.0.0.1:<random free port> run in a daemon thread.

    Attributes:
        base_url: ``http://127.0.0.1:PORT/v1`` (set by :meth:`start`).
        requests: Every request received on the completion endpoints, in order.
        models: Model ids served by ``GET /v1/models``.
        reject_fields: Top-level body keys answered with a 400 (no reply consumed).
        errors: Unexpected server-side exceptions (should stay empty).
        model_extra: Extra fields added to every ``/v1/models`` entry (vLLM's
            ``max_model_len``, llama.cpp's ``meta``...).
        routes: Other paths (``/props``, ``/api/show``) answered, on GET or POST,
            with this JSON; not recorded, no reply consumed.
        responder: Called with each completion request that finds the queue
            empty; the reply it returns is sent (None: the usual 500).
    """

    def __init__(self) -> None:
        self.base_url = ""
        self.requests: list[Recorded] = []
        self.models: list[str] = [DEFAULT_MODEL]
        self.reject_fields: set[str] = set()
        self.errors: list[BaseException] = []
        self.model_extra: dict[str, Any] = {}
        self.routes: dict[str, Any] = {}
        self.responder: Callable[[Recorded], Reply | None] | None = None
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> OpenAIServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, close the socket and join threads."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            live = list(self._connections.items())
        for conn, _ in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for _, thread in live:
            thread.join(timeout=5)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd.server_address[1]

    # ---- scripting

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies; each POST consumes the oldest one."""
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"expected a Reply, got {reply!r}")
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Number of queued replies not yet consumed."""
        with self._lock:
            return len(self._queue)

    # ---- handler callbacks

    def _register(self, conn: socket.socket) -> None:
        """Remember a live connection and its thread."""
        with self._lock:
            self._connections[conn] = threading.current_thread()

    def _unregister(self, conn: socket.socket) -> None:
        """Forget a finished connection."""
        with self._lock:
            self._connections.pop(conn, None)

    def _get(self, handler: _Handler) -> None:
        """Answer ``GET /v1/models`` and ``GET /v1/models/<id>``."""
        ex = _Exchange(handler, Recorded(_path(handler), Headers(), {}), self._stopping)
        path = ex.request.path.rstrip("/")
        if path in self.routes:
            ex.send_json(200, self.routes[path])
        elif path == "/v1/models":
            ex.send_json(200, {"object": "list", "data": [_model(m) | self.model_extra for m in self.models]})
        elif path.startswith("/v1/models/") and path[len("/v1/models/"):] in self.models:
            ex.send_json(200, _model(path[len("/v1/models/"):]))
        else:
            ex.send_json(404, _error_body(f"Not found: GET {path}", "invalid_request_error", code="not_found"))

    def _post(self, handler: _Handler) -> None:
        """Record a completion request and answer it with the next reply."""
        path = _path(handler)
        body, problem = _read_body(handler)
        ex = _Exchange(handler, Recorded(path, _headers(handler), body), self._stopping)
        if path in self.routes:
            ex.send_json(200, self.routes[path])
            return
        if path not in (CHAT_PATH, RESPONSES_PATH):
            ex.send_json(404, _error_body(f"Not found: POST {path}", "invalid_request_error", code="not_found"))
            return
        with self._lock:
            self.requests.append(ex.request)
        if problem:
            ex.send_json(400, _error_body(problem, "invalid_request_error"))
            return
        if self._reject(ex):
            return
        self._answer(ex)

    def _reject(self, ex: _Exchange) -> bool:
        """Answer 400 if the body has a rejected field; return whether it did."""
        rejected = sorted(set(ex.request.body) & set(self.reject_fields))
        if not rejected:
            return False
        message = f"Unrecognized request argument supplied: {rejected[0]}"
        ex.send_json(400, _error_body(message, "invalid_request_error", param=rejected[0]))
        return True

    def _answer(self, ex: _Exchange) -> None:
        """Send the next queued reply, or a 500 if none is left."""
        with self._lock:
            reply = self._queue.popleft() if self._queue else None
        if reply is None and self.responder is not None:
            reply = self.responder(ex.request)
        if reply is None:
            message = f"no scripted reply left for request #{len(self.requests)} to {ex.request.path}"
            ex.send_json(500, _error_body(message, "server_error"))
            return
        try:
            reply.send(ex)
        except OSError:
            raise
        except Exception as exc:  # a bug in a reply: tell the client instead of hanging up
            self.errors.append(exc)
            if not ex.started:
                ex.send_json(500, _error_body(f"scripted reply failed: {exc!r}", "server_error"))


def _path(handler: BaseHTTPRequestHandler) -> str:
    """Return the request path without its query string."""
    return handler.path.split("?", 1)[0]


def _headers(handler: BaseHTTPRequestHandler) -> Headers:
    """Return the request headers with lowercased names."""
    return Headers({name.lower(): value for name, value in handler.headers.items()})


def _read_body(handler: BaseHTTPRequestHandler) -> tuple[dict[str, Any], str | None]:
    """Read and parse the JSON body; return it and a problem message (or None)."""
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length else b""
    if not raw:
        return {}, None
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return {}, f"We could not parse the JSON body of your request: {exc}"
    if not isinstance(body, dict):
        return {}, "The request body must be a JSON object."
    return body, None


def _model(model_id: str) -> dict[str, Any]:
    """Describe one model as ``GET /v1/models`` does."""
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "agentcli-tests"}


# --------------------------------------------------------------------------- pytest helpers


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    """Yield a started :class:`OpenAIServer`, stopped at teardown."""
    with OpenAIServer() as server:
        yield server


def fixture_path(*parts: str) -> Path:
    """Return a path under the shared recorded fixtures (``../shared/fixtures``).

    Args:
        *parts: Path components below ``shared/fixtures``.

    Returns:
        The existing path.

    Raises:
        pytest.skip.Exception: If the path is absent (a fresh clone without ``../shared``).
    """
    path = Path(__file__).resolve().parents[2].joinpath("shared", "fixtures", *parts)
    if not path.exists():
        pytest.skip(f"recorded fixtures not found at {path}: ../shared is absent in this checkout")
    return path
