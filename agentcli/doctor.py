"""``agentcli doctor``: a few small requests that tell what a server supports.

Every probe goes through the provider that ``run`` and ``chat`` use, so it
meets the server exactly as they do: the reply is normalised as always, and
the raw chunks recorded beside it show what the server sent before that
(``quirks``). Each probe asks for a short reply within a short timeout, and
one that fails, is refused or hangs becomes a row like any other.
"""

from __future__ import annotations

import dataclasses
import json
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from .config import Settings
from .errors import ModelError, ModelTimeout
from .messages import ToolCall
from .providers import ChatProvider, Provider, Reply, ResponsesProvider
from .providers.base import DropField, error_message, names_field
from .quirks import Quirk, dropped, tool_call_quirks

#: What a row's ``result`` can be.
RESULTS = ("ok", "deviates", "unsupported", "error", "skipped")
#: Token caps: enough for a short sentence or two small calls, no more.
TEXT_TOKENS = 24
TOOL_TOKENS = 96
#: The token cap's field in each protocol.
CAPS = ("max_tokens", "max_output_tokens")
#: A streamed reply must be whole within this many timeouts of its first chunk.
STREAM_BUDGET = 3
#: Statuses that mean "this server does not take that request", not "it broke".
REFUSED = (400, 404, 405, 415, 422, 501)


def function_tool(name: str, description: str, strict: bool = False) -> dict[str, Any]:
    params = {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
              "required": ["city"], "additionalProperties": False}
    function: dict[str, Any] = {"name": name, "description": description, "parameters": params}
    if strict:
        function["strict"] = True
    return {"type": "function", "function": function}


WEATHER = function_tool("get_weather", "Current weather in a city.")
CLOCK = function_tool("get_time", "Current local time in a city.")


def _exchange(n: int, question: str, cities: list[str], answer: str) -> list[dict[str, Any]]:
    """One earlier turn that used the tool: small models copy the pattern."""
    ids = [f"call_doctor{n}{i}" for i in range(len(cities))]
    calls = [{"id": i, "type": "function",
              "function": {"name": "get_weather", "arguments": json.dumps({"city": c})}}
             for i, c in zip(ids, cities, strict=True)]
    results = [{"role": "tool", "tool_call_id": i, "content": f"{c}: 12 °C, light rain"}
               for i, c in zip(ids, cities, strict=True)]
    return [{"role": "user", "content": question},
            {"role": "assistant", "content": "", "tool_calls": calls}, *results,
            {"role": "assistant", "content": answer}]


HISTORY = (_exchange(1, "What is the weather in Oslo?", ["Oslo"], "Oslo: 12 °C, light rain.")
           + _exchange(2, "What is the weather in Lima?", ["Lima"], "Lima: 12 °C, light rain."))
PARALLEL_HISTORY = HISTORY + _exchange(3, "What is the weather in Bern and in Kyiv?",
                                       ["Bern", "Kyiv"], "Both: 12 °C, light rain.")
ANSWER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                                                  "celsius": {"type": "number"}},
                 "required": ["city", "celsius"], "additionalProperties": False}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


@dataclass
class Finding:
    """What one probe found (the row without its name and timing)."""

    result: str
    seen: str
    action: str
    quirks: list[Quirk] = field(default_factory=list)
    tool_call: bool = False


@dataclass
class Row:
    probe: str
    feature: str
    result: str
    seen: str
    action: str
    quirks: list[str] = field(default_factory=list)
    seconds: float = 0.0
    tool_call: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"probe": self.probe, "feature": self.feature, "result": self.result,
                "seen": self.seen, "action": self.action, "quirks": self.quirks,
                "seconds": self.seconds, "tool_call": self.tool_call}


#: The probes whose usable tool call means "tool calls work", by wire protocol.
TOOL_PROBES = {"chat": ("tool_call", "tool_choice_required", "tool_choice_named", "parallel",
                        "strict"),
               "responses": ("responses",)}


@dataclass
class Report:
    base_url: str | None
    model: str | None
    api: str
    rows: list[Row]

    @property
    def tools_work(self) -> bool:
        """Whether a probe on the configured wire protocol got a usable tool call."""
        wanted = TOOL_PROBES["responses" if self.api == "responses" else "chat"]
        return any(row.tool_call for row in self.rows if row.probe in wanted)

    @property
    def exit_code(self) -> int:
        return 0 if self.tools_work else 1

    def as_json(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "model": self.model, "api": self.api,
                "tools_work": self.tools_work, "exit_code": self.exit_code,
                "rows": [row.as_json() for row in self.rows]}


