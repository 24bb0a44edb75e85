"""Resizing the terminal while ``agentcli chat`` streams an answer.

A real chat in a pseudo-terminal whose size the test changes mid-stream,
narrower then wider. Its output is read into two terminal emulators
(tests/vt.py): one that reflows lines on a resize, as most modern terminals
do, and one that cuts them, as xterm does. Both must end up showing the
answer once: no stale copy of the live preview, no finished text erased.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator

import pexpect
import pytest
from openai_server import OpenAIServer, drip, text
from rich.console import Console
from vt import Terminal

from agentcli.ui.stream import MarkdownStream

PROMPT = "agentcli>"
WORDS = [f"word{n:02d}" for n in range(1, 91)]
DONE = "First paragraph, done."  # narrower than any width used: xterm cuts rows
SOURCE = [" ".join(WORDS[i:i + 10]) + "\n" for i in range(0, len(WORDS), 10)]  # 70 characters


def assert_shown_once(shown: str) -> None:
    """The finished paragraph and every word once: no stale preview, nothing erased."""
    assert shown.count(DONE) == 1, shown
    assert [shown.count(word) for word in WORDS] == [1] * len(WORDS), shown


class Screens:
    """Feeds what the program writes to several emulators (pexpect's logfile)."""

    def __init__(self, *terminals: Terminal) -> None:
        self.terminals = terminals

    def write(self, data: str) -> None:
        for terminal in self.terminals:
            terminal.feed(data)

    def flush(self) -> None:
        pass


class Tty(Screens):
    """What a terminal gets from a program's writes: a tty turns LF into CR LF."""

    def write(self, data: str) -> None:
        super().write(data.replace("\n", "\r\n"))


class ResizableChat:
    """``agentcli chat`` in a pseudo-terminal that takes its size from the terminal
    (no COLUMNS or LINES), watched by a reflowing and a cutting emulator."""

    def __init__(self, server: OpenAIServer, lines: int, columns: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env.update(TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
        self.reflowing = Terminal(lines, columns)
        self.cutting = Terminal(lines, columns)
        self.child = pexpect.spawn(
            sys.executable, ["-m", "agentcli", "chat", "--base-url", server.base_url,
                             "-m", "test-model", "--no-tools"],
            env=env, encoding="utf-8", timeout=10, dimensions=(lines, columns))
        self.child.logfile_read = Screens(self.reflowing, self.cutting)

    def resize(self, lines: int, columns: int) -> None:
        """Resize at a known point of the output: the program is paused, everything it
        wrote at the old size reaches the emulators, then the size changes."""
        os.kill(self.child.pid, signal.SIGSTOP)
        try:
            self.child.expect(pexpect.TIMEOUT, timeout=0.3)  # read what is already written
            self.reflowing.resize(lines, columns, reflow=True)
            self.cutting.resize(lines, columns, reflow=False)
            self.child.setwinsize(lines, columns)
        finally:
            os.kill(self.child.pid, signal.SIGCONT)

    def wait_for(self, shown: str, timeout: float = 10) -> None:
        """Read the output until both emulators show ``shown``."""
        deadline = time.monotonic() + timeout
        while not all(shown in t.history() for t in (self.reflowing, self.cutting)):
            assert time.monotonic() < deadline, f"{shown!r} never shown"
            self.child.expect([pexpect.TIMEOUT, pexpect.EOF], timeout=0.1)

    def close(self) -> None:
        if self.child.isalive():
            self.child.sendcontrol("d")
            try:
                self.child.expect(pexpect.EOF, timeout=5)
            except pexpect.TIMEOUT:
                self.child.terminate(force=True)
        self.child.close()


@pytest.fixture
def resizable(home, server: OpenAIServer) -> Iterator[ResizableChat]:
    session = ResizableChat(server, 30, 100)
    yield session
    session.close()
    for terminal in (session.reflowing, session.cutting):  # shown by pytest when a test fails
        print(terminal.history(), end="\n-----\n")


def test_resizing_while_an_answer_streams_leaves_no_stale_preview(resizable, server):
    answer = DONE + "\n\n" + "".join(SOURCE) + "\nThe end."
    server.enqueue(text("ready", chunk_size=50), drip(0.04, text(answer, chunk_size=6)))
    session = resizable
    session.child.expect(PROMPT)
    session.child.send("first\r")
    session.child.expect("ready")
    session.child.expect(PROMPT)
    session.child.send("tell me\r")
    session.wait_for("word40")              # the first paragraph printed, the second in the
    session.resize(30, 48)                  # preview over three rows: now narrower
    session.wait_for("word60")              # redrawn at the narrow width
    session.resize(30, 120)                 # and wider
    session.wait_for("The end.\nagentcli>")
    assert server.requests[1].body["messages"][-1]["content"] == "tell me"
    for terminal in (session.reflowing, session.cutting):
        shown = terminal.history()
        assert "Traceback" not in shown
        for line in ("agentcli> first", "ready", "agentcli> tell me", "The end."):
            assert shown.count(line) == 1, (line, shown)
        assert_shown_once(shown)


# ---- the live region in-process, on both kinds of terminal

def streaming(terminal: Terminal) -> tuple[Console, MarkdownStream]:
    """A terminal console writing into ``terminal``, and a stream whose preview is
    redrawn only when the test asks (refresh)."""
    console = Console(file=Tty(terminal), force_terminal=True, force_interactive=True,
                      width=terminal.columns, height=terminal.lines, color_system=None)
    return console, MarkdownStream(console, refresh_per_second=1e-6)


@pytest.mark.parametrize("reflow", [True, False], ids=["reflowing", "cutting"])
@pytest.mark.parametrize("sizes", [[(24, 40), (24, 120)], [(24, 120), (24, 33)], [(8, 50)]],
                         ids=["narrower-wider", "wider-narrower", "shorter-narrower"])
def test_the_preview_is_redrawn_in_place_after_any_resize(reflow, sizes):
    terminal = Terminal(24, 100)
    console, stream = streaming(terminal)
    source = list(SOURCE)
    stream.feed(DONE + "\n\n" + source.pop(0))    # the first paragraph is printed for good
    for size in sizes:
        stream.feed(source.pop(0) + source.pop(0) + source.pop(0))
        stream.refresh()                             # drawn over several rows...
        terminal.resize(*size, reflow=reflow)        # ...that the terminal reshapes
        console.size = size[1], size[0]
        stream.refresh()
    stream.feed("".join(source))
    stream.refresh()
    stream.close()
    assert_shown_once(terminal.history())


@pytest.mark.parametrize("reflow", [True, False], ids=["reflowing", "cutting"])
def test_a_frame_drawn_for_the_old_width_after_a_narrowing_leaves_nothing(reflow):
    terminal = Terminal(24, 100)
    console, stream = streaming(terminal)
    stream.feed(DONE + "\n\n" + "".join(SOURCE[:4]))
    stream.refresh()
    terminal.resize(24, 40, reflow=reflow)  # the terminal is narrower, and a frame
    stream.refresh()                        # rendered at 100 columns still arrives
    console.size = 40, 24
    stream.feed("".join(SOURCE[4:]))
    stream.refresh()
    stream.close()
    assert_shown_once(terminal.history())


def test_a_preview_taller_than_the_screen_shows_its_newest_rows():
    terminal = Terminal(6, 30, scroll_on_clear=True)
    console, stream = streaming(terminal)
    console.print("above")
    stream.feed("".join(SOURCE[:6]))                 # its last 3 lines: 9 rows at 30 columns
    for _ in range(3):  # a region that fills the screen is not pushed into the scrollback
        stream.refresh()
    screen = terminal.screen()
    assert screen[0] == "…" and "word60" in screen[-1], screen
    assert (terminal.cy, terminal.cx) == (terminal.top, 0)  # parked on the region's first row
    stream.close()
    assert terminal.history().startswith("above\nword01 word02")
