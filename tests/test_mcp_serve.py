"""``agentcli mcp serve``: the official SDK's client drives the real command over stdio.

The client sessions run once for the module, side by side, and each test
checks what one of them saw: the legacy handshake with elicitation (as Claude
Desktop speaks it), the 2026-07-28 protocol (elicitation through
``InputRequiredResult``), and clients that cannot be asked, with and without
``--allow``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from conftest import AGENTCLI
from http_server import LoopbackServer
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types.version import is_version_at_least

from agentcli.config import ToolSettings
from agentcli.events import ApprovalRequest
from agentcli.mcp.serve import APPROVAL_SCHEMA, Service, question, select
from agentcli.messages import ToolCall
from agentcli.policy import Rules, parse_rules
from agentcli.tools.base import tool
from agentcli.tools.registry import ToolRegistry

PLUGIN = '''
import os
from agentcli import tool

print("a plugin talking at import")

@tool
def shout(text: str) -> str:
    """Say the text in capitals."""
    os.write(1, b"written to fd 1 by shout\\n")
    print("printed by shout")
    return text.upper()
'''

CONFIG = '''
[tools.policy]
calculator = "auto"
http_get = "auto"
shout = "auto"
http_post = "deny"

[mcp.servers.itself]            # as another agentcli would use this one: never started by serve
command = "no-such-mcp-command"
'''

HOOK = '''
[[hooks.pre_tool]]              # writes down every call it sees
match = "current_time"
command = ["{python}", "-c", "import sys; print(sys.stdin.read(), file=open({log!r}, 'a'))"]
'''


@dataclass
class Session:
    """What one client saw."""

    tools: list[str] = field(default_factory=list)
    calls: dict[str, types.CallToolResult] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    stderr: str = ""
    protocol: str = ""


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "AGENTCLI_")) and k.lower() not in
           ("http_proxy", "https_proxy")}
    for sub in ("config", "data", "state"):
        env[f"XDG_{sub.upper()}_HOME"] = str(home / sub)
    return {**env, "HOME": str(home)}


async def drive(home: Path, label: str, *flags: str, mode: str = "legacy",
                answers: list[str] | None = None, calls: dict[str, tuple[str, dict]]) -> Session:
    """Start ``agentcli mcp serve`` for one client, list its tools and make ``calls``
    (key: (tool, arguments)) in order; ``answers`` are the user's elicitation answers."""
    seen = Session()
    queue = list(answers or [])

    async def on_elicit(ctx: Any, params: Any) -> types.ElicitResult:
        seen.asked.append(params.message)
        action = queue.pop(0)
        return types.ElicitResult(action=action, content={"always": False}
                                  if action == "accept" else None)

    log = home / f"serve-{label}.log"
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "agentcli", "mcp", "serve", *flags],
                                   env=environment(home), cwd=str(home / "work"))
    with log.open("w") as errlog:
        transport = stdio_client(params, errlog=errlog)
        async with Client(transport, mode=mode, cache=None,
                          elicitation_callback=on_elicit if answers is not None else None) as c:
            seen.protocol = c.protocol_version
            seen.tools = sorted(t.name for t in (await c.list_tools()).tools)
            for key, (name, arguments) in calls.items():
                seen.calls[key] = await c.call_tool(name, arguments)
    seen.stderr = log.read_text()
    return seen


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("serve-home")
    for sub in ("config/agentcli", "data", "state", "work", "tools"):
        (home / sub).mkdir(parents=True)
    (home / "config" / "agentcli" / "config.toml").write_text(
        CONFIG + HOOK.format(python=sys.executable, log=str(home / "hooked.jsonl")))
    (home / "tools" / "loud.py").write_text(PLUGIN)
    tools = ["--tools-dir", str(home / "tools")]
    with LoopbackServer() as web:
        ask_both = {"yes": ("current_time", {"timezone": "UTC"}),
                    "no": ("current_time", {"timezone": "Europe/Paris"})}
        legacy_calls = {
            "calculator": ("calculator", {"expression": "17*23"}),
            "plugin": ("shout", {"text": "quiet please"}),
            "error": ("calculator", {"expression": "1/0"}),
            "invalid": ("calculator", {"expr": "1+1"}),
            "ssrf": ("http_get", {"url": web.url("/text")}),
            "denied tool": ("http_post", {"url": web.url("/echo")}),
            **ask_both,
        }

        async def everything() -> list[Session]:
            return await asyncio.gather(
                drive(home, "legacy", *tools, answers=["accept", "decline"], calls=legacy_calls),
                drive(home, "modern", mode="auto", answers=["accept", "decline"],
                      calls=ask_both),
                drive(home, "mute", calls={"hidden": ("current_time", {})}),
                drive(home, "allowed", "--allow", "current_time",
                      calls={"allowed": ("current_time", {})}))

        legacy, modern, mute, allowed = asyncio.run(everything())
        reached = list(web.requests)
    return {"legacy": legacy, "modern": modern, "mute": mute, "allowed": allowed,
            "reached": reached, "home": home}


