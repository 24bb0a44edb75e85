"""MCP (issue 14): what a tool call on a running server, ``import mcp`` and slow
servers cost.

1. ``calls``: one tool call through agentcli's executor (parse, validate,
   approve, run, audit) for an MCP tool on a server that is already up
   (tests/mcp_servers/normal.py over stdio, its ``echo`` tool) against the
   built-in ``calculator`` (a forked, sandboxed worker per call) and
   ``current_time`` (in-process). In-process, the calls interleaved, medians.
   Beside it, the whole-process view: ``agentcli tools call`` of each, where
   the MCP one also pays for starting the server.
2. ``imports``: ``python -c "import mcp"`` against ``python -c pass`` in
   fresh processes, ``python -X importtime``'s biggest parts of it; then
   ``agentcli tools list`` and ``agentcli run`` with no ``[mcp]`` section,
   with one whose only server is disabled, and with one enabled server, each
   checked with ``-X importtime`` for whether any ``mcp`` module was loaded.
3. ``chat``: ``agentcli chat`` from start to its prompt in a pseudo-terminal
   with no MCP server against two servers that each sleep 5 s before they
   serve (tests/mcp_servers/slow.py): bench/chat_startup.py's measure.

Whole processes are timed with wait4 (CPU time = user + system, children the
process waited for included); every program takes turns with the others, one
dropped warm-up round first; every package is byte-compiled first, as an
install does. The file is not called mcp.py: bench/ comes first on sys.path
when a benchmark runs, and that name would hide the SDK.

    python bench/mcp_bench.py [calls|imports|chat ...] [--tree DIR]

``--tree DIR`` adds another checkout of agentcli to the chat measure (for a
before/after), both run with their own directory on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import common  # noqa: F401  (puts tests/ on sys.path)
from round_trip import QUERY, byte_compile, environment, script
from tool_server import ToolServer

ROOT = Path(__file__).resolve().parents[1]
SERVERS = ROOT / "tests" / "mcp_servers"
Sample = tuple[float, float]
"""Wall seconds and CPU seconds (user + system) of one measure."""


def medians(samples: Sequence[Sample]) -> Sample:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def interleave(programs: dict[str, Callable[[], Sample]], runs: int) -> dict[str, Sample]:
    """Medians per program, the programs taking turns (the order rotating every
    round) after one warm-up round that is dropped."""
    samples: dict[str, list[Sample]] = {name: [] for name in programs}
    names = list(programs)
    for round_ in range(runs + 1):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            sample = programs[name]()
            if round_:
                samples[name].append(sample)
    return {name: medians(got) for name, got in samples.items()}


def _communicate_without_reaping(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Read stdout and stderr to the end, leaving the exit status for wait4."""
    import selectors

    chunks: dict[int, list[bytes]] = {}
    with selectors.DefaultSelector() as sel:
        for stream in (proc.stdout, proc.stderr):
            assert stream is not None
            chunks[stream.fileno()] = []
            sel.register(stream, selectors.EVENT_READ)
        while sel.get_map():
            for key, _ in sel.select():
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fileobj)
    assert proc.stdout is not None and proc.stderr is not None
    return b"".join(chunks[proc.stdout.fileno()]), b"".join(chunks[proc.stderr.fileno()])


def whole(argv: list[str], env: dict[str, str], cwd: Path, expect: str = "") -> Callable[[], Sample]:
    """A whole command as a measure (wall and CPU from wait4); its stdout must
    contain ``expect`` and it must exit 0."""
    def once() -> Sample:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=cwd)
        out, err = _communicate_without_reaping(proc)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0 or expect.encode() not in out:
            raise RuntimeError(f"{' '.join(argv[:4])} ... failed ({code}): "
                               f"{out[-300:]!r} {err[-500:]!r}")
        return elapsed, usage.ru_utime + usage.ru_stime
    return once


def server_table(name: str, server: str, extra: str = "") -> str:
    """A ``[mcp.servers.NAME]`` table starting a test server over stdio."""
    return (f"[mcp.servers.{name}]\ncommand = {sys.executable!r}\n"
            f"args = [{str(SERVERS / f'{server}.py')!r}]\n{extra}")


