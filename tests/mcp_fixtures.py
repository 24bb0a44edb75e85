"""Real MCP servers for the tests, written with the SDK's own server side.

HTTP servers are started once per test session and shared (each start pays for
importing the SDK); stdio servers are started by agentcli itself, per run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port

SERVERS = Path(__file__).parent / "mcp_servers"


def script(name: str) -> str:
    return str(SERVERS / f"{name}.py")


def wait_for_port(port: int, proc: subprocess.Popen[bytes], limit: float = 90) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"test MCP server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("test MCP server did not listen in time")


@pytest.fixture(scope="session")
def mcp_http() -> Iterator[dict[str, str]]:
    """The normal, media and changer servers over streamable HTTP: {name: url}."""
    procs, urls = [], {}
    for name in ("normal", "media", "changer"):
        port = free_port()
        proc = subprocess.Popen([sys.executable, script(name), "http", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append((proc, port))
        urls[name] = f"http://127.0.0.1:{port}/mcp"
    try:
        for proc, port in procs:
            wait_for_port(port, proc)
        yield urls
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(timeout=10)


def write_config(home: Path, text: str) -> Path:
    path = home / "config" / "agentcli" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def stdio_server(name: str, server: str, marker: str, extra: str = "") -> str:
    """A ``[mcp.servers.NAME]`` table starting ``server`` over stdio; ``marker``
    (an extra argument the server ignores) finds its process in the table."""
    return (f"[mcp.servers.{name}]\ncommand = {sys.executable!r}\n"
            f"args = [{script(server)!r}, 'stdio', {marker!r}]\n{extra}\n")


def processes_with(marker: str) -> list[int]:
    """Process ids whose command line contains ``marker`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found
