"""Streaming Markdown answers to the terminal at a cost linear in their length.

The stream is cut into top-level Markdown blocks (paragraphs, lists, code
fences, tables...) at blank lines outside code fences. A finished block is
rendered once with rich's Markdown and printed for good; only the unfinished
block is shown live, in a transient region that rich refreshes at a bounded
rate and that shows at most the last screenful of that block. So every
character is rendered once for the final output, and the live preview costs
a bounded amount per refresh whatever the answer's length.

The printed result equals rendering the whole answer at once, with one known
difference: a link reference definition (``[x]: http://...``) only applies
within its own block.

Model text is never read as rich markup, and control, escape and bidi
characters are shown as visible escapes (``safe_text.visible`` in its
``prose`` form, which keeps zero-width joiners for emoji and scripts).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

from markdown_it.token import Token
from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderHook, RenderResult
from rich.markdown import Markdown
from rich.segment import ControlType, Segment, Segments
from rich.status import Status
from rich.text import Text

from ..events import Event, Notice, ReplyDone, TextDelta, ToolFinished
from .render import plugin_output, tool_result_line
from .safe_text import visible

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
_LIST_ITEM = re.compile(r"^([-*+]|\d{1,9}[.)])(\s|$)")
_INTERRUPTS = re.compile(r"^(#{1,6}(\s|$)|>|`{3}|~{3}|([-*_])(\s*\3){2,}\s*$)")
REFRESH_PER_SECOND = 8.0
PREVIEW_CHARS = 6000


def markdown(text: str) -> Markdown:
    """The one way answers are rendered; links show their address (no hidden targets)."""
    return Markdown(text, hyperlinks=False)


def _is_fence_close(line: str, marker: str) -> bool:
    match = _FENCE.match(line)
    return bool(match and not match.group(2).strip() and match.group(1)[0] == marker[0]
                and len(match.group(1)) >= len(marker))


class BlockSplitter:
    """Cuts streamed Markdown into top-level blocks that render the same on their own.

    A block ends at a blank line outside a code fence, once the next line
    shows that a new block starts: an indented line continues the block (list
    item content, indented code) and a list item continues a list. When in
    doubt the splitter keeps text together, which is always safe.
    """

    def __init__(self) -> None:
        self._partial: list[str] = []
        self._lines: list[str] = []
        self._blanks = 0
        self._fence: str | None = None
        self._opener = ""
        self._in_list = False

    def feed(self, text: str) -> list[str]:
        """Add text; return the blocks it completed."""
        if "\n" not in text:
            self._partial.append(text)
            return []
        head, *middle, tail = text.split("\n")
        lines = ["".join(self._partial) + head, *middle]
        self._partial = [tail] if tail else []
        done: list[str] = []
        for line in lines:
            block = self._line(line)
            if block:
                done.append(block)
        return done

    def finish(self) -> list[str]:
        """The blocks left at the end of the stream."""
        done = self.feed("\n") if self._partial else []
        last = self._take()
        return [*done, last] if last else done

    def _take(self) -> str:
        block = "\n".join(self._lines)
        self._lines, self._blanks, self._in_list = [], 0, False
        return block if block.strip() else ""

    def _line(self, line: str) -> str:
        if self._fence is not None:
            self._lines.append(line)
            if _is_fence_close(line, self._fence):
                self._fence = None
            return ""
        if not line.strip():
            self._blanks += 1 if self._lines else 0
            return ""
        done = ""
        after_blank = self._blanks > 0
        if after_blank and not self._continues(line):
            done = self._take()
        self._lines.extend([""] * self._blanks)
        self._blanks = 0
        self._lines.append(line)
        self._note(line, after_blank)
        return done

    def _continues(self, line: str) -> bool:
        return line[0] in " \t" or (self._in_list and bool(_LIST_ITEM.match(line)))

    def _note(self, line: str, after_blank: bool) -> None:
        stripped = line.lstrip(" ")
        if bool(_LIST_ITEM.match(stripped)) and len(line) - len(stripped) <= 3:
            self._in_list = True
        elif line[0] not in " \t" and (after_blank or _INTERRUPTS.match(line)):
            self._in_list = False  # else: indented content, or a lazy continuation line
        fence = _FENCE.match(line)
        if fence and not (fence.group(1)[0] == "`" and "`" in fence.group(2)):
            self._fence, self._opener = fence.group(1), line

    def tail(self, max_lines: int, max_chars: int = PREVIEW_CHARS) -> str:
        """The end of the unfinished block, for the live preview (bounded in size)."""
        lines = [*self._lines[-max_lines:], *[""] * min(self._blanks, 1)]  # paragraphs apart
        partial = "".join(self._partial[-max_chars:])
        text = "\n".join([*lines, partial])[-max_chars:]
        if self._fence is not None and not text.startswith(self._opener):
            text = self._opener + "\n" + text
        return text


# Erase the row the cursor is on and everything below it: the region drawn
# below the cursor is gone, whatever shape the terminal gave it since. The
# erase below starts from the second column: from the screen's top-left corner
# tmux would take it for a clear screen and push the screen into the
# scrollback, a stale copy per refresh. (rich has no name for these
# sequences; the control list only marks the segment as zero cells wide.)
_ERASE_BELOW = Segment("\r\x1b[2K\x1b[2G\x1b[J\r", None, [(ControlType.CARRIAGE_RETURN,),
                                                           (ControlType.ERASE_IN_LINE, 2)])

_AUTOWRAP_ON = Segment("\x1b[?7h", None, [(ControlType.SHOW_CURSOR,)])  # DECAWM on, as usual


class LiveRegion(RenderHook):
    """A transient region under the output, redrawn in place, that survives resizes.

    rich's ``Live`` leaves the cursor at the end of its region and, to redraw,
    moves up as many rows as the region had when it was drawn. A terminal
    that is made narrower re-wraps those rows (VTE, kitty, iTerm2, Windows
    Terminal, WezTerm, foot and tmux all reflow), so the region then takes
    more rows than that, the move up falls short and a stale copy of the
    preview stays on the screen. Cropping the rows to the width does not
    help: any row longer than the new width is re-wrapped.

    So this region never counts rows to find its way back: after each
    drawing it parks the cursor on its first row, column 0, and the next
    drawing (or the end) erases from there to the end of the screen.
    Terminals keep the cursor on the character it was on through a resize,
    so the cursor is still at the region's start: everything below it is the
    region, everything above is finished output, which is never touched.
    xterm cuts rows instead of re-wrapping them, and the cursor stays put.
    tmux 3.3 does not always keep the cursor there: re-wrapping, it can
    leave it a row lower, and the row above the cursor then stays. So the
    region's first row is an empty one whenever the block is printed after
    a blank line (it takes that blank line's place): what stays behind in
    tmux is then usually that blank row, not a stale row of text. (A block
    printed without a blank line before it, such as an answer's first, has
    no such row.) The region's rows carry no padding, so they re-wrap as
    little as they can, and they are written without automatic wrapping,
    so a frame rendered for the old width that reaches the terminal after
    it was narrowed still takes one row per row and the move back up stays
    exact. The region is at most one screen high, so parking never leaves
    the screen. A resize shows at the next refresh, at most
    ``1 / refresh_per_second`` later.

    Everything printed on the console while the region is up goes above it
    (a render hook, as rich's ``Live`` does).
    """

    def __init__(self, console: Console, renderable: ConsoleRenderable,
                 refresh_per_second: float) -> None:
        self.console = console
        self.renderable = renderable
        self.lock = threading.RLock()
        self._interval = 1.0 / refresh_per_second
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentcli-live", daemon=True)

    def start(self) -> None:
        """Hide the cursor and start drawing."""
        self.console.show_cursor(False)
        self.console.push_render_hook(self)
        self._thread.start()

    def stop(self) -> None:
        """Remove the region; the cursor is left where it started, and shown again."""
        self._done.set()
        try:
            if self._thread.is_alive() and self._thread is not threading.current_thread():
                self._thread.join()
        finally:  # even when a second Ctrl-C cuts the wait short
            with self.lock:
                self.console.pop_render_hook()
                self.console.print(Segments([_ERASE_BELOW, _AUTOWRAP_ON]), end="")
                self.console.show_cursor(True)

    def refresh(self) -> None:
        """Draw the region again (at the console's current size)."""
        with self.lock:
            if not self._done.is_set():
                self.console.print(Segments([]), end="")

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            self.refresh()

    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        return [Segments([_ERASE_BELOW]), *renderables, _Parked(self.renderable)]


class _Parked:
    """A renderable drawn at most one screen high, after which the cursor goes back
    to its first row, column 0 (see :class:`LiveRegion`)."""

    def __init__(self, renderable: ConsoleRenderable) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self.renderable, options, pad=False)
        rows = max(1, options.size.height)
        if len(lines) > rows:  # keep the newest rows: the end is where the text grows
            lines = [[Segment("…", console.get_style("dim"))], *lines[len(lines) - rows + 1:]]
        # Without automatic wrapping (DECAWM off) while the rows are written, each
        # takes exactly one row even when the terminal was made narrower after
        # this frame was rendered, so the move back up is exact; the next
        # refresh redraws the frame at the new width.
        yield Segment("\x1b[?7l", None, [(ControlType.HIDE_CURSOR,)])
        for number, line in enumerate(lines):
            yield from _without_padding(line)
            if number < len(lines) - 1:
                yield Segment.line()
        yield Segment("\r", None, [(ControlType.CARRIAGE_RETURN,)])
        if len(lines) > 1:
            yield Segment(f"\x1b[{len(lines) - 1}A", None, [(ControlType.CURSOR_UP, len(lines) - 1)])
        yield _AUTOWRAP_ON


def _without_padding(line: list[Segment]) -> list[Segment]:
    """``line`` without the plain spaces rich pads it with up to the width: a row
    only as long as its text is re-wrapped into fewer rows when the terminal
    narrows, and not at all while the new width still holds it."""
    line = list(line)
    while line and not line[-1].control and not (line[-1].style and line[-1].style.bgcolor):
        text = line[-1].text.rstrip(" ")
        if text:
            line[-1] = Segment(text, line[-1].style)
            break
        line.pop()
    return line


class MarkdownStream:
    """Renders one streamed answer: finished blocks printed once, the rest live.

    Args:
        console: Where to render.
        live: Show the unfinished block in a transient live region.
        refresh_per_second: Upper bound on live refreshes.
    """

    def __init__(self, console: Console, *, live: bool = True,
                 refresh_per_second: float = REFRESH_PER_SECOND) -> None:
        self.console = console
        self._splitter = BlockSplitter()
        self._cr = ""
        self._gap = False
        self._live: LiveRegion | None = None
        if live and console.is_interactive:
            self._live = LiveRegion(console, self, refresh_per_second)
            self._live.start()

    def feed(self, text: str) -> None:
        """Add streamed text; prints any block it completes."""
        if self._live is None:
            self._feed(text)
            return
        with self._live.lock:  # no preview drawn from a half-updated splitter
            self._feed(text)

    def _feed(self, text: str) -> None:
        for block in self._splitter.feed(self._clean(text)):
            self._print(block)

    def refresh(self) -> None:
        """Draw the live preview again now (it is also redrawn on its own)."""
        if self._live is not None:
            self._live.refresh()

    def close(self) -> None:
        """Print what is left and remove the live region."""
        if self._cr:
            self._splitter.feed(visible(self._cr, prose=True))
            self._cr = ""
        if self._live is not None:
            self._live.stop()
            self._live = None
        for block in self._splitter.finish():
            self._print(block)

    def _clean(self, text: str) -> str:
        text = self._cr + text
        self._cr = "\r" if text.endswith("\r") else ""
        if self._cr:
            text = text[:-1]
        return visible(text.replace("\r\n", "\n"), prose=True)

    def _print(self, block: str) -> None:
        rendered = markdown(block)
        top = [t for t in rendered.parsed if t.level == 0]
        if not top:  # e.g. only link reference definitions: nothing to show
            return
        if self._gap and not _opens_with_new_line(top):
            self.console.print()
        self.console.print(rendered)
        self._gap = _ends_with_new_line(top)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        try:
            text = self._splitter.tail(max(3, console.height - 3))
            preview = markdown(text) if text.strip() else None
            # The blank line that will go before the block when it is printed
            # goes before the preview too: the text does not move when the block
            # is finished, and the region starts with an empty row, which no
            # resize re-wraps (see LiveRegion).
            gap = preview is not None and self._gap and not _opens_with_new_line(
                [t for t in preview.parsed if t.level == 0])
        except Exception:  # a preview must never take the answer down with it
            preview, gap = None, False
        if gap:
            yield Text()
        if preview is not None:
            yield preview


# How rich spaces top-level elements: a blank line goes before an element when
# the element closed last (at any depth) asks for one; every element but a
# rule does. A container (list, quote, table) closes its children before it
# renders, so its own output already starts with that blank line.
_LEAVES = ("paragraph_open", "heading_open")


def _opens_with_new_line(top: list[Token]) -> bool:
    return bool(top) and top[0].nesting == 1 and top[0].type not in _LEAVES


def _ends_with_new_line(top: list[Token]) -> bool:
    closed = [t for t in top if t.nesting <= 0]
    return not closed or closed[-1].type != "hr"


class TurnView:
    """Shows one chat turn: a spinner, the streamed answer, one line per tool result."""

    def __init__(self, console: Console, *, live: bool = True) -> None:
        self.console = console
        self.live = live
        self._stream: MarkdownStream | None = None
        self._status: Status | None = None
        self._waiting = 0

    def start(self, text: str = "thinking…") -> None:
        """Show the spinner saying ``text`` ("thinking…" until the first token)."""
        if not self.live:
            return
        if self._status is None:
            self._status = self.console.status(Text(text, style="dim"), spinner="dots")
            self._status.start()
        else:
            self._status.update(Text(text, style="dim"))

    def __call__(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self._stop_spinner()
            if self._stream is None:
                self._stream = MarkdownStream(self.console, live=self.live)
            self._stream.feed(event.text)
        elif isinstance(event, ReplyDone):
            self._stop_spinner()
            self._end_stream()
            self._waiting = len(event.tool_calls)
        elif isinstance(event, ToolFinished):
            self.console.print(tool_result_line(event.record))
            if event.record.output.strip():
                self.console.print(plugin_output(event.record))
            self._waiting -= 1
            if self._waiting == 0:
                self.start()
        elif isinstance(event, Notice):
            self._print_aside(Text(f"agentcli: {visible(event.text)}", style="dim"))

    def _print_aside(self, line: Text) -> None:
        """Print a line while the spinner may be up: take it down first, put it back after,
        so no frame of it stays on the screen next to what follows."""
        spinning = self._status is not None
        self._stop_spinner()
        self.console.print(line)
        if spinning:
            self.start()

    def close(self) -> None:
        """End the turn's output (also after an error or Ctrl-C)."""
        self._stop_spinner()
        self._end_stream()

    def _stop_spinner(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _end_stream(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.close()


def chunks(text: str, size: int) -> Iterator[str]:
    """``text`` in pieces of ``size`` characters (for tests and benchmarks)."""
    for start in range(0, len(text), size):
        yield text[start:start + size]
