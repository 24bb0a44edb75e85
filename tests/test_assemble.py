"""Tool-call assembly from stream deltas, quirk by quirk."""

from __future__ import annotations

import pytest

from agentcli.providers.assemble import ToolCallAssembler


def deltas(*items):
    a = ToolCallAssembler()
    for item in items:
        a.feed(item)
    return a


def test_fragments_by_index_in_arrival_order():
    a = deltas({"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}},
               {"index": 1, "id": "b", "function": {"name": "g", "arguments": '{"x"'}},
               {"index": 0, "function": {"arguments": '{"y": 1'}},
               {"index": 1, "function": {"arguments": ": 2}"}},
               {"index": 0, "function": {"arguments": "}"}})
    calls = a.finish("tool_calls")
    assert [(c.id, c.name, c.arguments) for c in calls] == [("a", "f", '{"y": 1}'), ("b", "g", '{"x": 2}')]


def test_ollama_style_index_zero_with_distinct_ids_makes_two_calls():
    calls = deltas({"index": 0, "id": "1", "function": {"name": "f", "arguments": "{}"}},
                   {"index": 0, "id": "2", "function": {"name": "g", "arguments": "{}"}}).finish("stop")
    assert [c.name for c in calls] == ["f", "g"]


def test_missing_index_appends_to_the_latest_call():
    calls = deltas({"id": "1", "function": {"name": "f", "arguments": '{"a"'}},
                   {"function": {"arguments": ": 1}"}}).finish("tool_calls")
    assert calls[0].arguments == '{"a": 1}'


def test_missing_and_duplicate_ids_are_synthesised_uniquely():
    calls = deltas({"index": 0, "function": {"name": "f", "arguments": "{}"}},
                   {"index": 1, "id": "", "function": {"name": "g", "arguments": "{}"}}).finish("tool_calls")
    assert all(c.id.startswith("call_") for c in calls)
    assert calls[0].id != calls[1].id


def test_arguments_as_an_object_become_json_text():
    calls = deltas({"index": 0, "id": "1", "function": {"name": "f", "arguments": {"q": "x"}}}).finish("stop")
    assert calls[0].arguments == '{"q": "x"}'


def test_cut_by_length_marks_only_the_unfinished_last_call():
    calls = deltas({"index": 0, "id": "1", "function": {"name": "f", "arguments": '{"a": 1}'}},
                   {"index": 1, "id": "2", "function": {"name": "f", "arguments": '{"a": "17*'}}).finish("length")
    assert [c.truncated for c in calls] == [False, True]
    assert calls[1].arguments == '{"a": "17*'
    assert calls[1].to_api()["function"]["arguments"] == "{}"


def test_length_with_a_complete_call_is_not_truncated():
    calls = deltas({"index": 0, "id": "1", "function": {"name": "f", "arguments": '{"a": 1}'}}).finish("length")
    assert not calls[0].truncated


def test_a_repeated_id_never_merges_two_calls_whatever_the_index():
    by_index = deltas({"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}},
                      {"index": 1, "id": "a", "function": {"name": "g", "arguments": ""}},
                      {"index": 0, "function": {"arguments": "{}"}},
                      {"index": 1, "function": {"arguments": '{"x": 1}'}}).finish("tool_calls")
    no_index = deltas({"id": "a", "function": {"name": "f", "arguments": "{}"}},
                      {"id": "a", "function": {"name": "g", "arguments": '{"x": 1}'}}).finish("stop")
    index_zero = deltas({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}},
                        {"index": 0, "id": "a", "function": {"name": "g", "arguments": '{"x": 1}'}}
                        ).finish("stop")
    for calls in (by_index, no_index, index_zero):
        assert [(c.name, c.arguments) for c in calls] == [("f", "{}"), ("g", '{"x": 1}')]
        assert calls[0].id == "a" and calls[1].id.startswith("call_") and calls[1].id != "a"
    # but an id (and name) repeated on every delta of one call keeps it one call
    calls = deltas({"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}},
                   {"index": 0, "id": "a", "function": {"arguments": '{"x"'}},
                   {"index": 0, "id": "a", "function": {"name": "f", "arguments": ": 1}"}}
                   ).finish("tool_calls")
    assert [(c.id, c.name, c.arguments) for c in calls] == [("a", "f", '{"x": 1}')]


def test_only_the_arguments_each_delta_brings_count_toward_the_reply_bound(monkeypatch):
    # a delta with no arguments (a name, an id) adds nothing; before, it counted the last part again
    from agentcli.providers import assemble

    monkeypatch.setattr(assemble, "MAX_REPLY_CHARS", 10)
    calls = ToolCallAssembler()
    calls.feed({"index": 0, "id": "c1", "function": {"name": "calculator", "arguments": "1234567890"}})
    for _ in range(5):
        calls.feed({"index": 0, "id": "c1"})
    assert calls.finish("tool_calls")[0].arguments == "1234567890"
    with pytest.raises(assemble.ReplyTooLong):
        calls.feed({"index": 0, "function": {"arguments": "1"}})
