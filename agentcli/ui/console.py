"""The consoles: stderr for panels, notices and warnings in run; stdout for chat and sessions.

rich is imported only when something needs it: when stderr is not a terminal
(a script's run), notices and tool lines are plain text and are written
directly, as rich would write them there (no colour, no wrapping).
"""

from __future__ import annotations

import os
import sys
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
    when piped or NO_COLOR is set."""
    from rich.console import Console

    return Console(highlight=False, markup=False, emoji=False,
                   no_color=bool(os.environ.get("NO_COLOR")))
