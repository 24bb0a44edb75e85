"""Policy rules, ``--policy FILE`` and the loop guard, through ``agentcli run``
without a terminal against the scripted server."""

from __future__ import annotations

import json
from pathlib import Path

from openai_server import Call, text, tool_calls

ECHO_PLUGIN = '''
from agentcli import tool

@tool
def echo(options: dict) -> str:
    """Echo the options back."""
    return "echoed " + str(options.get("mode"))
'''


def tool_contents(body: dict) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


def audit(home: Path) -> list[dict]:
    lines = (home / "state" / "agentcli" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def write(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


ALLOW_ONES = '''# allow sums that start with 1
[[tools.rules]]
tool = "calc*"
args = { expression = "1+*" }
action = "auto"
'''


def test_policy_file_denies_every_call_no_rule_allows_even_with_yes(cli, server, run_args,
                                                                   tmp_path, home):
    policy = write(tmp_path / "policy.toml", ALLOW_ONES)
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"}, id="a"),
                              Call("calculator", {"expression": "2+2"}, id="b"),
                              Call("current_time", {}, id="c")), text("done"))
    result = cli("run", *run_args, "--yes", "--policy", str(policy), "sum")
    assert result.code == 0, result.stderr
    first, second, third = tool_contents(server.requests[1].body)
    assert first == "2"
    assert second.startswith("denied: no rule of the policy allows this call")
    assert third.startswith("denied: no rule of the policy allows this call")
    entries = audit(home)
    assert entries[0]["rule"] == f"{policy}:2"
    assert "rule" not in entries[1] and entries[1]["status"] == "denied"


RULES = '''[tools.policy]
calculator = "ask"

[[tools.rules]]
tool = "calculator"
action = "auto"

[[tools.rules]]
tool = "*"
args = { expression = "*9*" }
action = "deny"

[[tools.rules]]
tool = "echo"
args = { options = { mode = "safe" } }
action = "auto"

[[tools.rules]]
tool = "echo"
args = { "options.level" = "[0-3]" }
action = "auto"
'''


def test_config_rules_allow_and_deny_on_arguments_and_deny_beats_an_earlier_allow(
        cli, server, run_args, tmp_path, home):
    cfg = write(tmp_path / "c.toml", RULES)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    write(plugins / "echo.py", ECHO_PLUGIN)
    server.enqueue(tool_calls(Call("calculator", {"expression": "2+2"}, id="a"),
                              Call("calculator", {"expression": "9*9"}, id="b"),
                              Call("echo", {"options": {"mode": "safe"}}, id="c"),
                              Call("echo", {"options": {"mode": "rm -rf"}}, id="d"),
                              Call("echo", {"options": {"mode": "x", "level": 2}}, id="e")),
                   text("done"))
    result = cli("run", *run_args, "--config", str(cfg), "--tools-dir", str(plugins), "go")
    assert result.code == 0, result.stderr
    contents = tool_contents(server.requests[1].body)
    assert contents[0] == "4"  # an auto rule runs it with no terminal to ask
    assert contents[1] == f"denied: a policy rule denies this call ({cfg}:8)"
    assert contents[2] == "echoed safe"  # nested table: options.mode
    assert contents[3] == "denied: no one was there to approve it"  # no rule: asks, no one there
    assert contents[4] == "echoed x"  # dotted key; a number is matched as its JSON text
    assert [e.get("rule") for e in audit(home)] == [f"{cfg}:4", f"{cfg}:8", f"{cfg}:13", None,
                                                   f"{cfg}:18"]


BAD = '''[[tools.rules]]
tool = "calculator"
action = "auto"

# the second rule is wrong

[[tools.rules]]
tool = "http_get"
args = { url = 3 }
action = "auto"
'''


def test_tools_check_names_the_file_and_line_of_a_bad_rule(cli, tmp_path):
    policy = write(tmp_path / "policy.toml", BAD)
    result = cli("tools", "check", "--no-tools", "--policy", str(policy))
    assert result.code == 2
    assert f"{policy}:7: args.url must be a glob in quotes" in result.stderr
    assert "Traceback" not in result.stderr
    good = write(tmp_path / "good.toml", ALLOW_ONES)
    result = cli("tools", "check", "--no-tools", "--policy", str(good))
    assert result.code == 0, result.stderr
    assert "1 rule(s)" in result.stderr


def test_a_bad_rule_in_a_config_file_is_named_by_file_and_line(cli, server, run_args, tmp_path):
    cfg = write(tmp_path / "c.toml", 'model = "m"\n\n[[tools.rules]]\ntool = "x"\naction = "yes"\n')
    result = cli("run", *run_args, "--config", str(cfg), "hi")
    assert result.code == 2
    assert f"{cfg}:3: 'action' must be auto, ask or deny (got 'yes')" in result.stderr


def test_tools_call_obeys_the_policy_file(cli, tmp_path):
    policy = write(tmp_path / "policy.toml", ALLOW_ONES)
    assert cli("tools", "call", "calculator", "expression=1+4", "--policy", str(policy)).stdout == "5\n"
    denied = cli("tools", "call", "calculator", "expression=3+4", "--yes", "--policy", str(policy))
    assert denied.code == 1 and "no rule of the policy allows" in denied.stderr


# ---- the loop guard

def test_the_same_call_a_fourth_time_in_a_turn_is_not_run_and_json_says_denied(
        cli, server, run_args):
    same = [tool_calls(Call("calculator", {"expression": "6*7"}, id=f"c{i}")) for i in range(4)]
    server.enqueue(*same, tool_calls(Call("calculator", {"expression": "6 * 7"}, id="c5")),
                   text("42"))
    result = cli("run", *run_args, "--yes", "--json", "loop")
    assert result.code == 0, result.stderr
    calls = json.loads(result.stdout)["tool_calls"]
    assert [c["status"] for c in calls] == ["ok", "ok", "ok", "denied", "ok"]
    assert "already proposed 3 times in this turn" in calls[3]["result"]
    assert "not run again" in tool_contents(server.requests[4].body)[3]


def test_repeat_limit_from_config_and_arguments_compared_canonically(cli, server, run_args,
                                                                    tmp_path):
    cfg = write(tmp_path / "c.toml", "[tools]\nrepeat_limit = 1\n")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    write(plugins / "echo.py", ECHO_PLUGIN)
    server.enqueue(tool_calls(Call("echo", '{"options": {"mode": "a", "n": 1}}', id="a")),
                   tool_calls(Call("echo", '{"options":{"n":1,"mode":"a"}}', id="b")),
                   text("done"), tool_calls(Call("echo", {"options": {"mode": "a", "n": 1}})),
                   text("again"))
    args = ("--config", str(cfg), "--tools-dir", str(plugins), "--yes", "--json")
    calls = json.loads(cli("run", *run_args, *args, "x").stdout)["tool_calls"]
    assert [c["status"] for c in calls] == ["ok", "denied"]
    assert "already proposed once in this turn" in calls[1]["result"]
    # a new turn (here a new run) starts counting again
    assert [c["status"] for c in json.loads(cli("run", *run_args, *args, "y").stdout)["tool_calls"]] == ["ok"]
