"""``agentcli batch``: one task per line of a JSONL file, many at once, resumable."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from .. import collector
from ..batch import BackoffGate, DenyAsking, Tally, TaskRunner, gated, run_all
from ..batch_io import ResultWriter, check_ids, done_ids, read_tasks
from ..endpoint import resolve
from ..errors import AgentCLIError, UsageError
from ..events import Approver
from ..schema import load_schema
from ..ui.console import stderr_console
from ..ui.render import notice_line
from ..ui.safe_text import json_visible
from .common import (
    CommonOptions,
    approve_all,
    build_agent,
    build_registry,
    load_rules,
    load_settings,
    reported,
    stderr,
    tool_choice,
)


@dataclass
class BatchOptions(CommonOptions):
    input: Path = Path("tasks.jsonl")
    output: Path | None = None
    prompt: str | None = None
    parallel: int = 4
    schema: str | None = None
    backend: str = "local"


BACKENDS = ("local", "openai-batch")


def batch_command(opts: BatchOptions) -> int:
    console = stderr(opts)
    with reported(verbose=opts.verbose) as code:
        code[0] = _batch(opts, console)
    return code[0]


def _batch(opts: BatchOptions, console: Console) -> int:
    """Check everything that can be checked before the first request, then run."""
    schema = load_schema(opts.schema) if opts.schema is not None else None
    if opts.parallel < 1:
        raise UsageError("--parallel must be at least 1")
    if opts.backend not in BACKENDS:
        raise UsageError(f"--backend {opts.backend}: choose one of {', '.join(BACKENDS)}")
    if opts.backend == "openai-batch" and opts.output is None:
        raise UsageError("--backend openai-batch needs -o OUT.jsonl: the run keeps its state "
                         "beside that file (OUT.jsonl.state) so that it can resume")
    ids = check_ids(opts.input, opts.prompt)
    done = done_ids(opts.output) & ids
    approve = approve_all if opts.yes and opts.policy is None else DenyAsking()
    runner = _runner(opts, console, approve, schema)
    collector.resume()  # set-up is over: see agentcli.collector
    if opts.backend == "openai-batch":
        assert opts.output is not None
        return _batch_api(opts, console, runner, approve, done)
    writer = ResultWriter(opts.output, *_on_terminal(opts.output))
    tally = Tally(total=len(ids) - len(done))
    tasks = (t for t in read_tasks(opts.input, opts.prompt) if t.key not in done)
    try:
        with _progress(tally, console) as update:
            run_all(tasks, runner, _keep(writer, tally, update), opts.parallel)
    except KeyboardInterrupt:
        writer.close()
        _summary(tally, len(done), approve, interrupted=True)
        return 130
    except AgentCLIError:
        _summary(tally, len(done), approve)
        raise
    _summary(tally, len(done), approve)
    return 0 if tally.failed == 0 else 1


def _batch_api(opts: BatchOptions, console: Console, runner: TaskRunner, approve: Approver,
               done: set[str]) -> int:
    """``--backend openai-batch``: every model step of the open tasks as one Batch API job."""
    from ..batch_api import BatchApiRun, poll_interval
    from ..batch_state import StateFile, state_path

    assert opts.output is not None
    writer = ResultWriter(opts.output)
    states = StateFile(state_path(opts.output))
    states.lock()
    tally = Tally()
    keep = _keep(writer, tally, lambda: None)
    say = lambda text: console.print(notice_line(text))  # noqa: E731
    driver = BatchApiRun(runner, states, finished=keep, say=say, parallel=opts.parallel,
                         poll=poll_interval())
    finished = False
    try:
        tally.total = driver.start(read_tasks(opts.input, opts.prompt), done) + tally.done
        driver.run()
        finished = True
    except KeyboardInterrupt:
        pending = driver.pending()
        if pending:
            stderr_console().print(notice_line(
                f"batch: {', '.join(pending[:3])}{' and more' if len(pending) > 3 else ''} "
                f"still running at the provider; the state is in {states.path}"))
        _summary(tally, len(done), approve, interrupted=True, unfinished="open")
        return 130
    except AgentCLIError:
        _summary(tally, len(done), approve, unfinished="open")
        raise
    finally:
        writer.close()
        states.unlock(remove=finished)
    _summary(tally, len(done), approve)
    return 0 if tally.failed == 0 else 1


def _runner(opts: BatchOptions, console: Console, approve: Approver,
            schema: Any) -> TaskRunner:
    """What every task shares: settings, tools, one provider (one client), the gate."""
    loaded = load_settings(opts, console)
    settings = loaded.settings
    notice = lambda text: console.print(notice_line(text))  # noqa: E731
    settings = resolve(settings, settings.api_key(), notice)
    registry = build_registry(settings, opts, console)
    rules = load_rules(opts, loaded)
    agent = build_agent(settings, registry, approve=approve, on_event=lambda _: None,
                        notice=notice, stream=False, verbose=opts.verbose, rules=rules)
    return TaskRunner(provider=gated(agent.provider, BackoffGate()), registry=registry,
                      approve=approve, limits=agent.limits, tool_settings=settings.tools,
                      audit=agent.tools.audit, strict=agent.strict, system=settings.system,
                      rules=rules,
                      schema=schema, tool_choice=tool_choice(opts.tool_choice, registry))


def _on_terminal(output: Path | None) -> list[Callable[[Any], str]]:
    """Result lines shown on a terminal have control sequences made visible."""
    if output is not None or not sys.stdout.isatty():
        return []
    return [lambda obj: json_visible(obj, indent=None)]


def _keep(writer: ResultWriter, tally: Tally,
          update: Callable[[], None]) -> Callable[[dict[str, Any]], None]:
    def finished(line: dict[str, Any]) -> None:
        writer.write(line)
        tally.count(line)
        update()
    return finished


@contextmanager
def _progress(tally: Tally, console: Console) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr when it is a terminal (done, failed, rate, ETA)."""
    if not sys.stderr.isatty() or console.quiet:
        yield lambda: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(BarColumn(), TextColumn("{task.completed}/{task.total} done"),
                   TextColumn("{task.fields[failed]} failed"), TextColumn("{task.fields[rate]}"),
                   TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True)
    task = bar.add_task("batch", total=tally.total, failed=0, rate="")
    with bar:
        yield lambda: bar.update(task, completed=tally.done, failed=tally.failed,
                                 rate=f"{tally.rate():.1f}/s")


def _summary(tally: Tally, skipped: int, approve: Approver, *, interrupted: bool = False,
             unfinished: str = "not run") -> None:
    """The last line on stderr, always (even with --quiet)."""
    failed = ", ".join(f"{n} {status}" for status, n in sorted(tally.by_status.items())
                       if status != "ok")
    parts = [f"{tally.done - tally.failed} ok", f"{tally.failed} failed" + (f" ({failed})" if failed else "")]
    if skipped:
        parts.append(f"{skipped} skipped (already in the output)")
    if tally.done < tally.total:
        parts.append(f"{tally.total - tally.done} {unfinished}")
    elapsed = max(0.0, tally.elapsed())
    line = f"batch: {', '.join(parts)}; {elapsed:.1f} s, {tally.rate():.1f} tasks/s"
    if isinstance(approve, DenyAsking) and approve.denied:
        line += (f"; {approve.denied} call(s) that would ask were denied (pass --yes, or allow "
                 "the tool by policy)")
    if interrupted:
        line += "; interrupted: the same command resumes it"
    stderr_console().print(notice_line(line))
