"""``agentcli chat`` shows its prompt first: plugins, the SDK and the agent are
loaded in the background, and what loading them prints appears above the
prompt once it is known (pexpect, a real pseudo-terminal)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from openai_server import text
from rich.console import Console
from test_chat import PROMPT, chat, plain  # noqa: F401  (fixture)

from agentcli.commands.chat import ChatOptions, ChatSession
from agentcli.errors import ConfigError

pytestmark = pytest.mark.timeout(120)

GATED = '''
import time
from pathlib import Path
from agentcli import tool

Path({started!r}).touch()
deadline = time.monotonic() + 30
while not Path({release!r}).exists() and time.monotonic() < deadline:
    time.sleep(0.02)


@tool
def gated_tool() -> str:
    """A plugin tool that took its time to import."""
    return "hi"
'''


def wait_for(path: Path, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def test_the_prompt_does_not_wait_for_plugins_and_keys_echo_while_one_imports(chat, server,
                                                                             tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    started, release = tmp_path / "started", tmp_path / "release"
    (tools / "gated.py").write_text(GATED.format(started=str(started), release=str(release)))
    (tools / "broken.py").write_text("def oops(:\n")
    server.enqueue(text("answered with the plugin loaded"))
    session = chat("--tools-dir", str(tools))       # the prompt is up, the plugin still importing
    wait_for(started)
    session.key("/hel")                              # fd 1 is captured while a plugin imports:
    session.expect("/hel")                           # the keys reach the screen all the same
    assert not release.exists()
    release.touch()
    # once loaded, the broken plugin's line appears above the prompt, no key needed
    # (the line wraps where the temporary directory's path makes it long)
    before = plain(session.expect(r"broken\.py:1:\s+syntax"))
    assert "/hel" not in before.split("agentcli: ")[-1]  # no prompt text taken as plugin output
    session.expect(PROMPT)                           # drawn again, with what was typed
    session.say("p")
    session.expect("list the tools and their policies")
    session.prompt()
    session.say("/tools")
    session.expect("gated_tool")
    session.prompt()
    session.say("hello")
    session.expect("answered with the plugin loaded")
    offered = [t["function"]["name"] for t in server.requests[0].body["tools"]]
    assert "gated_tool" in offered
    assert session.exit() == 0


def test_a_tool_choice_naming_no_tool_is_an_error_before_the_prompt(home, server):
    # a tool's name is checked against the tools, so they are loaded before the prompt
    opts = ChatOptions(base_url=server.base_url, model="test-model", tool_choice="no_such_tool")
    with pytest.raises(ConfigError, match="--tool-choice no_such_tool: no such tool"):
        ChatSession.open(opts, Console(file=io.StringIO()))
