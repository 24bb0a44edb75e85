"""Several processes on one session: every turn is kept, or the loser says so.

The writers are real ``agentcli`` processes (``run --session``, ``chat``)
talking to the scripted server at the same time.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
from dataclasses import dataclass

from conftest import AGENTCLI
from openai_server import Call, Reply, text, tool_calls
from test_chat import chat, plain  # noqa: F401  (fixture)

from agentcli.conversation import Conversation
from agentcli.messages import Message
from agentcli.sessions import SessionStore


@dataclass
class Gate(Reply):
    """Hold a reply until ``barrier`` is full: every writer has loaded the session by then."""

    barrier: threading.Barrier
    reply: Reply

    def send(self, ex) -> None:  # type: ignore[no-untyped-def]
        self.barrier.wait(timeout=60)
        self.reply.send(ex)


def shared_session() -> Conversation:
    conv = Conversation(id="shared", model="test-model")
    conv.add(Message(role="user", content="first question"))
    conv.add(Message(role="assistant", content="first answer"))
    SessionStore().save(conv)
    return conv


def start_run(run_args: list[str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*AGENTCLI, "run", *run_args, *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))


def turns(conv: Conversation) -> list[list[Message]]:
    """The conversation cut into turns, each starting with its user message."""
    out: list[list[Message]] = []
    for msg in conv.messages:
        if msg.role == "user":
            out.append([])
        out[-1].append(msg)
    return out


def test_concurrent_runs_on_one_session_keep_every_turn(home, server, run_args):
    """Four writers load the session, then all save at once (a few seconds of process start-ups)."""
    shared_session()
    writers = 4
    barrier = threading.Barrier(writers)
    calc = tool_calls(Call("calculator", {"expression": "6*7"}))
    server.enqueue(*[Gate(barrier, calc) for _ in range(2)],
                   *[Gate(barrier, text("plain answer")) for _ in range(writers - 2)],
                   text("answer after a tool"), text("answer after a tool"))
    procs = [start_run(run_args, "-y", "--session", "shared", f"question {n}") for n in range(writers)]
    results = [(proc.wait(timeout=90), *proc.communicate()) for proc in procs]
    assert all(code == 0 for code, _, _ in results), results
    saved = SessionStore().load("shared")
    saved.check()  # a valid history for the API
    asked = [turn[0].content for turn in turns(saved)]
    assert sorted(asked) == ["first question", *[f"question {n}" for n in range(writers)]]
    for turn in turns(saved)[1:]:  # each turn whole and in order
        roles = [m.role for m in turn]
        assert roles in (["user", "assistant"], ["user", "assistant", "tool", "assistant"]), roles
    assert sum("was also saved by another process" in err for _, _, err in results) >= 1


def test_a_session_locked_too_long_keeps_the_turn_under_a_new_id(cli, home, server, run_args):
    """Waits out the 5 s lock time-out once: the user-visible path of a stuck writer."""
    shared_session()
    server.enqueue(text("the answer"))
    lock = SessionStore().directory / ".shared.lock"  # the lock file README documents
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held by this test process, as by a stuck writer
    try:
        result = cli("run", *run_args, "--session", "shared", "new question")
    finally:
        os.close(fd)
    assert result.code == 1 and result.stdout == "the answer\n"
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert "session 'shared' is busy" in line and "this turn was saved as session" in line
    new_id = line.rsplit("saved as session ", 1)[1].split()[0]
    kept = SessionStore().load(new_id)
    assert [m.content for m in kept.messages if m.role == "user"] == ["first question", "new question"]
    assert [m.content for m in SessionStore().load("shared").messages][-1] == "first answer"


def said(session, phrase: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``phrase`` is on the screen (rich may wrap long lines)."""
    return phrase in " ".join(plain(session.screen).split())


def test_two_chats_on_one_session_keep_both_and_the_second_is_told(chat, server, home):
    server.enqueue(text("answer a1"), text("answer b1"), text("answer a2"))
    first = chat()
    first.say("question a1")
    first.expect("answer a1")
    first.say("/save shared")
    first.expect("saved session shared")
    second = chat("--resume", "shared", wait=False)
    second.expect(r"Fork or continue\? \[F/c\]")
    assert said(second, "Session shared is open in another agentcli chat")
    second.key("c")
    second.prompt()
    second.say("question b1")
    second.expect("answer b1")
    second.prompt()
    first.say("question a2")
    first.expect("answer a2")
    first.prompt()
    assert said(first, "session shared was also saved by another agentcli meanwhile")
    assert first.exit() == 0 and second.exit() == 0
    saved = SessionStore().load("shared")
    assert [m.content for m in saved.messages if m.role == "user"] == \
        ["question a1", "question b1", "question a2"]
