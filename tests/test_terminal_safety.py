"""Control sequences from a model or a tool never reach the user's terminal raw.

Each test runs the real command twice against the scripted server: in a
pseudo-terminal (pexpect), where escapes, OSC 52, screen clears, titles,
bidi overrides and C1 controls must show as visible ``\\uXXXX`` text while
ordinary text (newlines, tabs, ZWJ emoji, Persian with ZWNJ) prints as
written; and through a pipe, where the output stays byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pexpect
from openai_server import Call, text, tool_calls

HOSTILE = ("clip\x1b]52;c;cHduZWQ=\x07 clear\x1b[2J\x1b[H title\x1b]0;owned\x07 "
           "bidi\u202eevil\u2066iso\u2069 c1\x9b31m del\x7f bs\x08 cr\r bell\x07")
ORDINARY = "family 👨\u200d👩\u200d👧 and می\u200cخواهم\tafter a tab\nsecond line"  # noqa: RUF001 -- Persian on purpose
ANSWER = HOSTILE + "\n" + ORDINARY
RAW = ["\x1b]52", "\x1b[2J", "\x1b[H", "\x1b]0;", "\u202e", "\u2066", "\u2069", "\x9b", "\x7f",
       "\x08", "\x07"]
SHOWN = ["\\u001b]52;c;cHduZWQ=\\u0007", "\\u001b[2J", "\\u001b]0;owned", "\\u202eevil",
         "\\u2066iso\\u2069", "\\u009b31m", "\\u007f", "\\u0008", "cr\\u000d"]

PLUGIN = '''from agentcli import tool

@tool(policy="auto")
def page() -> str:
    """Returns a hostile web page."""
    print("printed\\x1b]52;c;cHduZWQ=\\x07 by the plugin")
    return "result\\x1b]0;owned\\x07 \\u202eevil"
'''


def on_terminal(args: list[str]) -> str:
    """Everything the command shows in a pseudo-terminal (stdout and stderr)."""
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "200", "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(sys.executable, ["-m", "agentcli", *args], env=env, encoding="utf-8",
                          codec_errors="strict", timeout=20, dimensions=(40, 200))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return child.before


def piped(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "agentcli", *args], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=20, check=True)


def assert_made_visible(screen: str) -> None:
    assert [seq for seq in RAW if seq in screen] == []
    assert [seq for seq in SHOWN if seq not in screen] == []


def test_the_answer_is_made_visible_on_a_terminal_and_exact_through_a_pipe(home, server,
                                                                            run_args):
    server.enqueue(text(ANSWER, chunk_size=2), text(ANSWER, chunk_size=2))
    screen = on_terminal(["run", *run_args, "--no-tools", "x"])
    assert_made_visible(screen)
    assert ORDINARY.replace("\n", "\r\n") in screen  # the pty turns \n into \r\n
    assert piped(["run", *run_args, "--no-tools", "x"]).stdout == (ANSWER + "\n").encode()


def test_json_on_a_terminal_escapes_what_json_leaves_raw_and_keeps_the_value(home, server,
                                                                              run_args):
    server.enqueue(text(ANSWER), text(ANSWER))
    screen = on_terminal(["run", *run_args, "--no-tools", "--json", "x"])
    assert [seq for seq in RAW if seq in screen] == []
    assert json.loads(screen.strip().splitlines()[-1])["answer"] == ANSWER
    out = piped(["run", *run_args, "--no-tools", "--json", "x"]).stdout
    assert json.loads(out)["answer"] == ANSWER and "\u202e".encode() in out  # as before


def test_tool_lines_and_plugin_output_are_made_visible_in_run(home, server, run_args,
                                                              tmp_path: Path):
    (tmp_path / "page.py").write_text(PLUGIN)
    server.enqueue(tool_calls(Call("page", {})), text(HOSTILE))
    screen = on_terminal(["run", *run_args, "--tools-dir", str(tmp_path), "x"])
    assert [seq for seq in RAW if seq in screen] == []
    assert "\\u001b]0;owned" in screen and "printed\\u001b]52;" in screen


def test_tools_call_output_is_made_visible_on_a_terminal_and_exact_through_a_pipe(
        home, tmp_path: Path):
    (tmp_path / "page.py").write_text(PLUGIN)
    args = ["tools", "call", "page", "--tools-dir", str(tmp_path)]
    screen = on_terminal(args)
    assert [seq for seq in RAW if seq in screen] == []
    assert "result\\u001b]0;owned\\u0007 \\u202eevil" in screen
    assert "printed\\u001b]52;c;" in screen
    assert piped(args).stdout == "result\x1b]0;owned\x07 \u202eevil\n".encode()
