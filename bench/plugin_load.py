"""Loading 200 plugin files from a tools directory."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from agentcli.tools.loader import load_dir

PLUGIN = '''from agentcli import tool


@tool
def tool_{n}(city: str, days: int = 1) -> dict:
    """Forecast number {n}.

    Args:
        city: City name.
        days: Days ahead.
    """
    return {{"city": city, "days": days}}
'''


def main() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for n in range(200):
            (directory / f"plugin_{n}.py").write_text(PLUGIN.format(n=n))
        load_dir(directory)  # warm the import machinery and pydantic
        for n in range(200):  # new names, so nothing is cached
            (directory / f"plugin_{n}.py").write_text(PLUGIN.format(n=n + 1000))
        started = time.perf_counter()
        report = load_dir(directory)
        elapsed = time.perf_counter() - started
    assert len(report.tools) == 200 and not report.errors
    return [("200 plugin files loaded", f"{elapsed * 1000:.0f} ms")]


if __name__ == "__main__":
    for name, value in main():
        print(f"{name}: {value}")
