"""``agentcli tools list|show|call|check|stats`` through the real command."""

from __future__ import annotations

import json
from pathlib import Path

PLUGIN = '''from agentcli import tool

@tool(policy="auto")
def shout(text: str, times: int = 1) -> str:
    """Upper-case some text.

    Args:
        text: What to shout.
        times: How often.
    """
    print("plugin says hi")
    return " ".join([text.upper()] * times)
'''


def plugins(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "plugins"
    directory.mkdir(exist_ok=True)
    for name, body in files.items():
        (directory / f"{name}.py").write_text(body)
    return directory


def test_list_shows_builtins_and_plugins(cli, tmp_path):
    d = plugins(tmp_path, shout=PLUGIN)
    result = cli("tools", "list", "--tools-dir", str(d))
    assert result.code == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "calculator" in lines and "current_time" in lines
    assert "auto" in lines["shout"] and "Upper-case some text." in lines["shout"]
    assert str(d / "shout.py") in lines["shout"]
    as_json = json.loads(cli("tools", "list", "--json", "--tools-dir", str(d)).stdout)
    shout = next(t for t in as_json if t["name"] == "shout")
    assert shout == {"name": "shout", "source": str(d / "shout.py"), "policy": "auto",
                     "description": "Upper-case some text."}
    assert next(t for t in as_json if t["name"] == "calculator")["policy"] == "ask"


def test_list_reports_policy_from_config(cli, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tools.policy]\ncalculator = "deny"\n')
    rows = json.loads(cli("tools", "list", "--json", "--config", str(cfg)).stdout)
    assert next(t for t in rows if t["name"] == "calculator")["policy"] == "deny"


def test_show_prints_the_schema_sent_and_its_size(cli, tmp_path, server, run_args):
    from openai_server import text
    d = plugins(tmp_path, shout=PLUGIN)
    result = cli("tools", "show", "shout", "--tools-dir", str(d))
    assert result.code == 0
    shown = json.loads(result.stdout)
    assert "tokens" in result.stderr
    server.enqueue(text("ok"))
    cli("run", *run_args, "--tools-dir", str(d), "x")
    sent = next(t for t in server.requests[0].body["tools"] if t["function"]["name"] == "shout")
    assert shown == sent


def test_show_unknown_tool(cli):
    result = cli("tools", "show", "nope")
    assert result.code == 2 and "unknown tool 'nope'" in result.stderr


def test_call_with_key_value_and_json(cli, tmp_path):
    d = plugins(tmp_path, shout=PLUGIN)
    result = cli("tools", "call", "shout", "text=hey", "times=2", "--tools-dir", str(d))
    assert (result.code, result.stdout) == (0, "HEY HEY\n")
    assert "plugin says hi" in result.stderr  # shown as plugin output, not in the result
    result = cli("tools", "call", "shout", '{"text": "a"}', "--tools-dir", str(d))
    assert result.stdout == "A\n"


def test_call_validates_and_asks_like_a_model_call(cli, home):
    invalid = cli("tools", "call", "calculator", "expr=1")
    assert invalid.code == 1 and "expression: Field required" in invalid.stderr
    unattended = cli("tools", "call", "calculator", "expression=1+1")
    assert unattended.code == 1 and "no one was there to approve it" in unattended.stderr
    approved = cli("tools", "call", "calculator", "expression=1+1", "--yes")
    assert (approved.code, approved.stdout) == (0, "2\n")
    entries = [json.loads(line) for line in (home / "state" / "agentcli" / "audit.jsonl").read_text().splitlines()]
    assert [(e["tool"], e["status"], e["decision"]) for e in entries] == [
        ("calculator", "error", "not asked"), ("calculator", "denied", "denied"),
        ("calculator", "ok", "approved")]


def test_call_bad_json(cli):
    result = cli("tools", "call", "calculator", "{nope", "-y")
    assert result.code == 2 and "not valid JSON" in result.stderr


def test_check_reports_each_problem_and_exits_1(cli, tmp_path):
    d = plugins(tmp_path, good=PLUGIN, bad="import nope_missing_module\n",
                broken="def f(:\n", exits="import sys\nsys.exit(0)\n")
    result = cli("tools", "check", str(d))
    assert result.code == 1
    lines = result.stdout.splitlines()
    assert f"{d / 'bad.py'}:1: ModuleNotFoundError: No module named 'nope_missing_module'" in lines
    assert any(line.startswith(f"{d / 'broken.py'}:1: syntax error") for line in lines)
    assert any(line.startswith(f"{d / 'exits.py'}:2: called sys.exit(0)") for line in lines)
    assert "3 problem(s)" in result.stderr and "1 tool(s)" in result.stderr


def test_check_clean_directory_exits_0(cli, tmp_path):
    d = plugins(tmp_path, good=PLUGIN)
    assert cli("tools", "check", str(d)).code == 0


def test_stats_from_the_audit_log(cli, home, tmp_path):
    for expression in ("1+1", "1/0", "2*3"):
        cli("tools", "call", "calculator", f"expression={expression}", "-y")
    rows = json.loads(cli("tools", "stats", "--json").stdout)
    calc = rows[0]
    assert (calc["tool"], calc["calls"], calc["failures"]) == ("calculator", 3, 1)
    assert abs(calc["failure_rate"] - 1 / 3) < 0.01
    assert calc["common_errors"][0][0] == "error: division by zero"
    table = cli("tools", "stats").stdout
    assert "calculator" in table and "33%" in table


def test_plugin_output_never_reaches_json_stdout(cli, server, run_args, tmp_path):
    from openai_server import Call, text, tool_calls
    d = plugins(tmp_path, shout=PLUGIN)
    server.enqueue(tool_calls(Call("shout", {"text": "x"})), text("done"))
    result = cli("run", *run_args, "--tools-dir", str(d), "--json", "x")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["answer"] == "done"
    assert "plugin says hi" in result.stderr
    assert server.requests[1].body["messages"][-1]["content"] == "X"


def test_no_tools_empties_every_tools_command(cli, tmp_path):
    d = plugins(tmp_path, shout=PLUGIN)
    assert json.loads(cli("tools", "list", "--json", "--no-tools", "--tools-dir", str(d)).stdout) == []
    assert cli("tools", "show", "calculator", "--no-tools").code == 2
    assert "unknown tool" in cli("tools", "call", "calculator", "expression=1", "--no-tools").stderr
    checked = cli("tools", "check", "--no-tools", "--tools-dir", str(d))
    assert checked.code == 0 and "0 plugin file(s)" in checked.stderr
