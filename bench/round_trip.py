"""What a script pays for one tool round trip: whole processes, not in-process loops.

``agentcli run -y "what is 17*23"`` (one calculator call, then the answer)
against a minimal raw-openai-SDK script doing the same exchange
(bench/raw_round_trip.py), and against simonw/llm when it is installed
(``pip install -e '.[bench]'``). All talk to a loopback server that answers at
once (bench/tool_server.py). Every package is byte-compiled first, as an
install does; the programs take turns (interleaved) so that background load
falls on all alike; the figures are medians. CPU time (user + system) and peak
RSS are per process (wait4); CPU time is the steadier figure on a busy machine.

agentcli pauses the cycle collector while it starts (agentcli/collector.py). The
raw script is also run with the same pause (``--no-collector``), so that what
agentcli itself adds over the SDK can be read apart from that trick.

    python bench/round_trip.py [RUNS] [--tree DIR]

``--tree DIR`` adds another checkout of agentcli (for a before/after), with
this one, both started as ``python -c "from agentcli.cli import main; main()"``
from their own directory.
"""

from __future__ import annotations

import compileall
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from tool_server import ToolServer

ROOT = Path(__file__).resolve().parents[1]
RUNS = 9
QUERY = "what is 17*23"
LLM_TOOL = ('def calculator(expression: str) -> str:\n'
            '    "Evaluate an arithmetic expression."\n'
            '    left, right = expression.split("*")\n'
            '    return str(int(left) * int(right))\n')


def byte_compile() -> None:
    """Compile site-packages and the project, as ``pip install`` does."""
    for path in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
                 str(ROOT / "agentcli")}:
        compileall.compile_dir(path, quiet=2, workers=0)


def script(name: str) -> str | None:
    """An installed console script next to this Python, or on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def programs(base_url: str, home: Path) -> dict[str, list[str]]:
    """The command line of each program that takes part."""
    raw = [sys.executable, str(ROOT / "bench/raw_round_trip.py"), base_url]
    found = {"raw openai SDK script": raw,
             "raw script, cycle collector paused (as agentcli does)": [*raw, "--no-collector"],
             "agentcli run -y": [script("agentcli") or "agentcli", "run", "-y", "--base-url",
                                 base_url, "-m", "m", QUERY]}
    llm = script("llm")
    if llm is not None:
        (home / "llm").mkdir(exist_ok=True)
        (home / "llm/extra-openai-models.yaml").write_text(
            f"- model_id: bench\n  model_name: m\n  api_base: \"{base_url}\"\n"
            "  supports_tools: true\n")
        found["llm 0.36 (--functions)"] = [llm, "-m", "bench", "--functions", LLM_TOOL, QUERY]
    return found


def from_tree(tree: Path, base_url: str) -> list[str]:
    """``agentcli run`` from the checkout at ``tree``, whatever is installed."""
    code = (f"import sys; sys.path.insert(0, {str(tree)!r}); sys.argv[0] = 'agentcli'; "
            "from agentcli.cli import main; main()")
    return [sys.executable, "-c", code, "run", "-y", "--base-url", base_url, "-m", "m", QUERY]


def environment(home: Path) -> dict[str, str]:
    """A clean HOME for every program: no user config, keys or plugins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTCLI", "OPENAI"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), OPENAI_API_KEY="x",
               XDG_DATA_HOME=str(home / "data"), XDG_STATE_HOME=str(home / "state"),
               LLM_USER_PATH=str(home / "llm"), NO_COLOR="1")
    return env


Sample = tuple[float, float, int]
"""Wall seconds, CPU seconds (user + system) and peak RSS (KiB) of one process."""


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    """Run one whole process; its stdout must hold the answer."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=cwd)
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or b"391" not in out:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {out!r} {err[-500:]!r}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def measure(runs: int, tree: Path | None = None) -> dict[str, Sample]:
    """The median of each figure, per program."""
    byte_compile()
    if tree is not None:
        compileall.compile_dir(str(tree / "agentcli"), quiet=2)
    with tempfile.TemporaryDirectory() as tmp, ToolServer() as server:
        home = Path(tmp)
        env = environment(home)
        found = programs(server.base_url, home)
        if tree is not None:
            found[f"agentcli at {tree}"] = from_tree(tree, server.base_url)
            found["agentcli at this checkout"] = from_tree(ROOT, server.base_url)
        samples: dict[str, list[Sample]] = {name: [] for name in found}
        for round_ in range(runs + 1):  # the first round warms the caches and is dropped
            names = list(found)[round_ % len(found):] + list(found)[:round_ % len(found)]
            for name in names:
                result = run_once(found[name], env, home)
                if round_:
                    samples[name].append(result)
    return {name: tuple(statistics.median(column) for column in zip(*got, strict=False))  # type: ignore[misc]
            for name, got in samples.items()}


def main(runs: int = RUNS, tree: Path | None = None) -> list[tuple[str, str]]:
    results = measure(runs, tree)
    raw = results["raw openai SDK script"]
    rows = []
    for column, label in ((0, "wall time"), (1, "CPU time")):
        for name, figures in results.items():
            ratio = "" if figures is raw else f" = {figures[column] / raw[column]:.2f}x raw"
            rows.append((f"{name}: {label} (median of {runs})",
                         f"{figures[column] * 1000:.0f} ms{ratio}"))
    for name, figures in results.items():
        rows.append((f"{name}: peak RSS", f"{figures[2] / 1024:.1f} MiB"))
    return rows


def _arguments(argv: list[str]) -> tuple[int, Path | None]:
    tree = Path(argv[argv.index("--tree") + 1]).resolve() if "--tree" in argv else None
    numbers = [a for a in argv if a.isdigit()]
    return (int(numbers[0]) if numbers else RUNS), tree


if __name__ == "__main__":
    for name, value in main(*_arguments(sys.argv[1:])):
        print(f"{name}: {value}")
