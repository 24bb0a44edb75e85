"""Asking the person at the terminal whether a tool call may run.

The panel shows the tool, where it comes from and the arguments as
highlighted JSON with every unsafe character escaped and long values folded.
The object shown is the object that runs. Typeahead is flushed before the
question, and anything but a clear yes is a no.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from rich.console import Console, Group
from rich.highlighter import JSONHighlighter
from rich.panel import Panel
from rich.text import Text

from ..agent import parse_arguments
from ..errors import ToolError
from ..events import ApprovalRequest, Decision
from .safe_text import fold, json_visible, visible

CHOICES = "[y]es  [n]o  [a]lways  [e]dit  [v]iew  (Enter = no)"
UNATTENDED_HINT = "no terminal to ask for approval; pass --yes to allow calls that ask"


def approval_panel(request: ApprovalRequest, *, full: bool = False) -> Panel:
    """The panel for one call; ``full`` shows every character of every value."""
    shown, folded = (request.arguments, False) if full else fold(request.arguments)
    body = Text(json_visible(shown))
    JSONHighlighter().highlight(body)
    parts: list[Text] = []
    if request.tool.preview is not None:
        for label, value in request.tool.preview(request.arguments).items():
            row = Text(f"{label}: ", style="bold")
            row.append(visible(value))
            parts.append(row)
    parts.append(body)
    if folded:
        parts.append(Text("long values are folded: press v to view them in full", style="dim"))
    title = Text(f"{visible(request.tool.name)}  ")
    title.append(f"({visible(request.tool.source)})", style="dim")
    return Panel(Group(*parts), title=title, title_align="left", border_style="yellow",
                 subtitle=Text(CHOICES, style="dim"), subtitle_align="left")


def _flush_typeahead(stream: object) -> None:
    try:
        import termios
        termios.tcflush(stream.fileno(), termios.TCIFLUSH)  # type: ignore[attr-defined]
    except (ImportError, OSError, ValueError, AttributeError):
        pass


class TerminalApprover:
    """Approval by a person reading lines from the terminal."""

    def __init__(self, console: Console, read_line: Callable[[str], str] | None = None) -> None:
        self.console = console
        self.read_line = read_line or self._read

    def _read(self, prompt: str) -> str:
        _flush_typeahead(sys.stdin)
        self.console.print(prompt, end="")
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        return line.strip()

    def __call__(self, request: ApprovalRequest) -> Decision:
        self.console.print(approval_panel(request))
        while True:
            try:
                answer = self.read_line("Run it? ").lower()
            except (EOFError, KeyboardInterrupt):
                self.console.print("\ndenied (no answer)")
                return Decision(False, reason="the user did not answer")
            if answer in ("y", "yes"):
                return Decision(True)
            if answer in ("a", "always"):
                return Decision(True, always=True)
            if answer in ("v", "view"):
                self.console.print(approval_panel(request, full=True))
                continue
            if answer in ("e", "edit"):
                edited = self._edit(request)
                if edited is not None:
                    return edited
                continue
            if answer in ("n", "no", ""):
                return self._deny()
            self.console.print("please answer y, n, a, e or v")

    def _deny(self) -> Decision:
        try:
            reason = self.read_line("Reason for the model (optional, Enter to skip): ")
        except (EOFError, KeyboardInterrupt):
            reason = ""
        return Decision(False, reason=f"the user declined: {reason}" if reason else None)

    def _edit(self, request: ApprovalRequest) -> Decision | None:
        self.console.print("Current arguments:", json.dumps(request.arguments, ensure_ascii=True))
        try:
            text = self.read_line("New arguments as one line of JSON (Enter to keep): ")
        except (EOFError, KeyboardInterrupt):
            return None
        if not text:
            return None
        try:
            arguments = parse_arguments(text)
            request.tool.validate(arguments)
        except ToolError as exc:
            self.console.print(f"not accepted: {exc}")
            return None
        request.arguments = arguments
        self.console.print(approval_panel(request))
        return Decision(True, arguments=arguments)


def auto_approver(request: ApprovalRequest) -> Decision:
    """``--yes``: every call that would ask is approved."""
    return Decision(True)


class UnattendedApprover:
    """No terminal and no ``--yes``: deny, tell the model, and say so on stderr."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, request: ApprovalRequest) -> Decision:
        self.console.print(f"agentcli: denied a call to {visible(request.tool.name)}: {UNATTENDED_HINT}")
        return Decision(False, unattended=True)
