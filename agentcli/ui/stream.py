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
from collections.abc import Iterator

from markdown_it.token import Token
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.markdown import Markdown
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
        lines = self._lines[-max_lines:]
        partial = "".join(self._partial[-max_chars:])
        text = "\n".join([*lines, partial])[-max_chars:]
        if self._fence is not None and not text.startswith(self._opener):
            text = self._opener + "\n" + text
        return text


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
        self._live: Live | None = None
        if live:
            self._live = Live(self, console=console, transient=True, auto_refresh=True,
                              refresh_per_second=refresh_per_second, redirect_stdout=False,
                              redirect_stderr=False)
            self._live.start()

    def feed(self, text: str) -> None:
        """Add streamed text; prints any block it completes."""
        for block in self._splitter.feed(self._clean(text)):
            self._print(block)

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
            text = self._splitter.tail(max(3, console.height - 2))
            preview = markdown(text) if text.strip() else None
        except Exception:  # a preview must never take the answer down with it
            preview = None
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
