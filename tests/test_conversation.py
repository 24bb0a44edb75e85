"""The conversation invariant and atomic session files."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import pytest

from agentcli.conversation import Conversation
from agentcli.errors import SessionError
from agentcli.messages import Message, ToolCall
from agentcli.sessions import SessionStore


def conv_with_calls(*ids: str) -> Conversation:
    conv = Conversation()
    conv.add(Message(role="user", content="hi"))
    conv.add(Message(role="assistant", tool_calls=[ToolCall(id=i, name="f", arguments="{}") for i in ids]))
    return conv


def test_unanswered_calls_make_the_history_invalid_until_repaired():
    conv = conv_with_calls("a", "b")
    conv.add(Message(role="tool", tool_call_id="a", content="1"))
    with pytest.raises(ValueError, match="unanswered"):
        conv.to_api()
    assert conv.repair() == 1
    api = conv.to_api()
    assert api[-1] == {"role": "tool", "content": conv.messages[-1].content, "tool_call_id": "b"}
    assert "interrupted" in api[-1]["content"]


def test_api_shape_has_no_nulls_and_assistant_content_present():
    api = conv_with_calls("a").messages[1].to_api()
    assert api == {"role": "assistant", "content": "",
                   "tool_calls": [{"id": "a", "type": "function",
                                   "function": {"name": "f", "arguments": "{}"}}]}


def test_set_system_replaces_the_first_message():
    conv = Conversation()
    conv.set_system("one")
    conv.add(Message(role="user", content="x"))
    conv.set_system("two")
    assert [m.content for m in conv.messages] == ["two", "x"]


def test_save_and_load_round_trip(tmp_path):
    store = SessionStore(tmp_path)
    conv = conv_with_calls("a")
    conv.repair()
    store.save(conv)
    loaded = store.load(conv.id)
    assert loaded.messages == conv.messages
    assert [p.stem for p in store.list()] == [conv.id]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_session_killed_mid_call_is_repaired_on_load(tmp_path):
    store = SessionStore(tmp_path)
    conv = conv_with_calls("a", "b")
    (tmp_path / f"{conv.id}.json").write_text(json.dumps(asdict(conv)))
    loaded = store.load(conv.id)
    loaded.to_api()
    assert [m.tool_call_id for m in loaded.messages[-2:]] == ["a", "b"]


def test_corrupt_file_is_reported_and_never_overwritten(tmp_path):
    store = SessionStore(tmp_path)
    (tmp_path / "bad.json").write_text('{"messages": [')
    with pytest.raises(SessionError, match="corrupt"):
        store.load("bad")
    conv = Conversation(id="bad")
    with pytest.raises(SessionError, match="not overwriting"):
        store.save(conv)
    assert (tmp_path / "bad.json").read_text() == '{"messages": ['


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    store = SessionStore(tmp_path)
    conv = conv_with_calls("a")
    conv.repair()
    path = store.save(conv).path
    before = path.read_text()
    conv.add(Message(role="user", content="more"))

    def boom(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(SessionError, match="No space left on device"):
        store.save(conv)
    assert path.read_text() == before
    assert json.loads(before)["id"] == conv.id
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [path.name]


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", ".hidden"])
def test_session_ids_cannot_escape_the_directory(tmp_path, bad):
    with pytest.raises(SessionError, match="invalid session id"):
        SessionStore(tmp_path).path(bad)
