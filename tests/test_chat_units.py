"""The chat pieces without a terminal: trimming, undo, approval choices, completion, stats."""

from __future__ import annotations

import io
import json
from dataclasses import asdict

import pytest
from prompt_toolkit.document import Document
from rich.console import Console

from agentcli import audit
from agentcli.commands.chat import ChatOptions, ChatSession
from agentcli.config import Settings
from agentcli.context import IMAGE_TOKENS, estimate, fit
from agentcli.conversation import Conversation, check
from agentcli.errors import Interrupted
from agentcli.events import ApprovalRequest, ToolRecord
from agentcli.messages import Message, ToolCall
from agentcli.sessions import SessionStore
from agentcli.tools.builtins import calculator
from agentcli.ui.approve import TerminalApprover, choice_of
from agentcli.ui.repl import ChatCompleter, SlashCommands


def conversation_of(*turns: str, answer: str = "answer " * 20) -> Conversation:
    conv = Conversation()
    conv.set_system("sys")
    for number, question in enumerate(turns):
        conv.add(Message(role="user", content=question))
        call = ToolCall(id=f"c{number}", name="calculator", arguments='{"expression": "1"}')
        conv.add(Message(role="assistant", tool_calls=[call]))
        conv.add(Message(role="tool", tool_call_id=call.id, content="1"))
        conv.add(Message(role="assistant", content=answer))
    return conv


def test_fit_leaves_out_the_oldest_turns_whole_and_keeps_the_system_message():
    conv = conversation_of("one", "two", "three", answer="ok")
    saved = asdict(conv)
    assert fit(conv.messages, conv.estimate_tokens()).dropped == 0
    fitted = fit(conv.messages, conv.estimate_tokens() - 1)
    assert (fitted.dropped, fitted.shortened) == (4, 0)  # one whole turn: user, call, result, answer
    kept = [m.content for m in fitted.messages if m.role in ("system", "user")]
    assert kept == ["sys", "two", "three"]
    check(fitted.messages)  # still valid: calls left with their results
    latest = fit(conv.messages, sum(estimate(m) for m in conv.messages[:1] + conv.messages[-4:]))
    assert latest.dropped == 8 and [m.role for m in latest.messages][:2] == ["system", "user"]
    assert asdict(conv) == saved  # the conversation itself is never changed


def test_images_count_toward_the_context_only_where_they_are_sent():
    # a tool result with two pictures (the Responses API sends them, Chat Completions does
    # not): where they are sent, the turn that holds them leaves to make room
    conv = conversation_of("one", "two", answer="ok")
    conv.messages[3].images = [{"mime_type": "image/png", "data": "iVBORw0KGgo="}] * 2
    text_only = conv.estimate_tokens()
    assert conv.estimate_tokens(images=True) == text_only + 2 * IMAGE_TOKENS
    assert fit(conv.messages, text_only).dropped == 0  # Chat Completions: text only
    fitted = fit(conv.messages, text_only, images=True)
    assert fitted.dropped == 4 and not any(m.images for m in fitted.messages)
    check(fitted.messages)


def test_fit_shortens_one_huge_text_instead_of_dropping_every_earlier_turn():
    conv = conversation_of("one", answer="ok")
    conv.add(Message(role="user", content="q" * 100_000))
    call = ToolCall(id="big", name="calculator", arguments=json.dumps({"expression": "1" * 100_000}))
    conv.add(Message(role="assistant", tool_calls=[call]))
    conv.add(Message(role="tool", tool_call_id="big", content="r" * 100_000))
    fitted = fit(conv.messages, 2_000)
    assert fitted.dropped == 0 and fitted.shortened == 3
    assert sum(estimate(m) for m in fitted.messages) <= 2_000
    check(fitted.messages)
    question, asked, result = fitted.messages[-3:]
    assert question.content.endswith(f"[... {100_000 - question.content.index('[') + 1:,} "
                                     "characters cut to fit the context window]")
    assert "characters cut" in json.loads(asked.tool_calls[0].arguments)["cut"]
    assert result.content.startswith("rrr") and conv.messages[-1].content == "r" * 100_000
    assert fit(conv.messages, 20) is None  # cannot fit even shortened: nothing to send


def test_undo_removes_the_last_turn_and_returns_its_question():
    conv = conversation_of("one", "two")
    assert conv.undo() == "two"
    assert [m.content for m in conv.messages if m.role == "user"] == ["one"]
    assert conv.undo() == "one" and conv.undo() is None
    assert [m.role for m in conv.messages] == ["system"]


@pytest.mark.parametrize("typed, choice", [("y", "y"), ("yes", "y"), ("YE", "y"), ("", "n"),
                                           ("no", "n"), ("always", "a"), ("e", "e"),
                                           ("view", "v"), ("yep", None), ("x", None)])
def test_choices_from_keys_and_words(typed, choice):
    assert choice_of(typed) == choice


def approve_with(*answers: str | None, lines: tuple[str | None, ...] = ()) -> tuple[object, str, dict]:
    out = Console(file=io.StringIO(), width=80, force_terminal=False)
    asked, typed = list(answers), list(lines)
    approver = TerminalApprover(out, ask=lambda: asked.pop(0), line=lambda _: typed.pop(0),
                                edit=lambda _: typed.pop(0), flush=lambda: None)
    request = ApprovalRequest(call=ToolCall(id="c1", name="calculator"), tool=calculator,
                              arguments={"expression": "2**10"})
    decision = approver(request)
    return decision, out.file.getvalue(), request.arguments


