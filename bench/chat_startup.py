"""Time from starting ``agentcli chat`` to its prompt, in a pseudo-terminal.

Wall time from the start of the process to ``agentcli>`` on the screen, and
the CPU time (user + system) the process had used at that moment (read from
/proc, in clock ticks of 10 ms; the steadier figure on a busy machine). Every
package is byte-compiled first, as an install does; medians of interleaved
runs after one dropped warm-up round.

    python bench/chat_startup.py [RUNS] [--tree DIR]

``--tree DIR`` adds another checkout of agentcli (for a before/after), started
like this one as ``python -c "from agentcli.cli import main; main()"`` from
its own directory. This checkout is also measured with two MCP servers
configured that take 5 s to start (tests/mcp_servers/slow.py): the prompt
does not wait for them.

For scale, the same run times the floor of any typer + prompt_toolkit
program: a script that imports typer, then shows a bare prompt_toolkit prompt
(``FLOOR``). What agentcli takes beyond it is its own start-up.
"""

from __future__ import annotations

import compileall
import os
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts the test server on sys.path)
import pexpect
from openai_server import OpenAIServer

ROOT = Path(__file__).resolve().parents[1]
RUNS = 10
TICK = os.sysconf("SC_CLK_TCK")
SLOW = ROOT / "tests" / "mcp_servers" / "slow.py"
FLOOR = ("import typer\nfrom prompt_toolkit import PromptSession\n"
         "PromptSession().prompt('agentcli> ')")


def byte_compile(*trees: Path) -> None:
    """Compile site-packages and the checkouts, as ``pip install`` does."""
    for path in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        compileall.compile_dir(path, quiet=2, workers=0)
    for tree in trees:
        compileall.compile_dir(str(tree / "agentcli"), quiet=2, workers=0)


def command(tree: Path, base_url: str) -> list[str]:
    """``agentcli chat`` from the checkout at ``tree``, whatever is installed."""
    code = (f"import sys; sys.path.insert(0, {str(tree)!r}); sys.argv[0] = 'agentcli'; "
            "from agentcli.cli import main; main()")
    return ["-c", code, "chat", "--base-url", base_url, "-m", "m"]


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTCLI", "OPENAI"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "c"), XDG_DATA_HOME=str(home / "d"),
               XDG_STATE_HOME=str(home / "s"), PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    return env


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def once(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds from the start of ``agentcli chat`` to its prompt."""
    started = time.perf_counter()
    child = pexpect.spawn(sys.executable, argv, env=env, cwd=str(cwd), encoding="utf-8",
                          timeout=60, dimensions=(30, 100))
    child.expect("agentcli>")
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(child.pid)
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    return elapsed, cpu


def measure(runs: int, tree: Path | None) -> dict[str, tuple[float, float]]:
    byte_compile(ROOT, *([tree] if tree else []))
    with OpenAIServer() as server, tempfile.TemporaryDirectory() as plain_home, \
            tempfile.TemporaryDirectory() as mcp_home:
        homes = {"plain": Path(plain_home), "mcp": Path(mcp_home)}
        config = homes["mcp"] / "c" / "agentcli" / "config.toml"
        config.parent.mkdir(parents=True)
        config.write_text("".join(
            f"[mcp.servers.{name}]\ncommand = {sys.executable!r}\nargs = [{str(SLOW)!r}]\n"
            'env = { SLOW_START = "5" }\n' for name in ("slow1", "slow2")))
        found: dict[str, tuple[list[str], str]] = {
            "floor: typer imported, then a bare prompt_toolkit prompt": (["-c", FLOOR], "plain")}
        if tree is not None:
            found[f"agentcli at {tree}"] = (command(tree, server.base_url), "plain")
        found["agentcli at this checkout"] = (command(ROOT, server.base_url), "plain")
        found["this checkout, two MCP servers that take 5 s to start"] = (
            command(ROOT, server.base_url), "mcp")
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in found}
        for round_ in range(runs + 1):  # the first round warms the caches and is dropped
            for name, (argv, home) in found.items():
                result = once(argv, environment(homes[home]), homes[home])
                if round_:
                    samples[name].append(result)
    return {name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
            for name, got in samples.items()}


def main(runs: int = RUNS, tree: Path | None = None) -> list[tuple[str, str]]:
    rows = []
    for name, (wall, cpu) in measure(runs, tree).items():
        rows.append((f"{name}: start to prompt, wall (median of {runs})", f"{wall * 1000:.0f} ms"))
        rows.append((f"{name}: start to prompt, CPU (median of {runs})", f"{cpu * 1000:.0f} ms"))
    return rows


def _arguments(argv: list[str]) -> tuple[int, Path | None]:
    tree = Path(argv[argv.index("--tree") + 1]).resolve() if "--tree" in argv else None
    numbers = [a for a in argv if a.isdigit()]
    return (int(numbers[0]) if numbers else RUNS), tree


if __name__ == "__main__":
    for name, value in main(*_arguments(sys.argv[1:])):
        print(f"{name}: {value}")
