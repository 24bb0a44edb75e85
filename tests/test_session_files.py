"""What reaches the sessions folder, and what the commands make of what is in it:
no API key in a file, a save that fails is one line, and a broken entry
(a dangling link, a link, a file nested thousands of levels deep) is listed
as unreadable and skipped, never a crash."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from openai_server import Call, text, tool_calls
from test_chat import chat, plain  # noqa: F401  (fixture)

from agentcli.conversation import Conversation
from agentcli.messages import Message
from agentcli.sessions import SessionStore

DEEP = '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}"


def sessions_dir(home: Path) -> Path:
    return home / "data" / "agentcli" / "sessions"


def good_session(session_id: str, question: str) -> None:
    conv = Conversation(id=session_id)
    conv.add(Message(role="user", content=question))
    conv.add(Message(role="assistant", content="an answer"))
    SessionStore().save(conv)


def broken_entries(home: Path, tmp_path: Path) -> None:
    """A good session, then (newer) a dangling link, a link to a good file and a deep file."""
    good_session("alpha", "the alpha question")
    folder = sessions_dir(home)
    (folder / "ghost.json").symlink_to(folder / "nowhere.json")
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text((folder / "alpha.json").read_text())
    (folder / "linked.json").symlink_to(elsewhere)
    (folder / "deep.json").write_text(DEEP)


def test_the_api_key_repeated_by_the_model_is_in_no_file(cli, server, run_args, home):
    key = "sk-Repeat/Me+0123456789="  # '/', '+' and '=' change when percent-encoded
    disguises = [key, key.upper(), quote(key, safe="")]
    server.enqueue(tool_calls(Call("calculator", {"expression": key}), content=f"using {key}"),
                   text(f"Your key is {key}, loudly {key.upper()}, encoded {quote(key, safe='')}."))
    result = cli("run", *run_args, "-y", "--save", "--json", "x", env={"OPENAI_API_KEY": key})
    assert result.code == 0, result.stderr
    assert key in json.loads(result.stdout)["answer"]  # the model did repeat it
    written = {p: p.read_text() for p in home.rglob("*") if p.is_file()}
    assert written
    for path, content in written.items():
        assert not any(form.lower() in content.lower() for form in disguises), path
    session = SessionStore().load(json.loads(result.stdout)["session_id"])
    assert session.messages[-1].content == "Your key is [redacted], loudly [redacted], encoded [redacted]."
    assert "[redacted]" in session.messages[1].tool_calls[0].arguments


def test_an_unwritable_data_directory_is_one_line_after_the_answer(cli, server, run_args, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")  # works as root too, unlike chmod
    server.enqueue(text("the answer"), text("the answer"))
    env = {"XDG_DATA_HOME": str(blocker)}
    result = cli("run", *run_args, "--save", "x", env=env)
    assert (result.code, result.stdout) == (1, "the answer\n")
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert f"cannot save the session to {blocker}" in line and "this turn was not saved" in line
    result = cli("run", *run_args, "--save", "--json", "x", env=env)
    assert result.code == 1 and json.loads(result.stdout)["answer"] == "the answer"
    assert json.loads(result.stdout)["session_id"] is None


def test_broken_entries_are_listed_as_unreadable(cli, home, tmp_path):
    broken_entries(home, tmp_path)
    result = cli("sessions", "list")
    assert result.code == 0 and "Traceback" not in result.stderr, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "the alpha question" in rows["alpha"]
    for name in ("ghost", "linked", "deep"):
        assert "corrupt or unreadable: skipped" in rows[name], name


def test_broken_entries_are_errors_naming_the_file(cli, server, run_args, home, tmp_path):
    broken_entries(home, tmp_path)
    for name, why in [("deep", "nested more than"), ("ghost", "a symbolic link"),
                      ("linked", "a symbolic link")]:
        runs = [["sessions", "show", name]] + [["run", *run_args, "--session", name, "x"]] * (name != "ghost")
        for command in runs:
            result = cli(*command)
            assert result.code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert f"{name}.json: the session file is corrupt" in result.stderr and why in result.stderr
    assert (tmp_path / "elsewhere.json").read_text() == (sessions_dir(home) / "alpha.json").read_text()
    assert not server.requests


def test_chat_skips_broken_entries_in_resume_sessions_and_load(chat, server, home, tmp_path):
    broken_entries(home, tmp_path)
    server.enqueue(text("resumed fine"))
    session = chat("--resume")           # the newest readable session
    session.say("/sessions")
    session.expect("deep")
    session.prompt()
    session.key("/load \t")              # completion lists every entry
    session.expect("ghost")
    session.key("\x15")                  # Ctrl-U: clear the line
    session.say("/load deep")
    session.expect("corrupt")
    session.prompt()
    session.say("again")
    session.expect("resumed fine")
    assert session.exit() == 0
    screen = " ".join(plain(session.screen).split())
    assert "resumed session alpha" in screen
    assert [m["content"] for m in server.requests[0].body["messages"]] == \
        ["the alpha question", "an answer", "again"]
