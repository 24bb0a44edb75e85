"""``agentcli sessions list / show / rm / export`` on sessions saved in an isolated home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentcli.conversation import Conversation
from agentcli.messages import Message, ToolCall
from agentcli.sessions import SessionStore, parse


def saved(session_id: str, question: str = "what is 17*23?") -> Conversation:
    conv = Conversation(id=session_id, model="test-model")
    conv.set_system("Be brief.")
    conv.add(Message(role="user", content=question))
    conv.add(Message(role="assistant", content="Let me compute.",
                     tool_calls=[ToolCall(id="c1", name="calculator",
                                          arguments='{"expression": "17*23"}')]))
    conv.add(Message(role="tool", tool_call_id="c1", content="391"))
    conv.add(Message(role="assistant", content="It is **391**."))
    SessionStore().save(conv)
    return conv


def sessions_dir(home: Path) -> Path:
    return home / "data" / "agentcli" / "sessions"


def test_list_shows_id_message_count_and_the_first_question_escaped(cli, home):
    saved("alpha", "hostile \x1b]0;title\x07 question\nwith two lines")
    saved("beta")
    result = cli("sessions", "list")
    assert result.code == 0, result.stderr
    assert "alpha" in result.stdout and "beta" in result.stdout and "5" in result.stdout
    assert "\x1b" not in result.stdout and "\\u001b]0;title" in result.stdout
    assert "what is 17*23?" in result.stdout


def test_list_with_no_sessions_and_with_a_corrupt_one(cli, home):
    assert "no saved sessions" in cli("sessions", "list").stdout
    sessions_dir(home).mkdir(parents=True)
    (sessions_dir(home) / "broken.json").write_text("{not json")
    result = cli("sessions", "list")
    assert result.code == 0 and "broken" in result.stdout and "corrupt" in result.stdout


def test_show_prints_the_conversation_with_tool_calls_and_results(cli, home):
    saved("alpha")
    result = cli("sessions", "show", "alpha")
    assert result.code == 0, result.stderr
    out = result.stdout
    for part in ("Be brief.", "what is 17*23?", "calculator", "17*23", "391", "It is 391."):
        assert part in out, part
    assert out.index("what is") < out.index("calculator") < out.index("It is 391.")


def test_export_md_is_a_readable_transcript(cli, home):
    saved("alpha")
    result = cli("sessions", "export", "alpha", "--format", "md")
    assert result.code == 0, result.stderr
    md = result.stdout
    assert md.startswith("# Session alpha")
    assert "## User\n\nwhat is 17*23?" in md
    assert "**Tool call** `calculator` (`c1`):" in md and '"expression": "17*23"' in md
    assert "**Tool result** (`c1`):\n\n```\n391\n```" in md
    assert "It is **391**." in md


def test_export_md_fences_survive_backticks_in_results(cli, home):
    conv = Conversation(id="ticks")
    conv.add(Message(role="user", content="x"))
    conv.add(Message(role="assistant", tool_calls=[ToolCall(id="c1", name="f", arguments="{}")]))
    conv.add(Message(role="tool", tool_call_id="c1", content="```\nnot the end\n```"))
    SessionStore().save(conv)
    md = cli("sessions", "export", "ticks").stdout
    assert "````\n```\nnot the end\n```\n````" in md


def test_export_json_is_the_stored_session(cli, home):
    conv = saved("alpha")
    result = cli("sessions", "export", "alpha", "--format", "json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["id"] == "alpha" and len(data["messages"]) == len(conv.messages)
    assert parse(result.stdout).messages == conv.messages


def test_rm_removes_the_file(cli, home):
    saved("alpha")
    result = cli("sessions", "rm", "alpha")
    assert result.code == 0 and "removed" in result.stdout
    assert not (sessions_dir(home) / "alpha.json").exists()


@pytest.mark.parametrize("command", [["show"], ["rm"], ["export"]])
def test_an_unknown_id_is_one_line_and_exit_2(cli, home, command):
    result = cli("sessions", *command, "nope")
    assert result.code == 2
    assert result.stderr.strip().count("\n") == 0 and "no saved session 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["show"], ["export", "--format", "json"]])
def test_a_corrupt_session_is_reported_and_left_untouched(cli, home, command):
    sessions_dir(home).mkdir(parents=True)
    bad = sessions_dir(home) / "bad.json"
    bad.write_text('{"messages": [')
    result = cli("sessions", *command, "bad")
    assert result.code == 1 and "corrupt" in result.stderr and "Traceback" not in result.stderr
    assert bad.read_text() == '{"messages": ['


def test_an_unknown_format_is_a_usage_error(cli, home):
    saved("alpha")
    result = cli("sessions", "export", "alpha", "--format", "pdf")
    assert result.code == 2 and "md or json" in result.stderr


def test_an_invalid_id_cannot_escape_the_directory(cli, home):
    result = cli("sessions", "show", "../../etc/passwd")
    assert result.code == 1 and "invalid session id" in result.stderr
