"""Rendering loop events for a terminal, on an injected rich console."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .safe_text import visible

if TYPE_CHECKING:
    from rich.text import Text

    from ..audit import ToolStats
    from ..events import ToolRecord

_MARKS = {"ok": ("✓", "green"), "error": ("✗", "red"), "denied": ("⊘", "yellow"),
          "timeout": ("⏱", "red"), "cancelled": ("⊘", "yellow")}


class Styled:
    """A line of text with styles, built without importing rich: a plain console
    writes ``plain``; a rich console renders it through ``__rich__``."""

    def __init__(self, text: str = "", style: str = "") -> None:
        self.parts: list[tuple[str, str]] = [(text, style)]

    def append(self, text: str, style: str = "") -> Styled:
        self.parts.append((text, style))
        return self

    @property
    def plain(self) -> str:
        return "".join(text for text, _ in self.parts)

    def __str__(self) -> str:
        return self.plain

    def __rich__(self) -> Text:
        from rich.text import Text

        line = Text()
        for text, style in self.parts:
            line.append(text, style=style or None)
        return line


def for_output(text: str, *, terminal: bool) -> str:
    """Answer text as it should reach stdout: with control sequences made
    visible on a terminal, byte for byte when piped or redirected.

    Ask whether the stream is a terminal before any tool runs: while tools
    run, file descriptor 1 points at a capture file.
    """
    return visible(text, prose=True) if terminal else text


def notice_line(text: str) -> str:
    """A notice for stderr: ``agentcli: ...`` with unsafe characters escaped."""
    return f"agentcli: {visible(text)}"


def short(text: str, limit: int = 120) -> str:
    """One line: newlines shown as ⏎, cut with an ellipsis, unsafe characters escaped."""
    flat = visible(text.replace("\r\n", "\n").replace("\n", " ⏎ "))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def tool_result_line(record: ToolRecord) -> Styled:
    mark, style = _MARKS.get(record.status, ("?", "white"))
    args = (json.dumps(record.arguments, ensure_ascii=False) if not isinstance(record.arguments, str)
            else record.arguments)
    line = Styled(f"{mark} ", style)
    line.append(f"{visible(record.name)} ", "bold")
    line.append(short(args, 80), "dim")
    line.append(f" → {short(record.result)}")
    line.append(f"  ({record.duration_ms} ms)", "dim")
    return line


def plugin_output(record: ToolRecord, limit: int = 2000) -> Styled:
    """What a tool printed while it ran, labelled, escaped and shortened."""
    text = record.output.strip()
    if len(text) > limit:
        text = text[:limit] + f"\n[... {len(record.output) - limit:,} more characters]"
    line = Styled(f"plugin output ({visible(record.name)}):\n", "dim")
    line.append(visible(text, keep_newlines=True))
    return line


def stats_text(rows: list[ToolStats]) -> str:
    """Per tool: calls, failures, failure rate, mean and p95 time, common errors."""
    lines = [f"{'tool':<20} {'calls':>6} {'fail':>5} {'rate':>6} {'mean ms':>8} {'p95 ms':>8} "
             f"{'not run':>7}  common errors"]
    for r in rows:
        errors = "; ".join(f"{short(e, 60)} ({n})" for e, n in r.errors.most_common(3))
        lines.append(f"{visible(r.tool):<20} {r.calls:>6} {r.failures:>5} {r.failure_rate:>6.0%} "
                     f"{r.mean_ms:>8.0f} {r.p95_ms:>8.0f} {r.denied + r.cancelled:>7}  "
                     f"{errors}".rstrip())
    return "\n".join(lines)
