"""``agentcli run`` end to end: the real command, the real openai SDK, a
scripted server on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from conftest import AGENTCLI
from openai_server import Call, cut, error, fixture_path, raw_sse, slow, text, tool_calls

JSON_KEYS = {"answer", "model", "steps", "tool_calls", "usage", "session_id"}


def tool_messages(body: dict) -> list[dict]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def test_plain_answer_streams_to_stdout_only(cli, server, run_args):
    server.enqueue(text("Hello there, how can I help?"))
    result = cli("run", *run_args, "hi")
    assert result.code == 0, result.stderr
    assert result.stdout == "Hello there, how can I help?\n"
    assert result.stderr == ""
    body = server.requests[0].body
    assert body["stream"] is True
    assert body["messages"][-1] == {"role": "user", "content": "hi"}
    assert [t["function"]["name"] for t in body["tools"]] == ["calculator", "current_time", "http_get",
                                                         "http_post", "web_fetch"]


def test_tool_call_runs_with_yes_and_result_goes_back(cli, server, run_args):
    server.enqueue(tool_calls(Call("calculator", {"expression": "17*23"}, id="call_a")),
                   text("17*23 is 391."))
    result = cli("run", *run_args, "-y", "what is 17*23?")
    assert result.code == 0, result.stderr
    assert result.stdout == "17*23 is 391.\n"
    second = server.requests[1].body
    assistant = second["messages"][-2]
    assert assistant["role"] == "assistant" and "content" in assistant
    assert assistant["tool_calls"][0]["function"]["arguments"] == '{"expression":"17*23"}'
    assert tool_messages(second) == [{"role": "tool", "content": "391", "tool_call_id": "call_a"}]
    assert "calculator" in result.stderr and "391" in result.stderr


def test_without_terminal_or_yes_a_call_is_denied_and_the_model_told(cli, server, run_args):
    server.enqueue(tool_calls(Call("calculator", {"expression": "2+2"}, id="c1")), text("ok"))
    result = cli("run", *run_args, "add")
    assert result.code == 0
    assert tool_messages(server.requests[1].body)[0]["content"] == \
        "denied: no one was there to approve it"
    assert "denied a call to calculator" in result.stderr
    assert "--yes" in result.stderr


def test_json_output_has_exactly_the_spec_fields(cli, server, run_args):
    server.enqueue(tool_calls(Call("calculator", {"expression": "6*7"}, id="c1")),
                   text("42", usage={"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}))
    result = cli("run", *run_args, "--json", "-y", "6*7?")
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == JSON_KEYS
    assert out["answer"] == "42" and out["steps"] == 2 and out["session_id"] is None
    assert out["model"] == "test-model"
    call = out["tool_calls"][0]
    assert set(call) == {"id", "name", "arguments", "status", "result", "duration_ms"}
    assert call["name"] == "calculator" and call["arguments"] == {"expression": "6*7"}
    assert call["status"] == "ok" and call["result"] == "42"
    assert isinstance(call["duration_ms"], int)
    assert out["usage"]["total_tokens"] >= 12
    assert set(out["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_piped_stdin_extends_the_query(cli, server, run_args):
    server.enqueue(text("summary"))
    result = cli("run", *run_args, "Summarise this:", input="line one\nline two\n")
    assert result.code == 0
    assert server.requests[0].body["messages"][-1]["content"] == "Summarise this:\n\nline one\nline two"


def test_dash_reads_the_query_from_stdin(cli, server, run_args):
    server.enqueue(text("yes"))
    assert cli("run", *run_args, "-", input="is this on?").code == 0
    assert server.requests[0].body["messages"][-1]["content"] == "is this on?"


def test_no_query_is_a_usage_error(cli, server, run_args):
    result = cli("run", *run_args)
    assert result.code == 2
    assert "no query" in result.stderr and "Traceback" not in result.stderr
    assert server.requests == []


def test_no_stream_asks_for_the_whole_reply(cli, server, run_args):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"})), text("two"))
    result = cli("run", *run_args, "--no-stream", "-y", "1+1")
    assert result.code == 0, result.stderr
    assert result.stdout == "two\n"
    assert all(not r.body.get("stream") for r in server.requests)
    assert tool_messages(server.requests[1].body)[0]["content"] == "2"


def test_forced_tool_choice_applies_to_the_first_request_only(cli, server, run_args):
    server.enqueue(tool_calls(Call("calculator", {"expression": "3*3"})), text("9"))
    result = cli("run", *run_args, "-y", "--tool-choice", "calculator", "3*3")
    assert result.code == 0, result.stderr
    assert server.requests[0].body["tool_choice"] == {"type": "function", "function": {"name": "calculator"}}
    assert server.requests[1].body["tool_choice"] == "auto"


def test_unknown_tool_choice_is_a_usage_error(cli, server, run_args):
    result = cli("run", *run_args, "--tool-choice", "nope", "x")
    assert result.code == 2 and "nope" in result.stderr


def test_no_tools_sends_no_tools(cli, server, run_args):
    server.enqueue(text("plain"))
    assert cli("run", *run_args, "--no-tools", "x").code == 0
    assert "tools" not in server.requests[0].body


def test_max_steps_exit_3_and_every_call_answered(cli, server, run_args):
    for n in range(2):
        server.enqueue(tool_calls(Call("calculator", {"expression": f"{n}+1"}, id=f"c{n}")))
    result = cli("run", *run_args, "-y", "--max-steps", "2", "--json", "loop")
    assert result.code == 3
    assert "max-steps" in result.stderr
    out = json.loads(result.stdout)
    assert out["steps"] == 2
    assert [c["status"] for c in out["tool_calls"]] == ["ok", "cancelled"]
    assert len(server.requests) == 2


def test_bad_json_unknown_tool_and_invalid_arguments_go_back_to_the_model(cli, server, run_args):
    server.enqueue(tool_calls(Call("calculator", '{"expression": "1+', id="bad"),
                              Call("no_such_tool", {}, id="unknown"),
                              Call("calculator", {"expr": "1"}, id="invalid")),
                   text("sorry"))
    result = cli("run", *run_args, "-y", "x")
    assert result.code == 0, result.stderr
    answers = {m["tool_call_id"]: m["content"] for m in tool_messages(server.requests[1].body)}
    assert "not valid JSON" in answers["bad"]
    assert "unknown tool 'no_such_tool'" in answers["unknown"]
    assert "expression: Field required" in answers["invalid"]
    assert "expr: unexpected argument" in answers["invalid"]


def test_duplicate_keys_and_nan_are_rejected_before_running(cli, server, run_args):
    server.enqueue(tool_calls(Call("calculator", '{"expression": "1", "expression": "2"}', id="d"),
                              Call("calculator", '{"expression": NaN}', id="n")),
                   text("ok"))
    assert cli("run", *run_args, "-y", "x").code == 0
    answers = {m["tool_call_id"]: m["content"] for m in tool_messages(server.requests[1].body)}
    assert "duplicate key" in answers["d"]
    assert "NaN is not allowed" in answers["n"]


def test_parallel_calls_answered_in_the_models_order(cli, server, run_args):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"}, id="a"),
                              Call("current_time", {"timezone": "Mars/Base"}, id="b"),
                              Call("calculator", {"expression": "2*5"}, id="c")),
                   text("done"))
    assert cli("run", *run_args, "-y", "x").code == 0
    answers = tool_messages(server.requests[1].body)
    assert [m["tool_call_id"] for m in answers] == ["a", "b", "c"]
    assert answers[0]["content"] == "2" and answers[2]["content"] == "10"
    assert "unknown time zone" in answers[1]["content"]


def test_policy_deny_from_config(cli, server, run_args, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tools.policy]\ncalculator = "deny"\n')
    server.enqueue(tool_calls(Call("calculator", {"expression": "1"}, id="x")), text("ok"))
    assert cli("run", *run_args, "--config", str(cfg), "-y", "x").code == 0
    assert "disabled by policy" in tool_messages(server.requests[1].body)[0]["content"]


def test_policy_auto_runs_without_terminal(cli, server, run_args, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tools.policy]\ncalculator = "auto"\n')
    server.enqueue(tool_calls(Call("calculator", {"expression": "5*5"}, id="x")), text("25"))
    assert cli("run", *run_args, "--config", str(cfg), "x").code == 0
    assert tool_messages(server.requests[1].body)[0]["content"] == "25"


@pytest.mark.parametrize("quirks", [{"no_index"}, {"index_zero"}, {"whole"}, {"args_object"},
                                    {"no_id"}, {"empty_id"}, {"stop_finish"},
                                    {"null_content_first"}, {"index_zero", "whole"}])
def test_server_quirks_are_normalised(cli, server, run_args, quirks):
    server.enqueue(tool_calls(Call("calculator", {"expression": "2*21"}),
                              Call("calculator", {"expression": "10-3"}), quirks=quirks),
                   text("ok"))
    result = cli("run", *run_args, "-y", "x")
    assert result.code == 0, result.stderr
    second = server.requests[1].body
    calls = second["messages"][-3]["tool_calls"]
    ids = [c["id"] for c in calls]
    assert len(ids) == 2 and len(set(ids)) == 2 and all(ids)
    assert all(isinstance(c["function"]["arguments"], str) for c in calls)
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [{"expression": "2*21"},
                                                                      {"expression": "10-3"}]
    answers = tool_messages(second)
    assert [m["content"] for m in answers] == ["42", "7"]
    assert [m["tool_call_id"] for m in answers] == ids


def test_empty_arguments_for_a_tool_without_parameters(cli, server, run_args):
    server.enqueue(tool_calls(Call("current_time", "", id="t"), quirks={"empty_args"}), text("ok"))
    assert cli("run", *run_args, "-y", "x").code == 0
    content = tool_messages(server.requests[1].body)[0]["content"]
    assert content.endswith("+00:00") and content[:2] == "20"
    assert server.requests[1].body["messages"][-2]["tool_calls"][0]["function"]["arguments"] == "{}"


@pytest.mark.parametrize("field", ["parallel_tool_calls", "stream_options"])
def test_a_rejected_optional_field_is_dropped_and_the_request_retried(cli, server, run_args, tmp_path, field):
    cfg = tmp_path / "c.toml"
    cfg.write_text("parallel_tool_calls = true\n")
    server.reject_fields = {field}
    server.enqueue(text("fine"))
    result = cli("run", *run_args, "--config", str(cfg), "x")
    assert result.code == 0, result.stderr
    assert result.stdout == "fine\n"
    assert field not in server.requests[-1].body


def test_429_with_retry_after_then_success(cli, server, run_args):
    server.enqueue(error(429, "slow down", headers={"Retry-After": "0"}), text("made it"))
    started = time.monotonic()
    result = cli("run", *run_args, "x")
    assert result.code == 0, result.stderr
    assert result.stdout == "made it\n"
    assert len(server.requests) == 2
    assert time.monotonic() - started < 10


def test_insufficient_quota_is_not_retried(cli, server, run_args):
    server.enqueue(error(429, "You exceeded your current quota", code="insufficient_quota"))
    result = cli("run", *run_args, "x")
    assert result.code == 1
    assert "quota" in result.stderr and len(server.requests) == 1


def test_500_after_retries_is_exit_1_with_one_line(cli, server, run_args):
    for _ in range(3):
        server.enqueue(error(500, "boom", headers={"Retry-After": "0"}))
    result = cli("run", *run_args, "x")
    assert result.code == 1
    assert len(server.requests) == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "server error" in lines[0] and "500" in lines[0]
    assert "Traceback" not in result.stderr


def test_fallback_model_is_tried_once(cli, server, run_args, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('fallback_model = "small-model"\nmax_retries = 0\n')
    server.enqueue(error(503, "overloaded"), text("from fallback"))
    result = cli("run", *run_args, "--config", str(cfg), "x")
    assert result.code == 0, result.stderr
    assert [r.body["model"] for r in server.requests] == ["test-model", "small-model"]
    assert "fallback model small-model" in result.stderr


def test_401_is_exit_1_and_never_shows_the_key(cli, server, run_args):
    server.enqueue(error(401, "Incorrect API key provided: sk-secret-123", type="invalid_request_error"))
    result = cli("run", *run_args, "x", env={"OPENAI_API_KEY": "sk-secret-123"})
    assert result.code == 1
    assert "refused" in result.stderr
    assert "sk-secret-123" not in result.stderr + result.stdout
    assert server.requests[0].headers["Authorization"] == "Bearer sk-secret-123"


def test_a_dropped_stream_is_an_error_not_a_partial_answer(cli, server, run_args):
    server.enqueue(cut(3, text("This answer will never be finished, sorry.")))
    result = cli("run", *run_args, "--json", "x")
    assert result.code == 1
    out = json.loads(result.stdout)  # only the error object: no partial answer
    assert "answer" not in out and out["error"]["exit_code"] == 1
    assert "in the middle of the reply" in result.stderr


def test_unreachable_server_is_exit_1(cli, home):
    result = cli("run", "--base-url", "http://127.0.0.1:9/v1", "-m", "m", "x")
    assert result.code == 1
    assert "cannot reach" in result.stderr and "Traceback" not in result.stderr


def test_a_call_cut_by_the_token_limit_never_runs(cli, server, run_args):
    data = fixture_path("llamacpp-recorded", "tool-call-cut-by-length.sse").read_bytes()
    server.enqueue(raw_sse(data))
    result = cli("run", *run_args, "-y", "--json", "x")
    assert result.code == 1
    assert "cut off by the token limit" in result.stderr
    assert len(server.requests) == 1
    assert "calculator" in result.stderr


def test_recorded_llamacpp_tool_call_runs(cli, server, run_args):
    data = fixture_path("llamacpp-recorded", "tool-call-calculator.sse").read_bytes()
    server.enqueue(raw_sse(data), text("391"))
    result = cli("run", *run_args, "-y", "--json", "x")
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["tool_calls"][0]["result"] == "391"
    call_id = out["tool_calls"][0]["id"]
    assert len(call_id) == 32 and f'"id":"{call_id}"'.encode() in data  # the server's id, kept


def test_recorded_openai_text_answer(cli, server, run_args):
    data = fixture_path("openai-recorded", "text.sse").read_bytes()
    server.enqueue(raw_sse(data))
    result = cli("run", *run_args, "--json", "x")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["answer"].strip()


def test_recorded_openai_tool_call_for_a_plugin(cli, server, run_args, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "weather.py").write_text(
        "from agentcli import tool\n\n@tool\ndef get_weather(city: str) -> dict:\n"
        "    \"\"\"Weather.\"\"\"\n    return {'city': city, 'temp_c': 7}\n")
    data = fixture_path("openai-recorded", "tool-call-get_weather.sse").read_bytes()
    server.enqueue(raw_sse(data), text("7 degrees"))
    result = cli("run", *run_args, "--tools-dir", str(plugins), "-y", "x")
    assert result.code == 0, result.stderr
    assert tool_messages(server.requests[1].body)[0]["content"] == '{"city": "New York City", "temp_c": 7}'


def test_save_then_continue_a_session(cli, server, run_args, home):
    server.enqueue(text("first answer"), text("second answer"))
    first = cli("run", *run_args, "--save", "--json", "remember 7")
    session_id = json.loads(first.stdout)["session_id"]
    assert session_id
    files = list((home / "data" / "agentcli" / "sessions").glob("*.json"))
    assert [f.stem for f in files] == [session_id]
    second = cli("run", *run_args, "--session", session_id, "what number?")
    assert second.code == 0, second.stderr
    contents = [m["content"] for m in server.requests[1].body["messages"]]
    assert contents == ["remember 7", "first answer", "what number?"]
    saved = json.loads(files[0].read_text())
    assert saved["schema_version"] == 1 and len(saved["messages"]) == 4


def test_unknown_session_is_an_error(cli, server, run_args):
    result = cli("run", *run_args, "--session", "nope", "x")
    assert result.code == 2 and "no saved session 'nope'" in result.stderr


def test_corrupt_session_is_reported_and_left_untouched(cli, server, run_args, home):
    sessions = home / "data" / "agentcli" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "broken.json").write_text("{not json")
    result = cli("run", *run_args, "--session", "broken", "x")
    assert result.code == 1 and "corrupt" in result.stderr
    assert (sessions / "broken.json").read_text() == "{not json"


def test_ctrl_c_exits_130(home, server, run_args):
    server.enqueue(slow(5, text("late")))
    proc = subprocess.Popen([*AGENTCLI, "run", *run_args, "x"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert out == ""


def test_system_prompt_is_sent_first(cli, server, run_args):
    server.enqueue(text("ok"))
    assert cli("run", *run_args, "--system", "Be brief.", "x").code == 0
    assert server.requests[0].body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_verbose_shows_requests_but_never_the_key(cli, server, run_args):
    server.enqueue(error(500, "boom", headers={"Retry-After": "0"}),
                   tool_calls(Call("calculator", {"expression": "1+1"})), text("2"))
    result = cli("run", *run_args, "-v", "-y", "x", env={"OPENAI_API_KEY": "sk-verbose-secret"})
    assert result.code == 0, result.stderr
    assert "debug: request: POST" in result.stderr and "retry 1 of 2" in result.stderr
    assert "finish_reason=tool_calls" in result.stderr
    assert "sk-verbose-secret" not in result.stderr + result.stdout


def test_quiet_hides_tool_lines_but_not_errors(cli, server, run_args):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"})), text("2"))
    result = cli("run", *run_args, "-q", "-y", "x")
    assert (result.code, result.stdout, result.stderr) == (0, "2\n", "")
    result = cli("run", *run_args, "-q", "--session", "missing", "x")
    assert result.code == 2 and "no saved session" in result.stderr


def test_a_long_saved_session_is_trimmed_by_whole_turns(cli, server, run_args, home, tmp_path):
    sessions = home / "data" / "agentcli" / "sessions"
    sessions.mkdir(parents=True)
    old = [{"role": "user", "content": "old question " + "x" * 200},
           {"role": "assistant", "content": "", "tool_calls": [
               {"id": "c1", "name": "calculator", "arguments": '{"expression": "1+1"}'}]},
           {"role": "tool", "tool_call_id": "c1", "content": "2"},
           {"role": "assistant", "content": "two " + "y" * 200},
           {"role": "user", "content": "recent question"},
           {"role": "assistant", "content": "recent answer"}]
    (sessions / "long.json").write_text(json.dumps({"schema_version": 1, "id": "long", "messages": old}))
    cfg = tmp_path / "c.toml"
    cfg.write_text("context_window = 40\n")
    server.enqueue(text("ok"))
    result = cli("run", *run_args, "--config", str(cfg), "--no-tools", "--session", "long",
                 "new question")  # --no-tools: the tool schemas would not fit in 40 tokens
    assert result.code == 0, result.stderr
    assert "dropped the 4 oldest messages" in result.stderr
    sent = server.requests[0].body["messages"]
    assert [m["content"] for m in sent] == ["recent question", "recent answer", "new question"]
    assert all(m["role"] != "tool" for m in sent)


def test_a_stream_dropped_before_any_text_is_retried_and_the_tool_runs_once(cli, server, run_args, home):
    calls = tool_calls(Call("calculator", {"expression": "6*7"}, id="c1"), split=2)
    server.enqueue(cut(4, calls), calls, text("42"))
    result = cli("run", *run_args, "-y", "--json", "x")
    assert result.code == 0, result.stderr
    assert len(server.requests) == 3
    assert [c["result"] for c in json.loads(result.stdout)["tool_calls"]] == ["42"]
    audit = (home / "state" / "agentcli" / "audit.jsonl").read_text().splitlines()
    assert len(audit) == 1


def test_a_stream_dropped_after_text_was_shown_is_not_retried(cli, server, run_args):
    server.enqueue(cut(5, text("Partial words that were already printed")), text("never sent"))
    result = cli("run", *run_args, "x")
    assert result.code == 1 and len(server.requests) == 1
    assert "in the middle of the reply" in result.stderr


def test_context_length_exceeded_is_one_line_without_retry(cli, server, run_args):
    server.enqueue(error(400, "This model's maximum context length is 8192 tokens.",
                         code="context_length_exceeded"))
    result = cli("run", *run_args, "x")
    assert result.code == 1 and len(server.requests) == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "maximum context length" in result.stderr


def test_the_api_key_is_in_no_file_and_no_output(cli, server, run_args, home):
    key = "sk-proj-never-anywhere-12345"
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+2"})), text("3"))
    result = cli("run", *run_args, "-v", "-y", "--save", "--json", "x", env={"OPENAI_API_KEY": key})
    assert result.code == 0, result.stderr
    assert server.requests[0].headers["Authorization"] == f"Bearer {key}"
    written = [p.read_text() for p in home.rglob("*") if p.is_file()]
    assert written and all(key not in text for text in written)
    assert key not in result.stdout + result.stderr