def test_a_client_lists_builtins_and_plugins_but_never_a_denied_tool(sessions):
    assert sessions["legacy"].tools == ["calculator", "current_time", "http_get", "shout",
                                        "web_fetch"]


def test_serve_starts_no_configured_mcp_server(sessions):
    # a config that both serves agentcli and uses it must not start itself in a loop
    assert "itself" not in sessions["legacy"].stderr
    assert not (sessions["home"] / "state" / "agentcli" / "mcp" / "itself.log").exists()


def test_the_calculator_answers_through_the_sandbox(sessions):
    calls = sessions["legacy"].calls
    assert text_of(calls["calculator"]) == "391" and calls["calculator"].is_error is False
    assert calls["error"].is_error is True
    assert "division by zero" in text_of(calls["error"]).lower()
    invalid = calls["invalid"]
    assert invalid.is_error is True and "expression" in text_of(invalid)


def test_a_plugin_tool_runs_and_its_output_stays_off_the_wire(sessions):
    legacy = sessions["legacy"]
    assert text_of(legacy.calls["plugin"]) == "QUIET PLEASE"
    assert legacy.calls["plugin"].is_error is False
    assert "written to fd 1 by shout" in legacy.stderr
    assert "a plugin talking at import" in legacy.stderr


def test_the_ssrf_guard_refuses_loopback(sessions):
    result = sessions["legacy"].calls["ssrf"]
    assert result.is_error is True
    assert "127.0.0.1" in text_of(result) and "refused" in text_of(result).lower()
    assert sessions["reached"] == []  # nothing got through to the loopback server


def test_a_tool_the_policy_denies_is_not_served(sessions):
    result = sessions["legacy"].calls["denied tool"]
    assert result.is_error is True and "http_post" in text_of(result)
    assert "policy denies" in text_of(result)


def test_a_tool_that_asks_is_approved_or_declined_through_elicitation(sessions):
    # before 2026-07-28 the server asks mid-call; from then on the client calls again
    assert not is_version_at_least(sessions["legacy"].protocol, "2026-07-28")
    assert is_version_at_least(sessions["modern"].protocol, "2026-07-28")
    for era in ("legacy", "modern"):
        seen = sessions[era]
        assert len(seen.asked) == 2, era  # auto tools ran without asking
        assert "current_time" in seen.asked[0] and '"UTC"' in seen.asked[0]
        assert "Europe/Paris" in seen.asked[1]
        yes, no = seen.calls["yes"], seen.calls["no"]
        assert yes.is_error is False and text_of(yes).startswith("20"), era
        assert no.is_error is True and text_of(no).startswith("denied"), era