def _plain(obj: Any) -> dict[str, Any]:
    data = obj.to_dict(warnings=False) if hasattr(obj, "to_dict") else obj
    return data if isinstance(data, dict) else {}


class _Recording:
    """A stream that keeps each raw chunk, and gives up when the reply is not whole
    ``budget`` seconds after its first chunk (the wait for that one, and for each next
    byte, is the SDK's timeout; the SDK's first reading of a kind of event can take a
    second, hence a budget of a few timeouts)."""

    def __init__(self, stream: Any, sink: list[dict[str, Any]], budget: float) -> None:
        self._stream, self._sink, self._budget = stream, sink, budget

    def __enter__(self) -> _Recording:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()

    def __iter__(self) -> Iterator[Any]:
        deadline = None
        for item in self._stream:
            deadline = deadline or time.monotonic() + self._budget
            if time.monotonic() > deadline:
                raise ModelTimeout(f"the reply did not finish within {self._budget:g} s")
            self._sink.append(_plain(item))
            yield item


class RecordingProvider(Provider):
    """A provider that keeps the raw chunks and the refusal status (mixed into the
    protocol's provider: ``ChatProbe``, ``ResponsesProbe``)."""

    def __init__(self, settings: Settings, api_key: str | None, *, client: openai.OpenAI,
                 debug: Callable[[str], None] | None = None) -> None:
        super().__init__(settings, api_key, debug=debug, client=client)
        self.chunks: list[dict[str, Any]] = []
        self.failure: tuple[int, str] | None = None

    def create(self, request: dict[str, Any]) -> Any:
        self.chunks.clear()  # sent again without a refused field: start afresh
        self.failure = None
        result = super().create(request)
        if request.get("stream"):
            return _Recording(result, self.chunks, STREAM_BUDGET * self.settings.request_timeout)
        self.chunks.append(_plain(result))
        return result

    def _translate(self, exc: openai.APIError, request: dict[str, Any]) -> Exception:
        """As the provider does, and a refused token cap is dropped too: the probes set
        one, where run sends it only when configured (reasoning models refuse it)."""
        if isinstance(exc, openai.APIStatusError):
            self.failure = (exc.status_code, self.scrub(error_message(exc)))
            for name in CAPS:
                if (exc.status_code == 400 and name in request
                        and names_field(exc, self.failure[1], name)):
                    self.dropped_fields.add(name)
                    return DropField()
        return super()._translate(exc, request)

    @property
    def dropped(self) -> list[Quirk]:
        return [dropped(name) for name in sorted(self.dropped_fields)]


class ChatProbe(RecordingProvider, ChatProvider):
    """Probes over Chat Completions."""


class ResponsesProbe(RecordingProvider, ResponsesProvider):
    """Probes over the Responses API."""


@dataclass
class Exchange:
    probe: RecordingProvider
    reply: Reply | None = None
    error: ModelError | None = None


def short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def usable(call: ToolCall, name: str) -> bool:
    """Whether a call is the tool asked for, whole, with a city as its argument."""
    if call.name != name or call.truncated:
        return False
    try:
        args = json.loads(call.arguments)
    except ValueError:
        return False
    return isinstance(args, dict) and isinstance(args.get("city"), str) and bool(args["city"])


Probe = tuple[str, str, Callable[["Doctor"], Finding]]
"""A probe's stable id, its label, and the function that runs it."""


