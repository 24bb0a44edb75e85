"""Hooks around tool calls: commands from the config and ``@hook`` functions in
plugin files, well-behaved and hostile, through ``agentcli run`` without a
terminal against the scripted server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from openai_server import Call, text, tool_calls


def tool_contents(body: dict) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text("import json, sys\ncall = json.load(sys.stdin)\n" + body)
    return path.as_posix()


def config(tmp_path: Path, event: str, hook: str, *, timeout: float = 5.0,
           match: str = "calc*") -> Path:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[tools.policy]\ncalculator = "auto"\n\n[[hooks.{event}]]\nmatch = "{match}"\n'
                   f'command = ["{sys.executable}", "{hook}"]\ntimeout = {timeout}\n')
    return cfg


def run_one(cli, server, run_args, cfg: Path, *extra: str,
            arguments: dict | None = None) -> tuple[str, dict]:
    server.enqueue(tool_calls(Call("calculator", arguments or {"expression": "6*7"}, id="a")),
                   text("done"))
    result = cli("run", *run_args, "--config", str(cfg), "--json", *extra, "go")
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    return tool_contents(server.requests[-1].body)[0], json.loads(result.stdout)["tool_calls"][0]


def ran_text(content: str, hook: str) -> str:
    """``content`` without the hook's command, whose paths may hold any digits."""
    return content.replace(hook, "").replace(sys.executable, "")


def test_pre_hook_exit_2_denies_with_its_stderr_and_sees_the_call(cli, server, run_args,
                                                                  tmp_path, home):
    seen = tmp_path / "seen.json"
    hook = script(tmp_path, "deny", f"open({str(seen)!r}, 'w').write(json.dumps(call))\n"
                                    "sys.stderr.write('no maths on Sundays')\nsys.exit(2)\n")
    content, record = run_one(cli, server, run_args, config(tmp_path, "pre_tool", hook))
    assert content == f"denied by the hook {sys.executable} {hook}: no maths on Sundays"
    assert record["status"] == "denied"
    call = json.loads(seen.read_text())
    assert call["tool"] == "calculator" and call["arguments"] == {"expression": "6*7"}
    assert set(call) == {"tool", "arguments", "session", "cwd"}
    audit = json.loads((home / "state" / "agentcli" / "audit.jsonl").read_text())
    assert audit["hook"] == f"{sys.executable} {hook}"


def test_pre_hook_changes_the_arguments_and_post_hook_replaces_the_result(cli, server, run_args,
                                                                          tmp_path):
    pre = script(tmp_path, "pre", 'print(json.dumps({"arguments": {"expression": "1+1"}}))\n')
    content, record = run_one(cli, server, run_args, config(tmp_path, "pre_tool", pre))
    assert content == "2" and record["arguments"] == {"expression": "1+1"}
    post = script(tmp_path, "post", 'print(json.dumps({"result": "[redacted] was " '
                                    '+ call["result"] + " " + call["status"]}))\n')
    content, _ = run_one(cli, server, run_args, config(tmp_path, "post_tool", post))
    assert content == "[redacted] was 42 ok"


@pytest.mark.parametrize("body, message", [
    ("sys.exit(3)\n", "exited with status 3"),
    ("import time\ntime.sleep(30)\n", "did not finish within 1 s"),
    ("print('hello, not json')\n", "not JSON"),
    ("print('[1, 2]')\n", "not a JSON object"),
    ("print(json.dumps({'arguments': 'rm -rf'}))\n", "not a JSON object"),
    ("print('[' * 100000)\n", "not JSON"),
    ("print(json.dumps({'arguments': {'expression': 1}}))\n", "not valid"),
])
def test_a_hostile_pre_hook_gives_an_error_result_and_never_runs_the_call(
        cli, server, run_args, tmp_path, body, message):
    hook = script(tmp_path, "bad", body)
    content, record = run_one(cli, server, run_args,
                              config(tmp_path, "pre_tool", hook, timeout=1.0))
    assert record["status"] == "error"
    assert message in content and "42" not in ran_text(content, hook)  # 6*7 never ran


def test_a_hostile_post_hook_withholds_the_result(cli, server, run_args, tmp_path):
    hook = script(tmp_path, "bad", "print('garbage')\n")
    content, record = run_one(cli, server, run_args, config(tmp_path, "post_tool", hook))
    assert record["status"] == "error"
    assert "post_tool hook" in content and "withheld" in content
    assert "42" not in ran_text(content, hook)


def test_a_missing_hook_command_is_an_error_result(cli, server, run_args, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[tools.policy]\ncalculator = "auto"\n[[hooks.pre_tool]]\n'
                   f'command = ["{tmp_path}/no-such-hook"]\n')
    content, record = run_one(cli, server, run_args, cfg)
    assert record["status"] == "error" and "cannot be run" in content


def test_a_hook_never_approves_a_call(cli, server, run_args, tmp_path):
    hook = script(tmp_path, "ok", 'print("{}")\n')
    cfg = config(tmp_path, "pre_tool", hook)
    cfg.write_text(cfg.read_text().replace('calculator = "auto"', 'calculator = "ask"'))
    content, _ = run_one(cli, server, run_args, cfg)
    assert content == "denied: no one was there to approve it"


PLUGIN = '''
import time
from agentcli import hook, tool

@tool(policy="auto")
def shout(word: str) -> str:
    """Shout a word."""
    return word.upper()

@hook("pre_tool", match="shout")
def no_secrets(call):
    if call["arguments"]["word"] == "secret":
        return {"deny": "that word stays quiet"}
    if call["arguments"]["word"] == "boom":
        raise RuntimeError("the hook broke")
    if call["arguments"]["word"] == "hang":
        time.sleep(60)
    return None

@hook("post_tool", match="shout")
def exclaim(call):
    return {"result": call["result"] + "!"}
'''


def test_python_hooks_from_a_plugin_file_and_tools_list_shows_them(cli, server, run_args,
                                                                   tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "shout.py").write_text(PLUGIN)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[tools]\ntimeout = 2.0\n")
    calls = [Call("shout", {"word": w}, id=w) for w in ("hi", "secret", "boom")]
    server.enqueue(tool_calls(*calls), text("done"))
    result = cli("run", *run_args, "--tools-dir", str(plugins), "go")
    assert result.code == 0, result.stderr
    ok, denied, broken = tool_contents(server.requests[1].body)
    assert ok == "HI!"
    assert denied == "denied by the hook no_secrets: that word stays quiet"
    assert broken.startswith("error: the pre_tool hook no_secrets failed (raised RuntimeError")
    listed = cli("tools", "list", "--tools-dir", str(plugins)).stdout
    assert f"hook pre_tool shout: no_secrets  [{plugins / 'shout.py'}]" in listed
    assert "hook post_tool shout: exclaim" in listed


def test_a_python_hook_that_hangs_is_cut_off(cli, server, run_args, tmp_path):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "shout.py").write_text(PLUGIN.replace('@hook("pre_tool", match="shout")',
                                                     '@hook("pre_tool", match="shout", timeout=1)'))
    server.enqueue(tool_calls(Call("shout", {"word": "hang"})), text("done"))
    result = cli("run", *run_args, "--tools-dir", str(plugins), "go")
    assert result.code == 0, result.stderr
    assert "did not finish within 1 s" in tool_contents(server.requests[1].body)[0]
