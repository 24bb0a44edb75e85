"""``run --schema``: answers that must match a JSON Schema, against servers that
honour the requested format, ignore it, or reject it."""

from __future__ import annotations

import json

import pytest
from openai_server import Call, json_reply, raw_sse, text, tool_calls
from test_responses import text_stream

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
SCHEMA = json.dumps(PERSON)


def test_the_format_is_asked_for_on_every_step_and_the_answer_printed(cli, server, run_args):
    server.enqueue(tool_calls(Call("calculator", {"expression": "6*7"}, id="c1")),
                   text('{"name": "Ada", "age": 42}'))
    result = cli("run", *run_args, "-y", "--schema", SCHEMA, "who?")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout) == {"name": "Ada", "age": 42}
    assert len(server.requests) == 2  # the tool ran first, as usual
    for request in server.requests:
        assert request.body["response_format"] == {
            "type": "json_schema", "json_schema": {"name": "answer", "schema": PERSON}}


def test_json_output_gains_data(cli, server, run_args, tmp_path):
    path = tmp_path / "person.json"
    path.write_text(SCHEMA)
    server.enqueue(text('```json\n{"name": "Ada", "age": 42}\n```'))
    result = cli("run", *run_args, "--json", "--schema", str(path), "who?")
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["data"] == {"name": "Ada", "age": 42}
    assert out["answer"].startswith("```json")


def test_a_server_that_ignores_the_format_gets_one_repair_turn(cli, server, run_args):
    server.enqueue(text("Ada is 42 years old."), text('{"name": "Ada", "age": 42}'))
    result = cli("run", *run_args, "--json", "--schema", SCHEMA, "who?")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["data"] == {"name": "Ada", "age": 42}
    repair = server.requests[1].body["messages"][-1]
    assert repair["role"] == "user" and "not valid JSON" in repair["content"]


def test_still_invalid_after_the_repair_exits_4_with_the_errors(cli, server, run_args):
    server.enqueue(text('{"name": "Ada", "age": "old"}'), text('{"name": 7}'))
    result = cli("run", *run_args, "--schema", SCHEMA, "who?")
    assert result.code == 4
    assert result.stdout == ""
    assert "'age' is a required property" in result.stderr
    assert "7 is not of type 'string'" in result.stderr
    assert "Traceback" not in result.stderr
    quoted = server.requests[1].body["messages"][-1]["content"]
    assert "at /age: 'old' is not of type 'integer'" in quoted


def test_still_invalid_with_json_prints_one_object_with_the_error(cli, server, run_args):
    server.enqueue(text("no"), text("still no"))
    result = cli("run", *run_args, "--json", "--schema", SCHEMA, "who?")
    assert result.code == 4
    out = json.loads(result.stdout)
    assert out["data"] is None and out["answer"] == "still no"
    assert out["error"]["exit_code"] == 4


def test_a_server_that_rejects_the_field_has_it_dropped_and_remembered(cli, server, run_args):
    server.reject_fields = {"response_format"}
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"}, id="c1")),
                   text('{"name": "Bo", "age": 2}'))
    result = cli("run", *run_args, "-y", "--schema", SCHEMA, "who?")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout) == {"name": "Bo", "age": 2}
    sent = ["response_format" in r.body for r in server.requests]
    assert sent == [True, False, False]  # rejected once, then never sent again


def test_an_unsupported_format_message_also_drops_it(cli, server, run_args):
    server.enqueue(json_reply({"error": {"message": "response_format json_schema is not supported "
                                         "by this model", "type": "invalid_request_error"}}, 400),
                   text('{"name": "Bo", "age": 2}'))
    result = cli("run", *run_args, "--schema", SCHEMA, "who?")
    assert result.code == 0, result.stderr
    assert "response_format" not in server.requests[1].body


def test_an_answer_nested_too_deeply_is_a_mismatch_not_a_crash(cli, server, run_args):
    deep = "[" * 5000 + "]" * 5000
    server.enqueue(text(deep, chunk_size=5000), text("[" + "9" * 5000 + "]", chunk_size=5000))
    result = cli("run", *run_args, "--schema", '{"type": "array"}', "x")
    assert result.code == 4
    assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr
    assert "cannot be read as JSON" in result.stderr


@pytest.mark.parametrize("schema, message", [
    ('{"type": 5}', "not a valid JSON Schema"),
    ('{"type": ', "not valid JSON"),
    ("missing.json", "cannot read"),
    ('{"$ref": "#"}', "refers to itself"),
    ('{"allOf": ' * 200 + "{}" + "}" * 200, "nested deeper"),
    ('{"properties": {"a": {"$ref": "https://example.com/a.json"}}}', "only references inside"),
    ('{"maximum": ' + "9" * 5000 + "}", "cannot be read as JSON"),
])
def test_an_invalid_schema_is_a_usage_error_before_any_request(cli, server, run_args, schema, message):
    result = cli("run", *run_args, "--schema", schema, "who?")
    assert result.code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert server.requests == []


@pytest.fixture
def responses_args(run_args, tmp_path):
    cfg = tmp_path / "responses.toml"
    cfg.write_text('api = "responses"\n')
    return [*run_args, "--config", str(cfg)]


def test_responses_api_carries_text_format_and_drops_it_when_rejected(cli, server, responses_args):
    server.reject_fields = {"text"}
    server.enqueue(raw_sse(text_stream('{"name": "Cy", "age": 3}')))
    result = cli("run", *responses_args, "--schema", SCHEMA, "who?")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout) == {"name": "Cy", "age": 3}
    first, second = (r.body for r in server.requests)
    assert first["text"] == {"format": {"type": "json_schema", "name": "answer", "schema": PERSON}}
    assert "text" not in second

