"""Checks against a real llama.cpp server (slow; ``pytest -m llama``).

Needs ``AGENTCLI_LLAMA_SERVER`` (the llama-server binary) and
``AGENTCLI_LLAMA_MODEL`` (a GGUF file); ``scripts/build-llama-server.sh``
builds and fetches both and prints the two lines to export. The chat template
in ../shared/llama makes the small base model emit real tool calls when the
conversation already holds two calculator exchanges.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

pytestmark = pytest.mark.llama

TEMPLATE = Path(__file__).resolve().parents[2] / "shared" / "llama" / "gemma-tools.jinja"


@pytest.fixture(scope="module")
def llama_url():
    binary, model = os.environ.get("AGENTCLI_LLAMA_SERVER"), os.environ.get("AGENTCLI_LLAMA_MODEL")
    if not binary or not model:
        pytest.skip("set AGENTCLI_LLAMA_SERVER and AGENTCLI_LLAMA_MODEL (scripts/build-llama-server.sh)")
    if not TEMPLATE.is_file():
        pytest.skip(f"chat template not found at {TEMPLATE}: ../shared is absent in this checkout")
    port = free_port()
    proc = subprocess.Popen([binary, "-m", model, "--host", "127.0.0.1", "--port", str(port),
                             "--jinja", "--chat-template-file", str(TEMPLATE), "-c", "4096",
                             "-t", "2", "--alias", "gemma"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url + "/models", timeout=1).read()
                break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("llama-server did not start within 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def primed_session(home: Path) -> str:
    """A saved session holding two earlier calculator exchanges."""
    messages = []
    for n, (question, expression, result) in enumerate([("What is 12*12?", "12*12", "144"),
                                                        ("What is 7*8?", "7*8", "56")]):
        messages += [{"role": "user", "content": question},
                     {"role": "assistant", "content": "", "tool_calls": [
                         {"id": f"call{n}", "name": "calculator",
                          "arguments": json.dumps({"expression": expression})}]},
                     {"role": "tool", "tool_call_id": f"call{n}", "content": result},
                     {"role": "assistant", "content": f"{expression} is {result}."}]
    sessions = home / "data" / "agentcli" / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    (sessions / "primed.json").write_text(json.dumps({"schema_version": 1, "id": "primed",
                                                      "messages": messages}))
    return "primed"


def config(tmp_path: Path, max_tokens: int) -> str:
    path = tmp_path / f"llama-{max_tokens}.toml"
    path.write_text(f"temperature = 0\nmax_tokens = {max_tokens}\n")
    return str(path)


def test_streamed_text_and_model_discovery(cli, llama_url, tmp_path):
    result = cli("run", "--base-url", llama_url, "--no-tools", "--config", config(tmp_path, 12),
                 "Once upon a time", timeout=120)
    assert result.code == 0, result.stderr
    assert result.stdout.strip()
    assert "cut off by the token limit" in result.stderr


def test_a_real_tool_call_runs_the_calculator(cli, home, llama_url, tmp_path):
    session = primed_session(home)
    result = cli("run", "--base-url", llama_url, "--config", config(tmp_path, 36), "--session",
                 session, "-y", "--json", "What is 17*23?", timeout=120)
    assert result.code == 0, result.stderr
    calls = json.loads(result.stdout)["tool_calls"]
    assert [(c["name"], c["arguments"], c["result"]) for c in calls] == [
        ("calculator", {"expression": "17*23"}, "391")]


def test_a_call_cut_by_the_token_limit_is_never_run(cli, home, llama_url, tmp_path):
    session = primed_session(home)
    result = cli("run", "--base-url", llama_url, "--config", config(tmp_path, 22), "--session",
                 session, "-y", "What is 17*23?", timeout=120)
    assert result.code == 1
    assert "cut off by the token limit" in result.stderr
    audit = home / "state" / "agentcli" / "audit.jsonl"
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["status"] for e in entries] == ["error"]  # answered, never executed
    # the history stays acceptable to the server: continuing the session works
    again = cli("run", "--base-url", llama_url, "--config", config(tmp_path, 36), "--session",
                session, "-y", "--json", "What is 17*23?", timeout=120)
    assert again.code == 0, again.stderr


def test_doctor_reports_what_llama_cpp_supports(cli, llama_url, tmp_path):
    # max_tokens caps every probe (the base model does not stop by itself); the probes'
    # own history of two earlier get_weather exchanges makes it call the tool
    result = cli("doctor", "--base-url", llama_url, "--config", config(tmp_path, 36), "--json",
                 "--timeout", "60", timeout=600)
    report = json.loads(result.stdout)
    rows = {row["probe"]: row for row in report["rows"]}
    assert result.code == report["exit_code"], result.stderr
    assert rows["models"]["result"] == "ok" and "gemma" in rows["models"]["seen"]
    context = rows["context_length"]
    # llama.cpp reports its n_ctx in /v1/models meta (newer) or /props (older)
    assert "n_ctx" in context["seen"] and context["result"] == "deviates"
    assert int(context["seen"].split()[0]) <= 4096
    assert rows["streaming"]["result"] in ("ok", "deviates") and "text chunk" in rows["streaming"]["seen"]
    assert all("the probe failed" not in row["seen"] for row in report["rows"])
    assert rows["tool_call"]["tool_call"] and report["tools_work"] and result.code == 0


def test_a_turn_ended_by_a_server_error_leaves_a_history_the_real_server_accepts(
        cli, home, llama_url, tmp_path):
    # the first turn's server is gone: the question is kept with a marker answer, so the
    # saved history still alternates user/assistant when the real server continues it
    gone = f"http://127.0.0.1:{free_port()}/v1"
    failed = cli("run", "--base-url", gone, "-m", "gemma", "--no-tools", "--save", "--json",
                 "Say hello.", timeout=60)
    assert failed.code == 1
    session = json.loads(failed.stdout)["session_id"]
    again = cli("run", "--base-url", llama_url, "--no-tools", "--config", config(tmp_path, 12),
                "--session", session, "--json", "Once upon a time", timeout=120)
    assert again.code == 0, again.stderr
    saved = json.loads((home / "data" / "agentcli" / "sessions" / f"{session}.json").read_text())
    roles = [m["role"] for m in saved["messages"] if m["role"] != "system"]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert saved["messages"][1]["content"].startswith("[no answer")
