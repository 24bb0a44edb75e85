"""The Realtime API as the wire protocol (``api = "realtime"``): the real openai
SDK's realtime client against a scripted WebSocket server on 127.0.0.1."""

from __future__ import annotations

import copy
import gc
import json
import sys
import time
from pathlib import Path

import pytest
from conftest import free_port
from realtime_server import (
    DROP,
    SILENCE,
    RealtimeServer,
    call_response,
    created,
    cut_call_response,
    done,
    error_event,
    text_events,
    text_response,
)
from test_chat import QUESTION, Chat

from agentcli.agent import Agent
from agentcli.config import Settings
from agentcli.conversation import Conversation
from agentcli.errors import (
    AuthError,
    ConfigError,
    MalformedReply,
    ModelConnectionError,
    ModelError,
    ModelTimeout,
    StreamError,
    TruncatedReply,
)
from agentcli.events import Decision
from agentcli.providers import provider_class
from agentcli.providers.realtime import RealtimeProvider
from agentcli.tools.builtins import builtin_tools
from agentcli.tools.registry import ToolRegistry

MODEL = "gpt-realtime"
CALC = [{"type": "function", "function": {
    "name": "calculator", "description": "Evaluate arithmetic.",
    "parameters": {"type": "object", "properties": {"expression": {"type": "string"}},
                   "required": ["expression"]}}}]


@pytest.fixture(scope="module")
def rt_server():
    server = RealtimeServer().start()
    yield server
    server.stop()


@pytest.fixture
def rt(rt_server: RealtimeServer) -> RealtimeServer:
    rt_server.reset()
    return rt_server


@pytest.fixture
def rt_args(rt: RealtimeServer, tmp_path: Path) -> list[str]:
    config = tmp_path / "realtime.toml"
    config.write_text('api = "realtime"\nmax_retries = 0\n')
    return ["--config", str(config), "--base-url", rt.base_url, "-m", MODEL]


def provider(base_url: str, **settings) -> RealtimeProvider:
    options = {"base_url": base_url, "model": MODEL, "max_retries": 1, **settings}
    return RealtimeProvider(Settings(**options), "sk-test", sleep=lambda _: None)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


# --- end to end: the real command --------------------------------------------------------

def test_text_answer_streams_over_the_realtime_api(cli, rt, rt_args):
    rt.enqueue(text_response("Hello there, how can I help?"))
    result = cli("run", *rt_args, "--system", "Be brief.", "hi",
                 env={"OPENAI_API_KEY": "sk-realtime-key"})
    assert (result.code, result.stdout) == (0, "Hello there, how can I help?\n"), result.stderr
    assert rt.connections == [(f"/v1/realtime?model={MODEL}", "Bearer sk-realtime-key")]
    session = rt.sent("session.update")[0]["session"]
    assert session["output_modalities"] == ["text"] and session["instructions"] == "Be brief."
    assert [t["name"] for t in session["tools"]][:2] == ["calculator", "current_time"]
    assert all(t["type"] == "function" and "parameters" in t for t in session["tools"])
    calc = session["tools"][0]
    assert calc["parameters"]["required"] == ["expression"] and calc["description"]
    assert "function" not in calc  # flattened, as the Realtime API wants it
    assert [e["item"] for e in rt.sent("conversation.item.create")] == [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]
    assert len(rt.sent("response.create")) == 1


def test_tool_call_round_trip_on_one_connection(cli, rt, rt_args):
    rt.enqueue(call_response(("calculator", '{"expression": "6*7"}', "call_rt1")),
               text_response("It is 42.", usage=(30, 4)))
    result = cli("run", *rt_args, "--yes", "--json", "what is 6*7?")
    assert result.code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["answer"] == "It is 42." and out["steps"] == 2
    assert [(c["name"], c["result"]) for c in out["tool_calls"]] == [("calculator", "42")]
    assert out["usage"] == {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62}
    # one connection for the run; the second step sends only what is new
    assert len(rt.connections) == 1
    assert [e["item"]["type"] for e in rt.sent("conversation.item.create")] == [
        "message", "function_call_output"]
    assert rt.sent("conversation.item.create")[1]["item"] == {
        "type": "function_call_output", "call_id": "call_rt1", "output": "42"}
    assert len(rt.sent("session.update")) == 1 and len(rt.sent("response.create")) == 2


