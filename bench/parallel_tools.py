"""k calls of a tool that sleeps 1 s, proposed together, finish in about 1 s."""

from __future__ import annotations

import time

from agentcli import tool
from agentcli.tools.runner import Job, run_batch


@tool
def sleep_one() -> str:
    """Sleep one second."""
    time.sleep(1)
    return "done"


def main() -> list[tuple[str, str]]:
    rows = []
    for k in (1, 4, 8):
        results: list = [None] * k
        started = time.perf_counter()
        run_batch([Job(sleep_one, {}, 5) for _ in range(k)], results, max_parallel=max(4, k),
                  max_output=16_000)
        elapsed = time.perf_counter() - started
        rows.append((f"{k} parallel calls of a 1 s tool", f"{elapsed:.2f} s"))
    return rows


if __name__ == "__main__":
    for name, value in main():
        print(f"{name}: {value}")
