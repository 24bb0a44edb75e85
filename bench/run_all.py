"""Run every benchmark and write docs/BENCHMARKS.md.

    python bench/run_all.py
"""

from __future__ import annotations

import platform
import sys
from datetime import date

import batch
import chat_startup
import loop_overhead
import mcp_bench
import parallel_tools
import plugin_load
import round_trip
import startup
import stream_render
from common import ROOT

SECTIONS = [
    ("Start-up (budget: within 1.5x of a bare `import typer`)", startup),
    ("Loop overhead per model round trip (budget: within 1.1x of the raw SDK)", loop_overhead),
    ("A whole run, one tool round trip (budget: within 1.2x of the raw SDK script, faster "
     "than llm)", round_trip),
    ("Parallel tool calls (budget: k calls of a 1 s tool in about 1 s)", parallel_tools),
    ("Plugin loading (budget: 200 files in under 0.5 s)", plugin_load),
    ("Chat start-up (budget: prompt in under 0.4 s)", chat_startup),
    ("Streaming Markdown (budget: cost linear in the answer's length)", stream_render),
    ("Batch runs (budget: 1,000 tasks at 20x the throughput of separate runs, memory flat)", batch),
    ("An MCP tool call, server up (budget: within 50 ms of a built-in tool call)",
     mcp_bench.calls),
    ("`import mcp`, and what start-up pays for it with no server configured (budget: nothing)",
     mcp_bench.imports),
    ("Chat prompt with two slow-starting MCP servers (budget: under 0.4 s)", mcp_bench.chat),
]


def main() -> None:
    lines = ["# Benchmarks", "",
             f"Measured {date.today().isoformat()} on {platform.machine()}, "
             f"Python {platform.python_version()}, {platform.system()}; all figures of a "
             "section come from one run. Medians of repeated runs.", "",
             "Reproduce: `python bench/run_all.py` (writes this file).", ""]
    for title, module in SECTIONS:
        print(title, file=sys.stderr)
        lines += [f"## {title}", "", "| measure | result |", "|---|---|"]
        run = getattr(module, "main", module)  # a benchmark module, or one part of one
        lines += [f"| {name} | {value} |" for name, value in run()]
        lines.append("")
    (ROOT / "docs" / "BENCHMARKS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
