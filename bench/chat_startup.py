"""Time from starting ``agentcli chat`` to its prompt, in a pseudo-terminal."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import common  # noqa: F401  (puts the test server on sys.path)
import pexpect
from openai_server import OpenAIServer

RUNS = 10


def once(base_url: str, home: str) -> float:
    env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": f"{home}/c", "XDG_DATA_HOME": f"{home}/d",
           "XDG_STATE_HOME": f"{home}/s", "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}
    started = time.perf_counter()
    child = pexpect.spawn(sys.executable, ["-m", "agentcli", "chat", "--base-url", base_url,
                                           "-m", "m"], env=env, cwd=home, encoding="utf-8",
                          timeout=20, dimensions=(30, 100))
    child.expect("agentcli>")
    elapsed = time.perf_counter() - started
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    return elapsed


def main() -> list[tuple[str, str]]:
    with OpenAIServer() as server, tempfile.TemporaryDirectory() as home:
        once(server.base_url, home)
        samples = [once(server.base_url, home) for _ in range(RUNS)]
    return [("agentcli chat, start to prompt (median of 10)", f"{statistics.median(samples) * 1000:.0f} ms")]


if __name__ == "__main__":
    for name, value in main():
        print(f"{name}: {value}")
