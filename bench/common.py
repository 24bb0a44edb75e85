"""Helpers shared by the benchmarks: timing whole commands and in-process code."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the scripted server lives with the tests


def time_command(argv: list[str], runs: int) -> float:
    """Median wall time of a whole process, in seconds (one warm-up run first)."""
    subprocess.run(argv, capture_output=True, check=True)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def time_call(fn: Callable[[], object], runs: int) -> float:
    """Median time of ``fn()`` in seconds (one warm-up call first)."""
    fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def time_interleaved(first: Callable[[], object], second: Callable[[], object],
                     runs: int) -> tuple[float, float]:
    """Medians of two functions timed in alternation, so that background load
    falls on both alike (one warm-up call of each first)."""
    first()
    second()
    a, b = [], []
    for _ in range(runs):
        for fn, samples in ((first, a), (second, b)):
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
    return statistics.median(a), statistics.median(b)
