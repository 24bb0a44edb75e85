"""Chat round 2, the rest: cancelled tools really stop, two chats on one
session, and the cosmetic faults (zero-width joiners, narrow panels,
SIGTERM, /stats after --resume, /model names).

Through a real pseudo-terminal (pexpect) against the scripted server; a tool
that was stopped is recognised by the file it would have written.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pexpect
from openai_server import Call, drip, text, tool_calls
from test_chat import PROMPT, QUESTION, chat, last_tool_message, plain  # noqa: F401

from agentcli.conversation import Conversation
from agentcli.messages import Message
from agentcli.sessions import SessionStore

SLOW_TOOLS = '''
import asyncio, pathlib, time
from agentcli import tool

STARTED = pathlib.Path({started!r})
DONE = pathlib.Path({done!r})

@tool(isolated=True)
def in_worker(name: str) -> str:
    """Write a file after a while, in a worker process."""
    (STARTED / name).write_text("started")
    time.sleep(1.2)
    (DONE / name).write_text("done")
    return "finished"

@tool
async def awaiting(name: str) -> str:
    """Write a file after a while, awaiting."""
    (STARTED / name).write_text("started")
    await asyncio.sleep(1.2)
    (DONE / name).write_text("done")
    return "finished"

@tool
def threaded(name: str) -> str:
    """Write a file after a while, in a thread."""
    (STARTED / name).write_text("started")
    time.sleep(1.2)
    (DONE / name).write_text("done")
    return "finished"
'''


def slow_tools(tmp_path: Path, timeout: float = 30) -> tuple[Path, Path, Path, Path]:
    """A tools folder with the three slow tools; returns it, the config and the two marker dirs."""
    tools, started, done = tmp_path / "tools", tmp_path / "started", tmp_path / "done"
    for folder in (tools, started, done):
        folder.mkdir()
    (tools / "slow.py").write_text(SLOW_TOOLS.format(started=str(started), done=str(done)))
    config = tmp_path / "cfg.toml"
    config.write_text(f'[tools]\ntimeout = {timeout}\n\n[tools.policy]\nin_worker = "auto"\n'
                      'awaiting = "auto"\nthreaded = "auto"\n')
    return tools, config, started, done


def wait_for(path: Path, count: int, limit: float = 10) -> None:
    deadline = time.monotonic() + limit
    while len(list(path.iterdir())) < count and time.monotonic() < deadline:
        time.sleep(0.02)


# ---- 5. a cancelled tool is stopped where it can be, and the message says so where not

def test_ctrl_c_stops_isolated_and_async_tools_and_says_a_thread_may_finish(chat, server,
                                                                            tmp_path):
    tools, config, started, done = slow_tools(tmp_path)
    server.enqueue(tool_calls(Call("in_worker", {"name": "w"}, id="w"),
                              Call("awaiting", {"name": "a"}, id="a"),
                              Call("threaded", {"name": "t"}, id="t")), text("after"))
    session = chat("--tools-dir", str(tools), "--config", str(config))
    session.say("go")
    wait_for(started, 3)
    session.child.sendintr()
    session.expect("interrupted", timeout=5)
    session.prompt()
    time.sleep(1.6)                         # past the moment each tool would write its file
    assert sorted(p.name for p in done.iterdir()) == ["t"]   # only the thread went on
    session.say("again")
    session.expect("after")
    sent = {m["tool_call_id"]: m["content"] for m in server.requests[1].body["messages"]
            if m["role"] == "tool"}
    assert "was stopped" in sent["w"] and "was stopped" in sent["a"]
    assert "may still finish" in sent["t"]
    assert session.exit() == 0


def test_an_isolated_tool_is_killed_at_its_time_limit(cli, server, run_args, tmp_path):
    tools, config, started, done = slow_tools(tmp_path, timeout=0.4)
    server.enqueue(tool_calls(Call("in_worker", {"name": "w"}, id="w")), text("after"))
    result = cli("run", *run_args, "--tools-dir", str(tools), "--config", str(config), "go")
    assert result.code == 0, result.stderr
    time.sleep(1.2)
    assert list(done.iterdir()) == [] and [p.name for p in started.iterdir()] == ["w"]
    answer = last_tool_message(server, 1)["content"]
    assert answer.startswith("timed out after 0.4 s") and "may still" not in answer


# ---- 6. a session open in another chat: fork it, or continue it together

def said(session, phrase: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``phrase`` is on the screen (rich may wrap long lines)."""
    return phrase in " ".join(plain(session.screen).split())


def user_turns(session_id: str) -> list[str]:
    return [m.content for m in SessionStore().load(session_id).messages if m.role == "user"]


def open_shared(chat, server):  # type: ignore[no-untyped-def]
    """A first chat holding session 'shared' open, with one exchange saved."""
    server.enqueue(text("answer a1"))
    first = chat()
    first.say("question a1")
    first.expect("answer a1")
    first.say("/save shared")
    first.expect("saved session shared")
    return first