def test_an_error_event_is_one_line_with_the_servers_message(cli, rt, rt_args):
    rt.enqueue([error_event("The model gpt-nope does not exist or you lack access.")])
    result = cli("run", *rt_args, "hi")
    assert result.code == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "gpt-nope does not exist" in lines[0]
    assert lines[0].startswith("agentcli: error:")


@pytest.mark.slow
def test_a_call_cut_by_max_tokens_never_runs(cli, rt, rt_args):
    rt.enqueue(cut_call_response("calculator", '{"expression": "17*'))
    result = cli("run", *rt_args, "--yes", "--json", "17*23?")
    assert result.code == 1
    assert "cut off by the token limit in the middle of a call to 'calculator'" in result.stderr
    assert "that call was not run" in result.stderr
    assert len(rt.sent("response.create")) == 1  # nothing was run or sent back


@pytest.mark.slow
def test_socket_dropped_after_text_shown_is_one_clear_error(cli, rt, rt_args):
    rid = "resp_drop"
    rt.enqueue([created(rid), *text_events(rid, 0, "The answer is", size=13)[:3], DROP])
    result = cli("run", *rt_args, "x")
    assert result.code == 1
    assert result.stdout.startswith("The answer is")
    error = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error) == 1 and "closed the realtime connection in the middle of the reply" in error[0]
    assert "Traceback" not in result.stderr


def test_chat_asks_approval_and_keeps_one_connection(home, rt, tmp_path):
    config = tmp_path / "realtime.toml"
    config.write_text('api = "realtime"\n')
    rt.enqueue(call_response(("calculator", '{"expression": "17*23"}', "call_c1")),
               text_response("391!"), text_response("782!"))
    session = Chat(rt, "--config", str(config))
    try:
        session.prompt()
        session.say("what is 17*23")
        session.expect(QUESTION)
        session.key("y")
        session.expect("391!")
        session.prompt()
        session.say("and twice that?")
        session.expect("782!")
        session.prompt()
        assert session.exit() == 0
    finally:
        if session.child.isalive():
            session.child.terminate(force=True)
    assert "Traceback" not in session.screen
    assert len(rt.connections) == 1
    items = [e["item"] for e in rt.sent("conversation.item.create")]
    assert items[1] == {"type": "function_call_output", "call_id": "call_c1", "output": "391"}
    assert items[2]["content"][0]["text"] == "and twice that?" and len(items) == 3


# --- the provider in process -------------------------------------------------------------

def test_two_parallel_calls_with_interleaved_arguments(rt):
    rt.enqueue(call_response(("calculator", '{"expression": "1+2"}', "call_a"),
                             ("current_time", '{"timezone": "UTC"}', "call_b"),
                             interleave=True))
    reply = provider(rt.base_url).complete(user("both"), CALC)
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_a", "calculator", '{"expression": "1+2"}'),
        ("call_b", "current_time", '{"timezone": "UTC"}')]
    assert reply.finish_reason == "tool_calls" and reply.usage.total_tokens == 28


def test_drop_before_any_text_is_retried_on_a_new_connection(rt):
    rt.enqueue([created("resp_x"), DROP], text_response("second time lucky"))
    shown: list[str] = []
    reply = provider(rt.base_url).complete(user("hi"), CALC, on_text=shown.append)
    assert reply.content == "second time lucky" and "".join(shown) == reply.content
    assert len(rt.connections) == 2
    # the new connection got the whole conversation again
    assert [r.connection for r in rt.received if r.event["type"] != "session.update"] == [
        1, 1, 2, 2]


