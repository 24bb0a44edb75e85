"""``agentcli doctor``: probe a server and show what it supports, as a table or JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import Settings
from ..doctor import Report, Row, short
from ..doctor_checks import PROBES, diagnose
from ..endpoint import resolve
from ..ui.safe_text import json_visible, visible
from .common import CommonOptions, load_settings, reported, stderr

if TYPE_CHECKING:
    from rich.console import Console

STYLES = {"ok": "green", "deviates": "yellow", "unsupported": "red", "error": "bold red",
          "skipped": "dim"}


@dataclass
class DoctorOptions(CommonOptions):
    json: bool = False
    timeout: float = 20.0


def doctor_command(opts: DoctorOptions) -> int:
    console = stderr(opts)
    with reported(verbose=opts.verbose) as code:
        settings = _settings(opts, console)
        terminal = sys.stdout.isatty()
        debug = (lambda text: console.print(f"agentcli: debug: {visible(text, keep_newlines=True)}")
                 ) if opts.verbose else None
        if not opts.json and not opts.quiet:
            console.print(f"agentcli: probing {settings.base_url or 'the OpenAI API'} "
                          f"(model {settings.model or 'from its list'}), up to "
                          f"{opts.timeout:g} s a request")
        with _progress(console, quiet=opts.quiet or opts.json or opts.verbose) as on_row:
            report = diagnose(settings, settings.api_key(), timeout=opts.timeout, debug=debug,
                              on_row=on_row)
        if opts.json:
            obj = report.as_json()
            print(json_visible(obj, indent=2) if terminal else json.dumps(obj, ensure_ascii=False,
                                                                          indent=2))
        elif terminal:
            _table(report)
        else:
            sys.stdout.write(plain(report))
        code[0] = report.exit_code
    return code[0]


@contextmanager
def _progress(console: Console, *, quiet: bool) -> Iterator[Callable[[Row], None]]:
    """On a terminal, a spinner line naming the last probe done; elsewhere nothing."""
    if quiet or not sys.stderr.isatty():
        yield lambda _: None
        return
    total = len(PROBES)
    done: list[Row] = []
    with console.status(f"probing (0 of {total})") as status:
        def update(row: Row) -> None:
            done.append(row)
            status.update(f"probing ({len(done)} of {total}; {row.feature}: {row.result})")
        yield update


def _settings(opts: DoctorOptions, console: Console) -> Settings:
    """The configured server. With no base URL, the one run would use: a local server
    when there is no key either, else OpenAI (its default model when none is given)."""
    settings = load_settings(opts, console).settings
    if settings.base_url is None:
        settings = resolve(settings, settings.api_key(),
                           lambda line: console.print(f"agentcli: {visible(line)}"))
    return settings


def summary(report: Report) -> str:
    where = report.base_url or "the OpenAI API"
    verdict = "tool calls work" if report.tools_work else "no usable tool call came back"
    return f"{where}, model {short(report.model or '?', 80)}, api {report.api}: {verdict}"


def plain(report: Report) -> str:
    """The rows as text: the feature, its result and what was seen; then agentcli's answer."""
    width = max(len(row.feature) for row in report.rows)
    lines = [visible(summary(report)), ""]
    for row in report.rows:
        lines.append(f"{row.feature:<{width}}  {row.result:<11}  {visible(row.seen)}")
        if row.action:
            lines.append(f"{'':<{width}}  {'':<11}  -> {visible(row.action)}")
    return "\n".join(lines) + "\n"


def _table(report: Report) -> None:
    from rich.table import Table
    from rich.text import Text

    from ..ui.console import stdout_console

    table = Table("feature", "result", "seen", "what agentcli does", title=visible(summary(report)),
                  title_justify="left", show_lines=True)
    for row in report.rows:
        table.add_row(row.feature, Text(row.result, style=STYLES.get(row.result, "")),
                      visible(row.seen), visible(row.action))
    stdout_console().print(table)

