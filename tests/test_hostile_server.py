"""A model server that misbehaves: garbage headers, malformed chunks, repeated
call ids, a stream cut mid-answer. The provider talks to the scripted server
through the real openai SDK; the user-facing outcome is checked through the
real command. Waits are recorded instead of slept where the test only needs
to know how long agentcli would wait."""

from __future__ import annotations

import json
import warnings

import pytest
from openai_server import Call, OpenAIServer, cut, error, json_reply, raw_sse, text, tool_calls

from agentcli.config import Settings
from agentcli.errors import MalformedReply
from agentcli.providers import ChatProvider, ResponsesProvider
from agentcli.providers.base import MAX_RETRY_AFTER

HEAD = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "test-model"}
STOP = HEAD | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def chunks(*items: object) -> bytes:
    """Raw SSE: each item as one ``data:`` event (JSON unless already bytes), then [DONE]."""
    events = [item if isinstance(item, bytes) else json.dumps(item).encode() for item in items]
    return b"".join(b"data: " + e + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def delta(**fields: object) -> dict:
    return HEAD | {"choices": [{"index": 0, "delta": fields, "finish_reason": None}]}


def completion(message: object, **extra: object) -> dict:
    return {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "test-model",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], **extra}


class Recorder:
    """A provider on the scripted server that records its notices and waits."""

    def __init__(self, server: OpenAIServer, kind: type[ChatProvider] = ChatProvider,
                 retries: int = 0, api: str = "chat") -> None:
        self.notices: list[str] = []
        self.waits: list[float] = []
        settings = Settings(base_url=server.base_url, model="test-model", max_retries=retries,
                            api=api)
        self.provider = kind(settings, None, notice=self.notices.append, sleep=self.waits.append)
        self.shown: list[str] = []

    def ask(self, stream: bool = True):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a pydantic warning fails the test
            return self.provider.complete([{"role": "user", "content": "x"}], [], stream=stream,
                                          on_text=self.shown.append)


# ----------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "-5", "soon", "0x10",
                                   "Mon, 01 Jan 1990 00:00:00 GMT", "Fri, 31 Dec 99999 23:59:59 GMT"])
def test_a_retry_after_that_is_garbage_is_treated_as_absent(server, value):
    server.enqueue(error(429, "slow down", headers={"Retry-After": value}), text("made it"))
    recorder = Recorder(server, retries=1)
    assert recorder.ask().content == "made it"
    assert len(recorder.waits) == 1 and 0.3 <= recorder.waits[0] <= 0.7  # the first backoff


