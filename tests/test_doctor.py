"""``agentcli doctor`` against the scripted server's quirk scenarios.

One server for the module; each test gives it a responder that answers every
probe the way a kind of server would (the probe is told by its request:
tools or none, tool_choice, parallel_tool_calls, response_format, path).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from openai_server import (
    RESPONSES_PATH,
    Call,
    OpenAIServer,
    Recorded,
    Reply,
    drip,
    error,
    fixture_path,
    raw_sse,
    slow,
    text,
    tool_calls,
)

from agentcli.config import Settings
from agentcli.doctor import RESULTS, Report
from agentcli.doctor_checks import PROBES, diagnose

CHAT_TOOL_PROBES = ("tool_call", "tool_choice_required", "tool_choice_named", "parallel", "strict")


def probe_of(request: Recorded) -> str:
    """Which doctor probe sent this request."""
    body = request.body
    if request.path == RESPONSES_PATH:
        return "responses"
    if "response_format" in body:
        return "json_schema"
    if not body.get("tools"):
        return "streaming"
    if isinstance(body.get("tool_choice"), dict):
        return "tool_choice_named"
    if body.get("tool_choice") == "required":
        strict = any(t["function"].get("strict") for t in body["tools"])
        return "strict" if strict else "tool_choice_required"
    return "parallel" if "parallel_tool_calls" in body else "tool_call"


def sse(*events: dict) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps({'sequence_number': n, **e})}\n\n".encode()
                    for n, e in enumerate(events))


def responses_call(city: str) -> Reply:
    done = {"id": "resp_1", "object": "response", "created_at": 1, "model": "test-model",
            "status": "completed", "output": [], "parallel_tool_calls": True, "tool_choice": "required",
            "tools": [], "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8}}
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_r1", "name": "get_weather",
            "arguments": "", "status": "in_progress"}
    args = json.dumps({"city": city})
    return raw_sse(sse({"type": "response.output_item.added", "output_index": 0, "item": item},
                       {"type": "response.function_call_arguments.delta", "item_id": "fc_1",
                        "output_index": 0, "delta": args},
                       {"type": "response.completed", "response": done}))


def scenario(quirks: frozenset[str] = frozenset(), *, tools: str = "yes", hang: str | None = None,
             responses: bool = True, schema_answer: str = '{"city": "Paris", "celsius": 12}',
             same_id: bool = False, ignore_named: bool = False, cut: bool = False,
             trickle: str | None = None):
    """A responder: ``tools`` is "yes", "text" (ignored: answers in text) or "refused" (400)."""
    def respond(request: Recorded) -> Reply:
        probe = probe_of(request)
        if probe == hang:
            return slow(30, text("too late"))
        if probe == trickle:  # headers at once, then a chunk every 0.3 s
            return drip(0.3, text("one two three four five six seven", chunk_size=1))
        if probe == "responses":
            return responses_call("Paris") if responses else error(404, "Not Found")
        if probe == "json_schema":
            return text(schema_answer)
        if probe == "streaming":
            return text("1 2 3 4 5")
        if tools == "refused":
            return error(400, "registry/test-model does not support tools")
        if tools == "text":
            return text("I cannot look up the weather.")
        if probe == "parallel":
            first = Call("get_weather", {"city": "Paris"}, id="call_same" if same_id else "call_p1")
            second = Call("get_weather", {"city": "Rome"}, id="call_same" if same_id else "call_p2")
            return tool_calls(first, second, quirks=quirks)
        name = "get_time" if ignore_named and probe == "tool_choice_named" else "get_weather"
        if cut:  # the token limit struck inside the arguments, as llama.cpp sends it
            return tool_calls(Call(name, '{"city": "Pa'), finish_reason="length")
        return tool_calls(Call(name, {"city": "Paris"}), quirks=quirks)
    return respond


@pytest.fixture(scope="module")
def shared() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def srv(shared: OpenAIServer) -> Iterator[OpenAIServer]:
    shared.requests.clear()
    yield shared
    shared.responder = None
    shared.reject_fields.clear()
    shared.routes.clear()
    shared.model_extra.clear()
    shared.models[:] = ["test-model"]


def doctor(server: OpenAIServer, timeout: float = 5.0, **settings) -> Report:
    config = Settings(base_url=server.base_url, **settings)
    report = diagnose(config, None, timeout=timeout)
    # every probe gives one row, in order, with a known result and something seen
    assert [row.probe for row in report.rows] == [probe for probe, _, _ in PROBES]
    assert all(row.result in RESULTS and row.seen for row in report.rows)
    assert not any("the probe failed" in row.seen for row in report.rows)
    return report


def rows(report: Report) -> dict:
    return {row.probe: row for row in report.rows}


def test_a_server_that_behaves_like_openai_passes_every_probe(srv):
    srv.responder = scenario()
    srv.model_extra.update(max_model_len=200_000)  # vLLM's field, above the assumed 128000
    report = doctor(srv)
    assert {r.probe: r.result for r in report.rows} == {
        "models": "ok", "context_length": "ok", "streaming": "ok", "tool_call": "ok",
        "tool_choice_required": "ok", "tool_choice_named": "ok", "parallel": "ok",
        "strict": "ok", "json_schema": "ok", "responses": "ok"}
    assert report.model == "test-model" and report.tools_work and report.exit_code == 0
    found = rows(report)
    assert "200000 tokens (/v1/models max_model_len)" in found["context_length"].seen
    assert "2 calls" in found["parallel"].seen
    # what the probes sent: small token caps, the named choice, strict, the schema
    sent = {probe_of(r): r.body for r in srv.requests}
    assert all(body["max_tokens"] <= 96 for body in sent.values() if "max_tokens" in body)
    assert sent["tool_choice_named"]["tool_choice"] == {"type": "function",
                                                        "function": {"name": "get_weather"}}
    assert sent["strict"]["tools"][0]["function"]["strict"] is True
    assert sent["json_schema"]["response_format"]["type"] == "json_schema"
    assert sent["parallel"]["parallel_tool_calls"] is True


def test_openais_own_recorded_streams_show_no_quirk(srv):
    text_sse = fixture_path("openai-recorded", "text.sse").read_bytes()
    call_sse = fixture_path("openai-recorded", "tool-call-get_weather.sse").read_bytes()
    usual = scenario()

    def respond(request: Recorded) -> Reply:
        probe = probe_of(request)
        if probe == "streaming":
            return raw_sse(text_sse)
        return raw_sse(call_sse) if probe in ("tool_call", "tool_choice_required", "strict") \
            else usual(request)

    srv.responder = respond
    found = rows(doctor(srv))
    for probe in ("streaming", "tool_call", "tool_choice_required", "strict"):
        assert (found[probe].result, found[probe].quirks) == ("ok", []), found[probe]
    assert 'get_weather {"city":"New York City"}' in found["tool_call"].seen


@pytest.mark.parametrize(("quirks", "same_id", "expected", "handling"), [
    ({"index_zero"}, False, "index_zero", "a new id, or a new name after whole arguments"),
    ({"index_zero", "no_id"}, False, "index_zero", "ids are filled in"),
    ({"no_index"}, False, "no_index", "matched by id"),
    ({"no_id"}, False, "missing_id", "ids are filled in"),
    ({"empty_id"}, False, "missing_id", "ids are filled in"),
    (set(), True, "duplicate_id", "the second call gets a fresh id"),
    ({"whole"}, False, "whole_call", "taken as it is"),
    ({"args_object"}, False, "args_object", "encoded back to a JSON string"),
    ({"stop_finish"}, False, "stop_finish", "read as tool_calls"),
])
def test_each_index_and_id_quirk_is_named_with_what_agentcli_does(srv, quirks, same_id, expected,
                                                                   handling):
    srv.responder = scenario(frozenset(quirks), same_id=same_id)
    report = doctor(srv)
    parallel = rows(report)["parallel"]
    assert parallel.result == "deviates", parallel
    assert expected in parallel.quirks and handling in parallel.action
    assert parallel.tool_call and "2 calls" in parallel.seen  # normalised into two good calls
    assert report.exit_code == 0


def test_calls_that_cannot_run_are_named_and_do_not_count_as_working(srv):
    srv.responder = scenario(frozenset({"empty_args"}), cut=True)
    report = doctor(srv)
    found = rows(report)
    assert found["tool_call"].quirks == ["cut_by_length"] and not found["tool_call"].tool_call
    assert "never run" in found["tool_call"].action
    parallel = found["parallel"]  # two calls with "" for arguments
    assert "empty_args" in parallel.quirks and not parallel.tool_call
    assert "not every call is get_weather with a city" in parallel.seen
    assert report.exit_code == 1


def test_rejected_optional_fields_are_dropped_and_remembered(srv):
    srv.responder = scenario()
    srv.reject_fields.update({"parallel_tool_calls", "stream_options"})
    found = rows(doctor(srv))
    assert found["streaming"].result == "deviates"
    assert found["streaming"].quirks == ["rejects_stream_options"]
    assert "dropped and remembered" in found["streaming"].action
    assert "rejects_parallel_tool_calls" in found["parallel"].quirks
    assert found["parallel"].tool_call


def test_a_refused_token_cap_is_dropped_by_the_probes(srv):
    # reasoning models refuse max_tokens; the probes send it, run only when configured
    srv.responder = scenario()
    srv.reject_fields.add("max_tokens")
    found = rows(doctor(srv))
    assert found["tool_call"].tool_call and found["tool_call"].quirks == ["rejects_max_tokens"]
    assert "leave it unset for this model" in found["tool_call"].action
    chat = [r.body for r in srv.requests if r.path != RESPONSES_PATH]
    assert ["max_tokens" in body for body in chat] == [True, False] * 7  # refused, sent again


def test_a_server_without_tool_support_exits_1(srv, cli):
    srv.responder = scenario(tools="refused", responses=False)  # a fresh process reads a
    # Responses stream slowly the first time (the SDK builds its event types): kept out here
    result = cli("doctor", "--base-url", srv.base_url, "--json")
    assert result.code == 1, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"base_url", "model", "api", "tools_work", "exit_code", "rows"}
    assert set(out["rows"][0]) == {"probe", "feature", "result", "seen", "action", "quirks",
                                   "seconds", "tool_call"}
    assert out["tools_work"] is False and out["exit_code"] == 1
    found = {row["probe"]: row for row in out["rows"]}
    for probe in CHAT_TOOL_PROBES:
        assert found[probe]["result"] == "unsupported", found[probe]
        assert "does not support tools" in found[probe]["seen"]
    assert "--no-tools" in found["tool_call"]["action"]
    assert found["streaming"]["result"] == "ok"  # text still works


def test_a_server_that_ignores_tools_exits_1(srv):
    srv.responder = scenario(tools="text")
    report = doctor(srv)
    found = rows(report)
    assert found["tool_call"].result == "deviates"
    assert "answered without calling the tool" in found["tool_call"].seen
    assert found["tool_choice_required"].result == "unsupported"
    assert not report.tools_work and report.exit_code == 1


def test_a_probe_that_hangs_is_a_row_and_the_others_run(srv):
    srv.responder = scenario(hang="json_schema", trickle="streaming")
    start = time.monotonic()
    report = doctor(srv, timeout=1.0)
    assert time.monotonic() - start < 12
    found = rows(report)
    assert found["streaming"].result == "error"
    assert found["streaming"].seen == "the reply did not finish within 3 s"
    assert found["json_schema"].result == "error"
    assert found["json_schema"].seen == "no answer within 1 s"
    assert "--timeout" in found["json_schema"].action
    assert found["responses"].result == "ok"  # the probe after it still ran
    assert report.exit_code == 0


def test_an_unreachable_server_is_one_error_and_the_rest_skipped():
    from conftest import free_port

    report = diagnose(Settings(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m"), None,
                      timeout=5.0)
    assert report.exit_code == 1
    assert report.rows[0].result == "error" and "cannot reach" in report.rows[0].seen
    assert [row.result for row in report.rows[1:]] == ["skipped"] * 9


def test_unsupported_features_say_what_to_use_instead(srv):
    srv.responder = scenario(responses=False, ignore_named=True)
    srv.reject_fields.add("response_format")
    found = rows(doctor(srv))
    assert found["responses"].result == "unsupported"
    assert 'keep api = "chat"' in found["responses"].action
    assert found["json_schema"].result == "unsupported"
    assert "still checked" in found["json_schema"].action
    assert found["tool_choice_named"].result == "deviates"
    assert "only a hint" in found["tool_choice_named"].action


def test_with_api_responses_the_responses_probe_decides_the_exit_code(srv):
    srv.responder = scenario(responses=False)
    report = doctor(srv, api="responses")
    assert rows(report)["tool_call"].tool_call  # Chat Completions would work...
    assert 'set api = "chat"' in rows(report)["responses"].action
    assert report.exit_code == 1  # ...but the configured protocol does not


def test_a_schema_answer_that_does_not_match_deviates(srv):
    srv.responder = scenario(schema_answer='{"city": "Paris"}')
    row = rows(doctor(srv))["json_schema"]
    assert row.result == "deviates" and "celsius" in row.seen


@pytest.mark.parametrize(("route", "body", "seen"), [
    ("/props", {"default_generation_settings": {"n_ctx": 4096}}, "4096 tokens (llama.cpp /props n_ctx)"),
    ("/api/v0/models/test-model", {"id": "test-model", "max_context_length": 32768,
                                   "loaded_context_length": 16384},
     "16384 tokens (LM Studio /api/v0/models loaded_context_length)"),
    ("/api/show", {"model_info": {"llama.context_length": 8192}}, "8192 tokens (Ollama /api/show"),
    ("/api/show", {"parameters": "num_ctx 2048\ntemperature 0.7"}, "2048 tokens (Ollama /api/show num_ctx"),
])
def test_the_context_length_is_found_where_each_server_keeps_it(srv, route, body, seen):
    srv.responder = scenario()
    srv.routes[route] = body
    row = rows(doctor(srv))["context_length"]
    assert row.result == "deviates" and seen in row.seen
    assert "set context_window" in row.action


def test_a_models_own_length_is_not_taken_for_what_the_server_runs(srv):
    srv.responder = scenario()
    srv.model_extra["meta"] = {"n_ctx_train": 32768}  # llama.cpp without /props
    row = rows(doctor(srv, context_window=8192))["context_length"]
    assert row.result == "deviates" and "the training length" in row.seen
    assert "at most 32768 (agentcli assumes 8192)" in row.action


def test_no_reported_context_length_says_what_is_assumed(srv):
    srv.responder = scenario()
    row = rows(doctor(srv, context_window=4096))["context_length"]
    assert row.result == "unsupported" and "assumes context_window = 4096" in row.action


def test_plain_output_escapes_server_text(srv, cli):
    srv.responder = scenario(tools="text", responses=False)  # as above
    srv.models[:] = ["evil\x1b]52;c;aGk=\x07model"]
    result = cli("doctor", "--base-url", srv.base_url)
    assert result.code == 1
    assert "\x1b" not in result.stdout and "\\u001b]52" in result.stdout
    assert "no usable tool call came back" in result.stdout


def test_usage_and_config_errors_exit_2(home, tmp_path, capsys):
    from typer.testing import CliRunner

    from agentcli.cli import app
    from agentcli.commands.doctor import DoctorOptions, doctor_command

    assert CliRunner().invoke(app, ["doctor", "--timeout", "0"]).exit_code == 2
    bad = tmp_path / "bad.toml"
    bad.write_text("no_such_key = 1\n")
    assert doctor_command(DoctorOptions(base_url="http://127.0.0.1:9/v1", config=bad)) == 2
    err = capsys.readouterr().err
    assert "no_such_key" in err and "bad.toml" in err


def test_the_api_key_is_never_shown(srv):
    key = "sk-doctor-secret-0123456789abcdef"
    srv.responder = lambda request: error(401, f"Incorrect API key provided: {key}")
    report = diagnose(Settings(base_url=srv.base_url, model="test-model"), key, timeout=5.0)
    shown = json.dumps(report.as_json())
    assert report.exit_code == 1 and rows(report)["tool_call"].result == "error"
    assert key not in shown and "[redacted]" in shown
    assert srv.requests[0].headers["authorization"] == f"Bearer {key}"  # it was sent, only not shown


@pytest.mark.parametrize("listing", ["not a list", {"data": "x"}, {"object": "list"}])
def test_a_models_list_of_the_wrong_shape_is_a_row_not_a_crash(srv, listing):
    srv.responder = scenario()
    srv.routes["/v1/models"] = listing
    report = doctor(srv)
    assert report.rows[0].result == "deviates" and "pass -m/--model" in report.rows[0].action
    assert {row.result for row in report.rows[2:]} == {"skipped"}  # no model to probe
    assert rows(doctor(srv, model="test-model"))["tool_call"].result == "ok"  # -m still works


@pytest.mark.parametrize(("reply", "seen"), [
    (raw_sse(b'data: {"choices": "nonsense"}\n\n'), "malformed reply"),
    (error(503, "overloaded"), "server error"),
])
def test_a_broken_reply_is_an_error_row_and_verbose_names_each_probe(srv, reply, seen):
    usual = scenario()
    srv.responder = lambda request: reply if probe_of(request) == "tool_call" else usual(request)
    lines: list[str] = []
    report = diagnose(Settings(base_url=srv.base_url), None, timeout=5.0, debug=lines.append)
    row = rows(report)["tool_call"]
    assert row.result == "error" and seen in row.seen and not row.tool_call
    assert rows(report)["tool_choice_required"].result == "ok" and report.exit_code == 0
    assert "probe: tool call" in lines and any(line.startswith("request: POST") for line in lines)


def test_huge_model_names_and_lists_are_cut_in_every_row(srv):
    from agentcli.commands.doctor import plain

    usual = scenario()
    many = [Call(f"get_weather{'x' * 20_000}", {"city": "Paris"}, id=f"call_{n}")
            for n in range(20)]
    srv.responder = lambda r: tool_calls(*many) if probe_of(r) == "parallel" else usual(r)
    srv.models[:] = ["m\x1b[2J" + "m" * 100_000] + [f"model-{n}" for n in range(5_000)]
    report = doctor(srv)
    shown = plain(report)
    assert max(len(line) for line in shown.splitlines()) < 1_000
    assert "and 4996 more" in rows(report)["models"].seen
    assert "\x1b" not in shown and "m\\u001b[2J" in shown
    assert "and 15 more" in rows(report)["parallel"].seen