def write_config(home: Path, text: str) -> None:
    """The user config of ``environment(home)`` (XDG_CONFIG_HOME = home/config)."""
    path = home / "config" / "agentcli" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def pair(sample: Sample) -> str:
    return f"{ms(sample[0])} wall, {ms(sample[1])} CPU"


# 1. One MCP tool call against one built-in call ---------------------------------


@contextmanager
def running_server(state: Path) -> Iterator[object]:
    """The normal test server, started by agentcli's own lifecycle code."""
    saved = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(state)  # server logs and the audit log go here
    from agentcli.config import McpServer
    from agentcli.mcp.lifecycle import start_servers, stop_servers

    try:
        yield start_servers({"files": McpServer(command=sys.executable,
                                                args=[str(SERVERS / "normal.py")])})
    finally:
        stop_servers()
        if saved is None:
            del os.environ["XDG_STATE_HOME"]
        else:
            os.environ["XDG_STATE_HOME"] = saved


def in_process_calls(runs: int) -> dict[str, Sample]:
    """Median wall and CPU time of one call through the executor: CPU of this process
    and of the workers it forked and reaped (the calculator's), not of the MCP
    server (kept apart: its mean CPU per call)."""
    from agentcli.commands.common import approve_all, audit_log
    from agentcli.conversation import Conversation
    from agentcli.executor import Limits, ToolExecutor
    from agentcli.mcp.tools import mcp_tools
    from agentcli.messages import ToolCall
    from agentcli.tools.builtins import builtin_tools
    from agentcli.tools.registry import ToolRegistry

    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as manager:
        tools, warnings = mcp_tools(manager)  # type: ignore[arg-type]
        if warnings:
            raise RuntimeError("; ".join(warnings))
        registry = ToolRegistry({})
        registry.extend(builtin_tools())
        registry.extend(tools)
        executor = ToolExecutor(registry, approve=approve_all, limits=Limits(max_parallel=1),
                                audit=audit_log([]))
        count = iter(range(10**9))

        def call(name: str, arguments: Callable[[int], dict[str, str]],
                 expect: Callable[[int], str]) -> Callable[[], Sample]:
            def once() -> Sample:
                n = next(count)
                request = ToolCall(id=f"call_{n}", name=name, arguments=json.dumps(arguments(n)))
                wall, cpu = time.perf_counter(), time.process_time() + reaped_cpu()
                record = executor.run(Conversation(), [request])[0]
                sample = (time.perf_counter() - wall,
                          time.process_time() + reaped_cpu() - cpu)
                if record.status != "ok" or expect(n) not in record.result:
                    raise RuntimeError(f"{name}: {record.status} {record.result!r}")
                return sample
            return once

        server = server_pid()
        server_before = cpu_of(server)
        found = interleave({
            "MCP files__echo (server up)": call(
                "files__echo", lambda n: {"text": f"call {n}"}, lambda n: f"echo: call {n}"),
            "built-in calculator": call(
                "calculator", lambda n: {"expression": f"{n}*23"}, lambda n: str(n * 23)),
            "built-in current_time": call(
                "current_time", lambda n: {"timezone": "UTC"}, lambda n: "+00:00"),
        }, runs)
        # the server's own CPU time, per call (mean: /proc counts in 10 ms ticks)
        found["the server's CPU per echo call"] = (0.0, (cpu_of(server) - server_before) /
                                                   (runs + 1))
        return found