@pytest.mark.parametrize("value, wait", [("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
                                         ("1e9", MAX_RETRY_AFTER), ("8", 8.0)])
def test_a_long_wait_is_capped_and_announced_a_short_one_is_not(server, value, wait):
    server.enqueue(error(429, "slow down", headers={"Retry-After": "1"}),
                   error(429, "slow down", headers={"Retry-After": value}), text("made it"))
    recorder = Recorder(server, retries=2)
    assert recorder.ask().content == "made it"
    assert recorder.waits == [1.0, wait]
    assert recorder.notices == [f"rate limited by {server.base_url} (429): slow down; "
                                f"retrying in {wait:.0f} s (retry 2 of 2)"]


def test_run_says_on_stderr_that_it_waits(cli, server, run_args, tmp_path):
    server.enqueue(error(503, "busy", headers={"Retry-After": "4"}), text("made it"))
    result = cli("run", *run_args, "--no-tools", "x")
    assert result.code == 0 and result.stdout == "made it\n"
    assert f"agentcli: server error from {server.base_url} (503): busy; retrying in 4 s " \
           "(retry 1 of 2)" in result.stderr


# ----------------------------------------------------------------------- malformed replies

MALFORMED_CHUNKS = {
    "numeric content": (delta(content=5), "choices[0].delta.content is a whole number, not text"),
    "string delta": (HEAD | {"choices": [{"index": 0, "delta": "hi"}]},
                     "choices[0].delta is text, not an object"),
    "choices not a list": (HEAD | {"choices": "abc"}, "choices is text, not a list"),
    "choice not an object": (HEAD | {"choices": [7]}, "choices[0] is a whole number, not an object"),
    "tool_calls not a list": (delta(tool_calls={"index": 0}),
                              "choices[0].delta.tool_calls is an object, not a list"),
    "function not an object": (delta(tool_calls=[{"index": 0, "function": "f"}]),
                               "choices[0].delta.tool_calls[0].function is text, not an object"),
    "numeric name": (delta(tool_calls=[{"index": 0, "id": "c", "function": {"name": 3}}]),
                     "choices[0].delta.tool_calls[0].function.name is a whole number, not text"),
    "index as a word": (delta(tool_calls=[{"index": "first", "function": {"name": "f"}}]),
                      "choices[0].delta.tool_calls[0].index is text, not a whole number"),
    "finish_reason not text": (HEAD | {"choices": [{"index": 0, "delta": {}, "finish_reason": 1}]},
                               "choices[0].finish_reason is a whole number, not text"),
    "usage not an object": (HEAD | {"choices": [], "usage": "lots"},
                            "usage is text, not an object"),
    "chunk is a number": (b"5", "a chunk is a whole number, not an object"),
    "chunk is a list": (b"[1, 2]", "a chunk is a list, not an object"),
    "chunk is null": (b"null", "a chunk is null"),
    "chunk is not JSON": (b"{not json", "a chunk is not valid JSON"),
}


@pytest.mark.parametrize("name", MALFORMED_CHUNKS)
def test_a_malformed_chunk_is_reported_as_such_without_warnings(server, name):
    chunk, hint = MALFORMED_CHUNKS[name]
    server.enqueue(raw_sse(chunks(chunk, STOP)))
    with pytest.raises(MalformedReply) as caught:
        Recorder(server).ask()
    assert f"{server.base_url} sent a malformed reply (" in str(caught.value)
    assert hint in str(caught.value)


MALFORMED_COMPLETIONS = {
    "numeric content": (completion({"role": "assistant", "content": 7}),
                        "choices[0].message.content is a whole number, not text"),
    "message is text": (completion("hi"), "choices[0].message is text, not an object"),
    "choices an object": ({"id": "x", "choices": {"0": {}}}, "choices is an object, not a list"),
    "tool_calls an object": (completion({"role": "assistant", "tool_calls": {"id": "c"}}),
                             "choices[0].message.tool_calls is an object, not a list"),
    "usage numbers as text": (completion({"role": "assistant", "content": "hi"},
                                         usage={"prompt_tokens": "many"}),
                              "usage.prompt_tokens is text, not a whole number"),
    "reply is a list": ([1], "the reply is a list, not an object"),
}


@pytest.mark.parametrize("name", MALFORMED_COMPLETIONS)
def test_a_malformed_whole_reply_is_reported_as_such_without_warnings(server, name):
    body, hint = MALFORMED_COMPLETIONS[name]
    server.enqueue(json_reply(body))
    with pytest.raises(MalformedReply) as caught:
        Recorder(server).ask(stream=False)
    assert hint in str(caught.value)


def test_a_malformed_responses_event_is_reported_as_such(server):
    event = {"type": "response.output_text.delta", "output_index": 0, "delta": 5}
    server.enqueue(raw_sse(b"event: x\ndata: " + json.dumps(event).encode() + b"\n\n"))
    with pytest.raises(MalformedReply, match=r"delta is a whole number, not text"):
        Recorder(server, ResponsesProvider, api="responses").ask()


def test_a_malformed_reply_before_any_text_is_retried(server):
    server.enqueue(raw_sse(chunks(delta(content=5), STOP)), text("fine"))
    recorder = Recorder(server, retries=1)
    assert recorder.ask().content == "fine" and len(server.requests) == 2


def test_a_malformed_chunk_after_text_was_shown_is_not_retried(server):
    server.enqueue(raw_sse(chunks(delta(role="assistant", content="Hello"), delta(content=5),
                                  STOP)), text("never sent"))
    recorder = Recorder(server, retries=2)
    with pytest.raises(MalformedReply, match="sent a malformed reply"):
        recorder.ask()
    assert recorder.shown == ["Hello"] and len(server.requests) == 1


def test_run_reports_a_malformed_reply_in_one_line_without_warnings(cli, server, run_args):
    for _ in range(3):  # the first try and both retries
        server.enqueue(raw_sse(chunks(delta(content=5), STOP)))
    result = cli("run", *run_args, "--no-tools", "x")
    assert result.code == 1 and result.stdout == "" and len(server.requests) == 3
    assert result.stderr == (f"agentcli: error: {server.base_url} sent a malformed reply "
                             "(choices[0].delta.content is a whole number, not text)\n")


# ----------------------------------------------------------------------- repeated call ids


@pytest.mark.parametrize("stream", [True, False])
def test_two_calls_sharing_an_id_stay_two_calls_each_answered_once(cli, server, run_args, stream):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"}, id="dup"),
                              Call("calculator", {"expression": "2+2"}, id="dup")), text("2 and 4"))
    result = cli("run", *run_args, "-y", "--json", *([] if stream else ["--no-stream"]), "x")
    assert result.code == 0, result.stderr
    calls = json.loads(result.stdout)["tool_calls"]
    assert [(c["name"], c["result"], c["status"]) for c in calls] == [
        ("calculator", "2", "ok"), ("calculator", "4", "ok")]
    ids = [c["id"] for c in calls]
    assert ids[0] == "dup" and ids[1] != "dup"
    sent = server.requests[1].body["messages"]
    assert [c["id"] for c in sent[-3]["tool_calls"]] == ids
    assert [m["tool_call_id"] for m in sent[-2:]] == ids