def test_drop_after_text_is_not_retried(rt):
    rt.enqueue([*text_response("partial answer")[:4], DROP], text_response("never asked for"))
    with pytest.raises(StreamError, match="in the middle of the reply"):
        provider(rt.base_url).complete(user("hi"), CALC, on_text=lambda _: None)
    assert len(rt.connections) == 1


def test_error_event_then_a_fresh_connection(rt):
    rt.enqueue([error_event("Invalid tool schema")], text_response("fine now"))
    p = provider(rt.base_url)
    with pytest.raises(ModelError, match="reported an error: Invalid tool schema"):
        p.complete(user("hi"), CALC)
    assert p.complete(user("hi"), CALC).content == "fine now"
    assert len(rt.connections) == 2  # what the server held after the error is not trusted


def test_a_chat_keeps_one_connection_across_turns(rt):
    registry = ToolRegistry({})
    registry.extend(builtin_tools())
    agent = Agent(provider(rt.base_url), registry, approve=lambda _: Decision(True))
    conv = Conversation(model=MODEL)
    conv.set_system("You are terse.")
    rt.enqueue(call_response(("calculator", '{"expression": "2+3"}', "c1")),
               text_response("5"), text_response("10"))
    assert agent.run_turn(conv, "2+3?").answer == "5"
    assert agent.run_turn(conv, "double it").answer == "10"
    assert len(rt.connections) == 1 and len(rt.sent("session.update")) == 1
    items = [e["item"] for e in rt.sent("conversation.item.create")]
    assert [i.get("role") or i["type"] for i in items] == ["user", "function_call_output", "user"]
    assert items[-1]["content"][0]["text"] == "double it"
    # a new conversation cannot continue what the server holds: a new connection
    rt.enqueue(text_response("hello again"))
    assert agent.run_turn(Conversation(model=MODEL), "hi").answer == "hello again"
    assert len(rt.connections) == 2


def test_a_call_cut_by_max_tokens_is_never_run(rt):
    registry = ToolRegistry({})
    registry.extend(builtin_tools())
    agent = Agent(provider(rt.base_url), registry, approve=lambda _: Decision(True))
    conv = Conversation(model=MODEL)
    rt.enqueue(cut_call_response("calculator", '{"expression": "17*'))
    with pytest.raises(TruncatedReply, match="cut off by the token limit in the middle of a "
                                             "call to 'calculator'; that call was not run"):
        agent.run_turn(conv, "17*23?")
    result = [m.content for m in conv.messages if m.role == "tool"]
    assert result == ["not run: the reply was cut off by the token limit before this call's "
                      "arguments were complete"]
    assert len(rt.sent("response.create")) == 1


def test_forced_tool_choice_goes_with_the_response_only(rt):
    rt.enqueue(text_response("ok"))
    choice = {"type": "function", "function": {"name": "calculator"}}
    provider(rt.base_url, max_tokens=300).complete(user("x"), CALC, tool_choice=choice)
    assert rt.sent("response.create")[0]["response"] == {
        "tool_choice": {"type": "function", "name": "calculator"}}
    session = rt.sent("session.update")[0]["session"]
    assert session["max_output_tokens"] == 300 and "tool_choice" not in session


def test_a_silent_server_times_out(rt):
    rt.enqueue([created("resp_q"), SILENCE])
    with pytest.raises(ModelTimeout, match=r"within 0\.5 s"):
        provider(rt.base_url, request_timeout=0.5, max_retries=0).complete(user("hi"), CALC)


def test_a_refused_key_is_a_clear_line(rt):
    rt.refuse = (401, json.dumps({"error": {"message": "Incorrect API key provided."}}))
    with pytest.raises(AuthError) as caught:
        provider(rt.base_url).complete(user("hi"), CALC)
    assert str(caught.value) == (f"{rt.base_url} refused the request (401): Incorrect API key "
                                 "provided. Check the key in $OPENAI_API_KEY.")
    assert caught.value.exit_code == 1 and len(rt.connections) == 1  # not retried


