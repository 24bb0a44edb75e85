"""Tool execution: concurrency, timeouts, exceptions, output cap, serialisation."""

from __future__ import annotations

import asyncio
import time

from agentcli import tool
from agentcli.errors import ToolError
from agentcli.tools.runner import Job, _run_one, cap, run_batch, serialise


@tool
def sleeper(seconds: float) -> str:
    """Sleep."""
    time.sleep(seconds)
    return f"slept {seconds}"


@tool
async def async_sleeper(seconds: float) -> str:
    """Sleep without blocking."""
    await asyncio.sleep(seconds)
    return "awake"


@tool(isolated=True)
def isolated_sleeper(seconds: float) -> str:
    """Sleep in a worker process."""
    time.sleep(seconds)
    return "awake"


@tool
def raiser(kind: str) -> str:
    """Fail."""
    if kind == "tool":
        raise ToolError("the thing is missing")
    raise ValueError("bad value")


@tool
def big() -> str:
    """A lot of text."""
    return "x" * 50_000_000


def run(jobs, max_parallel=4, max_output=16_000):
    results = [None] * len(jobs)
    run_batch(jobs, results, max_parallel=max_parallel, max_output=max_output)
    return results


def test_parallel_calls_overlap_and_keep_order():
    started = time.monotonic()
    results = run([Job(sleeper, {"seconds": 0.5}, 5) for _ in range(4)])
    elapsed = time.monotonic() - started
    assert elapsed < 1.5  # four half-second sleeps, run together
    assert [r.status for r in results] == ["ok"] * 4


def test_concurrency_is_bounded():
    started = time.monotonic()
    run([Job(sleeper, {"seconds": 0.3}, 5) for _ in range(4)], max_parallel=2)
    assert time.monotonic() - started >= 0.55


def test_a_hung_tool_times_out_and_does_not_block_the_others():
    results = run([Job(sleeper, {"seconds": 30}, 0.3), Job(sleeper, {"seconds": 0.1}, 5)],
                  max_parallel=1)
    assert results[0].status == "timeout" and "timed out after 0.3 s" in results[0].result
    assert results[1].status == "ok"


def test_async_tools_run_and_time_out():
    ok, late = run([Job(async_sleeper, {"seconds": 0.01}, 2), Job(async_sleeper, {"seconds": 10}, 0.2)])
    assert (ok.status, ok.result) == ("ok", "awake")
    assert late.status == "timeout"


def test_an_isolated_tool_out_of_time_is_a_time_out_whichever_clock_fires_first():
    # the worker's own deadline (here the only one) says the same as the caller's wait
    outcome = _run_one(Job(isolated_sleeper, {"seconds": 30}, 0.3))
    assert outcome.status == "timeout"
    assert outcome.result == "timed out after 0.3 s: isolated_sleeper did not finish"
    late, = run([Job(isolated_sleeper, {"seconds": 30}, 0.3)])
    assert (late.status, late.result) == (outcome.status, outcome.result)


def test_exceptions_become_error_results():
    mine, theirs = run([Job(raiser, {"kind": "tool"}, 2), Job(raiser, {"kind": "other"}, 2)])
    assert (mine.status, mine.result) == ("error", "error: the thing is missing")
    assert (theirs.status, theirs.result) == ("error", "error: ValueError: bad value")


def test_output_is_capped_with_a_marker():
    (result,) = run([Job(big, {}, 10)], max_output=1000)
    assert len(result.result) < 1200
    assert result.result.startswith("x" * 1000)
    assert "49,999,000 of 50,000,000 characters cut" in result.result


def test_serialisation_of_non_strings():
    assert serialise({"a": [1, 2], "b": None}) == '{"a": [1, 2], "b": null}'
    assert serialise(float("inf")) == '"inf"'
    assert serialise({1, 2}) in ("[1, 2]", "[2, 1]")
    assert serialise(None) == ""
    assert cap("short", 10) == "short"
