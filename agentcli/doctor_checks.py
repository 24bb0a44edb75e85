"""The probes of ``agentcli doctor``, in the order they run.

Each takes the ``Doctor`` (settings, model, the listing so far) and returns a
``Finding``: the result, what was seen, and what agentcli does about it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai

from .config import DEFAULT_CONTEXT, Settings
from .doctor import (
    ANSWER_SCHEMA,
    CLOCK,
    HISTORY,
    PARALLEL_HISTORY,
    TEXT_TOKENS,
    WEATHER,
    Doctor,
    Finding,
    Probe,
    Report,
    function_tool,
    short,
    user,
)
from .schema import load_schema, request_format
from .serverinfo import from_listing, from_server, trained_length

NO_TOOLS = "pick a model or server with tool support, or run with --no-tools"


def models(doc: Doctor) -> Finding:
    """``GET /models`` through the SDK; picks the first model when none was given."""
    base = doc.settings.base_url
    try:
        body = doc.client.models.with_raw_response.list().http_response.json()
    except ValueError:
        return Finding("deviates", "the list is not JSON", "pass -m/--model")
    except openai.APITimeoutError:
        return Finding("error", f"no answer within {doc.timeout:g} s", "the other probes still run")
    except openai.APIConnectionError as exc:
        doc.unreachable = True
        return Finding("error", f"cannot reach {base or 'the OpenAI API'}: "
                       f"{short(doc.redact(str(exc)))}",
                       "check that the server is running and that --base-url is right")
    except openai.APIStatusError as exc:
        return Finding("error" if exc.status_code in (401, 403) else "unsupported",
                       f"refused ({exc.status_code}): {short(doc.redact(exc.message))}",
                       f"check the key in ${doc.settings.api_key_env or 'OPENAI_API_KEY'}"
                       if exc.status_code in (401, 403) else "pass -m/--model")
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return Finding("deviates", "the list is not in OpenAI's shape (no \"data\" list)",
                       "pass -m/--model")
    doc.listing = [entry for entry in data if isinstance(entry, dict)]
    ids = [str(e["id"]) for e in doc.listing if isinstance(e.get("id"), str) and e["id"]]
    names = ", ".join(short(i, 80) for i in ids[:5]) + (
        f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    if not ids:
        return Finding("deviates", "the list is empty", "pass -m/--model")
    if not doc.model:
        doc.model = ids[0]
        return Finding("ok", f"{len(ids)} listed: {names}",
                       f"no model given: probing the first, {short(ids[0], 80)} (as run and "
                       "chat would)")
    if doc.model not in ids:
        return Finding("deviates", f"{short(doc.model, 80)} is not listed ({names})",
                       "probing it anyway; if requests fail, pass a listed name with -m")
    return Finding("ok", f"{len(ids)} listed: {names}", f"probing {doc.model}")


def context_length(doc: Doctor) -> Finding:
    entry = next((e for e in doc.listing if e.get("id") == doc.model), {})
    found = from_listing(entry)
    if found is None and doc.settings.base_url and not doc.unreachable:
        found = from_server(doc.http, doc.settings.base_url, doc.key, doc.model or "")
    found = found or trained_length(entry)
    window = doc.configured.context_window or DEFAULT_CONTEXT
    if found is None:
        return Finding("unsupported", "not reported",
                       f"agentcli assumes context_window = {window}; set it to the model's size")
    seen = f"{found.tokens} tokens ({found.source}" + (f"; {found.note})" if found.note else ")")
    if found.note:
        return Finding("deviates", seen, "set context_window to the length the server runs "
                       f"with, at most {found.tokens} (agentcli assumes {window})")
    if window > found.tokens:
        return Finding("deviates", seen,
                       f"set context_window = {found.tokens}: agentcli assumes {window} and "
                       "would shorten long conversations too late")
    return Finding("ok", seen, f"context_window = {window} fits")


def streaming(doc: Doctor) -> Finding:
    ex = doc.ask([user("Count from 1 to 5, separated by spaces.")], [], tokens=TEXT_TOKENS)
    if ex.reply is None:
        return doc.failed(ex, "agentcli cannot stream from this server")
    pieces = sum(1 for chunk in ex.probe.chunks for choice in chunk.get("choices") or []
                 if isinstance(choice, dict) and (choice.get("delta") or {}).get("content"))
    usage = "usage reported" if ex.reply.usage else "no usage reported (token counts show 0)"
    seen = [f"{pieces} text chunk{'s' if pieces != 1 else ''}, finish_reason "
            f"{ex.reply.finish_reason}, {usage}"]
    quirks = ex.probe.dropped
    action = [q.handling for q in quirks]
    seen += [q.seen for q in quirks]
    if pieces == 0:
        seen.append("no text came")
        action.append("an empty answer is shown as empty")
    elif pieces == 1 and len(ex.reply.content) > 8:
        seen.append("the whole reply came in one chunk")
        action.append("it is shown when it arrives")
    return Finding("deviates" if action else "ok", "; ".join(seen),
                   "; ".join(action) or "replies stream as they are written", quirks)


def tool_call(doc: Doctor) -> Finding:
    ex = doc.ask([*HISTORY, user("What is the weather in Paris?")], [WEATHER])
    return doc.calls(ex, "get_weather", works="tool calls work",
                     no_call=("deviates", "answered without calling the tool",
                              "with tool_choice auto the model decides; the other probes force it"),
                     refused_action=NO_TOOLS)


def tool_choice_required(doc: Doctor) -> Finding:
    ex = doc.ask([*HISTORY, user("What is the weather in Paris?")], [WEATHER],
                 tool_choice="required")
    return doc.calls(ex, "get_weather",
                     works="--tool-choice required works (sent on a turn's first request only)",
                     no_call=("unsupported", "accepted, but no call came",
                              "--tool-choice required has no effect here"),
                     refused_action="do not use --tool-choice required with this server")


def tool_choice_named(doc: Doctor) -> Finding:
    named = {"type": "function", "function": {"name": "get_weather"}}
    ex = doc.ask([*HISTORY, user("What time is it in Paris?")], [CLOCK, WEATHER],
                 tool_choice=named)
    if ex.reply is not None and ex.reply.tool_calls and all(
            c.name == "get_time" for c in ex.reply.tool_calls):
        return Finding("deviates", "the named tool was ignored: the model called get_time",
                       "--tool-choice NAME is only a hint here")
    return doc.calls(ex, "get_weather", works="--tool-choice NAME works",
                     no_call=("unsupported", "accepted, but no call came",
                              "--tool-choice NAME has no effect here"),
                     refused_action="do not use --tool-choice NAME with this server")


def parallel(doc: Doctor) -> Finding:
    ex = doc.ask([*PARALLEL_HISTORY, user("What is the weather in Paris and in Rome?")],
                 [WEATHER], parallel=True)
    return doc.calls(ex, "get_weather", count=2,
                     works="calls proposed together run at once (tools.max_parallel)",
                     no_call=("deviates", "answered without calling the tool",
                              "the model decides; nothing to change"),
                     refused_action=NO_TOOLS)


def strict(doc: Doctor) -> Finding:
    tool = function_tool("get_weather", "Current weather in a city.", strict=True)
    ex = doc.ask([*HISTORY, user("What is the weather in Paris?")], [tool],
                 tool_choice="required")
    return doc.calls(ex, "get_weather", works="[tools] strict = true can be used",
                     no_call=("deviates", "accepted, but no call came",
                              "keep [tools] strict = false (the default)"),
                     refused_action="keep [tools] strict = false (the default)")


def json_schema(doc: Doctor) -> Finding:
    schema = load_schema(json.dumps(ANSWER_SCHEMA))
    ex = doc.ask([user("The weather in Paris is 12 °C. Answer in JSON with the city and "
                        "the temperature in Celsius.")], [],
                 answer_format=request_format(schema), tokens=48)
    if ex.reply is None:
        return doc.failed(ex, "--schema answers are still checked, and repaired once")
    if ex.probe.dropped:
        quirks = ex.probe.dropped
        return Finding("unsupported", "; ".join(q.seen for q in quirks),
                       "dropped and remembered; --schema answers are still checked, and "
                       "repaired once", quirks)
    _, problems = schema.problems(ex.reply.content)
    if problems:
        return Finding("deviates", f"accepted, but the answer does not match: {problems[0]}",
                       "--schema answers are checked, and repaired once")
    return Finding("ok", f"the answer matches: {short(ex.reply.content, 80)}",
                   "--schema asks for it (and still checks the answer)")


def responses(doc: Doctor) -> Finding:
    ex = doc.ask([*HISTORY, user("What is the weather in Paris?")], [WEATHER],
                 tool_choice="required", responses=True)
    chosen = doc.configured.api == "responses"
    use_chat = 'set api = "chat"' if chosen else 'keep api = "chat" (the default)'
    return doc.calls(ex, "get_weather", works='api = "responses" can be used',
                     no_call=("deviates", "answered, but without the forced call",
                              f"{use_chat} for tool calls"),
                     refused_action=use_chat)


PROBES: list[Probe] = [
    ("models", "models list", models),
    ("context_length", "context length", context_length),
    ("streaming", "streaming", streaming),
    ("tool_call", "tool call", tool_call),
    ("tool_choice_required", 'tool_choice "required"', tool_choice_required),
    ("tool_choice_named", "tool_choice named", tool_choice_named),
    ("parallel", "parallel tool calls", parallel),
    ("strict", "strict tools", strict),
    ("json_schema", "response_format json_schema", json_schema),
    ("responses", "Responses API", responses),
]


def diagnose(settings: Settings, api_key: str | None, *, timeout: float,
             on_row: Callable[[Any], None] = lambda _: None,
             debug: Callable[[str], None] | None = None) -> Report:
    """Every probe against the server ``settings`` name; never raises for a server's sake."""
    return Doctor(settings, api_key, timeout=timeout, on_row=on_row, debug=debug).run(PROBES)
