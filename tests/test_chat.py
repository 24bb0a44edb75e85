"""``agentcli chat`` in a real pseudo-terminal (pexpect) against the scripted server.

Keys go in, the screen comes out: single-key approval, typeahead, Ctrl-C in
every phase, slash commands, sessions and resume. Every test also checks
that no traceback reached the screen.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest
from openai_server import Call, OpenAIServer, drip, error, text, tool_calls

PROMPT = "agentcli>"
QUESTION = r"Run it\?"


class Chat:
    """One ``agentcli chat`` process in a pseudo-terminal."""

    def __init__(self, server: OpenAIServer, *args: str, columns: int = 100,
                 cpr: bool = False) -> None:
        env = {**os.environ, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm"}
        if not cpr:  # no cursor position requests: pexpect is not a terminal that answers them
            env["PROMPT_TOOLKIT_NO_CPR"] = "1"
        argv = ["-m", "agentcli", "chat", "--base-url", server.base_url, "-m", "test-model", *args]
        self.log = io.StringIO()
        self.child = pexpect.spawn(sys.executable, argv, env=env, encoding="utf-8", timeout=10,
                                   dimensions=(40, columns))
        self.child.logfile_read = self.log

    def expect(self, pattern: str, timeout: float = 10) -> str:
        """Wait for ``pattern``; return what came before it."""
        self.child.expect(pattern, timeout=timeout)
        return self.child.before

    def prompt(self) -> None:
        self.expect(PROMPT)

    def say(self, line: str) -> None:
        self.child.send(line + "\r")

    def key(self, keys: str) -> None:
        self.child.send(keys)

    def exit(self) -> int:
        self.child.sendcontrol("d")
        self.child.expect(pexpect.EOF)
        self.child.close()
        return self.child.exitstatus

    @property
    def screen(self) -> str:
        return self.log.getvalue()


@pytest.fixture
def chat(home: Path, server: OpenAIServer) -> Iterator[Callable[..., Chat]]:
    started: list[Chat] = []

    def start(*args: str, columns: int = 100, wait: bool = True, cpr: bool = False) -> Chat:
        session = Chat(server, *args, columns=columns, cpr=cpr)
        started.append(session)
        if wait:
            session.prompt()
        return session
    yield start
    for session in started:
        if session.child.isalive():
            session.child.terminate(force=True)
        print(plain(session.screen))  # shown by pytest when a test fails
        assert "Traceback" not in session.screen


def plain(screen: str) -> str:
    """The screen without terminal control sequences, for failure reports."""
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", screen)
    return screen.replace("\r\n", "\n").replace("\r", "\n")


def messages(server: OpenAIServer, index: int) -> list[dict]:
    return server.requests[index].body["messages"]


def last_tool_message(server: OpenAIServer, index: int) -> dict:
    return [m for m in messages(server, index) if m["role"] == "tool"][-1]


# ---- asking and answering

def test_question_streams_a_markdown_answer_and_ctrl_d_exits_0(chat, server, home):
    server.enqueue(text("Hello **world**.\n\n- one\n- two\n\n```python\nplain_code\n```\n"),
                   text("two lines received"))
    session = chat()
    session.key("abc")
    session.child.sendcontrol("c")          # Ctrl-C at the prompt clears the line
    session.say("hi")
    session.expect("world")
    session.expect("plain_code")
    session.prompt()
    assert messages(server, 0)[-1] == {"role": "user", "content": "hi"}
    session.key("line one\x1b\r")           # Esc Enter (Alt-Enter) inserts a newline
    session.say("line two")
    session.expect("two lines received")
    assert messages(server, 1)[-1] == {"role": "user", "content": "line one\nline two"}
    assert session.exit() == 0
    assert "**world**" not in session.screen
    assert "line one" in (home / "data" / "agentcli" / "history").read_text()


def test_the_bottom_toolbar_shows_model_session_and_tokens(chat, server):
    session = chat(cpr=True, wait=False)
    session.expect(re.escape("\x1b[6n"))      # where is the cursor? (a terminal answers)
    session.key("\x1b[5;1R")
    screen = session.expect("tokens used")
    assert "test-model" in screen
    assert session.exit() == 0


def test_single_key_y_approves_without_enter(chat, server):
    server.enqueue(tool_calls(Call("calculator", {"expression": "17*23"}, id="c1")), text("391!"))
    session = chat()
    session.say("what is 17*23")
    session.expect("calculator")
    session.expect(QUESTION)
    session.key("y")
    session.expect("391!")
    session.prompt()
    assert last_tool_message(server, 1) == {"role": "tool", "content": "391", "tool_call_id": "c1"}
    assert session.exit() == 0


def test_n_asks_for_a_reason_that_reaches_the_model(chat, server):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"}, id="c1")), text("ok"),
                   tool_calls(Call("calculator", {"expression": "2+2"}, id="c2")), text("fine"))
    session = chat()
    session.say("x")
    session.expect(QUESTION)
    session.key("n")
    session.expect("Reason")
    session.say("use mental arithmetic")
    session.expect("ok")
    session.prompt()
    assert last_tool_message(server, 1)["content"] == "denied: the user declined: use mental arithmetic"
    session.say("y")
    session.expect(QUESTION)
    session.say("no")                        # a typed word and Enter works too
    session.expect("Reason")
    session.say("")
    session.expect("fine")
    assert last_tool_message(server, 3)["content"] == \
        "denied: the user did not allow this call to calculator"
    assert session.exit() == 0


def test_e_edits_the_arguments_that_run(chat, server):
    server.enqueue(tool_calls(Call("calculator", {"expression": "2**10"}, id="c1")), text("done"))
    session = chat()
    session.say("x")
    session.expect(QUESTION)
    session.key("e")
    session.expect("Esc Enter accepts")
    session.expect(r'"2\*\*10"')  # the editor shows the arguments: it reads keys from now on
    shown = json.dumps({"expression": "2**10"}, indent=2)
    session.key("\x7f" * len(shown) + '{"expression": "3*3"}')
    session.key("\x1b\r")
    session.expect("edited arguments approved")
    session.expect("done")
    assert last_tool_message(server, 1)["content"] == \
        'the user edited the arguments before running: {"expression": "3*3"}\n9'
    assert session.exit() == 0


def test_a_always_approves_the_tool_for_the_rest_of_the_session(chat, server):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"})),
                   tool_calls(Call("calculator", {"expression": "2+2"})), text("first"),
                   tool_calls(Call("calculator", {"expression": "3+3"})), text("second"))
    session = chat()
    session.say("x")
    session.expect(QUESTION)
    session.key("a")
    session.expect("first")
    session.prompt()
    session.say("again")
    before = session.expect("second")
    assert "Run it" not in before
    assert last_tool_message(server, 2)["content"] == "4"
    assert last_tool_message(server, 4)["content"] == "6"
    assert session.screen.count("[a]lways") == 1  # one panel in all
    assert session.exit() == 0


def test_v_shows_folded_values_in_full(chat, server):
    long_value = "1+" * 400 + "1"
    server.enqueue(tool_calls(Call("calculator", {"expression": long_value})), text("ok"))
    session = chat(columns=400)
    session.say("x")
    assert "[501 more characters, 801 in all]" in session.expect(QUESTION)
    session.key("v")
    assert "more characters" not in session.expect(QUESTION)
    session.key("y")
    session.expect("ok")
    assert not last_tool_message(server, 1)["content"].startswith("denied")  # it ran
    assert session.exit() == 0


def test_keys_typed_while_the_answer_streams_do_not_answer_the_panel(chat, server):
    intro = "Let me work that out with the calculator tool, one moment please. " * 2
    server.enqueue(drip(0.05, tool_calls(Call("calculator", {"expression": "2+2"}), content=intro)),
                   text("answered"))
    session = chat()
    session.say("x")
    session.expect("Let me")
    session.key("y")                         # typeahead: must be thrown away
    session.expect(QUESTION)
    session.key("n")
    session.expect("Reason")
    session.say("")
    session.expect("answered")
    assert last_tool_message(server, 1)["content"].startswith("denied")
    assert session.exit() == 0


def test_escapes_in_arguments_and_answers_are_shown_escaped(chat, server):
    hostile = "1+1\x1b[2J\x1b]0;pwned\x07\u202eevil\u200b"
    server.enqueue(text("see \x1b]0;title\x07 and \u202eright [link=http://x]y[/bold] [/link]"),
                   tool_calls(Call("calculator", {"expression": hostile})), text("ok"))
    session = chat()
    session.say("x")
    session.expect(r"\[/link\]")
    session.prompt()
    session.say("y")
    screen = session.expect(QUESTION)
    assert "\\u001b[2J" in screen and "\\u202e" in screen and "\\u200b" in screen
    session.key("n")
    session.expect("Reason")
    session.say("")
    session.prompt()
    assert session.exit() == 0
    everything = session.screen
    assert "\x1b]0;" not in everything and "\u202e" not in everything and "\x1b[2J" not in everything
    assert "[link=http://x]y[/bold]" in everything and "\\u001b]0;title\\u0007" in everything


# ---- Ctrl-C during a turn

def test_ctrl_c_mid_stream_keeps_the_partial_answer_marked(chat, server):
    story = "Once upon a time there was a very long story that went on. " * 10
    server.enqueue(drip(0.1, text(story, chunk_size=8)), text("fine"))
    session = chat()
    session.say("tell me")
    session.expect("Once upon")
    session.child.sendintr()
    session.expect("interrupted", timeout=5)
    session.prompt()
    session.say("next")
    session.expect("fine")
    sent = messages(server, 1)
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"].startswith("Once upon") and sent[1]["content"].endswith("[interrupted]")
    assert session.exit() == 0


SLEEPY = '''
import pathlib, time
from agentcli import tool

@tool
def sleepy() -> str:
    """Sleep for half a minute."""
    pathlib.Path({marker!r}).write_text("started")
    time.sleep(30)
    return "woke up"
'''


def test_ctrl_c_during_a_slow_tool_cancels_the_call(chat, server, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    marker = tmp_path / "started"
    (tools / "sleepy.py").write_text(SLEEPY.format(marker=str(marker)))
    config = tmp_path / "cfg.toml"
    config.write_text('[tools.policy]\nsleepy = "auto"\n')
    server.enqueue(tool_calls(Call("sleepy", {}, id="slow1")), text("after"))
    session = chat("--tools-dir", str(tools), "--config", str(config))
    session.say("go")
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    session.child.sendintr()
    session.expect("interrupted", timeout=5)
    session.prompt()
    assert time.monotonic() - started < 3
    session.say("again")
    session.expect("after")
    tool_msg = last_tool_message(server, 1)
    assert tool_msg["tool_call_id"] == "slow1" and tool_msg["content"].startswith("cancelled")
    assert session.exit() == 0


def test_a_server_error_is_one_line_and_the_chat_goes_on(chat, server):
    server.enqueue(error(400, "this request is not acceptable"), text("recovered"))
    session = chat()
    session.say("x")
    session.expect("agentcli: error: .*rejected the request")
    session.prompt()
    session.say("y")
    session.expect("recovered")
    assert session.exit() == 0


# ---- slash commands

def test_help_tools_model_system_history_stats_and_exit(chat, server):
    server.enqueue(text("ok1"))
    session = chat()
    session.say("/help")
    session.expect("Alt-Enter")
    session.say("/tools")
    session.expect("current_time")
    session.say("/model other-model")
    session.expect("model: other-model")
    session.say("/system Be brief.")
    session.expect("system prompt set")
    session.say("/nope")
    session.expect("unknown command /nope")
    session.say("hi")
    session.expect("ok1")
    session.prompt()
    body = server.requests[0].body
    assert body["model"] == "other-model"
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "hi"}]
    session.say("/history")
    session.expect("assistant")
    session.say("/stats")
    session.expect("no tool calls in this session yet")
    session.say("/exit")
    session.child.expect(pexpect.EOF)
    session.child.close()
    assert session.child.exitstatus == 0


def test_approve_undo_retry_clear_and_stats(chat, server):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"})), text("two"),
                   tool_calls(Call("calculator", {"expression": "2+2"})), text("four"),
                   text("three"), text("three again"), text("fresh"))
    session = chat()
    session.say("/approve calculator")
    session.expect("runs without asking")
    session.say("q1")
    assert "Run it" not in session.expect("two")
    session.say("/approve reset")
    session.expect("configured policy again")
    session.say("q2")
    session.expect(QUESTION)
    session.key("y")
    session.expect("four")
    session.say("/stats")
    session.expect(r"calculator(\x1b\[[0-9;]*m)*\s+2\s+0")  # 2 calls, 0 failures
    session.say("/undo")
    session.expect("removed the last exchange")
    session.say("q3")
    session.expect("three")
    assert [m.get("content") for m in messages(server, 4) if m["role"] == "user"] == ["q1", "q3"]
    session.say("/retry")
    session.expect("three again")
    assert [m.get("content") for m in messages(server, 5) if m["role"] == "user"] == ["q1", "q3"]
    session.say("/clear")
    session.expect("new conversation")
    session.say("q4")
    session.expect("fresh")
    assert messages(server, 6) == [{"role": "user", "content": "q4"}]
    assert session.exit() == 0


def test_save_sessions_and_load(chat, server, home):
    server.enqueue(text("hi there"), text("other"), text("welcome back"))
    session = chat()
    session.say("hello")
    session.expect("hi there")
    session.say("/save mysession")
    session.expect("saved session mysession")
    assert (home / "data" / "agentcli" / "sessions" / "mysession.json").is_file()
    session.say("/clear")
    session.expect("new conversation")
    session.say("something else")
    session.expect("other")
    session.say("/sessions")
    session.expect("mysession")
    session.say("/load mysession")
    session.expect("loaded session mysession")
    session.say("again")
    session.expect("welcome back")
    assert [m["content"] for m in messages(server, 2)] == ["hello", "hi there", "again"]
    assert session.exit() == 0


PLUGIN = '''
from agentcli import tool

@tool
def {name}() -> str:
    """A plugin tool."""
    return "hi"
'''


def test_reload_reads_new_plugins(chat, server, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    session = chat("--tools-dir", str(tools))
    (tools / "late.py").write_text(PLUGIN.format(name="late_tool"))
    session.say("/reload")
    session.expect(r"\d+ tools loaded")
    session.say("/tools")
    session.expect("late_tool")
    assert session.exit() == 0


# ---- sessions, resume, trust, context

def test_resume_continues_the_latest_or_the_named_session(chat, server, home):
    server.enqueue(text("first answer"), text("other answer"), text("continued"), text("named"))
    first = chat()
    first.say("first question")
    first.expect("first answer")
    first.say("/save alpha")
    first.expect("saved session alpha")
    assert first.exit() == 0
    second = chat()
    second.say("other question")
    second.expect("other answer")
    assert second.exit() == 0
    latest = chat("--resume")
    latest.say("more")
    latest.expect("continued")
    assert [m["content"] for m in messages(server, 2)] == ["other question", "other answer", "more"]
    assert latest.exit() == 0
    named = chat("--resume", "alpha")
    named.say("more")
    named.expect("named")
    assert [m["content"] for m in messages(server, 3)][:2] == ["first question", "first answer"]
    assert named.exit() == 0


def test_a_corrupt_session_is_reported_and_left_alone(chat, server, home):
    sessions = home / "data" / "agentcli" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "bad.json").write_text('{"messages": [')
    server.enqueue(text("new start"))
    session = chat("--resume", "bad", wait=False)
    session.expect("corrupt")
    session.expect("starting a new session")
    session.prompt()
    session.say("hi")
    session.expect("new start")
    assert session.exit() == 0
    assert (sessions / "bad.json").read_text() == '{"messages": ['


def test_untrusted_directory_asks_once_and_yes_loads_its_tools(chat, server, home):
    local = home / "work" / "tools.d"
    local.mkdir()
    (local / "mine.py").write_text(PLUGIN.format(name="local_tool"))
    session = chat(wait=False)
    session.expect("Trust this directory")
    session.say("y")
    session.prompt()
    session.say("/tools")
    session.expect("local_tool")
    assert session.exit() == 0
    assert str((home / "work").resolve()) in (home / "config" / "agentcli" / "trusted.json").read_text()


def test_untrusted_directory_answer_no_skips_its_tools(chat, server, home):
    (home / "work" / "tools.d").mkdir()
    (home / "work" / "tools.d" / "mine.py").write_text(PLUGIN.format(name="local_tool"))
    session = chat(wait=False)
    session.expect("Trust this directory")
    session.say("")
    session.prompt()
    session.say("/tools")
    assert "local_tool" not in session.expect("current_time")
    assert session.exit() == 0


def test_old_turns_are_dropped_whole_when_the_context_is_full(chat, server, tmp_path):
    config = tmp_path / "cfg.toml"
    config.write_text("context_window = 40\n")
    server.enqueue(text("a" * 20), text("b" * 20), text("c" * 20))
    session = chat("--config", str(config), "--no-tools")  # tool schemas count too
    for question, answer in (("x" * 20, "aaaa"), ("y" * 20, "bbbb")):
        session.say(question)
        session.expect(answer)
        session.prompt()
    session.say("z" * 20)
    session.expect("dropped the 2 oldest messages")
    session.expect("cccc")
    assert [m["content"] for m in messages(server, 2)] == ["y" * 20, "b" * 20, "z" * 20]
    assert session.exit() == 0


def test_without_a_terminal_chat_says_so_in_one_line(cli, run_args):
    result = cli("chat", *run_args)
    assert result.code == 2
    assert result.stderr.strip() == ("agentcli: error: chat needs a terminal; for scripts use: "
                                     "agentcli run QUERY")


def test_an_id_without_resume_is_a_usage_error(chat):
    session = chat("some-id", wait=False)
    session.expect("agentcli chat --resume some-id")
    session.child.expect(pexpect.EOF)
    session.child.close()
    assert session.child.exitstatus == 2
