"""The Responses API as the wire protocol (``api = "responses"``), end to end."""

from __future__ import annotations

import json

import pytest
from openai_server import json_reply, raw_sse


def sse(*events: dict) -> bytes:
    out = b""
    for n, event in enumerate(events):
        event = {"sequence_number": n, **event}
        out += f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
    return out


def response(status="completed", output=(), usage=None, incomplete=None) -> dict:
    return {"id": "resp_1", "object": "response", "created_at": 1, "model": "test-model",
            "status": status, "output": list(output), "parallel_tool_calls": True,
            "tool_choice": "auto", "tools": [], "incomplete_details": incomplete,
            "usage": usage or {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8,
                               "input_tokens_details": {"cached_tokens": 0},
                               "output_tokens_details": {"reasoning_tokens": 0}}}


def text_stream(text: str) -> bytes:
    item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []}
    deltas = [{"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0,
               "content_index": 0, "delta": text[i:i + 4], "logprobs": []} for i in range(0, len(text), 4)]
    done = {**item, "status": "completed", "content": [{"type": "output_text", "text": text, "annotations": []}]}
    return sse({"type": "response.created", "response": response("in_progress")},
               {"type": "response.output_item.added", "output_index": 0, "item": item},
               *deltas,
               {"type": "response.completed", "response": response(output=[done])})


def call_stream(name: str, arguments: str, call_id: str = "call_r1", status: str = "completed",
                incomplete=None) -> bytes:
    item = {"type": "function_call", "id": "fc_1", "call_id": call_id, "name": name,
            "arguments": "", "status": "in_progress"}
    deltas = [{"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 0,
               "delta": arguments[i:i + 3]} for i in range(0, len(arguments), 3)]
    final = "response.completed" if status == "completed" else "response.incomplete"
    return sse({"type": "response.created", "response": response("in_progress")},
               {"type": "response.output_item.added", "output_index": 0, "item": item},
               *deltas,
               {"type": final, "response": response(status, incomplete=incomplete)})


@pytest.fixture
def responses_args(run_args, tmp_path):
    cfg = tmp_path / "responses.toml"
    cfg.write_text('api = "responses"\n')
    return [*run_args, "--config", str(cfg)]


def test_tool_call_and_answer_over_the_responses_api(cli, server, responses_args):
    server.enqueue(raw_sse(call_stream("calculator", '{"expression": "6*7"}')),
                   raw_sse(text_stream("It is 42.")))
    result = cli("run", *responses_args, "-y", "--json", "6*7?")
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["answer"] == "It is 42." and out["tool_calls"][0]["result"] == "42"
    assert out["usage"] == {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}
    first, second = (r.body for r in server.requests)
    assert all(r.path == "/v1/responses" for r in server.requests)
    assert first["input"] == [{"role": "user", "content": "6*7?"}]
    calc = next(t for t in first["tools"] if t["name"] == "calculator")
    assert calc["type"] == "function" and calc["parameters"]["required"] == ["expression"]
    assert second["input"][1:] == [
        {"type": "function_call", "call_id": "call_r1", "name": "calculator",
         "arguments": '{"expression": "6*7"}'},
        {"type": "function_call_output", "call_id": "call_r1", "output": "42"}]


def test_named_tool_choice_is_translated(cli, server, responses_args):
    server.enqueue(raw_sse(text_stream("ok")))
    assert cli("run", *responses_args, "--tool-choice", "calculator", "x").code == 0
    assert server.requests[0].body["tool_choice"] == {"type": "function", "name": "calculator"}


def test_call_cut_by_max_output_tokens_never_runs(cli, server, responses_args):
    server.enqueue(raw_sse(call_stream("calculator", '{"expression": "17*', status="incomplete",
                                       incomplete={"reason": "max_output_tokens"})))
    result = cli("run", *responses_args, "-y", "x")
    assert result.code == 1 and "cut off by the token limit" in result.stderr


def test_no_stream_over_the_responses_api(cli, server, responses_args):
    done = {"type": "message", "id": "m", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "whole answer", "annotations": []}]}
    server.enqueue(json_reply(response(output=[done])))
    result = cli("run", *responses_args, "--no-stream", "x")
    assert (result.code, result.stdout) == (0, "whole answer\n")
    assert not server.requests[0].body.get("stream")


def test_failed_response_is_an_error(cli, server, responses_args):
    failed = response("failed")
    failed["error"] = {"code": "server_error", "message": "the model crashed"}
    server.enqueue(raw_sse(sse({"type": "response.failed", "response": failed})))
    result = cli("run", *responses_args, "x")
    assert result.code == 1 and "the model crashed" in result.stderr


def test_a_key_that_cannot_be_sent_is_warned_about_once(cli, server, run_args, tmp_path):
    cfg = tmp_path / "r.toml"
    cfg.write_text('api = "responses"\nseed = 7\nmax_tokens = 50\n')
    server.enqueue(raw_sse(call_stream("calculator", '{"expression": "6*7"}')),
                   raw_sse(text_stream("42")))
    result = cli("run", *run_args, "--config", str(cfg), "-y", "x")
    assert result.code == 0, result.stderr
    assert result.stderr.count("seed cannot be sent") == 1
    bodies = [r.body for r in server.requests]
    assert len(bodies) == 2
    assert all("seed" not in b and b["max_output_tokens"] == 50 for b in bodies)
