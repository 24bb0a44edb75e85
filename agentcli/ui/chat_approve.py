"""Approval in the chat REPL: one key, no Enter, and nothing typed earlier counts.

The panel comes from ``ui.approve.approval_panel`` (escaped, folded). Right
before each question, typeahead is flushed (keys typed while the answer
streamed or a long panel printed must not answer it) and the question is a small prompt_toolkit prompt that
takes y, n, a, e or v on their own. A typed word ("yes", "no"...) works too:
after a choice key the prompt waits a moment for the rest of the word and
swallows it, so "no" + Enter does not leave an "o" for the next question.
Enter alone denies; Ctrl-C and Ctrl-D end the turn.

Also here: the line prompts the REPL asks besides its own (reason, JSON
editor, the trust question) and muting the terminal's echo during a turn.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application, get_app
from prompt_toolkit.filters import Condition
from prompt_toolkit.input import create_input
from prompt_toolkit.input.typeahead import clear_typeahead
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import Output

try:
    import termios
except ImportError:  # not a POSIX terminal: nothing to flush or mute
    termios = None  # type: ignore[assignment]

if TYPE_CHECKING:  # the approval panel (rich) loads with the first call to approve
    from rich.console import Console

    from .approve import TerminalApprover

QUESTION = "Run it? [y/n/a/e/v] "
GRACE = 0.3
"""Seconds a choice key waits for the rest of its word before it counts."""


@contextmanager
def muted_input(stream: TextIO | None = None) -> Iterator[None]:
    """Keep keys typed during a turn off the screen and out of the line discipline.

    Echo and canonical mode are off (Ctrl-C still raises SIGINT), so typeahead
    reaches the next prompt byte for byte (a Ctrl-D is not eaten as EOF).
    """
    found = _terminal_attributes(stream or sys.stdin)
    if found is None:
        yield
        return
    fd, saved = found
    quiet = list(saved)
    quiet[3] &= ~(termios.ECHO | termios.ICANON)  # keys wait, unseen and unchanged, for the next prompt
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


def _terminal_attributes(stream: TextIO) -> tuple[int, list[Any]] | None:
    if termios is None:
        return None
    try:
        fd = stream.fileno()
        return fd, termios.tcgetattr(fd)
    except (OSError, ValueError, AttributeError, termios.error):
        return None


def ask_key(message: str = QUESTION, *, grace: float = GRACE,
            output: Output | None = None) -> str | None:
    """One of y/n/a/e/v from a single key (or a typed word + Enter); None on Ctrl-C/D."""
    from .approve import WORDS, choice_of

    bindings = KeyBindings()
    changed = [time.monotonic()]
    empty = Condition(lambda: not get_app().current_buffer.text)

    def settle(app: Application[Any]) -> None:
        wait = changed[0] + grace - time.monotonic()
        if app.is_done:
            return
        if wait > 0:
            asyncio.get_running_loop().call_later(wait, settle, app)
        else:
            app.exit(result=app.current_buffer.text)

    def on_key(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text(event.data)
        asyncio.get_running_loop().call_later(grace, settle, event.app)

    for key in WORDS:
        bindings.add(key, filter=empty)(on_key)
        bindings.add(key.upper(), filter=empty)(on_key)
    bindings.add("c-c")(lambda event: event.app.exit(result=None))
    bindings.add("c-d")(lambda event: event.app.exit(result=None))
    bindings.add("enter")(lambda event: event.app.exit(result=event.current_buffer.text))
    session: PromptSession[str | None] = PromptSession(message, key_bindings=bindings,
                                                       output=output)
    session.default_buffer.on_text_changed += lambda _: changed.__setitem__(0, time.monotonic())
    try:
        answer = session.prompt()
    except (EOFError, KeyboardInterrupt):
        return None
    return None if answer is None else (choice_of(answer) or "?")


def ask_choice(message: str, keys: str, *, default: str,
               output: Output | None = None) -> str:
    """One of ``keys`` from a single key press; Enter, Ctrl-C and Ctrl-D give ``default``.

    Typeahead is thrown away first, so a key typed earlier does not choose.
    """
    flush_typeahead()
    bindings = KeyBindings()

    def choose(event: KeyPressEvent) -> None:
        event.app.exit(result=event.data.lower())
    for key in keys:
        bindings.add(key)(choose)
        bindings.add(key.upper())(choose)
    for key in ("enter", "c-c", "c-d"):
        bindings.add(key)(lambda event: event.app.exit(result=default))
    bindings.add("<any>")(lambda event: None)  # other keys do nothing
    session: PromptSession[str] = PromptSession(message, key_bindings=bindings, output=output)
    try:
        return session.prompt() or default
    except (EOFError, KeyboardInterrupt):
        return default


def ask_line(message: str, *, default: str = "", multiline: bool = False,
             output: Output | None = None) -> str | None:
    """A line (or, with ``multiline``, a text accepted by Esc Enter); None on Ctrl-C/D."""
    bindings = KeyBindings()
    if multiline:
        bindings.add("escape", "enter")(lambda event: event.current_buffer.validate_and_handle())
    session: PromptSession[str] = PromptSession(key_bindings=bindings, output=output)
    try:
        return session.prompt(message, default=default, multiline=multiline)
    except (EOFError, KeyboardInterrupt):
        return None


def ask_yes_no(message: str) -> bool:
    """A ``[y/N]`` question: only a clear yes is yes."""
    flush_typeahead()
    answer = ask_line(message)
    return answer is not None and answer.strip().lower() in ("y", "yes")


def flush_typeahead(stream: TextIO | None = None) -> None:
    """Throw away every key typed but not yet read: the tty's and prompt_toolkit's."""
    stream = stream or sys.stdin
    if termios is not None:
        with suppress(OSError, ValueError, AttributeError):
            termios.tcflush(stream.fileno(), termios.TCIFLUSH)
    with suppress(OSError, ValueError, AttributeError):
        clear_typeahead(create_input(stream))


def chat_approver(console: Console, *, output: Output | None = None) -> TerminalApprover:
    """Approval by single keys and a JSON editor (prompt_toolkit), for chat and for
    ``run`` in a terminal (where ``output`` is stderr, so stdout stays the answer's)."""
    from rich.text import Text

    from .approve import TerminalApprover

    def edit(current: str) -> str | None:
        console.print(Text("Edit the arguments as JSON; Esc Enter accepts, Ctrl-C cancels.",
                           style="dim"))
        return ask_line("", default=current, multiline=True, output=output)
    return TerminalApprover(console, ask=lambda: ask_key(output=output),
                            line=lambda message: ask_line(message, output=output), edit=edit,
                            flush=flush_typeahead)
