"""Start-up: ``agentcli --version`` and ``--help`` against a bare ``import typer``."""

from __future__ import annotations

import sys

from common import time_command

RUNS = 30


def main() -> list[tuple[str, str]]:
    python = sys.executable
    base = time_command([python, "-c", "import typer"], RUNS)
    rows = [("python -c 'import typer'", f"{base * 1000:.1f} ms (baseline)")]
    for args in (["--version"], ["--help"]):
        t = time_command([python, "-m", "agentcli", *args], RUNS)
        rows.append((f"agentcli {' '.join(args)}", f"{t * 1000:.1f} ms = {t / base:.2f}x baseline"))
    return rows


if __name__ == "__main__":
    for name, value in main():
        print(f"{name}: {value}")
