"""MCP tools in ``agentcli chat`` (a real pseudo-terminal): approved through the
same panel, servers restarted by /reload, and none left running after exit.
The prompt does not wait for the servers: the first request does, with a
spinner naming the slow one."""

from __future__ import annotations

import time
import uuid

import pytest
from mcp_fixtures import processes_with, stdio_server, write_config
from openai_server import Call, text, tool_calls
from test_chat import PROMPT, QUESTION, chat, last_tool_message  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(180)


def started(marker: str, within: float = 60) -> list[int]:
    """The processes with ``marker``, once there are some (the chat starts its
    servers in the background, once its prompt is up)."""
    deadline = time.monotonic() + within
    while not (found := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def gone(marker: str, within: float = 5) -> bool:
    deadline = time.monotonic() + within
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not processes_with(marker)


def test_chat_calls_an_mcp_tool_through_the_approval_panel(chat, server, home):
    marker = f"mcp-test-{uuid.uuid4().hex}"
    write_config(home, stdio_server("files", "normal", marker))
    server.enqueue(tool_calls(Call("files__echo", {"text": "from chat"}, id="c1")), text("echoed"))
    session = chat(wait=False)
    session.expect(PROMPT, timeout=120)
    first = started(marker)
    assert len(first) == 1
    session.say("echo it")
    session.expect("files__echo", timeout=60)
    session.expect(QUESTION)
    session.key("y")
    session.expect("echoed")
    session.prompt()
    assert last_tool_message(server, 1)["content"] == "echo: from chat"
    session.say("/reload")
    session.expect("tools loaded", timeout=120)
    again = processes_with(marker)
    assert len(again) == 1 and again != first  # the server was restarted
    assert session.exit() == 0
    assert gone(marker)
    assert "Traceback" not in session.screen


def test_the_prompt_does_not_wait_for_a_slow_server_the_first_question_does(chat, server, home,
                                                                           tmp_path):
    marker = f"mcp-test-{uuid.uuid4().hex}"
    gate = tmp_path / "serve-now"  # the slow server serves only once this file exists
    write_config(home, stdio_server("slow", "slow", marker, f"env = {{ SLOW_GATE = {str(gate)!r} }}")
                 + '[mcp.servers.missing]\ncommand = "no-such-mcp-server-command"\n')
    server.enqueue(tool_calls(Call("slow__ping", {}, id="p1")), text("the server said pong"))
    session = chat()                          # the prompt is up; the slow server cannot be
    assert started(marker)
    session.say("/tools")
    assert "slow__ping" not in session.expect("MCP server still starting: slow")
    session.prompt()
    session.say("ping the slow server")
    session.expect("waiting for MCP server slow", timeout=30)
    time.sleep(0.3)
    assert server.requests == []              # nothing is asked before the server is up
    gate.touch()
    session.expect("MCP server missing is not available: it cannot be started", timeout=60)
    session.expect("slow__ping", timeout=60)
    session.expect(QUESTION)
    session.key("y")
    session.expect("the server said pong")
    session.prompt()
    offered = [t["function"]["name"] for t in server.requests[0].body["tools"]]
    assert "slow__ping" in offered and not any(n.startswith("missing__") for n in offered)
    assert last_tool_message(server, 1)["content"] == "pong"
    assert session.exit() == 0
    assert gone(marker)


@pytest.mark.slow
def test_leaving_while_a_server_is_starting_leaves_no_process(chat, server, home, tmp_path):
    marker = f"mcp-test-{uuid.uuid4().hex}"
    gate = tmp_path / "never"
    write_config(home, stdio_server("slow", "slow", marker, f"env = {{ SLOW_GATE = {str(gate)!r} }}"))
    session = chat()
    assert started(marker)
    assert session.exit() == 0
    assert gone(marker)
