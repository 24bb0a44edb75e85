"""Guards, audit and hand-written schemas, through the executor both loops share."""

from __future__ import annotations

import json

import pytest

from agentcli import tool
from agentcli.audit import AuditLog, read, redact
from agentcli.config import ToolLimit, ToolSettings
from agentcli.conversation import Conversation
from agentcli.events import Decision
from agentcli.executor import Limits, ToolExecutor
from agentcli.messages import Message, ToolCall
from agentcli.tools.registry import ToolRegistry

FAILS = {"n": 0}


@tool(policy="auto")
def flaky(ok: bool) -> str:
    """Fail on demand."""
    if not ok:
        raise RuntimeError("it broke")
    return "fine"


@tool(policy="auto", max_calls_per_minute=2)
def limited() -> str:
    """Rate limited."""
    return "ran"


@tool(policy="auto", parameters={"type": "object", "properties": {
    "n": {"type": "integer", "minimum": 1}, "tag": {"type": "string", "enum": ["a", "b"]}},
    "required": ["n"], "additionalProperties": False})
def handwritten(n: int, tag: str = "a") -> str:
    """Hand-written schema."""
    return f"{tag}{n}"


def executor(tmp_path=None, **settings):
    registry = ToolRegistry()
    registry.extend([flaky, limited, handwritten])
    audit = AuditLog(tmp_path / "audit.jsonl", secrets=["sk-live-123"]) if tmp_path else None
    return ToolExecutor(registry, approve=lambda r: Decision(True), limits=Limits(),
                        tool_settings=ToolSettings(**settings), audit=audit)


def call(ex, name, args, n=[0]):  # noqa: B006 -- a counter shared by every call, on purpose
    n[0] += 1
    conv = Conversation()
    calls = [ToolCall(id=f"c{n[0]}", name=name, arguments=json.dumps(args))]
    conv.add(Message(role="assistant", tool_calls=calls))
    record = ex.run(conv, calls)[0]
    conv.check()
    return record


def test_circuit_breaker_opens_after_consecutive_failures(monkeypatch):
    ex = executor(breaker_failures=2, breaker_cooldown=60)
    clock = [1000.0]
    ex.guards.clock = lambda: clock[0]
    assert call(ex, "flaky", {"ok": False}).status == "error"
    assert call(ex, "flaky", {"ok": False}).status == "error"
    refused = call(ex, "flaky", {"ok": True})
    assert refused.status == "error" and "temporarily unavailable" in refused.result
    clock[0] += 61
    assert call(ex, "flaky", {"ok": True}).result == "fine"


def test_rate_limit_from_decorator_and_config():
    ex = executor()
    clock = [0.0]
    ex.guards.clock = lambda: clock[0]
    assert [call(ex, "limited", {}).status for _ in range(3)] == ["ok", "ok", "error"]
    assert "at most 2 times a minute" in call(ex, "limited", {}).result
    clock[0] += 61
    assert call(ex, "limited", {}).status == "ok"
    ex = executor(limits={"limited": ToolLimit(max_calls_per_minute=1)})
    assert [call(ex, "limited", {}).status for _ in range(2)] == ["ok", "error"]


def test_handwritten_schema_validates_arguments():
    ex = executor()
    assert call(ex, "handwritten", {"n": 3, "tag": "b"}).result == "b3"
    bad = call(ex, "handwritten", {"n": 0, "tag": "z", "extra": 1})
    assert bad.status == "error"
    assert "n: 0 is less than the minimum of 1" in bad.result
    assert "'z' is not one of ['a', 'b']" in bad.result
    assert "Additional properties are not allowed" in bad.result


@pytest.mark.parametrize("schema, message", [
    ({"type": "object", "properties": {"n": {"type": "integr"}}}, "invalid JSON schema"),
    ({"type": "object", "required": "n"}, "invalid JSON schema"),
    ({"type": "string"}, "of type 'object'"),
])
def test_invalid_handwritten_schema_is_refused(schema, message):
    with pytest.raises(ValueError, match=message):
        tool(name="t", parameters=schema)(lambda n: n)


def test_strict_only_when_the_schema_allows_it():
    strict_ok = tool(name="t", parameters={"type": "object", "properties": {"a": {"type": "string"}},
                                 "required": ["a"], "additionalProperties": False})(lambda a: a)
    assert strict_ok.schema(strict=True)["function"]["strict"] is True
    assert "strict" not in strict_ok.schema()["function"]
    assert "strict" not in handwritten.schema(strict=True)["function"]


def test_audit_log_redacts_secrets(tmp_path):
    @tool(policy="auto")
    def login(user: str, password: str, note: str) -> str:
        """Log in."""
        return "ok"
    ex = executor(tmp_path)
    ex.registry.register(login)
    call(ex, "login", {"user": "bob", "password": "hunter2", "note": "key sk-live-123 here"})
    call(ex, "flaky", {"ok": False})
    entries = read(tmp_path / "audit.jsonl")
    assert entries[0]["arguments"] == {"user": "bob", "password": "[redacted]",
                                       "note": "key [redacted] here"}
    assert entries[0]["decision"] == "auto" and entries[0]["result_size"] == 2
    assert entries[1]["status"] == "error" and "it broke" in entries[1]["error"]
    text = (tmp_path / "audit.jsonl").read_text()
    assert "hunter2" not in text and "sk-live-123" not in text


def test_redact_nested():
    assert redact({"headers": {"Authorization": "Bearer x", "Accept": "*/*"}, "list": [{"token": "t"}]}) == \
        {"headers": {"Authorization": "[redacted]", "Accept": "*/*"}, "list": [{"token": "[redacted]"}]}
