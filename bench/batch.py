"""Batch throughput: ``agentcli batch`` over N tasks against one process per task.

Both talk to the scripted server on 127.0.0.1, which answers every request at
once, so what is measured is agentcli's own cost per task. The separate
processes are timed over ``PROCESSES`` runs and extrapolated to ``TASKS``
(the cost per process does not depend on how many came before). Peak memory
is the batch process's maximum resident set size, at two task counts.

    python bench/batch.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT  # noqa: F401  (puts tests/ on sys.path)
from openai_server import OpenAIServer, Reply, text

TASKS = 1000
PROCESSES = 50
PARALLEL = 8


class Echo(Reply):
    """Answers every request with a short text naming its query."""

    def send(self, ex) -> None:
        text("done: " + str(ex.request.body["messages"][-1]["content"])[:40]).send(ex)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AGENTCLI_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "c"), XDG_DATA_HOME=str(home / "d"),
               XDG_STATE_HOME=str(home / "s"))
    return env


def _batch(server: OpenAIServer, tasks: int, work: Path) -> tuple[float, int]:
    """Seconds and peak RSS (kB) of one batch run of ``tasks`` tasks."""
    source, out = work / f"in-{tasks}.jsonl", work / f"out-{tasks}.jsonl"
    source.write_text("".join(json.dumps(f"task {n}") + "\n" for n in range(tasks)))
    server.enqueue(*[Echo() for _ in range(tasks)])
    argv = [sys.executable, "-m", "agentcli", "batch", str(source), "-o", str(out),
            "--base-url", server.base_url, "-m", "test-model", "--no-tools",
            "--parallel", str(PARALLEL)]
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env(work), cwd=work)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or len(out.read_text().splitlines()) != tasks:
        raise SystemExit(f"batch of {tasks} failed (exit {proc.returncode})")
    return elapsed, usage.ru_maxrss


def _separate(server: OpenAIServer, runs: int, work: Path) -> float:
    """Seconds for ``runs`` separate ``agentcli run`` processes, one after another."""
    server.enqueue(*[Echo() for _ in range(runs)])
    argv = [sys.executable, "-m", "agentcli", "run", "--base-url", server.base_url,
            "-m", "test-model", "--no-tools"]
    started = time.perf_counter()
    for n in range(runs):
        subprocess.run([*argv, f"task {n}"], capture_output=True, check=True, env=_env(work),
                       cwd=work, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> list[tuple[str, str]]:
    with OpenAIServer() as server, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        small, small_rss = _batch(server, TASKS // 4, work)
        whole, rss = _batch(server, TASKS, work)
        separate = _separate(server, PROCESSES, work) * TASKS / PROCESSES
    return [
        (f"agentcli batch, {TASKS:,} tasks, --parallel {PARALLEL}",
         f"{whole:.1f} s = {TASKS / whole:.0f} tasks/s"),
        (f"{TASKS:,} separate agentcli run processes (extrapolated from {PROCESSES})",
         f"{separate:.0f} s = {TASKS / separate:.1f} tasks/s"),
        ("throughput, batch against separate processes", f"{separate / whole:.0f}x"),
        (f"batch peak memory, {TASKS // 4:,} tasks → {TASKS:,} tasks",
         f"{small_rss / 1024:.0f} MB → {rss / 1024:.0f} MB ({small:.1f} s → {whole:.1f} s)"),
    ]


if __name__ == "__main__":
    for name, value in main():
        print(f"{name}: {value}")
