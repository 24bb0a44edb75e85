"""MCP servers started over stdio by ``agentcli run``: their log files, a server
that fails to start, is too slow or dies mid-call, and no process left behind
(checked in the process table), Ctrl-C included.

Each stdio server start imports the SDK in a new process, so these runs are
few and each checks several things."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import pytest
from conftest import AGENTCLI
from mcp_fixtures import processes_with, stdio_server, write_config
from openai_server import Call, text, tool_calls

pytestmark = pytest.mark.timeout(180)


def tool_messages(body: dict) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in body["messages"] if m["role"] == "tool"}


def gone(marker: str, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not processes_with(marker)


def test_failing_slow_and_crashing_servers_leave_the_rest_working(cli, home, server, run_args):
    marker = f"mcp-test-{uuid.uuid4().hex}"
    write_config(home, stdio_server("files", "normal", marker)
                 + stdio_server("crasher", "crasher", marker)
                 + stdio_server("slow", "slow", marker,
                                'env = { SLOW_START = "${TEST_SLOW_START}" }\nstartup_timeout = 1')
                 + '[mcp.servers.missing]\ncommand = "no-such-mcp-server-command"\n')
    server.enqueue(tool_calls(Call("crasher__crash", {}, id="crash")),
                   tool_calls(Call("files__echo", {"text": "still here"}, id="echo"),
                              Call("crasher__crash", {}, id="again")), text("done"))
    result = cli("run", *run_args, "--yes", "--json", "go", env={"TEST_SLOW_START": "120"},
                 timeout=150)
    assert result.code == 0, result.stderr
    logs = home / "state" / "agentcli" / "mcp"
    problems = [ln for ln in result.stderr.splitlines() if ln.startswith("agentcli: MCP server")]
    assert len(problems) == 2, result.stderr  # one line for each server that did not start
    assert any("slow" in ln and "did not start within 1 s" in ln and str(logs / "slow.log") in ln
               for ln in problems)
    assert any("'no-such-mcp-server-command' was not found" in ln and "missing.log" in ln
               for ln in problems)
    first, second = (tool_messages(r.body) for r in server.requests[1:3])
    assert "MCP server crasher failed during the call" in first["crash"]
    assert str(logs / "crasher.log") in first["crash"]
    assert second["echo"] == "echo: still here"
    assert "MCP server crasher is not available: it stopped during a call" in second["again"]
    statuses = [c["status"] for c in json.loads(result.stdout)["tool_calls"]]
    assert statuses == ["error", "ok", "error"]
    # stderr of the servers goes to their logs, never to the terminal
    assert "normal server starting" in (logs / "files.log").read_text()
    assert "echo called with 'still here'" in (logs / "files.log").read_text()
    assert "crasher: going down now" in (logs / "crasher.log").read_text()
    assert "normal server starting" not in result.stderr
    assert gone(marker), processes_with(marker)


def test_ctrl_c_during_an_mcp_call_stops_every_server(home, server, run_args):
    marker = f"mcp-test-{uuid.uuid4().hex}"
    write_config(home, stdio_server("files", "normal", marker)
                 + stdio_server("crasher", "crasher", marker))
    server.enqueue(tool_calls(Call("crasher__hang", {"seconds": 600}, id="h")), text("never"))
    proc = subprocess.Popen([*AGENTCLI, "run", *run_args, "--yes", "wait"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ), text=True)
    try:
        deadline = time.monotonic() + 120
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.requests, "agentcli never asked the model"
        assert len(processes_with(marker)) == 2
        time.sleep(1.0)  # the call is under way
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert gone(marker), processes_with(marker)


def test_sigterm_during_an_mcp_call_stops_every_server(home, server, run_args):
    marker = f"mcp-test-{uuid.uuid4().hex}"
    write_config(home, stdio_server("crasher", "crasher", marker))
    server.enqueue(tool_calls(Call("crasher__hang", {"seconds": 600}, id="h")), text("never"))
    proc = subprocess.Popen([*AGENTCLI, "run", *run_args, "--yes", "wait"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ), text=True)
    try:
        deadline = time.monotonic() + 120
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.requests, "agentcli never asked the model"
        time.sleep(1.0)  # the call is under way
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert gone(marker), processes_with(marker)