def test_approver_yes_always_and_no_with_reason():
    assert approve_with("y")[0].approved
    assert approve_with("a")[0].always
    decision = approve_with("n", lines=("too slow",))[0]
    assert not decision.approved and decision.reason == "the user declined: too slow"
    with pytest.raises(Interrupted):  # Ctrl-C / Ctrl-D end the turn
        approve_with(None)


def test_approver_view_and_unclear_answers_ask_again():
    decision, screen, _ = approve_with("?", "v", "y")
    assert decision.approved and "please answer" in screen and screen.count("calculator") >= 2


def test_approver_edit_is_validated_before_it_is_approved():
    bad_then_good = ('{"expression": 1, "expression": 2}', '{"expression": "3*3"}')
    decision, screen, arguments = approve_with("e", "e", lines=bad_then_good)
    assert "not accepted" in screen and "duplicate key" in screen
    assert decision.approved and decision.arguments == {"expression": "3*3"} == arguments
    cancelled = approve_with("e", "n", lines=(None, ""))[0]
    assert not cancelled.approved


def completions(text: str) -> list[str]:
    completer = ChatCompleter(lambda: ["calculator", "current_time"], lambda: ["20250101-x"])
    return [c.text for c in completer.get_completions(Document(text), None)]


def test_completion_of_commands_tools_and_session_ids():
    assert completions("/ap") == ["/approve"]
    assert "/sessions" in completions("/s") and "/save" in completions("/s")
    assert completions("/approve c") == ["calculator", "current_time"]
    assert completions("/approve a") == ["all"]
    assert completions("/load 2025") == ["20250101-x"]
    assert completions("please use cu") == ["current_time"]
    assert completions("x") == []


def test_stats_per_tool():
    records = [ToolRecord("1", "calculator", {}, duration_ms=10),
               ToolRecord("2", "calculator", {}, status="error", result="error: division by zero",
                          duration_ms=30),
               ToolRecord("3", "current_time", {}, duration_ms=5)]
    out = Console(file=io.StringIO(), width=200, force_terminal=False)

    class FakeChat:  # what /stats reads: the console and the session's calls
        console = out

        def call_entries(self) -> list[dict]:
            return [audit.entry(r, None) for r in records]

    SlashCommands(FakeChat()).do_stats("")  # type: ignore[arg-type]
    lines = out.file.getvalue().splitlines()
    assert any(line.split()[:6] == ["calculator", "2", "1", "50%", "20", "29"] for line in lines)
    assert "error: division by zero (1)" in out.file.getvalue()
    assert any(line.split() == ["current_time", "1", "0", "0%", "5", "5", "0"] for line in lines)


def test_an_unexpected_error_in_a_turn_is_one_line_and_the_turn_is_saved(home):
    out = Console(file=io.StringIO(), width=200, force_terminal=False)
    settings = Settings(base_url="http://127.0.0.1:9/v1", model="m")
    chat = ChatSession(ChatOptions(), settings, out, SessionStore(), notice=lambda _: None)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaput")
    chat.agent.run_turn = broken  # type: ignore[method-assign]
    chat.send("hi")
    screen = out.file.getvalue()
    assert "agentcli: unexpected error: RuntimeError: kaput (run with -v for details)" in screen
    assert "Traceback" not in screen
    saved = SessionStore().load(chat.conv.id).messages
    assert [m.content for m in saved[-2:]] == ["hi", "[no answer: error: RuntimeError: kaput]"]


CONSOLE_CASES = '''
import sys
from agentcli.ui.console import TerminalConsole, stdout_console
from agentcli.ui.render import Styled

banner = Styled("agentcli chat · model gpt-4o-mini · session 20250101-120000-abcdef · "
                "/help for commands, Ctrl-D to exit", "dim")
mixed = Styled("✓ ".replace("✓", "+"), "green").append("calculator ", "bold")
mixed.append('{"expression": "17*23"}', "dim").append(" → 391".replace("→", "->"))
mixed.append("  (3 ms)", "dim")
cases = [
    (banner,), ("plain words " * 9,), (Styled("exactly forty characters wide, no more!!", "red"),),
    (Styled("forty, then spaces past the edge:   ab  " + "   ", "yellow"),),
    (Styled("Session x is open.\\n  f  fork it\\n\\n  c  continue it", "bold red"),),
    (mixed,), ("two", Styled("objects", "dim")), (),
    (Styled("a", "dim").append("b", "dim").append("").append("c"),),
]
direct = TerminalConsole()
for objects in cases:
    direct.print(*objects)
assert direct._console is None and "rich" not in sys.modules, "written through rich"
print("=====", flush=True)
from agentcli.ui.console import _rich_stdout
rich = _rich_stdout()
for objects in cases:
    rich.print(*objects)
print("=====", flush=True)
'''


@pytest.mark.parametrize("columns", [40, 80, 120])
@pytest.mark.parametrize("no_color", [False, True])
def test_the_chat_console_writes_lines_as_rich_does_without_rich(tmp_path, columns, no_color):
    # chat's banner and simple lines are written without importing rich: on a real
    # terminal, the bytes are those rich writes (folding, SGR, NO_COLOR)
    import os
    import sys

    import pexpect

    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")}
    env.update(TERM="xterm", **({"NO_COLOR": "1"} if no_color else {}))
    child = pexpect.spawn(sys.executable, ["-c", CONSOLE_CASES], env=env, cwd=str(tmp_path),
                          encoding="utf-8", timeout=30, dimensions=(24, columns))
    child.expect("=====")
    direct = child.before
    child.expect("=====")
    written_by_rich = child.before.lstrip("\r\n")
    child.expect(pexpect.EOF)
    assert direct == written_by_rich
    assert ("\x1b[2m" in direct) and (("\x1b[31m" in direct) is not no_color)