# ----------------------------------------------------------------------- cut mid-answer


def test_a_stream_cut_mid_answer_leaves_an_ended_line_and_says_it_is_incomplete(cli, server,
                                                                                run_args):
    answer = "This answer will never be finished, sorry."
    server.enqueue(cut(5, text(answer)), cut(5, text(answer)))
    result = cli("run", *run_args, "--no-tools", "x")
    assert result.code == 1
    assert result.stdout.endswith("\n") and answer.startswith(result.stdout[:-1])
    assert "in the middle of the reply" in result.stderr
    assert "the text above is incomplete" in result.stderr and "discarded" not in result.stderr
    as_json = cli("run", *run_args, "--no-tools", "--json", "x")
    out = json.loads(as_json.stdout)  # the error object, never claimed as a complete answer
    assert as_json.code == 1 and "answer" not in out and out["error"]["exit_code"] == 1
    assert "text above" not in as_json.stderr


# ----------------------------------------------------------------------- huge error messages

@pytest.mark.parametrize("kind", [ChatProvider, ResponsesProvider])
def test_a_huge_error_message_from_the_server_is_cut(server, kind):
    from agentcli.errors import ModelError

    server.enqueue(error(400, "no\x1b[2J" + "y" * 300_000))
    with pytest.raises(ModelError) as caught:
        Recorder(server, kind, api="responses" if kind is ResponsesProvider else "chat").ask()
    message = str(caught.value)
    assert len(message) < 1_300 and "no\x1b[2J" in message
    assert message.endswith("… (299,006 more characters)")


# ----------------------------------------------------------------------- replies that never end


@pytest.fixture
def small_reply_limit(monkeypatch):
    """A reply may bring at most 100 characters (4,000,000 in use), so a server that
    would never stop is played by one that sends a little more."""
    from agentcli.providers import assemble, base

    for module in (assemble, base):
        monkeypatch.setattr(module, "MAX_REPLY_CHARS", 100)


@pytest.mark.parametrize(("reply", "stream"), [
    (text("x" * 300), True),                                                    # text
    (tool_calls(Call("calculator", {"expression": "1+" * 150 + "1"})), True),   # arguments
    (tool_calls(Call("calculator", {"expression": "1+" * 150 + "1"})), False),  # whole reply
], ids=["text", "arguments", "whole"])
def test_a_reply_that_never_ends_is_stopped_once_and_not_asked_again(server, small_reply_limit,
                                                                     reply, stream):
    from agentcli.errors import ModelError

    server.enqueue(reply, text("never sent"))
    recorder = Recorder(server, retries=2)
    with pytest.raises(ModelError, match="sent more than 100 characters in one reply"):
        recorder.ask(stream=stream)
    assert len(server.requests) == 1
    assert sum(map(len, recorder.shown)) <= 100


@pytest.mark.parametrize("body", [
    [{"type": "response.output_text.delta", "output_index": 0, "delta": "y" * 40}] * 8,
    [{"type": "response.output_item.added", "output_index": 0,
      "item": {"type": "function_call", "call_id": "c1", "name": "calculator", "arguments": ""}},
     *[{"type": "response.function_call_arguments.delta", "output_index": 0, "delta": "1+" * 20}] * 8],
], ids=["text", "arguments"])
def test_a_responses_stream_that_never_ends_is_stopped(server, small_reply_limit, body):
    from agentcli.errors import ModelError

    events = b"".join(b"event: x\ndata: " + json.dumps(e).encode() + b"\n\n" for e in body)
    server.enqueue(raw_sse(events))
    with pytest.raises(ModelError, match="sent more than 100 characters in one reply"):
        Recorder(server, ResponsesProvider, api="responses").ask()


@pytest.fixture
def few_reply_events(monkeypatch):
    """A reply may bring at most 50 events (1,000,000 in use)."""
    from agentcli.providers import assemble, base

    for module in (assemble, base):
        monkeypatch.setattr(module, "MAX_REPLY_EVENTS", 50)


@pytest.mark.parametrize("kind", ["chat", "responses"])
def test_a_stream_of_empty_events_that_never_ends_is_stopped(server, few_reply_events, kind):
    # nothing in them counts toward the characters' bound: the events themselves are counted
    from agentcli.errors import ModelError

    if kind == "chat":
        events = [delta()] * 200
        provider: type[ChatProvider] = ChatProvider
    else:
        events = [{"type": "response.in_progress", "sequence_number": n} for n in range(200)]
        provider = ResponsesProvider
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    server.enqueue(raw_sse(body), text("never sent"))
    with pytest.raises(ModelError, match="sent more than 50 events in one reply"):
        Recorder(server, provider, retries=2, api=kind).ask()
    assert len(server.requests) == 1
