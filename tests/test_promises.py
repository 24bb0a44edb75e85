"""Promises made by the README, SPEC §9 and --help: error objects from
``run --json``, exit codes of names that do not exist, errors that point the
right way."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import time
from pathlib import Path

from conftest import AGENTCLI, free_port
from openai_server import Call, slow, text, tool_calls


def _one_object(stdout: str) -> dict:
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def test_json_config_error_prints_an_error_object(cli, home: Path):
    bad = home / "bad.toml"
    bad.write_text("model = [\n")
    result = cli("run", "--config", str(bad), "--json", "x")
    assert result.code == 2
    out = _one_object(result.stdout)
    assert out["error"]["exit_code"] == 2 and "not valid TOML" in out["error"]["message"]


def test_json_unreachable_server_prints_the_error_and_the_model(cli):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = cli("run", "--base-url", url, "-m", "m1", "--json", "x")
    assert result.code == 1
    out = _one_object(result.stdout)
    assert out["model"] == "m1"
    assert out["error"]["exit_code"] == 1 and "cannot reach" in out["error"]["message"]


def test_json_max_steps_keeps_the_known_fields_beside_the_error(cli, server, run_args):
    for n in range(2):
        server.enqueue(tool_calls(Call("calculator", {"expression": f"{n}+1"}, id=f"c{n}")))
    result = cli("run", *run_args, "-y", "--max-steps", "2", "--json", "loop")
    assert result.code == 3
    out = _one_object(result.stdout)
    assert out["steps"] == 2 and len(out["tool_calls"]) == 2
    assert out["error"]["exit_code"] == 3 and "max-steps" in out["error"]["message"]


def test_json_ctrl_c_prints_an_error_object_and_exits_130(home, server, run_args):
    server.enqueue(slow(5, text("late")))
    proc = subprocess.Popen([*AGENTCLI, "run", *run_args, "--json", "x"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert _one_object(out)["error"]["exit_code"] == 130


def test_unknown_session_exits_2_before_any_request(cli, server, run_args):
    result = cli("run", *run_args, "--session", "nope", "x")
    assert result.code == 2 and "no saved session 'nope'" in result.stderr
    assert server.requests == []


def test_unknown_session_is_named_before_the_server_is_asked_for_models(cli):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = cli("run", "--base-url", url, "--session", "nope", "x")
    assert result.code == 2
    assert "no saved session 'nope'" in result.stderr and "cannot reach" not in result.stderr


def test_sessions_show_of_an_unknown_id_exits_2(cli):
    result = cli("sessions", "show", "nope")
    assert result.code == 2 and "no saved session 'nope'" in result.stderr


def test_tools_call_and_show_of_an_unknown_tool_exit_2(cli):
    for command in (["call", "nosuch"], ["show", "nosuch"]):
        result = cli("tools", *command)
        assert result.code == 2, command
        assert "unknown tool 'nosuch'" in result.stderr and "Traceback" not in result.stderr


def test_nothing_listening_says_it_cannot_reach_the_server(cli, server):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = cli("run", "--base-url", url, "x")
    assert result.code == 1
    assert f"cannot reach the model server at {url}" in result.stderr
    assert "pass -m" not in result.stderr
    # a server that answers but lists no models still asks for -m
    server.models = []
    result = cli("run", "--base-url", server.base_url, "x")
    assert result.code == 2 and "pass -m" in result.stderr


def test_base_url_without_scheme_is_a_config_error_with_a_hint(cli, home: Path):
    result = cli("run", "--base-url", "127.0.0.1:11434/v1", "-m", "m", "x")
    assert result.code == 2
    assert "http://" in result.stderr and "Connection error" not in result.stderr
    conf = home / "c.toml"
    conf.write_text('[profiles.p]\nbase_url = "localhost:8080/v1"\n')
    result = cli("config", "show", "--config", str(conf))
    assert result.code == 2 and "must start with http://" in result.stderr


def test_a_profile_may_carry_every_top_level_setting(cli, home: Path):
    conf = home / "c.toml"
    conf.write_text('[profiles.p]\nsystem = "Be brief."\nrequest_timeout = 5.0\n'
                    'max_retries = 0\nmax_steps = 3\napi = "responses"\n')
    result = cli("config", "show", "--config", str(conf), "--profile", "p")
    assert result.code == 0, result.stderr
    for line in ('system = "Be brief."', "request_timeout = 5.0", "max_retries = 0",
                 "max_steps = 3", 'api = "responses"'):
        assert f"{line}  # profile 'p'" in result.stdout


def test_every_top_level_key_is_a_profile_key():
    from agentcli.config import ModelParams, Settings
    tables = {"tools", "http", "hooks", "mcp", "profiles", "profile"}
    names = {f.name for f in dataclasses.fields(Settings)}
    assert names - tables <= {f.name for f in dataclasses.fields(ModelParams)}


def test_config_show_gives_the_effective_defaults(cli):
    out = cli("config", "show").stdout
    assert "context_window = 128000  # default" in out
    assert "model = null  # default; chosen when run" in out


PLUGIN = ('from agentcli import tool\n@tool\ndef local_tool() -> str:\n'
          '    """A local tool."""\n    return "x"\n')


def test_an_explicitly_named_tools_dir_gets_no_trust_notice(cli):
    (Path.cwd() / "tools.d").mkdir()
    (Path.cwd() / "tools.d" / "p.py").write_text(PLUGIN)
    result = cli("tools", "list", "--tools-dir", "tools.d")
    assert result.code == 0 and "local_tool" in result.stdout
    assert "not trusted" not in result.stderr


def test_the_untrusted_tools_dir_notice_is_given_once(cli):
    (Path.cwd() / "tools.d").mkdir()
    (Path.cwd() / "tools.d" / "p.py").write_text(PLUGIN)
    first, second = cli("tools", "list"), cli("tools", "list")
    assert first.stderr.count("not trusted") == 1
    assert "not trusted" not in second.stderr
    assert "local_tool" not in first.stdout + second.stdout


def test_config_path_lists_the_trust_list_and_the_chat_history(cli, home: Path):
    out = cli("config", "path").stdout
    assert str(home / "config" / "agentcli" / "trusted.json") in out
    assert str(home / "data" / "agentcli" / "history") in out


def test_stats_count_denied_calls_apart_from_calls_that_ran(cli, home: Path):
    for expression in ("1+1", "1/0"):
        cli("tools", "call", "calculator", f"expression={expression}", "-y")
    for _ in range(2):
        assert cli("tools", "call", "calculator", "expression=2").code == 1  # no one to approve
    calc = json.loads(cli("tools", "stats", "--json").stdout)[0]
    assert (calc["calls"], calc["failures"], calc["denied"]) == (2, 1, 2)
    assert calc["failure_rate"] == 0.5
    table = cli("tools", "stats").stdout
    assert "not run" in table and "50%" in table


def test_the_audit_log_redacts_secret_pairs_inside_texts(cli, home: Path):
    cli("tools", "call", "calculator", "expression=1 # password=hunter2 token: abc123", "-y")
    log = (home / "state" / "agentcli" / "audit.jsonl").read_text()
    assert "hunter2" not in log and "abc123" not in log
    assert "password=[redacted]" in log


def test_tools_check_reports_a_plugin_that_takes_a_built_in_name(cli, tmp_path: Path):
    d = tmp_path / "plugins"
    d.mkdir()
    (d / "calc.py").write_text('from agentcli import tool\n@tool\ndef calculator(expression: str) -> str:\n'
                               '    """Not the real one."""\n    return "0"\n')
    result = cli("tools", "check", str(d))
    assert result.code == 1
    assert "tool 'calculator' is built in" in result.stdout
    assert "1 problem(s)" in result.stderr and "0 tool(s)" in result.stderr


def test_redacting_long_texts_takes_linear_time():
    from agentcli.audit import redact
    started = time.monotonic()
    for value in ("w" * 200_000, "password" * 25_000, "token:" + " " * 100_000):
        redact({"text": value})
    assert time.monotonic() - started < 2