def test_nothing_listening_is_a_clear_line():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelConnectionError, match=f"cannot reach the model server at {url}: "
                                                   "ConnectionRefusedError"):
        provider(url, max_retries=0).complete(user("hi"), CALC)


def test_a_malformed_event_is_named(rt):
    bad = {"type": "response.output_text.delta", "delta": 42}
    rt.enqueue([created("r"), bad])
    with pytest.raises(MalformedReply, match="delta is a whole number, not text"):
        provider(rt.base_url, max_retries=0).complete(user("hi"), CALC)


def test_a_connection_closed_between_steps_is_reopened_at_once(rt):
    # the server drops the kept connection after its answer; the next step reconnects
    # without spending a retry (there are none) and sends the whole conversation again
    rt.enqueue([*call_response(("calculator", '{"expression": "1"}', "c9")), DROP],
               text_response("done"))
    p = provider(rt.base_url, max_retries=0)
    first = p.complete(user("go"), CALC)
    history = [*user("go"), {"role": "assistant", "content": "",
                             "tool_calls": [c.to_api() for c in first.tool_calls]},
               {"role": "tool", "tool_call_id": "c9", "content": "1"}]
    assert p.complete(history, CALC).content == "done"
    assert len(rt.connections) == 2
    again = [r.event["item"]["type"] for r in rt.received
             if r.connection == 2 and r.event["type"] == "conversation.item.create"]
    assert again == ["message", "function_call", "function_call_output"]


def test_a_rejected_parallel_tool_calls_is_dropped_and_remembered(rt):
    rt.enqueue([error_event("Unknown parameter: 'session.parallel_tool_calls'.",
                            code="unknown_parameter", param="session.parallel_tool_calls")],
               text_response("one"), text_response("two"))
    p = provider(rt.base_url, parallel_tool_calls=False, max_retries=0)
    assert p.complete(user("a"), CALC).content == "one"
    assert p.complete(user("b"), CALC).content == "two"
    sessions = [e["session"] for e in rt.sent("session.update")]
    assert [s.get("parallel_tool_calls") for s in sessions] == [False, None, None]


def test_without_streaming_the_text_comes_once_whole(rt):
    rt.enqueue(text_response("a whole answer"))
    shown: list[str] = []
    reply = provider(rt.base_url).complete(user("x"), CALC, stream=False, on_text=shown.append)
    assert shown == ["a whole answer"] == [reply.content]


def test_settings_without_a_realtime_parameter_are_warned_about(rt):
    notices: list[str] = []
    p = RealtimeProvider(Settings(base_url=rt.base_url, model=MODEL, temperature=0.2, seed=7,
                                  extra_body={"truncation": "disabled"}),
                         None, notice=notices.append)
    rt.enqueue(text_response("ok"))
    p.complete(user("x"), CALC)
    assert notices == ['warning: temperature, seed cannot be sent with api = "realtime" and is '
                       'ignored (use api = "chat" to send it)']
    session = rt.sent("session.update")[0]["session"]
    assert session["truncation"] == "disabled"
    assert not {"temperature", "seed"} & set(session)


def test_a_server_without_the_realtime_api_is_named(server):
    with pytest.raises(ModelError, match="no realtime model 'gpt-realtime' or no realtime "
                                         r"endpoint \(404\)"):
        provider(server.base_url, max_retries=0).complete(user("x"), CALC)


def test_a_server_that_sends_only_response_done(rt):
    # no deltas at all: the text and the calls are read from the response's output
    message = {"type": "message", "role": "assistant",
               "content": [{"type": "output_text", "text": "Checking."}]}
    call = {"type": "function_call", "call_id": "call_o", "name": "calculator",
            "arguments": '{"expression": "2*2"}'}
    rt.enqueue([done("resp_o", [message, call])])
    shown: list[str] = []
    reply = provider(rt.base_url).complete(user("x"), CALC, on_text=shown.append)
    assert shown == ["Checking."] and reply.content == "Checking."
    assert [(c.id, c.arguments) for c in reply.tool_calls] == [("call_o", '{"expression": "2*2"}')]


