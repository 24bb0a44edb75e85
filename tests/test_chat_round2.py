"""Ctrl-C ends the turn, and the saved history is always what really happened.

In a real pseudo-terminal (pexpect) against the scripted server: Ctrl-C or
Ctrl-D at the approval question ends the whole turn; trimming for the
context window shortens what is sent, never what is saved; edited arguments
reach the history; keys typed while a panel prints do not answer it; an empty
edit cancels; and user and assistant messages keep alternating after a turn
that got no reply.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pexpect
import pytest
from openai_server import Call, OpenAIServer, error, slow, text, tool_calls
from test_chat import QUESTION, chat, last_tool_message, messages  # noqa: F401
from test_run_terminal import finish, spawn

CUT_MARK = "characters cut to fit the context window]"
EDITED = "the user edited the arguments before running: "


def saved_messages(home: Path) -> list[dict]:
    """The messages of the one saved session."""
    [file] = (home / "data" / "agentcli" / "sessions").glob("*.json")
    return json.loads(file.read_text())["messages"]


def estimate(body: dict) -> int:
    """The request's size in tokens as agentcli estimates it (characters / 4)."""
    total = len(json.dumps(body["tools"])) // 4 if body.get("tools") else 0
    for m in body["messages"]:
        calls = m.get("tool_calls") or []
        size = len(m.get("content") or "") + sum(
            len(c["function"]["name"]) + len(c["function"]["arguments"]) for c in calls)
        total += size // 4 + 4
    return total


def write(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


ECHO = '''
from agentcli import tool

@tool
def echo(text: str) -> str:
    """Say it back."""
    return text
'''


# ---- 1. Ctrl-C or Ctrl-D at the approval question ends the turn

@pytest.mark.parametrize("key", ["c", "d"])
def test_ctrl_c_or_d_at_the_question_cancels_every_call_of_the_reply(chat, server, key):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"}, id="c1"),
                              Call("calculator", {"expression": "2+2"}, id="c2"),
                              Call("calculator", {"expression": "3+3"}, id="c3")), text("after"))
    session = chat()
    session.say("x")
    session.expect(QUESTION)
    session.key("y")                        # c1 approved, not yet run
    session.expect(r'"2\+2"')
    session.expect(QUESTION)
    session.child.sendcontrol(key)          # at c2's question: the whole turn ends
    session.expect("interrupted")
    session.prompt()
    assert len(server.requests) == 1        # no further request for this turn
    session.say("next")
    session.expect("after")
    sent = messages(server, 1)
    tools = {m["tool_call_id"]: m["content"] for m in sent if m["role"] == "tool"}
    assert set(tools) == {"c1", "c2", "c3"}
    assert all(t.startswith("cancelled by the user") for t in tools.values()), tools
    assert sent[-1] == {"role": "user", "content": "next"}
    assert session.exit() == 0


@pytest.mark.parametrize("key", ["c", "d"])
def test_ctrl_c_or_d_at_the_question_in_run_ends_the_run_with_130(home, server, run_args, key):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"}, id="c1"),
                              Call("calculator", {"expression": "2+2"}, id="c2")), text("never"))
    child = spawn([*run_args, "--save", "x"])
    child.expect(QUESTION)
    child.sendcontrol(key)
    assert finish(child) == 130
    assert "cancelled at the approval question" in child.before
    assert len(server.requests) == 1
    tools = [m for m in saved_messages(home) if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tools] == ["c1", "c2"]
    assert all(m["content"].startswith("cancelled") for m in tools)


# ---- 2. trimming shortens what is sent, never what is saved