def reaped_cpu() -> float:
    """CPU seconds of the children this process has reaped (the calculator's workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_pid() -> int:
    """The test server this process started (a child running normal.py)."""
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"normal.py" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
    raise RuntimeError("the MCP test server's process was not found")


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tools_call_processes(runs: int) -> dict[str, Sample]:
    """``agentcli tools call`` of each tool as a whole process (the MCP one starts
    its server, calls it once and stops it)."""
    agentcli = script("agentcli") or "agentcli"
    with tempfile.TemporaryDirectory() as tmp:
        with_server, without = Path(tmp) / "mcp", Path(tmp) / "none"
        write_config(with_server, server_table("files", "normal"))
        write_config(without, "")
        return interleave({
            "agentcli tools call files__echo (server configured)": whole(
                [agentcli, "tools", "call", "-y", "files__echo", "text=hi"],
                environment(with_server), with_server, "echo: hi"),
            "agentcli tools call calculator (no server configured)": whole(
                [agentcli, "tools", "call", "-y", "calculator", "expression=17*23"],
                environment(without), without, "391"),
        }, runs)


def calls(runs: int = 100, process_runs: int = 5) -> list[tuple[str, str]]:
    byte_compile()
    found = in_process_calls(runs)
    mcp = found["MCP files__echo (server up)"]
    server = found.pop("the server's CPU per echo call")[1]
    rows = [(f"in-process, {name} (median of {runs})", pair(sample))
            for name, sample in found.items()]
    rows.append(("the MCP server's own CPU per echo call (mean, from /proc; not in the "
                 "CPU figures above: agentcli's process and the calculator's forked worker)", ms(server)))
    for name in ("built-in calculator", "built-in current_time"):
        wall = mcp[0] - found[name][0]
        cpu = mcp[1] - found[name][1]
        rows.append((f"MCP call minus {name.removeprefix('built-in ')} call",
                     f"{wall * 1000:+.1f} ms wall, {cpu * 1000:+.1f} ms CPU"))
    whole_found = tools_call_processes(process_runs)
    for name, sample in whole_found.items():
        rows.append((f"whole process: {name} (median of {process_runs})", pair(sample)))
    echo, calc = whole_found.values()
    rows.append(("whole process: tools call files__echo minus calculator (starting the "
                 "server and importing mcp included)", f"{(echo[0] - calc[0]) * 1000:+.0f} ms wall, "
                              f"{(echo[1] - calc[1]) * 1000:+.0f} ms CPU"))
    return rows


# 2. import mcp, and what a command without a server pays for it --------------------


def import_breakdown(top: int = 6) -> tuple[float, list[tuple[str, float]]]:
    """``import mcp``'s cumulative time (median of 5 runs of ``python -X importtime``)
    and, from the last run, where it goes: the self time of the modules it loads,
    summed per top-level package, biggest first (seconds)."""
    totals: list[float] = []
    parts: dict[str, float] = {}
    for _ in range(5):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import mcp"],
                             capture_output=True, text=True, check=True).stderr
        subtree: dict[str, float] = {}  # since the last top-level import before mcp
        for line in err.splitlines():
            fields = line.removeprefix("import time:").split("|")
            if len(fields) != 3 or not fields[1].strip().isdigit():
                continue
            name = fields[2].rstrip()
            package = name.strip().split(".")[0]
            subtree[package] = subtree.get(package, 0.0) + int(fields[0]) / 1e6
            if name.strip() == "mcp":
                totals.append(int(fields[1]) / 1e6)
                parts = subtree
                break
            if not name.startswith("  "):
                subtree = {}
    return statistics.median(totals), sorted(parts.items(), key=lambda p: -p[1])[:top]


def imported(argv: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    """The modules a command imports, with their self time in seconds (``-X importtime``)."""
    err = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                         text=True, env=env, cwd=cwd, stdin=subprocess.DEVNULL).stderr
    modules = {}
    for line in err.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[0].strip().isdigit():
            modules[fields[2].strip()] = int(fields[0]) / 1e6
    return modules


def loads_mcp(modules: dict[str, float]) -> str:
    """Whether any module of the ``mcp`` SDK is among ``modules``."""
    return "yes" if any(name == "mcp" or name.startswith("mcp.") for name in modules) else "no"


CONFIGS = {
    "no [mcp] section": "",
    "[mcp] with its one server disabled": server_table("files", "normal", "enabled = false\n"),
    "[mcp] with one server (started)": server_table("files", "normal"),
}


def startup_without_servers(runs: int) -> list[tuple[str, str]]:
    agentcli = script("agentcli") or "agentcli"
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ToolServer() as model:
        homes = {}
        for n, (label, text) in enumerate(CONFIGS.items()):
            home = homes[label] = Path(tmp) / str(n)
            home.mkdir()
            write_config(home, text)
        home = homes["[mcp] with one server (started)"]
        for flag in ("--version", "--help"):
            modules = imported([agentcli, flag], environment(home), home)
            rows.append((f"agentcli {flag}, one server configured",
                         f"mcp imported: {loads_mcp(modules)}"))
        commands = {"tools list": (["tools", "list"], "calculator"),
                    "run -y (one calculator call)": (
                        ["run", "-y", "--base-url", model.base_url, "-m", "m", QUERY], "391")}
        for command, (args, expect) in commands.items():
            programs = {label: whole([agentcli, *args], environment(home), home, expect)
                        for label, home in homes.items()}
            found = interleave(programs, runs)
            base = found["no [mcp] section"]
            modules = {label: imported([agentcli, *args], environment(home), home)
                       for label, home in homes.items()}
            for label, sample in found.items():
                versus = more = ""
                if sample is not base:
                    versus = (f" ({(sample[0] - base[0]) * 1000:+.0f} ms wall, "
                              f"{(sample[1] - base[1]) * 1000:+.0f} ms CPU)")
                    extra = sorted(set(modules[label]) - set(modules["no [mcp] section"]))
                    listed = ", ".join(extra) if len(extra) <= 4 else f"{len(extra)} modules"
                    cost = sum(modules[label][name] for name in extra)
                    more = f"; modules beyond no [mcp]: {listed or 'none'} ({ms(cost)} self)"
                rows.append((f"agentcli {command}, {label} (median of {runs})",
                             f"{pair(sample)}{versus}; mcp imported: "
                             f"{loads_mcp(modules[label])}{more}"))
    return rows


def imports(runs: int = 15, command_runs: int = 7) -> list[tuple[str, str]]:
    byte_compile()
    python = sys.executable
    env = dict(os.environ)
    here = Path.cwd()
    found = interleave({
        "python -c pass": whole([python, "-c", "pass"], env, here),
        "python -c 'import mcp'": whole([python, "-c", "import mcp"], env, here),
        "python -c 'from mcp import Client, StdioServerParameters, stdio_client'": whole(
            [python, "-c", "from mcp import Client, StdioServerParameters, stdio_client"],
            env, here),
    }, runs)
    base = found["python -c pass"]
    rows = []
    for name, sample in found.items():
        extra = "" if sample is base else (f" = +{(sample[0] - base[0]) * 1000:.0f} ms wall, "
                                           f"+{(sample[1] - base[1]) * 1000:.0f} ms CPU")
        rows.append((f"{name} (median of {runs})", pair(sample) + extra))
    total, parts = import_breakdown()
    rows.append(("python -X importtime -c 'import mcp': mcp cumulative (median of 5)", ms(total)))
    rows.append(("where it goes (self time per package, last run)",
                 ", ".join(f"{n} {ms(c)}" for n, c in parts)))
    return rows + startup_without_servers(command_runs)


# 3. chat's prompt with two slow-starting servers -----------------------------------


def chat(runs: int = 5, tree: Path | None = None) -> list[tuple[str, str]]:
    """bench/chat_startup.py's measure, which times this checkout with no MCP server
    and with two servers that take 5 s to start (and ``tree``, when given)."""
    import chat_startup

    return chat_startup.main(runs, tree)


def loaded(part: Callable[..., list[tuple[str, str]]]) -> Callable[..., list[tuple[str, str]]]:
    """``part`` with the machine's load average before and after it as a last row."""
    def measured(*args: object, **kwargs: object) -> list[tuple[str, str]]:
        before = os.getloadavg()[0]
        rows = part(*args, **kwargs)
        return [*rows, ("load average (1 min) before / after", f"{before:.1f} / "
                                                             f"{os.getloadavg()[0]:.1f}")]
    return measured


calls, imports, chat = loaded(calls), loaded(imports), loaded(chat)
PARTS = {"calls": calls, "imports": imports, "chat": chat}


def main() -> list[tuple[str, str]]:
    return [row for part in PARTS.values() for row in part()]


if __name__ == "__main__":
    args = sys.argv[1:]
    chosen = [a for a in args if a in PARTS] or list(PARTS)
    for part in chosen:
        print(f"## {part}")
        extra = ({"tree": Path(args[args.index("--tree") + 1]).resolve()}
                 if part == "chat" and "--tree" in args else {})
        for name, value in PARTS[part](**extra):
            print(f"| {name} | {value} |")