def test_a_failed_response_is_one_line_and_a_server_error_is_retried(rt):
    crash = {"type": "server_error", "code": "server_error", "message": "The server had an error."}
    refusal = {"type": "invalid_request_error", "code": "bad", "message": "Not allowed."}
    rt.enqueue([done("r1", [], status="failed", error=crash)], text_response("recovered"),
               [done("r2", [], status="failed", error=refusal)])
    p = provider(rt.base_url)
    assert p.complete(user("x"), CALC).content == "recovered"
    with pytest.raises(ModelError, match=r"failed the response: Not allowed\.$"):
        p.complete(user("y"), CALC)
    assert len(rt.sent("response.create")) == 3  # the refusal was not retried


def test_without_websockets_the_setting_is_a_clear_config_error(monkeypatch):
    monkeypatch.delitem(sys.modules, "agentcli.providers.realtime")
    monkeypatch.setitem(sys.modules, "websockets.exceptions", None)  # as if not installed
    with pytest.raises(ConfigError, match=r'api = "realtime" needs the websockets '
                                          r'package \(pip install "openai\[realtime\]"\)'):
        provider_class("realtime")


def test_a_copy_has_its_own_connection_closed_when_dropped(rt):
    # batch copies the provider for each task: each copy connects on its own and its
    # connection ends with it, not with the process
    rt.enqueue(text_response("one"), text_response("two"))
    original = provider(rt.base_url)
    assert original.complete(user("a"), CALC).content == "one"
    twin = copy.copy(original)
    assert twin.complete(user("a"), CALC).content == "two"
    assert len(rt.connections) == 2 and rt.ended == 0
    del twin
    gc.collect()
    deadline = time.monotonic() + 5
    while rt.ended < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rt.ended == 1
    original.close()


def test_huge_error_messages_from_a_realtime_server_are_cut(rt):
    huge = "m\x1b]0;x\x07" + "y" * 200_000
    rt.enqueue([created("r"), error_event(huge)],
               [created("r2"), done("r2", [], status="cancelled", reason=huge)])
    p = provider(rt.base_url, max_retries=0)
    for _ in range(2):
        with pytest.raises(ModelError) as caught:
            p.complete(user("hi"), CALC)
        assert len(str(caught.value)) < 1_300
        assert "m\x1b]0;x\x07yyy" in str(caught.value)  # made visible where it is printed
        assert "… (199,007 more characters)" in str(caught.value)


def test_a_stream_of_empty_events_that_never_ends_is_stopped(rt, monkeypatch):
    # 50 events stand for the 1,000,000 in use; none of them brings text
    from agentcli.providers import base, realtime

    for module in (base, realtime):
        monkeypatch.setattr(module, "MAX_REPLY_EVENTS", 50)
    rid = "resp_empty"
    rt.enqueue([created(rid), *[{"type": "response.in_progress"}] * 200], text_response("x"))
    with pytest.raises(ModelError, match="sent more than 50 events in one reply"):
        provider(rt.base_url, max_retries=2).complete(user("hi"), CALC)
    assert len(rt.sent("response.create")) == 1


def test_a_reply_that_never_ends_is_stopped_and_not_asked_again(rt, monkeypatch):
    # 100 characters stand for the 4,000,000 in use: a server that would never stop
    from agentcli.providers import base, realtime

    for module in (base, realtime):
        monkeypatch.setattr(module, "MAX_REPLY_CHARS", 100)
    rt.enqueue(text_response("z" * 300), text_response("never sent"))
    shown: list[str] = []
    with pytest.raises(ModelError, match="sent more than 100 characters in one reply"):
        provider(rt.base_url, max_retries=2).complete(user("hi"), CALC, on_text=shown.append)
    assert sum(map(len, shown)) <= 100 and len(rt.sent("response.create")) == 1