def test_turns_left_out_of_the_request_stay_in_the_session_and_history(chat, server, home,
                                                                      tmp_path):
    config = write(tmp_path / "cfg.toml", "context_window = 40\n")
    server.enqueue(text("a" * 20), text("b" * 20), text("c" * 20))
    session = chat("--config", str(config), "--no-tools")
    for question, answer in (("first " + "x" * 14, "aaaa"), ("y" * 20, "bbbb")):
        session.say(question)
        session.expect(answer)
        session.prompt()
    session.say("z" * 20)
    session.expect("dropped the 2 oldest messages from this request")
    session.expect("the saved conversation keeps them")
    session.expect("cccc")
    session.prompt()
    assert [m["content"][:1] for m in messages(server, 2)] == ["y", "b", "z"]
    assert [m["content"][:1] for m in saved_messages(home)] == ["f", "a", "y", "b", "z", "c"]
    session.say("/history")
    session.expect("first xxxx")
    assert session.exit() == 0


def test_one_huge_argument_is_sent_shortened_and_saved_whole(chat, server, home, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    write(tools / "echo.py", ECHO)
    config = write(tmp_path / "cfg.toml", 'context_window = 3000\n[tools.policy]\necho = "auto"\n')
    huge = "w" * 120_000
    server.enqueue(text("first answer"), tool_calls(Call("echo", {"text": huge}, id="h1"), split=20_000),
                   text("done"))
    session = chat("--config", str(config), "--tools-dir", str(tools))
    session.say("first question")
    session.expect("first answer")
    session.prompt()
    session.say("go")
    session.expect("shortened")
    session.expect("done")
    session.prompt()
    body = server.requests[2].body
    assert estimate(body) <= 3000
    sent = body["messages"]
    assert [m["content"] for m in sent[:2]] == ["first question", "first answer"]  # not dropped
    [call] = sent[3]["tool_calls"]
    assert call["id"] == "h1" and sent[4]["tool_call_id"] == "h1"
    assert CUT_MARK in json.loads(call["function"]["arguments"])["cut"]  # still a JSON object
    assert CUT_MARK in sent[4]["content"]
    saved = saved_messages(home)
    assert json.loads(saved[3]["tool_calls"][0]["arguments"]) == {"text": huge}
    assert CUT_MARK not in saved[4]["content"]
    assert session.exit() == 0


def test_run_session_keeps_every_turn_and_never_sends_over_the_window(cli, server, run_args, home,
                                                                     tmp_path):
    config = write(tmp_path / "cfg.toml", "context_window = 300\n")
    server.enqueue(text("one"), text("two"), text("three"))
    first = cli("run", *run_args, "--config", str(config), "--no-tools", "--save", "--json",
                "old question")
    session_id = json.loads(first.stdout)["session_id"]
    for query in ("z" * 2000, "last question"):
        result = cli("run", *run_args, "--config", str(config), "--no-tools", "--session",
                     session_id, query)
        assert result.code == 0, result.stderr
    assert all(estimate(r.body) <= 300 for r in server.requests)
    assert messages(server, 1)[0]["content"] == "old question"  # kept: the long one was shortened
    assert CUT_MARK in messages(server, 1)[2]["content"]
    contents = [m["content"] for m in saved_messages(home)]
    assert contents == ["old question", "one", "z" * 2000, "two", "last question", "three"]


# ---- 3. edited arguments reach the history

def test_edited_arguments_are_what_the_model_session_and_history_see(chat, server, home):
    server.enqueue(tool_calls(Call("calculator", {"expression": "2**10"}, id="c1")), text("done"))
    session = chat()
    session.say("x")
    session.expect(QUESTION)
    session.key("e")
    session.expect("Esc Enter accepts")
    session.expect(r'"2\*\*10"')  # the editor shows the arguments: it reads keys from now on
    session.key("\x7f" * len(json.dumps({"expression": "2**10"}, indent=2)) + '{"expression": "3*3"}')
    session.key("\x1b\r")
    session.expect("done")
    session.prompt()
    expected = EDITED + '{"expression": "3*3"}\n9'
    assert last_tool_message(server, 1)["content"] == expected
    assert [m["content"] for m in saved_messages(home) if m["role"] == "tool"] == [expected]
    session.say("/history")
    session.expect("the user edited the arguments")
    assert session.exit() == 0
    [entry] = [json.loads(line) for line in
               (home / "state" / "agentcli" / "audit.jsonl").read_text().splitlines()]
    assert entry["arguments"] == {"expression": "3*3"} and entry["decision"] == "edited"


# ---- 7. keys typed while a long panel prints do not answer the question



def test_a_key_typed_while_the_full_view_prints_does_not_answer(chat, server, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    write(tools / "echo.py", ECHO)
    server.enqueue(tool_calls(Call("echo", {"text": "w" * 200_000}), split=50_000), text("answered"))
    session = chat("--tools-dir", str(tools))
    session.say("x")
    session.expect(QUESTION)
    session.key("v")
    session.expect(r"echo\s")            # the full panel has started; its body is still coming
    session.key("y")                     # typed while it prints: must be thrown away
    session.child.expect(QUESTION, timeout=30, searchwindowsize=500)
    session.key("n")
    session.expect("Reason")
    session.say("")
    session.expect("answered")
    assert last_tool_message(server, 1)["content"].startswith("denied")
    assert session.exit() == 0


def test_in_run_a_key_typed_while_the_full_view_prints_does_not_answer(home, server, run_args,
                                                                      tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    write(tools / "echo.py", ECHO)
    server.enqueue(tool_calls(Call("echo", {"text": "w" * 200_000}), split=50_000), text("answered"))
    child = spawn([*run_args, "--tools-dir", str(tools), "x"])
    child.expect(QUESTION)
    child.logfile_read = screen = io.StringIO()
    child.send("v")
    child.expect(r"echo\s")
    child.send("y")
    child.expect(QUESTION, timeout=30, searchwindowsize=500)
    assert screen.getvalue().count("w") >= 200_000  # the full view shows every character
    child.send("n")
    child.expect("Reason")
    child.send("\r")
    assert finish(child) == 0
    assert server.requests[1].body["messages"][-1]["content"].startswith("denied")


# ---- 8. an empty editor buffer cancels the edit

def test_an_empty_or_blank_edit_cancels_instead_of_approving_empty_arguments(chat, server):
    server.enqueue(tool_calls(Call("current_time", {"timezone": "Asia/Tokyo"}, id="t1")),
                   text("answered"))
    shown = json.dumps({"timezone": "Asia/Tokyo"}, indent=2)
    session = chat()
    session.say("what time is it")
    for blank in ("", "  \r  "):       # nothing, or spaces and a newline
        session.expect(QUESTION)
        session.key("e")
        session.expect("Esc Enter accepts")
        session.expect('"Asia/Tokyo"')  # the editor shows the arguments: it reads keys now
        session.key("\x7f" * len(shown) + blank + "\x1b\r")
        session.expect("edit cancelled")
    session.expect(QUESTION)
    session.key("n")
    session.expect("Reason")
    session.say("")
    session.expect("answered")
    assert last_tool_message(server, 1)["content"].startswith("denied")
    assert session.exit() == 0


# ---- 9. user and assistant messages keep alternating

def test_after_a_server_error_the_history_still_alternates(chat, server, home):
    server.enqueue(error(400, "this request is not acceptable"), text("recovered"))
    session = chat()
    session.say("first")
    session.expect("agentcli: error")
    session.prompt()
    session.say("second")
    session.expect("recovered")
    session.prompt()
    sent = messages(server, 1)
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"].startswith("[no answer: the server failed")
    assert [m["role"] for m in saved_messages(home)] == ["user", "assistant", "user", "assistant"]
    assert session.exit() == 0


def test_after_ctrl_c_before_the_first_token_the_history_still_alternates(chat, server: OpenAIServer,
                                                                         home):
    server.enqueue(slow(5, text("too late")), text("fine"))
    session = chat()
    session.say("first")
    session.expect("first")
    while not server.requests:
        session.child.expect([pexpect.TIMEOUT], timeout=0.05)
    session.child.sendintr()
    session.expect("interrupted")
    session.prompt()
    session.say("second")
    session.expect("fine")
    session.prompt()
    sent = messages(server, 1)
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == "[no answer: interrupted]"
    assert saved_messages(home)[1]["content"] == "[no answer: interrupted]"
    assert session.exit() == 0
