"""``agentcli sessions list / show / rm / export``: the saved conversations.

Also the views of a conversation that chat reuses: the session table
(``/sessions``) and the readable transcript (``/history``). Everything shown
on a terminal is escaped; the Markdown export is escaped too, and the JSON
export is the stored session as ASCII-only JSON (same value, no raw bytes).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..conversation import Conversation
from ..errors import SessionError, UsageError
from ..messages import Message
from ..sessions import SessionStore
from ..ui.console import stdout_console
from ..ui.render import short
from ..ui.safe_text import json_visible, visible
from ..ui.stream import markdown
from .common import reported

FORMATS = ("md", "json")


def _peek(store: SessionStore, path: Path) -> Conversation | None:
    """The session in ``path``, or None if it cannot be read (corrupt, a link, gone)."""
    try:
        return store.load(path.stem)
    except SessionError:
        return None


def _when(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return visible(stamp)


def first_user_text(conv: Conversation) -> str:
    """The first question asked in ``conv`` ("" if none)."""
    return next((m.content or "" for m in conv.messages if m.role == "user"), "")


def session_table(store: SessionStore, *, limit: int | None = None) -> Table | Text:
    """Saved sessions, newest first: id, last update, messages, first question."""
    files = store.list()[:limit]
    if not files:
        return Text("no saved sessions")
    table = Table("id", "updated", "messages", "first message", box=None, padding=(0, 2, 0, 0))
    for path in files:
        conv = _peek(store, path)
        if conv is None:
            table.add_row(visible(path.stem), "", "",
                          Text("(corrupt or unreadable: skipped)", style="red"))
            continue
        table.add_row(Text(visible(path.stem), style="bold"), _when(conv.updated),
                      str(len(conv.messages)), short(first_user_text(conv), 50))
    return table


def print_conversation(console: Console, conv: Conversation) -> None:
    """The conversation, readable: who said what, tool calls and their results."""
    results = {m.tool_call_id: m for m in conv.messages if m.role == "tool"}
    for msg in conv.messages:
        if msg.role == "tool":
            continue
        console.print(Text(_ROLE_TITLES[msg.role], style="bold cyan"))
        if msg.content and msg.role == "assistant":
            console.print(markdown(visible(msg.content, keep_newlines=True)))
        elif msg.content:
            console.print(Text(visible(msg.content, keep_newlines=True)))
        for call in msg.tool_calls:
            line = Text(f"→ {visible(call.name)} ", style="yellow")
            line.append(short(call.arguments or "{}", 200), style="dim")
            console.print(line)
            answer = results.get(call.id)
            console.print(Text(f"  ← {short(answer.content or '', 300) if answer else '(no result)'}"))
        console.print()


_ROLE_TITLES = {"system": "system", "user": "you", "assistant": "assistant", "tool": "tool"}


def markdown_transcript(conv: Conversation) -> str:
    """A Markdown document of the session, tool calls and results included."""
    out = [f"# Session {conv.id}", "", f"- model: {visible(conv.model or 'unknown')}",
           f"- created: {conv.created}", f"- updated: {conv.updated}", ""]
    for msg in conv.messages:
        out += _message_md(msg)
    return "\n".join(out).rstrip("\n") + "\n"


def _message_md(msg: Message) -> list[str]:
    if msg.role == "tool":
        return [f"**Tool result** (`{visible(msg.tool_call_id or '')}`):", "",
                *_fenced(msg.content or "", ""), ""]
    out = [f"## {msg.role.capitalize()}", ""]
    if msg.content:
        out += [visible(msg.content, keep_newlines=True), ""]
    for call in msg.tool_calls:
        try:
            args = json_visible(json.loads(call.arguments or "{}"))
        except ValueError:
            args = visible(call.arguments)
        out += [f"**Tool call** `{visible(call.name)}` (`{visible(call.id)}`):", "",
                *_fenced(args, "json"), ""]
    return out


def _fenced(text: str, lang: str) -> list[str]:
    body = visible(text, keep_newlines=True)
    fence = "```"
    while fence in body:
        fence += "`"
    return [fence + lang, body, fence]


def list_sessions() -> int:
    """``sessions list``."""
    console = stdout_console()
    with reported(verbose=False) as code:
        console.print(session_table(SessionStore()))
    return code[0]


def show_session(session_id: str) -> int:
    """``sessions show ID``: exit 1 for an unknown or corrupt session."""
    console = stdout_console()
    with reported(verbose=False) as code:
        conv = SessionStore().load(session_id)
        console.print(Text(f"session {visible(conv.id)} · model {visible(conv.model or '?')} · "
                           f"updated {_when(conv.updated)}", style="dim"))
        print_conversation(console, conv)
    return code[0]


def remove_session(session_id: str) -> int:
    """``sessions rm ID``."""
    with reported(verbose=False) as code:
        SessionStore().remove(session_id)
        print(f"removed session {session_id}")
    return code[0]


def export_session(session_id: str, fmt: str) -> int:
    """``sessions export ID --format md|json`` to stdout."""
    with reported(verbose=False) as code:
        if fmt not in FORMATS:
            raise UsageError(f"--format {visible(fmt)}: use md or json")
        conv = SessionStore().load(session_id)
        if fmt == "md":
            print(markdown_transcript(conv), end="")
        else:
            stored = json.loads(SessionStore().path(session_id).read_text(encoding="utf-8"))
            print(json.dumps(stored, indent=1, ensure_ascii=True))
    return code[0]
