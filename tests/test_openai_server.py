"""Tests for the scripted OpenAI server, checked through the real ``openai`` SDK.

Every test talks to a real server on 127.0.0.1 over real sockets; nothing is
mocked and nothing leaves the machine.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionChunk
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall
from openai_server import (
    Call,
    OpenAIServer,
    Reply,
    cut,
    drip,
    error,
    fixture_path,
    json_reply,
    openai_server,  # noqa: F401 (fixture)
    raw_sse,
    slow,
    text,
    tool_calls,
)

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def client(openai_server: OpenAIServer) -> openai.OpenAI:
    """An SDK client pointed at the scripted server, without retries."""
    return openai.OpenAI(api_key="test", base_url=openai_server.base_url, max_retries=0)


def stream(client: openai.OpenAI, server: OpenAIServer, reply: Reply, **kwargs: Any) -> list[ChatCompletionChunk]:
    """Queue ``reply``, make one streamed request and return every chunk."""
    server.enqueue(reply)
    return list(client.chat.completions.create(model="test-model", messages=MESSAGES, stream=True, **kwargs))


def tool_deltas(chunks: list[ChatCompletionChunk]) -> list[ChoiceDeltaToolCall]:
    """Flatten the tool-call deltas of all chunks."""
    return [tc for chunk in chunks for choice in chunk.choices for tc in choice.delta.tool_calls or []]


def finish_reasons(chunks: list[ChatCompletionChunk]) -> list[str]:
    """Return the non-null finish reasons seen in the chunks."""
    return [c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason]


def reassemble(deltas: list[ChoiceDeltaToolCall]) -> dict[int, dict[str, str]]:
    """Merge tool-call deltas by index into {index: {id, name, arguments}}."""
    calls: dict[int, dict[str, str]] = {}
    for delta in deltas:
        call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
        call["id"] += delta.id or ""
        call["name"] += (delta.function and delta.function.name) or ""
        call["arguments"] += (delta.function and delta.function.arguments) or ""
    return calls


def post_raw(server: OpenAIServer, path: str, body: dict[str, Any]) -> tuple[str, bytes]:
    """POST JSON with urllib; return the Content-Type and the exact body bytes."""
    request = urllib.request.Request(
        server.base_url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Content-Type"], response.read()


# --------------------------------------------------------------------------- text


def test_streamed_text_reassembles(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """Streamed text arrives in 3-character fragments that join to the content."""
    chunks = stream(client, openai_server, text("Hello, world!"))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert "".join(pieces) == "Hello, world!"
    assert all(len(p) <= 3 for p in pieces)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].object == "chat.completion.chunk" and chunks[0].model == "test-model"
    assert len({c.id for c in chunks}) == 1
    assert finish_reasons(chunks) == ["stop"]
    assert all(c.usage is None for c in chunks)


def test_include_usage_adds_final_usage_chunk(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """include_usage adds a last chunk with no choices and the usage."""
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    chunks = stream(client, openai_server, text("ok", usage=usage), stream_options={"include_usage": True})
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 7
    assert finish_reasons(chunks[:-1]) == ["stop"]


def test_non_streamed_text_is_a_chat_completion(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """Without stream, the same builder answers with a chat.completion."""
    openai_server.enqueue(text("Hello, world!", finish_reason="length", model="other"))
    completion = client.chat.completions.create(model="test-model", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.model == "other"
    assert completion.choices[0].message.content == "Hello, world!"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.total_tokens > 0


# --------------------------------------------------------------------------- tool calls


def test_parallel_tool_calls_reassemble(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """Two parallel calls stream as header deltas plus argument fragments."""
    calls = Call("get_weather", {"city": "Paris"}, id="call_a"), Call("get_time", '{"tz":"CET"}', id="call_b")
    reply = tool_calls(*calls)
    chunks = stream(client, openai_server, reply)
    deltas = tool_deltas(chunks)
    assert reassemble(deltas) == {
        0: {"id": "call_a", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        1: {"id": "call_b", "name": "get_time", "arguments": '{"tz":"CET"}'},
    }
    headers = [d for d in deltas if d.id]
    assert [(d.index, d.type, d.function.arguments) for d in headers] == [(0, "function", ""), (1, "function", "")]
    fragments = [d for d in deltas if not d.id]
    assert all(d.function.name is None and d.type is None and len(d.function.arguments) <= 4 for d in fragments)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert finish_reasons(chunks) == ["tool_calls"]


def test_tool_calls_after_text(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """Content streamed before the calls reassembles too."""
    chunks = stream(client, openai_server, tool_calls(Call("ls", {}), content="Let me look."))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Let me look."
    assert reassemble(tool_deltas(chunks))[0]["arguments"] == "{}"


def test_non_streamed_tool_calls(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """Non-streamed tool calls carry full arguments and honour no_id."""
    openai_server.enqueue(tool_calls(Call("a", {"x": 1}, id="call_1"), Call("b"), quirks={"no_id"}))
    openai_server.enqueue(tool_calls(Call("a", {"x": 1}, id="call_1")))
    quirky = client.chat.completions.create(model="m", messages=MESSAGES).choices[0]
    plain = client.chat.completions.create(model="m", messages=MESSAGES).choices[0]
    assert [(c.id, c.function.name, c.function.arguments) for c in quirky.message.tool_calls] == [
        (None, "a", '{"x":1}'),
        (None, "b", "{}"),
    ]
    assert plain.message.tool_calls[0].id == "call_1" and plain.finish_reason == "tool_calls"


def test_quirk_no_index(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """no_index: tool-call deltas carry no index."""
    deltas = tool_deltas(stream(client, openai_server, tool_calls(Call("f", {"a": 1}), quirks={"no_index"})))
    assert len(deltas) > 1 and all(d.index is None for d in deltas)
    assert "".join(d.function.arguments for d in deltas) == '{"a":1}'


def test_quirk_index_zero(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """index_zero: all calls use index 0 and are told apart by id."""
    reply = tool_calls(Call("f", {"a": 1}, id="x1"), Call("g", {"b": 2}, id="x2"), quirks={"index_zero"})
    deltas = tool_deltas(stream(client, openai_server, reply))
    assert {d.index for d in deltas} == {0}
    assert [(d.id, d.function.name) for d in deltas if d.id] == [("x1", "f"), ("x2", "g")]


def test_quirk_whole(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """whole: each call arrives complete in one delta."""
    reply = tool_calls(Call("f", {"a": 1}, id="x1"), Call("g", {"b": 2}, id="x2"), quirks={"whole"})
    deltas = tool_deltas(stream(client, openai_server, reply))
    assert [(d.index, d.id, d.function.name, d.function.arguments) for d in deltas] == [
        (0, "x1", "f", '{"a":1}'),
        (1, "x2", "g", '{"b":2}'),
    ]


def test_quirk_args_object(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """args_object: arguments arrive as a JSON object in one delta."""
    deltas = tool_deltas(stream(client, openai_server, tool_calls(Call("f", '{"a": 1}'), quirks={"args_object"})))
    assert len(deltas) == 1
    assert deltas[0].function.arguments == {"a": 1}  # the SDK passes the object through untouched


@pytest.mark.parametrize(("quirk", "expected"), [("no_id", None), ("empty_id", "")])
def test_quirk_ids(client: openai.OpenAI, openai_server: OpenAIServer, quirk: str, expected: str | None) -> None:
    """no_id omits the call id; empty_id sends it as an empty string."""
    deltas = tool_deltas(stream(client, openai_server, tool_calls(Call("f", {"a": 1}, id="x1"), quirks={quirk})))
    assert deltas[0].function.name == "f"
    assert deltas[0].id == expected
    assert all(d.id is None for d in deltas[1:])


def test_quirk_stop_finish(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """stop_finish: tool calls end with finish_reason stop."""
    chunks = stream(client, openai_server, tool_calls(Call("f"), quirks={"stop_finish"}))
    assert finish_reasons(chunks) == ["stop"]
    assert tool_deltas(chunks)


def test_quirk_empty_args(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """empty_args: a single delta whose arguments are ""."""
    deltas = tool_deltas(stream(client, openai_server, tool_calls(Call("now"), quirks={"empty_args"})))
    assert [(d.function.name, d.function.arguments) for d in deltas] == [("now", "")]


def test_quirk_null_content_first(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """null_content_first: a role-only chunk with null content comes first."""
    chunks = stream(client, openai_server, tool_calls(Call("f"), quirks={"null_content_first"}))
    first = chunks[0].choices[0].delta
    assert (first.role, first.content, first.tool_calls) == ("assistant", None, None)
    assert chunks[1].choices[0].delta.tool_calls


def test_quirks_combine_ollama_style(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """Quirks combine: Ollama-like whole calls at index 0 without ids."""
    quirks = {"index_zero", "whole", "no_id", "stop_finish", "null_content_first"}
    chunks = stream(client, openai_server, tool_calls(Call("f", {"a": 1}), Call("g", {"b": 2}), quirks=quirks))
    deltas = tool_deltas(chunks)
    assert [(d.index, d.id, d.function.name, d.function.arguments) for d in deltas] == [
        (0, None, "f", '{"a":1}'),
        (0, None, "g", '{"b":2}'),
    ]
    assert finish_reasons(chunks) == ["stop"]


def test_unknown_quirk_is_refused() -> None:
    """A misspelt quirk fails at build time, not silently."""
    with pytest.raises(ValueError, match="unknown quirks"):
        tool_calls(Call("f"), quirks={"nope"})


# --------------------------------------------------------------------------- raw SSE


def test_raw_sse_replays_recorded_tool_call(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """A recorded OpenAI stream replays and the SDK reassembles its arguments."""
    data = fixture_path("openai-recorded", "tool-call-get_weather.sse").read_bytes()
    chunks = stream(client, openai_server, raw_sse(data), stream_options={"include_usage": True})
    deltas = tool_deltas(chunks)
    assert json.loads("".join(d.function.arguments for d in deltas)) == {"city": "New York City"}
    assert deltas[0].function.name == "get_weather"
    assert finish_reasons(chunks) == ["tool_calls"]


def test_raw_sse_is_byte_exact(openai_server: OpenAIServer) -> None:
    """raw_sse sends the recorded bytes unchanged."""
    data = fixture_path("openai-recorded", "tool-call-get_weather.sse").read_bytes()
    openai_server.enqueue(raw_sse(data))
    content_type, body = post_raw(openai_server, "/chat/completions", {"model": "m", "stream": True})
    assert content_type == "text/event-stream"
    assert body == data


# --------------------------------------------------------------------------- errors


def test_error_429_is_rate_limit(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """error(429) with Retry-After raises RateLimitError carrying the header."""
    openai_server.enqueue(error(429, "Slow down", type="requests", code="rate_limit_exceeded",
                                headers={"Retry-After": "0"}))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "0"
    assert caught.value.code == "rate_limit_exceeded" and "Slow down" in caught.value.message


def test_reject_fields_gives_400_and_keeps_queue(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """A rejected field gives a 400 naming it and consumes no reply."""
    openai_server.reject_fields = {"parallel_tool_calls"}
    openai_server.enqueue(text("kept"))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=MESSAGES, parallel_tool_calls=False)
    assert "Unrecognized request argument supplied: parallel_tool_calls" in caught.value.message
    assert caught.value.param == "parallel_tool_calls"
    assert openai_server.pending == 1
    reply = client.chat.completions.create(model="m", messages=MESSAGES)
    assert reply.choices[0].message.content == "kept"
    assert len(openai_server.requests) == 2  # the rejected request is recorded too


def test_empty_queue_is_a_500(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """A request with nothing queued fails loudly with a 500."""
    with pytest.raises(openai.InternalServerError, match="no scripted reply left"):
        client.chat.completions.create(model="m", messages=MESSAGES)


def test_responder_answers_when_the_queue_is_empty(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """Queued replies come first; then the responder sees each request and picks a reply."""
    openai_server.enqueue(text("queued"))
    openai_server.responder = lambda request: text(f"for {request.body['model']}")
    answers = [client.chat.completions.create(model=m, messages=MESSAGES).choices[0].message.content
               for m in ("a", "b")]
    assert answers == ["queued", "for b"]


def test_routes_and_model_extra_describe_the_server(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """Other paths answer with their JSON on GET and POST; /v1/models entries gain fields."""
    openai_server.routes["/props"] = {"n_ctx": 4096}
    openai_server.model_extra["max_model_len"] = 8192
    assert client.models.list().data[0].to_dict()["max_model_len"] == 8192
    with urllib.request.urlopen(openai_server.base_url.removesuffix("/v1") + "/props") as response:
        assert json.loads(response.read()) == {"n_ctx": 4096}
    openai_server.routes["/v1/show"] = {"shown": True}
    _, body = post_raw(openai_server, "/show", {"model": "m"})
    assert json.loads(body) == {"shown": True} and openai_server.requests == []


def test_json_reply_is_sent_as_is(openai_server: OpenAIServer) -> None:
    """json_reply sends arbitrary JSON; /v1/responses is recorded."""
    openai_server.enqueue(json_reply({"anything": [1, 2]}))
    content_type, body = post_raw(openai_server, "/responses", {"model": "m", "input": "hi"})
    assert content_type == "application/json" and json.loads(body) == {"anything": [1, 2]}
    assert openai_server.requests[0].path == "/v1/responses"


# --------------------------------------------------------------------------- cut, slow, drip


def test_cut_stream_raises_connection_error(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """A dropped stream yields what arrived, then raises APIConnectionError."""
    # Observed with openai 3.54 / httpx2: the SDK yields the chunks that
    # arrived, then RAISES openai.APIConnectionError ("Connection error.")
    # whose __cause__ is httpx2.RemoteProtocolError "peer closed connection
    # without sending complete message body (incomplete chunked read)".
    openai_server.enqueue(cut(3, text("Hello, world!")))
    got: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError) as caught:
        for chunk in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
            got.append(chunk)
    assert "incomplete chunked read" in str(caught.value.__cause__)
    assert [c.choices[0].delta.content for c in got] == ["", "Hel", "lo,"]
    assert finish_reasons(got) == []


def test_graceful_cut_ends_without_finish_reason(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """A graceful cut ends the iteration quietly, with no finish_reason."""
    # A body that ends properly but without [DONE] (or any finish_reason):
    # the SDK's iteration simply stops, no exception at all.
    reply = cut(4, tool_calls(Call("f", {"path": "/tmp"})), graceful=True)
    got = stream(client, openai_server, reply)
    assert len(got) == 4 and finish_reasons(got) == []
    assert reassemble(tool_deltas(got))[0]["arguments"] == '{"path":"/tm'


def test_slow_reply_times_out_and_stop_is_prompt(openai_server: OpenAIServer) -> None:
    """slow() trips the client timeout, and stop() does not wait for it."""
    client = openai.OpenAI(api_key="test", base_url=openai_server.base_url, max_retries=0, timeout=0.3)
    openai_server.enqueue(slow(30, text("late")))
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    started = time.monotonic()
    openai_server.stop()
    assert time.monotonic() - started < 2


def test_slow_reply_arrives(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """slow() delays the reply but still sends it."""
    started = time.monotonic()
    chunks = stream(client, openai_server, slow(0.2, text("ok")))
    assert time.monotonic() - started >= 0.2
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "ok"


def test_drip_spaces_events(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """drip() spaces the SSE events in time."""
    openai_server.enqueue(drip(0.05, text("abcdef", chunk_size=2)))
    arrivals = []
    for _ in client.chat.completions.create(model="m", messages=MESSAGES, stream=True):
        arrivals.append(time.monotonic())
    assert len(arrivals) == 5  # role, ab, cd, ef, finish (+ [DONE])
    assert all(later - earlier >= 0.03 for earlier, later in itertools.pairwise(arrivals))


def test_client_disconnect_mid_stream_is_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    """A client hanging up mid-stream leaves no error and no stderr output."""
    server = OpenAIServer().start()
    client = openai.OpenAI(api_key="test", base_url=server.base_url, max_retries=0)
    server.enqueue(drip(0.02, text("x" * 200, chunk_size=1)))
    response = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    next(iter(response))
    response.close()
    time.sleep(0.2)  # let the server write into the closed connection
    server.stop()
    assert server.errors == []
    assert capfd.readouterr().err == ""


# --------------------------------------------------------------------------- bookkeeping


def test_requests_are_recorded(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """Requests are recorded with path, headers and parsed body."""
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    stream(client, openai_server, text("a"), tools=tools)
    openai_server.enqueue(text("b"))
    client.chat.completions.create(model="other", messages=MESSAGES)
    first, second = openai_server.requests
    assert first.path == "/v1/chat/completions"
    assert first.body["stream"] is True and first.body["tools"] == tools and first.body["messages"] == MESSAGES
    assert first.headers["Authorization"] == "Bearer test" and first.headers["authorization"] == "Bearer test"
    assert second.body["model"] == "other" and "stream" not in second.body


def test_models_are_listed(client: openai.OpenAI, openai_server: OpenAIServer) -> None:
    """GET /v1/models lists server.models; unknown ids give a 404."""
    assert [m.id for m in client.models.list()] == ["test-model"]
    openai_server.models = ["a", "b"]
    assert [m.id for m in client.models.list()] == ["a", "b"]
    assert client.models.retrieve("b").id == "b"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("c")
    assert openai_server.requests == []


def test_text_reply_on_responses_path_explains_itself(openai_server: OpenAIServer) -> None:
    """A chat reply queued for /v1/responses answers 500 with the reason."""
    openai_server.enqueue(text("hi"))
    with pytest.raises(urllib.error.HTTPError) as caught:
        post_raw(openai_server, "/responses", {"model": "m", "input": "hi"})
    assert caught.value.code == 500
    assert "builds chat completions" in json.loads(caught.value.read())["error"]["message"]


def test_stop_leaves_no_threads() -> None:
    """stop() joins every thread the server started."""
    before = set(threading.enumerate())
    with OpenAIServer() as server:
        client = openai.OpenAI(api_key="test", base_url=server.base_url, max_retries=0)
        server.enqueue(text("one"), drip(0.01, text("two")))
        client.chat.completions.create(model="m", messages=MESSAGES)
        list(client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert set(threading.enumerate()) - before == set()
    server.stop()  # idempotent