def test_pre_tool_hooks_run_once_for_a_call_the_client_is_asked_about(sessions):
    # 2026-07-28: the question goes back in an InputRequiredResult and the client calls
    # again with the answer; the hooks ran for the first call and are not run again
    seen = [json.loads(line) for line in
            (sessions["home"] / "hooked.jsonl").read_text().splitlines()]
    calls = Counter((s["session"], s["arguments"].get("timezone")) for s in seen)
    assert set(calls.values()) == {1}, calls
    by_session = Counter(session for session, _ in calls)
    assert sorted(by_session.values()) == [1, 2, 2]  # allowed; legacy and modern: yes and no


def test_a_tool_that_asks_is_hidden_from_a_client_that_cannot_be_asked(sessions):
    mute = sessions["mute"]
    assert mute.tools == ["calculator", "http_get"]
    assert "cannot be asked for approval, so these tools are not offered: current_time" \
        in mute.stderr
    hidden = mute.calls["hidden"]
    assert hidden.is_error is True and "--allow" in text_of(hidden)


def test_allow_serves_a_tool_that_asks_and_runs_it_without_asking(sessions):
    allowed = sessions["allowed"]
    assert allowed.tools == ["calculator", "current_time", "http_get"]
    result = allowed.calls["allowed"]
    assert result.is_error is False and text_of(result).startswith("20")
    assert allowed.asked == []


def test_calls_are_in_the_audit_log(sessions):
    audit = sessions["home"] / "state" / "agentcli" / "audit.jsonl"
    rows = [json.loads(line) for line in audit.read_text().splitlines()]
    legacy = next(r for r in rows if r["arguments"] == {"expression": "17*23"})["session"]
    mine = [r for r in rows if r["session"] == legacy]
    assert [r["tool"] for r in mine] == ["calculator", "shout", "calculator", "calculator",
                                         "http_get", "current_time", "current_time"]
    assert [r["decision"] for r in mine][-2:] == ["approved", "denied"]


def test_an_unknown_allow_name_is_a_usage_error(cli, home):
    result = cli("mcp", "serve", "--allow", "no_such_tool", input="")
    assert result.code == 2
    assert "no_such_tool" in result.stderr and result.stdout == ""