def test_the_second_chat_on_a_session_can_fork_it_with_one_key(chat, server, home):
    first = open_shared(chat, server)
    second = chat("--resume", "shared", wait=False)
    second.expect(r"Fork or continue\? \[F/c\]")
    assert said(second, "Session shared is open in another agentcli chat")
    second.key("f")
    forked = re.search(r"forked session shared as (\S+):", plain(second.expect(PROMPT)))
    assert forked, plain(second.screen)
    server.enqueue(text("answer b1"))
    second.say("question b1")
    second.expect("answer b1")
    second.prompt()
    assert first.exit() == 0 and second.exit() == 0
    assert user_turns("shared") == ["question a1"]
    assert user_turns(forked.group(1)) == ["question a1", "question b1"]


def test_continuing_anyway_merges_both_chats_saves(chat, server, home):
    first = open_shared(chat, server)
    second = chat("--resume", "shared", wait=False)
    second.expect(r"Fork or continue\? \[F/c\]")
    second.key("c")
    second.expect("continuing session shared together with the other chat")
    second.prompt()
    server.enqueue(text("answer b1"))
    second.say("question b1")
    second.expect("answer b1")
    second.prompt()
    assert first.exit() == 0 and second.exit() == 0
    assert user_turns("shared") == ["question a1", "question b1"]


def test_a_bare_resume_picks_the_latest_session_not_open_elsewhere(chat, server, home):
    old = Conversation(id="older")
    old.add(Message(role="user", content="old question"))
    old.add(Message(role="assistant", content="old answer"))
    SessionStore().save(old)
    time.sleep(0.05)
    server.enqueue(text("answer a1"))
    first = chat()                           # its session is the newest, and open
    first.say("question a1")
    first.expect("answer a1")
    first.prompt()
    second = chat("--resume")
    assert said(second, "resuming older, the latest session not open in another agentcli chat")
    assert "Fork or continue" not in second.screen
    assert first.exit() == 0 and second.exit() == 0


# ---- 10. cosmetic

def test_sigterm_while_the_answer_streams_restores_the_cursor_and_exits_143(chat, server,
                                                                             home):
    server.enqueue(drip(0.2, text("a slow answer " * 40, chunk_size=4)))
    session = chat()
    session.say("question")
    session.expect("a slow")
    session.child.kill(signal.SIGTERM)
    session.child.expect(pexpect.EOF)
    session.child.close()
    assert session.child.exitstatus == 143
    screen = session.screen
    assert screen.rindex("\x1b[?25h") > screen.rindex("\x1b[?25l")   # the cursor is shown again
    assert user_turns(SessionStore().list()[0].stem) == ["question"]


def test_model_refuses_a_name_with_spaces(chat, server):
    server.enqueue(text("fine"))
    session = chat()
    session.say("/model gpt 4o mini")
    session.expect("'gpt 4o mini' is not a model name: names have no spaces")
    session.prompt()
    session.say("hello")
    session.expect("fine")
    assert server.requests[0].body["model"] == "test-model"
    assert session.exit() == 0


def test_stats_after_resume_counts_the_resumed_sessions_calls(chat, server, home):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"}, id="c1")), text("2"))
    first = chat("--yes")
    first.say("add")
    first.expect("2")
    first.prompt()
    assert first.exit() == 0
    second = chat("--resume")
    second.say("/stats")
    second.expect("calculator")
    assert "no tool calls in this session yet" not in second.screen
    assert second.exit() == 0


def test_answers_keep_zero_width_joiners_and_the_panel_escapes_them(chat, server):
    family, persian = "👨\u200d👩\u200d👧", "می\u200cخواهم"  # noqa: RUF001 -- Persian text on purpose
    server.enqueue(text(f"family {family} and {persian}"),
                   tool_calls(Call("calculator", {"expression": f"1+1 # {family}"}, id="c1")),
                   text("done"))
    session = chat()
    session.say("hi")
    session.expect("خواهم")
    session.prompt()
    assert family in session.screen and persian in session.screen
    assert "\\u200d" not in session.screen and "\\u200c" not in session.screen
    session.say("calc")
    session.expect(QUESTION)
    assert "\\u200d" in session.screen        # arguments in the panel stay escaped
    session.key("n")
    session.expect("Reason for the model")
    session.key("\r")
    session.expect("done")
    assert session.exit() == 0


def test_at_40_columns_every_key_hint_of_the_panel_is_shown(chat, server):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"}, id="c1")), text("ok"))
    session = chat(columns=40)
    session.say("calc")
    session.expect(QUESTION)
    shown = " ".join(plain(session.screen).replace("│", " ").split())
    assert "[y]es [n]o [a]lways [e]dit [v]iew (Enter = no)" in shown
    session.key("y")
    session.expect("ok")
    assert session.exit() == 0

