"""The consoles: stderr for panels, notices and warnings in run; stdout for chat and sessions."""

from __future__ import annotations

import os
import sys

from rich.console import Console


def stderr_console(*, quiet: bool = False) -> Console:
    """A console on stderr; no colour when it is not a terminal or NO_COLOR is set."""
    return Console(file=sys.stderr, stderr=True, quiet=quiet, highlight=False,
                   no_color=bool(os.environ.get("NO_COLOR")), emoji=False, markup=False,
                   soft_wrap=True)


def stdout_console() -> Console:
    """A console on stdout (chat, sessions): model text is never markup; no colour
    when piped or NO_COLOR is set."""
    return Console(highlight=False, markup=False, emoji=False,
                   no_color=bool(os.environ.get("NO_COLOR")))