class Doctor:
    """Runs the probes in order; ``on_row`` hears of each row as it is done."""

    def __init__(self, settings: Settings, api_key: str | None, *, timeout: float,
                 on_row: Callable[[Row], None] = lambda _: None,
                 debug: Callable[[str], None] | None = None) -> None:
        self.configured = settings
        self.key = api_key
        self.timeout = timeout
        self.model = settings.model
        self.on_row = on_row
        self.debug = debug
        self.listing: list[dict[str, Any]] = []
        self.unreachable = False
        # the parameters are run's own (a reasoning model refuses a temperature, for one)
        self.settings = dataclasses.replace(settings, max_retries=0, request_timeout=timeout,
                                            fallback_model=None)
        #: One HTTP client and one SDK client for every probe (each new one costs ~0.1 s).
        self.http = openai.DefaultHttpxClient(timeout=timeout)
        self.client = openai.OpenAI(api_key=api_key or "no-key", base_url=settings.base_url,
                                    max_retries=0, timeout=timeout, http_client=self.http)

    def redact(self, text: str) -> str:
        return text.replace(self.key, "[redacted]") if self.key else text

    def run(self, probes: Sequence[Probe]) -> Report:
        """Each probe in order, as a row; see ``doctor_checks.PROBES``."""
        with self.http:
            rows = [self._row(probe_id, feature, method) for probe_id, feature, method in probes]
        return Report(self.configured.base_url, self.model, self.configured.api or "chat", rows)

    def _row(self, probe_id: str, feature: str, method: Callable[[Doctor], Finding]) -> Row:
        start = time.monotonic()
        if self.debug is not None:
            self.debug(f"probe: {feature}")
        try:
            found = self._skip(probe_id) or method(self)
        except Exception as exc:  # a probe never ends the run
            if self.debug is not None:
                self.debug(traceback.format_exc())
            found = Finding("error", f"the probe failed: {type(exc).__name__}: "
                            f"{short(self.redact(str(exc)))}", "run with -v for details")
        row = Row(probe_id, feature, found.result, found.seen, found.action,
                  [q.name for q in found.quirks], round(time.monotonic() - start, 2),
                  found.tool_call)
        self.on_row(row)
        return row

    def _skip(self, probe_id: str) -> Finding | None:
        if probe_id == "models":
            return None
        if self.unreachable:
            return Finding("skipped", "not run: the server cannot be reached",
                           "check that it is running and that --base-url is right")
        if not self.model and probe_id != "context_length":
            return Finding("skipped", "not run: no model to probe", "pass -m/--model")
        return None

    def ask(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *,
            tool_choice: Any = None, parallel: bool | None = None,
            answer_format: dict[str, Any] | None = None, tokens: int = TOOL_TOKENS,
            responses: bool = False) -> Exchange:
        """One streamed request through the provider; its error is kept, not raised."""
        cap = self.configured.max_tokens
        settings = dataclasses.replace(
            self.settings, model=self.model, max_tokens=min(tokens, cap) if cap else tokens,
            parallel_tool_calls=parallel)
        kind = ResponsesProbe if responses else ChatProbe
        probe = kind(settings, self.key, client=self.client, debug=self.debug)
        probe.answer_format = answer_format
        try:
            return Exchange(probe, reply=probe.complete(messages, tools, tool_choice=tool_choice))
        except ModelError as exc:
            return Exchange(probe, error=exc)

    def failed(self, ex: Exchange, refused_action: str) -> Finding:
        """The row for a request that got no reply: refused, timed out or broken."""
        error = ex.error
        if isinstance(error, ModelTimeout):
            if "did not finish" in str(error):
                seen = f"the reply did not finish within {STREAM_BUDGET * self.timeout:g} s"
            else:
                seen = f"no answer within {self.timeout:g} s"
            return Finding("error", seen, "if the server is only slow, raise --timeout here and "
                           "request_timeout in the config")
        if ex.probe.failure is not None and ex.probe.failure[0] in REFUSED:
            status, detail = ex.probe.failure
            return Finding("unsupported", f"refused ({status}): {short(detail)}", refused_action)
        return Finding("error", short(str(error)), "see the message; run with -v for the requests")

    def calls(self, ex: Exchange, want: str, *, count: int = 1, works: str,
              no_call: tuple[str, str, str], refused_action: str) -> Finding:
        """The row for a probe that asked for ``count`` calls of ``want``."""
        if ex.reply is None:
            return self.failed(ex, refused_action)
        reply = ex.reply
        quirks = [*tool_call_quirks(ex.probe.chunks, reply.tool_calls), *ex.probe.dropped]
        if not reply.tool_calls:
            result, what, fix = no_call
            said = f": {short(reply.content, 80)!r}" if reply.content.strip() else ""
            return Finding(result, what + said, "; ".join([fix] + [q.handling for q in quirks]),
                           quirks)
        good = [c for c in reply.tool_calls if usable(c, want)]
        shown = ", ".join(f"{short(c.name, 60)} {short(c.arguments, 60)}"
                          for c in reply.tool_calls[:5])
        shown += f" and {len(reply.tool_calls) - 5} more" if len(reply.tool_calls) > 5 else ""
        seen = [f"{len(reply.tool_calls)} call{'s' if len(reply.tool_calls) > 1 else ''}: {shown}"]
        seen += [q.seen for q in quirks]
        action = [q.handling for q in quirks]
        if len(good) < len(reply.tool_calls):
            seen.append(f"not every call is {want} with a city")
            action.append("agentcli validates each call and tells the model what is wrong")
        elif len(good) < count:
            seen.append(f"fewer calls than the {count} asked for")
            action.append("agentcli runs the calls it gets; the model asks for the rest "
                          "after the results")
        result = "ok" if len(action) == 0 else "deviates"
        return Finding(result, "; ".join(seen), "; ".join(action) or works, quirks, bool(good))
