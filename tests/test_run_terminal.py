"""``agentcli run`` in a real terminal (pexpect): the approval panel and keys."""

from __future__ import annotations

import os
import sys

import pexpect
from openai_server import Call, text, tool_calls


def spawn(args: list[str], columns: int = 100) -> pexpect.spawn:
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm",
           "PROMPT_TOOLKIT_NO_CPR": "1"}  # pexpect does not answer cursor-position requests
    return pexpect.spawn(sys.executable, ["-m", "agentcli", "run", *args], env=env,
                         encoding="utf-8", timeout=15, dimensions=(40, columns))


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def test_yes_runs_the_call(home, server, run_args):
    server.enqueue(tool_calls(Call("calculator", {"expression": "17*23"}, id="c1")), text("391!"))
    child = spawn([*run_args, "what is 17*23"])
    child.expect("calculator")
    child.expect("Run it\\? ")
    child.send("y")  # a single key, no Enter
    child.expect("391!")
    assert finish(child) == 0
    assert server.requests[1].body["messages"][-1]["content"] == "391"


def test_enter_alone_is_no_and_a_reason_reaches_the_model(home, server, run_args):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"}, id="c1")),
                   tool_calls(Call("calculator", {"expression": "2+2"}, id="c2")), text("ok"))
    child = spawn([*run_args, "x"])
    child.expect("Run it\\? ")
    child.send("\r")  # Enter alone is no
    child.expect("Reason")
    child.send("\r")
    child.expect("Run it\\? ")
    child.send("n")
    child.expect("Reason")
    child.send("use mental arithmetic\r")
    assert finish(child) == 0
    first = server.requests[1].body["messages"][-1]["content"]
    second = server.requests[2].body["messages"][-1]["content"]
    assert first.startswith("denied") and "calculator" in first
    assert second == "denied: the user declined: use mental arithmetic"


def test_always_approves_the_rest_of_the_run(home, server, run_args):
    server.enqueue(tool_calls(Call("calculator", {"expression": "1+1"})),
                   tool_calls(Call("calculator", {"expression": "2+2"})), text("done"))
    child = spawn([*run_args, "x"])
    child.expect("Run it\\? ")
    child.send("a")
    child.expect("done")
    assert "(builtin)" not in child.before  # no second panel: "always" covered the second call
    assert finish(child) == 0
    assert server.requests[2].body["messages"][-1]["content"] == "4"


def test_edit_changes_the_arguments_that_run(home, server, run_args):
    server.enqueue(tool_calls(Call("calculator", {"expression": "2**10"})), text("ok"))
    child = spawn([*run_args, "x"])
    child.expect("Run it\\? ")
    child.send("e")
    child.expect("Esc Enter accepts")
    child.expect(r'"2\*\*10"')  # the editor shows the arguments: it reads keys from now on
    shown = '{\n  "expression": "2**10"\n}'
    child.send("\x7f" * len(shown) + '{"expression": "3*3"}')
    child.send("\x1b\r")
    child.expect("edited arguments approved")
    assert finish(child) == 0
    assert server.requests[1].body["messages"][-1]["content"] == \
        'the user edited the arguments before running: {"expression": "3*3"}\n9'


def test_escapes_in_arguments_are_shown_escaped_never_sent_raw(home, server, run_args):
    hostile = "1+1\x1b[2J\x1b]0;pwned\x07\u202eevil\u200b"
    server.enqueue(tool_calls(Call("calculator", {"expression": hostile})), text("ok"))
    child = spawn([*run_args, "x"])
    child.expect("Run it\\? ")
    screen = child.before
    assert "\x1b[2J" not in screen and "\x1b]0;" not in screen and "\u202e" not in screen
    assert "\\u001b[2J" in screen and "\\u202e" in screen and "\\u200b" in screen
    child.send("n")
    child.expect("Reason")
    child.send("\r")
    assert finish(child) == 0


def test_long_values_are_folded_and_view_shows_them(home, server, run_args):
    long_value = "1+" * 400 + "1"
    server.enqueue(tool_calls(Call("calculator", {"expression": long_value})), text("ok"))
    child = spawn([*run_args, "x"], columns=400)
    child.expect("Run it\\? ")
    assert "[501 more characters, 801 in all]" in child.before
    child.send("v")
    child.expect("Run it\\? ")
    assert "more characters" not in child.before
    child.send("y")
    assert finish(child) == 0


def test_the_answer_on_stdout_stays_clean_when_approving_in_a_terminal(home, server, run_args, tmp_path):
    server.enqueue(tool_calls(Call("calculator", {"expression": "2+3"})), text("five"))
    out = tmp_path / "answer.txt"
    args = " ".join([*run_args, "x"])
    child = pexpect.spawn("/bin/sh", ["-c", f"{sys.executable} -m agentcli run {args} > {out}"],
                          env={**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"},
                          encoding="utf-8", timeout=15, dimensions=(40, 100))
    child.expect("Run it\\? ")
    child.send("y")
    assert finish(child) == 0
    assert out.read_text() == "five\n"
