"""Asking the person at the terminal whether a tool call may run.

The panel shows the tool, where it comes from and the arguments as
highlighted JSON with every unsafe character escaped and long values folded.
The object shown is the object that runs. Typeahead is flushed right before
each question (not before the panel: keys pressed while a long panel prints
must not answer it), and anything but a clear yes is a no. Ctrl-C or Ctrl-D
at the question ends the whole turn (``Interrupted``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TextIO

from rich.console import Console, Group
from rich.highlighter import JSONHighlighter
from rich.panel import Panel
from rich.text import Text

from ..errors import Interrupted, ToolError
from ..events import ApprovalRequest, Decision
from .safe_text import fold, json_visible, visible

CANCELLED_AT_QUESTION = "cancelled at the approval question: no further calls were run"
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
    if request.scope is not None:
        row = Text("always for: ", style="bold")
        row.append(visible(request.scope))
        parts.append(row)
    parts.append(body)
    if request.why:
        parts.append(Text(f"asks again: {visible(request.why)}", style="bold red"))
    if folded:
        parts.append(Text("long values are folded: press v to view them in full", style="dim"))
    parts.append(Text(choices(request.scope), style="dim"))  # inside, where it wraps (a border line is cut)
    title = Text(f"{visible(request.tool.name)}  ")
    title.append(f"({visible(request.tool.source)})", style="dim")
    return Panel(Group(*parts), title=title, title_align="left", border_style="yellow")


def choices(scope: str | None) -> str:
    """The choices line; with a scope, "always" names what it approves."""
    if scope is None:
        return CHOICES
    return CHOICES.replace("[a]lways", f"[a]lways for {visible(scope)}")


WORDS = {"y": "yes", "n": "no", "a": "always", "e": "edit", "v": "view"}


def choice_of(text: str) -> str | None:
    """``"y"``/``"yes"``/``"ye"`` → ``"y"`` and so on; empty is no; None if unclear."""
    word = text.strip().lower()
    if not word:
        return "n"
    key = word[0]
    return key if key in WORDS and WORDS[key].startswith(word) else None


def flush_typeahead(stream: TextIO | None = None) -> None:
    """Throw away keys typed but not yet read, so they cannot answer a question."""
    stream = stream or sys.stdin
    try:
        import termios
        termios.tcflush(stream.fileno(), termios.TCIFLUSH)
    except (ImportError, OSError, ValueError, AttributeError):
        pass


def _read(console: Console, message: str) -> str | None:
    """One line from stdin after a prompt on the console; None at end of input."""
    console.print(message, end="")
    try:
        line = sys.stdin.readline()
    except KeyboardInterrupt:
        return None
    return line.rstrip("\n") if line else None


class TerminalApprover:
    """The ``Approver`` for a person at a terminal: panel, choice, reason, edit, view.

    How answers are read is injected: ``run`` reads lines from stdin (the
    defaults); ``chat`` reads single keys and edits in a prompt_toolkit editor.

    Args:
        console: Where the panel goes.
        ask: Reads a choice: y/n/a/e/v, "?" if unclear, None on Ctrl-C/Ctrl-D
            (which ends the turn: ``Interrupted`` is raised).
        line: Reads one line after a prompt; None when cancelled.
        edit: Reads replacement arguments given the current ones as JSON text;
            None when cancelled (an empty or blank text cancels too).
        flush: Discards typeahead; called right before each question.
    """

    def __init__(self, console: Console, *, ask: Callable[[], str | None] | None = None,
                 line: Callable[[str], str | None] | None = None,
                 edit: Callable[[str], str | None] | None = None,
                 flush: Callable[[], None] = flush_typeahead) -> None:
        self.console = console
        self.ask = ask or self._ask_line
        self.line = line or (lambda message: _read(console, message))
        self.edit = edit or self._edit_line
        self.flush = flush

    def _ask_line(self) -> str | None:
        answer = self.line("Run it? ")
        return None if answer is None else (choice_of(answer) or "?")

    def _edit_line(self, current: str) -> str | None:
        self.console.print("Current arguments:", json.dumps(json.loads(current), ensure_ascii=True))
        text = self.line("New arguments as one line of JSON (Enter to keep): ")
        return text or None

    def __call__(self, request: ApprovalRequest) -> Decision:
        """Show the panel and ask until there is an answer.

        Raises:
            Interrupted: Ctrl-C or Ctrl-D at the question; the turn ends.
        """
        self._show(request)
        while True:
            self.flush()
            choice = self.ask()
            if choice is None:
                raise Interrupted(CANCELLED_AT_QUESTION)
            if choice in ("y", "a"):
                return Decision(True, always=choice == "a")
            if choice == "n":
                return self._deny()
            if choice == "v":
                self._show(request, full=True)
            elif choice == "e":
                edited = self._edit(request)
                if edited is not None:
                    return edited
            else:
                self.console.print("please answer y (yes), n (no), a (always), e (edit) or v (view)")

    def _show(self, request: ApprovalRequest, *, full: bool = False) -> None:
        """Print the panel, its long lines wrapped (even on a soft-wrapping console,
        where they would be cropped and the full view would show nothing more)."""
        self.console.print(approval_panel(request, full=full), soft_wrap=False)

    def _deny(self) -> Decision:
        reason = (self.line("Reason for the model (optional, Enter to skip): ") or "").strip()
        return Decision(False, reason=f"the user declined: {reason}" if reason else None)

    def _edit(self, request: ApprovalRequest) -> Decision | None:
        text = self.edit(json_visible(request.arguments))
        if text is None or not text.strip():
            self.console.print("edit cancelled: the arguments are unchanged")
            return None
        from ..agent import parse_arguments  # loaded already: a call is being approved

        try:
            arguments = parse_arguments(text)
            request.tool.validate(arguments)
        except ToolError as exc:
            self.console.print(Text(f"not accepted: {visible(str(exc))}", style="red"))
            return None
        request.arguments = arguments
        self._show(request)
        self.console.print(Text("edited arguments approved", style="green"))
        return Decision(True, arguments=arguments)


class UnattendedApprover:
    """No terminal and no ``--yes``: deny, tell the model, and say so on stderr."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, request: ApprovalRequest) -> Decision:
        self.console.print(f"agentcli: denied a call to {visible(request.tool.name)}: {UNATTENDED_HINT}")
        return Decision(False, unattended=True)
