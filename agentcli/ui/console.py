"""The consoles: stderr for panels, notices and warnings in run; stdout for chat and sessions.

rich is imported only when something needs it: when stderr is not a terminal
(a script's run), notices and tool lines are plain text and are written
directly, as rich would write them there (no colour, no wrapping).
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console


def stderr_console(*, quiet: bool = False) -> Console:
    """A console on stderr; no colour when it is not a terminal or NO_COLOR is set."""
    if _plain(sys.stderr):
        return PlainConsole(sys.stderr, quiet=quiet)  # type: ignore[return-value]
    return _rich_stderr(sys.stderr, quiet)


def _rich_stderr(file: TextIO, quiet: bool) -> Console:
    from rich.console import Console

    return Console(file=file, stderr=True, quiet=quiet, highlight=False,
                   no_color=bool(os.environ.get("NO_COLOR")), emoji=False, markup=False,
                   soft_wrap=True)


def _plain(file: TextIO) -> bool:
    """Whether rich would write plain text to ``file``: not a terminal, colour not forced."""
    if os.environ.get("FORCE_COLOR") or os.environ.get("TTY_COMPATIBLE"):
        return False
    try:
        return not file.isatty()
    except (AttributeError, ValueError):
        return False


class PlainConsole:
    """Writes text and :class:`agentcli.ui.render.Styled` lines as plain text; anything
    else (a panel, a table, ``input``) goes to a rich console made on first use."""

    def __init__(self, file: TextIO, *, quiet: bool = False) -> None:
        self.file = file
        self.quiet = quiet
        self._console: Console | None = None

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", **options: Any) -> None:
        """Like ``rich.console.Console.print`` for text; other objects are handed to rich."""
        if options or not all(isinstance(o, str) or hasattr(o, "plain") for o in objects):
            self._rich().print(*objects, sep=sep, end=end, **options)
            return
        if self.quiet:
            return
        self.file.write(sep.join(o if isinstance(o, str) else o.plain for o in objects) + end)
        self.file.flush()

    def _rich(self) -> Console:
        if self._console is None:
            self._console = _rich_stderr(self.file, self.quiet)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rich(), name)


def stdout_console() -> Console:
    """A console on stdout (chat, sessions): model text is never markup; no colour
    when piped or NO_COLOR is set.

    rich is made on first use for anything but short lines of text (see
    :class:`TerminalConsole`), so chat shows its banner and prompt without it.
    """
    return TerminalConsole()  # type: ignore[return-value]


def _rich_stdout() -> Console:
    from rich.console import Console

    return Console(highlight=False, markup=False, emoji=False,
                   no_color=bool(os.environ.get("NO_COLOR")))


#: Select Graphic Rendition codes, as rich writes them: attributes first, then the colour.
_ATTRIBUTES = {"bold": "1", "dim": "2"}
_COLOURS = {"black": "30", "red": "31", "green": "32", "yellow": "33", "blue": "34",
            "magenta": "35", "cyan": "36", "white": "37"}


def _sgr(style: str, *, colour: bool) -> str | None:
    """The SGR parameters for ``style`` ("" for none); None for a style not known here."""
    attributes, colours = [], []
    for word in style.split():
        if word in _ATTRIBUTES:
            attributes.append(_ATTRIBUTES[word])
        elif word in _COLOURS:
            colours.append(_COLOURS[word])
        else:
            return None
    if len(colours) > 1:
        return None
    return ";".join(sorted(attributes) + (colours if colour else []))


def _simple(text: str) -> bool:
    """Whether every character is printable and one cell wide (below the combining marks)."""
    return all(ch < "\u0300" and ch.isprintable() for ch in text)


class TerminalConsole:
    """stdout for chat and sessions, rich made on first use.

    On a terminal, text and :class:`agentcli.ui.render.Styled` lines in the
    styles bold, dim and the eight basic colours are written directly, exactly
    as rich would write them: folded at word boundaries to the terminal's width,
    with the same SGR sequences (colour dropped with NO_COLOR), one sequence per
    styled part and row. Anything else (a table,
    a word wider than the terminal, wide or combining characters, an option
    such as ``end``) goes to a rich console, and once that console is made,
    everything goes to it (its live displays and render hooks see every line).
    When stdout is not a terminal, or the environment tells rich how to treat
    it (FORCE_COLOR, TTY_COMPATIBLE, TTY_INTERACTIVE, COLUMNS, a dumb TERM),
    everything goes to rich.
    """

    def __init__(self) -> None:
        self._console: Console | None = None
        self._making = threading.Lock()  # chat's background start-up prints too

    def print(self, *objects: Any, **options: Any) -> None:
        """Like ``rich.console.Console.print``."""
        lines = None if options or self._console is not None else self._direct(objects)
        if lines is None:
            self._rich().print(*objects, **options)
            return
        sys.stdout.write(lines)
        sys.stdout.flush()

    def _direct(self, objects: tuple[Any, ...]) -> str | None:
        """What rich would write for ``objects``; None if rich is needed to know."""
        from .render import Styled

        parts: list[tuple[str, str]] = []
        for i, obj in enumerate(objects):
            if i:
                parts.append((" ", ""))
            if isinstance(obj, str):
                parts.append((obj, ""))
            elif isinstance(obj, Styled):
                parts.extend(obj.parts)
            else:
                return None
        if not self._plain_terminal():
            return None
        width, colour = _terminal_width(), not os.environ.get("NO_COLOR")
        line: list[tuple[str, str]] = []  # (text, SGR parameters) of one line of the text
        out: list[str] = []
        for text, style in parts:
            sgr = _sgr(style, colour=colour)
            if sgr is None or not _simple(text.replace("\n", "")):
                return None
            for n, piece in enumerate(text.split("\n")):
                if n:
                    if not _wrapped(line, width, out):
                        return None
                    line = []
                line.append((piece, sgr))
        return "".join(out) if _wrapped(line, width, out) else None

    @staticmethod
    def _plain_terminal() -> bool:
        """Whether rich would see stdout as a colour terminal, found without asking rich."""
        env = os.environ
        if any(env.get(name) is not None for name in
               ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")):
            return False
        if env.get("TERM", "").lower() in ("dumb", "unknown") or sys.platform == "win32":
            return False
        try:
            return sys.stdout.isatty()
        except (AttributeError, ValueError):
            return False

    def _rich(self) -> Console:
        with self._making:
            if self._console is None:
                self._console = _rich_stdout()
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rich(), name)


_WORD = re.compile(r"\s*\S+\s*")


def _wrapped(line: list[tuple[str, str]], width: int, out: list[str]) -> bool:
    """Append ``line`` to ``out`` folded at word boundaries to ``width``, as rich folds
    it, each row ending with a newline; False for a word longer than a whole row."""
    plain = "".join(text for text, _ in line)
    breaks, used = [], 0
    word = _WORD.match(plain)
    while word is not None:
        start, end = word.span()
        length = len(word.group().rstrip())
        if length <= width - used:
            used += end - start
        elif length > width:
            return False  # rich cuts such a word into pieces
        elif used and start:
            breaks.append(start)
            used = end - start
        word = _WORD.match(plain, end)
    for row_start, row_end in zip([0, *breaks], [*breaks, len(plain)], strict=True):
        row = plain[row_start:row_end]
        if len(row) > width:  # spaces past the edge are dropped
            row_end -= min(len(row) - width, len(row) - len(row.rstrip()))
        at = 0
        for text, sgr in line:
            piece = text[max(row_start - at, 0):max(row_end - at, 0)]
            at += len(text)
            if piece:
                out.append(f"\x1b[{sgr}m{piece}\x1b[0m" if sgr else piece)
        out.append("\n")
    return True


def _terminal_width() -> int:
    """The terminal's width as rich finds it: stdin's, stdout's or stderr's; 80 if none."""
    for fd in (0, 1, 2):
        try:
            return os.get_terminal_size(fd).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return 80
