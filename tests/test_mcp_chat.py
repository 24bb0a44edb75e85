"""MCP tools in ``agentcli chat`` (a real pseudo-terminal): approved through the
same panel, servers restarted by /reload, and none left running after exit."""

from __future__ import annotations

import time
import uuid

import pytest
from mcp_fixtures import processes_with, stdio_server, write_config
from test_chat import PROMPT, QUESTION, chat, last_tool_message  # noqa: F401  (fixture)

pytestmark = pytest.mark.timeout(180)


def test_chat_calls_an_mcp_tool_through_the_approval_panel(chat, server, home):
    marker = f"mcp-test-{uuid.uuid4().hex}"
    write_config(home, stdio_server("files", "normal", marker))
    from openai_server import Call, text, tool_calls

    server.enqueue(tool_calls(Call("files__echo", {"text": "from chat"}, id="c1")), text("echoed"))
    session = chat(wait=False)
    session.expect(PROMPT, timeout=120)
    first = processes_with(marker)
    assert len(first) == 1
    session.say("echo it")
    session.expect("files__echo")
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
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(marker) == []
    assert "Traceback" not in session.screen