def test_stdout_carries_only_protocol_messages(home, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "loud.py").write_text(PLUGIN)
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "shout", "arguments": {"text": "hi"}}},
    ]
    proc = subprocess.Popen([*AGENTCLI, "mcp", "serve", "--tools-dir", str(tools), "--allow",
                             "shout"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
    proc.stdin.flush()
    replies = [json.loads(proc.stdout.readline()) for _ in range(2)]
    proc.stdin.close()  # the client leaves: the server ends
    assert proc.wait(timeout=30) == 0
    assert proc.stdout.read() == ""  # nothing but the two replies
    stderr = proc.stderr.read()
    assert [r.get("id") for r in replies] == [1, 2]
    assert replies[1]["result"]["content"][0]["text"] == "HI"
    assert "printed by shout" in stderr and "a plugin talking at import" in stderr


# --- in-process: which tools a client sees --------------------------------------------------

@tool
def reader(path: str) -> str:
    """Read a file."""
    return path


def registry(policies: dict[str, Any]) -> ToolRegistry:
    reg = ToolRegistry(policies)
    reg.register(reader)
    return reg


def rules(text: str, strict: bool = False) -> Rules:
    import tomllib

    return Rules(parse_rules(tomllib.loads(text)["tools"]["rules"], "policy.toml", text),
                 strict=strict)


def names(reg: ToolRegistry, rs: Rules, *, allow: set[str] = frozenset(),
          can_elicit: bool = False) -> list[str]:
    return [t.name for t in select(reg, rs, allow=set(allow), can_elicit=can_elicit).tools]


def test_a_rule_that_asks_hides_a_tool_from_a_mute_client():
    asking = rules('[[tools.rules]]\ntool = "read*"\nargs = { path = "/etc/*" }\naction = "ask"\n')
    assert names(registry({"reader": "auto"}), Rules()) == ["reader"]
    assert names(registry({"reader": "auto"}), asking) == []
    assert names(registry({"reader": "auto"}), asking, can_elicit=True) == ["reader"]
    assert names(registry({"reader": "auto"}), asking, allow={"reader"}) == ["reader"]


def test_a_rule_that_allows_every_call_serves_an_asking_tool():
    allowing = rules('[[tools.rules]]\ntool = "reader"\naction = "auto"\n')
    assert names(registry({}), allowing) == ["reader"]


def test_denied_tools_are_never_served_even_when_allowed():
    denying = rules('[[tools.rules]]\ntool = "reader"\naction = "deny"\n')
    for reg, rs in ((registry({"reader": "deny"}), Rules()), (registry({}), denying)):
        assert names(reg, rs, allow={"reader"}, can_elicit=True) == []


def test_under_a_policy_file_only_tools_a_rule_lets_through_are_served():
    strict_none = rules('[[tools.rules]]\ntool = "other"\naction = "auto"\n', strict=True)
    strict_auto = rules('[[tools.rules]]\ntool = "reader"\naction = "auto"\n', strict=True)
    assert names(registry({}), strict_none, can_elicit=True) == []
    assert names(registry({}), strict_auto) == ["reader"]


def test_the_approval_question_escapes_and_cuts_hostile_arguments():
    request = ApprovalRequest(call=ToolCall(id="c", name="reader", arguments="{}"), tool=reader,
                              arguments={"path": "\x1b[31mred\u202e" + "x" * 5000})
    text = question(request)
    assert "\x1b" not in text and "\u202e" not in text
    assert "more characters" in text and len(text) < 3000
    assert APPROVAL_SCHEMA["properties"]["always"]["type"] == "boolean"


def test_always_answers_are_shared_by_later_calls():
    reg = registry({})
    service = Service(reg, Rules(), ToolSettings(), allow=set())
    asked: list[str] = []

    def approve(request: ApprovalRequest) -> Any:
        from agentcli.events import Decision

        asked.append(request.tool.name)
        return Decision(True, always=True)

    first = service.run("reader", {"path": "a"}, approve)
    second = service.run("reader", {"path": "b"}, approve)
    assert (first.status, second.status, first.result, second.result) == ("ok", "ok", "a", "b")
    assert asked == ["reader"]


def test_arguments_nested_too_deeply_are_an_error_result_not_a_crash():
    service = Service(registry({"reader": "auto"}), Rules(), ToolSettings(), allow=set())
    deep: dict = {}
    inner = deep
    for _ in range(5000):
        inner["x"] = {}
        inner = inner["x"]
    record = service.run("reader", {"path": deep}, lambda request: None)
    assert record.status == "error" and "arguments" in record.result
    assert service.token("reader", {"path": deep}) == ""  # no answer can ever match it


def test_a_call_waiting_for_approval_does_not_hold_up_the_others():
    import threading

    from agentcli.events import Decision

    service = Service(registry({}), Rules(), ToolSettings(), allow=set())
    asked, answer = threading.Event(), threading.Event()

    def slow_user(request: ApprovalRequest) -> Decision:
        asked.set()
        answer.wait(10)
        return Decision(True)

    waiting = threading.Thread(target=service.run, args=("reader", {"path": "a"}, slow_user))
    waiting.start()
    assert asked.wait(10)
    done: list[Any] = []
    quick = threading.Thread(target=lambda: done.append(
        service.run("reader", {"path": "b"}, lambda request: Decision(True))))
    quick.start()
    quick.join(5)
    assert [r.result for r in done] == ["b"]  # it ran while the first call was still waiting
    answer.set()
    waiting.join(10)
    assert not waiting.is_alive()


def test_a_closed_stdout_is_one_clear_error(home):
    done = subprocess.run([*AGENTCLI, "mcp", "serve"], stdin=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=30,
                          preexec_fn=lambda: os.close(1))
    assert done.returncode == 2
    assert "stdin and stdout" in done.stderr and "Traceback" not in done.stderr


def test_a_call_asked_about_through_a_second_call_counts_once_for_the_rate_limit():
    from agentcli.config import ToolLimit
    from agentcli.events import Decision
    from agentcli.mcp.serve import NeedsApproval

    settings = ToolSettings(limits={"reader": ToolLimit(max_calls_per_minute=1)})
    service = Service(registry({}), Rules(), settings, allow=set())

    def not_yet(request: ApprovalRequest) -> Decision:
        raise NeedsApproval(request)

    with pytest.raises(NeedsApproval):
        service.run("reader", {"path": "a"}, not_yet)
    answered = service.run("reader", {"path": "a"}, lambda request: Decision(True))
    assert (answered.status, answered.result) == ("ok", "a")
    again = service.run("reader", {"path": "b"}, lambda request: Decision(True))
    assert again.status == "error" and "rate limited" in again.result


NAP = '''
import time
from agentcli import tool

@tool
def nap(seconds: float) -> str:
    """Sleep a while."""
    time.sleep(seconds)
    return "awake"
'''


def test_a_hostile_client_gets_errors_and_the_server_keeps_serving(home, tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "nap.py").write_text(NAP)

    def call(number: int, name: str, arguments: object) -> str:
        return json.dumps({"jsonrpc": "2.0", "id": number, "method": "tools/call",
                           "params": {"name": name, "arguments": arguments}})

    lines = [
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "hostile", "version": "0"}}}),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        "not json at all", "\udcff\udcfe garbage",
        call(2, "calculator", "17*2"),                      # arguments of the wrong type
        call(3, "current_time", {}),                         # held back: it asks
        call(4, "calculator\x1b[2J", {}),                    # no such tool
        call(5, "calculator", {"expression": "1+" * 500_000 + "1"}),  # huge
        call(6, "calculator", {"expression": "2", "extra": [[[[[[1]]]]]]}),
        '{"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": '
        '"calculator", "arguments": {"expression": NaN}}}',
        json.dumps({"jsonrpc": "2.0", "id": 8, "method": "no/such/method"}),
        call(11, "calculator", {"expression": json.loads("[" * 150 + "]" * 150)}),  # too deep
        call(9, "calculator", {"expression": "6*7"}),
    ]
    proc = subprocess.Popen([*AGENTCLI, "mcp", "serve", "--tools-dir", str(tools), "--allow",
                             "calculator", "--allow", "nap"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(b"".join(line.encode("utf-8", "surrogateescape") + b"\n" for line in lines))
    proc.stdin.flush()
    replies: dict[int, dict] = {}
    while not {2, 3, 4, 5, 6, 7, 8, 9, 11} <= replies.keys():  # calls answer in any order
        line = proc.stdout.readline()
        assert line, proc.stderr.read().decode()
        reply = json.loads(line)
        replies[reply["id"]] = reply
    assert replies[2]["error"]["code"] == -32602  # invalid params, from the SDK
    assert replies[8]["error"]["code"] == -32601
    assert replies[11]["error"]["code"] == -32602  # answered, not dropped: the client waits

    def said(number: int) -> str:
        result = replies[number]["result"]
        assert result["isError"] is (number != 9)
        return result["content"][0]["text"]

    assert "not served here (it asks for approval" in said(3)
    assert "'calculator\x1b[2J' is not served here (no such tool)" in said(4)
    assert "too long" in said(5) and len(said(5)) < 300
    assert "extra" in said(6)
    assert said(7).startswith("error:")  # NaN never reaches the tool
    assert said(9) == "42"
    # the client goes away in the middle of a call: the server ends, cleanly
    proc.stdin.write(call(10, "nap", {"seconds": 1}).encode() + b"\n")
    proc.stdin.flush()
    time.sleep(0.3)
    proc.stdin.close()
    proc.stdout.close()
    assert proc.wait(timeout=30) == 0
    stderr = proc.stderr.read().decode()
    assert "Traceback" not in stderr
    assert "the request 11 (tools/call) is nested deeper than 100 levels" in stderr
