"""What every wire protocol shares: the request loop, retries, errors, ``Reply``.

``Provider`` sends one model request and gets back a ``Reply`` with text,
whole tool calls, a finish reason and usage, whatever the protocol. It
retries what may succeed on a second try (only while no text was shown),
moves on to the fallback model, drops an optional field a server rejects,
and turns SDK and HTTP errors into ``ModelError`` subclasses with one
readable line, the API key scrubbed from anything that could echo it. Each
protocol (``chat``, ``responses``, ``realtime``) fills in how a request is
built and sent and how a reply is read.

``Retry`` and ``DropField`` steer the retry loop from wherever a protocol
meets an error; ``checked``, ``finalise``, ``error_message`` and
``names_field`` are the helpers the protocols, ``batch_api`` and ``doctor``
read replies and errors with.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import openai

from ..config import Settings
from ..errors import (
    AuthError,
    MalformedReply,
    ModelConnectionError,
    ModelError,
    ModelTimeout,
    RateLimited,
    StreamError,
)
from ..messages import ToolCall, Usage
from . import shapes
from .assemble import MAX_REPLY_CHARS, MAX_REPLY_EVENTS, ReplyTooLong, ToolCallAssembler

#: Fields some servers reject; dropped and remembered after one 400 naming them.
OPTIONAL_FIELDS = ("parallel_tool_calls", "stream_options", "response_format", "text")
#: How an error message names a field, where its bare name is too common a word.
MENTIONS = {"text": ("text.format",)}
MAX_RETRY_AFTER = 60.0
#: A wait longer than this is announced (a notice), not only logged.
ANNOUNCE_WAIT = 3.0


@dataclass
class Reply:
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str = ""


class Retry(Exception):
    """The request may be tried again after ``delay`` seconds (0: the backoff's)."""

    def __init__(self, error: ModelError, delay: float) -> None:
        self.error, self.delay = error, delay


class DropField(Exception):
    """A rejected optional field was dropped; send again at once."""


class ServerError(ModelError):
    """5xx after every retry."""


class Provider:
    """A model server behind one wire protocol; subclasses fill in the hooks
    ``build_request``, ``create``, ``_read_stream`` and ``read_whole``.

    Besides ``complete``, ``batch`` and ``batch_api`` use ``build_request``,
    ``create``, ``read_whole``, ``where``, ``scrub``, ``sleep`` and
    ``dropped_fields`` to send requests their own way."""

    takes_images = False
    """Whether tool results' images are sent."""
    api = "chat"
    """The ``api`` setting that picks this protocol."""
    unsent: tuple[str, ...] = ()
    """Settings the protocol has no parameter for: when set, they are left out (with a
    warning when the provider is made)."""

    def __init__(self, settings: Settings, api_key: str | None, *,
                 notice: Callable[[str], None] = lambda _: None,
                 debug: Callable[[str], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 client: openai.OpenAI | None = None) -> None:
        """``client``: an SDK client to share (``doctor`` sends many small requests)."""
        self.settings = settings
        self.model = settings.model or ""
        self._key = api_key
        self._notice = notice
        self._debug = debug
        self.sleep = sleep
        self.dropped_fields: set[str] = set()
        #: ``{"name", "schema"}``: the answer is asked for in this JSON Schema (``--schema``).
        self.answer_format: dict[str, Any] | None = None
        self.client = client or openai.OpenAI(api_key=api_key or "no-key",
                                              base_url=settings.base_url, max_retries=0,
                                              timeout=settings.request_timeout)
        unsent = [key for key in self.unsent if getattr(settings, key) is not None]
        if unsent:
            notice(f"warning: {', '.join(unsent)} cannot be sent with api = \"{self.api}\" "
                   "and is ignored (use api = \"chat\" to send it)")

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *,
                 tool_choice: Any = None, stream: bool = True,
                 on_text: Callable[[str], None] = lambda _: None) -> Reply:
        """One model request with retries, then the fallback model, if any."""
        models = [self.model]
        if self.settings.fallback_model and self.settings.fallback_model != self.model:
            models.append(self.settings.fallback_model)
        for position, model in enumerate(models):
            try:
                return self._with_retries(model, messages, tools, tool_choice, stream, on_text)
            except (RateLimited, ModelTimeout, ModelConnectionError, ServerError) as exc:
                if position + 1 == len(models):
                    raise
                self._notice(f"{model} failed ({exc}); trying the fallback model {models[-1]}")
        raise AssertionError("unreachable")

    def _with_retries(self, model: str, messages: list[dict[str, Any]],
                      tools: list[dict[str, Any]], tool_choice: Any, stream: bool,
                      on_text: Callable[[str], None]) -> Reply:
        attempt = 0
        while True:
            request = self.build_request(model, messages, tools, tool_choice, stream)
            emitted: list[bool] = []
            def forward(text: str) -> None:
                # Called only within this iteration, so late binding is harmless.
                emitted.append(True)  # noqa: B023
                on_text(text)
            self._log_request(request)
            try:
                reply = self._send(request, stream, forward)
            except DropField:
                self._log("the server rejected an optional field; sending again without it")
                continue
            except Retry as retry:
                if emitted or attempt >= self.settings.max_retries:
                    raise retry.error from None
                attempt += 1
                self._wait(retry, attempt)
                continue
            if self._debug is not None:
                self._log(f"reply: finish_reason={reply.finish_reason} "
                          f"tool_calls={len(reply.tool_calls)} "
                          f"usage={asdict(reply.usage) if reply.usage else None}")
            return reply

    def _wait(self, retry: Retry, attempt: int) -> None:
        """Sleep before a retry; a wait of more than a few seconds is announced."""
        delay = retry.delay or _backoff(attempt)
        of = f"retry {attempt} of {self.settings.max_retries}"
        self._log(f"{retry.error}; {of} in {delay:.1f} s")
        if delay > ANNOUNCE_WAIT:
            self._notice(f"{retry.error}; retrying in {delay:.0f} s ({of})")
        self.sleep(delay)

    def _log(self, text: str) -> None:
        if self._debug is not None:
            self._debug(self.scrub(text))

    def _log_request(self, request: dict[str, Any]) -> None:
        if self._debug is None:
            return
        items = request.get("messages", request.get("input", []))
        self._log(f"request: POST {self.where()} model={request['model']} items={len(items)} "
                  f"tools={len(request.get('tools', []))} stream={bool(request.get('stream'))} "
                  f"options={sorted(k for k in request if k not in ('model', 'messages', 'input', 'tools'))}")

    def build_request(self, model: str, messages: list[dict[str, Any]],
                      tools: list[dict[str, Any]], tool_choice: Any,
                      stream: bool) -> dict[str, Any]:
        """The request's fields for this protocol (without the fields dropped so far)."""
        raise NotImplementedError

    def create(self, request: dict[str, Any]) -> Any:
        """Send ``request``: a stream of events, or the whole reply."""
        raise NotImplementedError

    def _read_stream(self, stream: Any, reply: Reply, calls: ToolCallAssembler,
                     text: list[str], on_text: Callable[[str], None]) -> None:
        """Read a stream into ``reply``, ``calls`` and ``text``, showing text as it comes."""
        raise NotImplementedError

    def read_whole(self, completion: Any, on_text: Callable[[str], None]) -> Reply:
        """A whole (not streamed) reply."""
        raise NotImplementedError

    def _send(self, request: dict[str, Any], stream: bool, on_text: Callable[[str], None]) -> Reply:
        try:
            if stream:
                return self._stream(self.create(request), on_text)
            return self.read_whole(self.create(request), on_text)
        except openai.APIError as exc:
            raise self._translate(exc, request) from None
        except shapes.Malformed as exc:
            # Like a dropped stream: retried only while no text was shown.
            raise Retry(MalformedReply(f"{self.where()} sent a malformed reply "
                                       f"({self.scrub(str(exc))})"), 0) from None
        except (ModelError, DropField, Retry):
            raise
        except ReplyTooLong as exc:  # streamed text, arguments or events, or a whole reply's
            raise self.too_long(events=exc.events) from None
        except Exception as exc:  # a transport error the SDK did not wrap
            raise StreamError(f"the connection to {self.where()} failed mid-reply "
                              f"({self.scrub(_cause(exc))})") from None

    def _stream(self, stream: Any, on_text: Callable[[str], None]) -> Reply:
        reply = Reply(model=self.model)
        calls = ToolCallAssembler()
        text: list[str] = []
        shown = [0]

        def counted(piece: str) -> None:
            shown[0] += len(piece)
            if shown[0] > MAX_REPLY_CHARS:
                raise ReplyTooLong()
            on_text(piece)

        try:  # a ReplyTooLong passes up to _send (the stream is closed on the way)
            self._read_stream(stream, reply, calls, text, counted)
        except json.JSONDecodeError as exc:
            raise shapes.Malformed(f"a chunk is not valid JSON: {exc}") from None
        except (openai.APIError, OSError, ValueError, RuntimeError) as exc:
            # Retried only while no text was shown; no tool has run, so none runs twice.
            raise Retry(StreamError(f"{self.where()} stopped sending in the middle of the "
                                    f"reply ({self.scrub(_cause(exc))})"), 0) from None
        if reply.finish_reason is None:
            raise Retry(StreamError(f"{self.where()} closed the stream in the middle of the "
                                    "reply"), 0)
        return finalise(reply, "".join(text), calls)

    def too_long(self, *, events: bool = False) -> ModelError:
        """A reply that passed ``MAX_REPLY_CHARS`` (or ``MAX_REPLY_EVENTS``) without
        ending (not tried again)."""
        what = (f"{MAX_REPLY_EVENTS:,} events" if events else
                f"{MAX_REPLY_CHARS:,} characters")
        return ModelError(f"{self.where()} sent more than {what} in one reply without "
                          "ending it, so it was stopped; a model that does not stop by "
                          "itself needs max_tokens")

    def _translate(self, exc: openai.APIError, request: dict[str, Any]) -> Exception:
        """Map an SDK error to ours; ``Retry`` and ``DropField`` steer the retry loop."""
        where = self.where()
        detail = said(self.scrub(error_message(exc)))
        if isinstance(exc, openai.APITimeoutError):
            return Retry(ModelTimeout(f"no answer from {where} within "
                                      f"{self.settings.request_timeout:g} s"), 0)
        if isinstance(exc, openai.APIConnectionError):
            return Retry(ModelConnectionError(f"cannot reach the model server at {where}: {detail}"), 0)
        if not isinstance(exc, openai.APIStatusError):
            return StreamError(f"the stream from {where} failed: {detail}")
        status = exc.status_code
        if status == 400:
            for name in OPTIONAL_FIELDS:
                if (name in request and name not in self.dropped_fields
                        and names_field(exc, detail, name)):
                    self.dropped_fields.add(name)
                    return DropField()
        if status in (401, 403):
            var = self.settings.api_key_env or "OPENAI_API_KEY"
            return AuthError(f"{where} refused the request ({status}): {detail}. "
                             f"Check the key in ${var}.")
        if status == 429 and _code(exc) != "insufficient_quota":
            return Retry(RateLimited(f"rate limited by {where} (429): {detail}"), _retry_after(exc))
        if status == 429:
            return ModelError(f"{where}: quota exhausted (429 insufficient_quota): {detail}")
        if status == 404:
            return ModelError(f"{where} has no model '{request['model']}' or no such endpoint "
                              f"(404): {detail}")
        if status >= 500 or status in (408, 409):
            return Retry(ServerError(f"server error from {where} ({status}): {detail}"),
                         _retry_after(exc))
        return ModelError(f"{where} rejected the request ({status}): {detail}")

    def where(self) -> str:
        return self.settings.base_url or "the OpenAI API"

    def scrub(self, text: str) -> str:
        return text.replace(self._key, "[redacted]") if self._key else text


def names_field(exc: openai.APIStatusError, detail: str, name: str) -> bool:
    """Whether a 400 is about the request field ``name`` (its ``param`` or its message)."""
    param = str(getattr(exc, "param", None) or "")
    if param == name or param.startswith(name + ".") or param.startswith(name + "["):
        return True
    return any(mention in detail for mention in MENTIONS.get(name, (name,)))


def checked(obj: Any, spec: Any, label: str) -> dict[str, Any]:
    """A reply object from the SDK as a plain dict, its shape checked (``shapes``)."""
    data = obj.to_dict(warnings=False) if hasattr(obj, "to_dict") else obj
    if not isinstance(data, dict):
        raise shapes.Malformed(f"{label} is {shapes.kind(data)}, not an object")
    shapes.check(data, spec, label)
    return data


def finalise(reply: Reply, content: str, calls: ToolCallAssembler) -> Reply:
    """``reply`` with its text and whole calls; calls that end in "stop" end in "tool_calls"."""
    reply.content = content
    reply.tool_calls = calls.finish(reply.finish_reason)
    if reply.tool_calls and reply.finish_reason == "stop":
        reply.finish_reason = "tool_calls"
    return reply


MAX_SAID = 1_000
"""Most characters of a server's own error message quoted in ours."""


def said(text: str, limit: int = MAX_SAID) -> str:
    """A server's message as quoted in an error: cut to ``limit`` characters (a server
    can send megabytes), saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def error_message(exc: openai.APIError) -> str:
    """The server's own words from an error's body, else the SDK's message."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(exc, "message", "") or exc)


def _cause(exc: BaseException) -> str:
    """The innermost cause's type and text: 'RemoteProtocolError: peer closed ...'."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"


def _code(exc: openai.APIError) -> str | None:
    return getattr(exc, "code", None)


def _retry_after(exc: openai.APIStatusError) -> float:
    """Seconds from ``Retry-After`` (seconds or an HTTP date), capped at
    ``MAX_RETRY_AFTER``; 0 (use the backoff) when absent or unusable: not a
    number or date, not finite, negative, or a date in the past."""
    seconds = _seconds(exc.response.headers.get("retry-after", "").strip())
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return 0.0
    return min(seconds, MAX_RETRY_AFTER) or 0.001  # 0 means now: retry at once


def _seconds(value: str) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.5, 1, 2, 4 s, at most 8."""
    return min(8.0, 0.5 * 2.0 ** (attempt - 1)) * random.uniform(0.75, 1.25)
