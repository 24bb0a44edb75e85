"""Shared fixtures: an isolated home for every test, the scripted model server,
and a runner for the real ``agentcli`` command in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from forkserver import ForkServer
from openai_server import OpenAIServer, openai_server  # noqa: F401  (fixture)

AGENTCLI = [sys.executable, "-m", "agentcli"]


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile the package once, as an install does: with PYTHONDONTWRITEBYTECODE set,
    every process the tests start would otherwise compile it again from source."""
    import compileall

    import agentcli

    compileall.compile_dir(str(Path(agentcli.__file__).parent), quiet=2)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME and XDG tree; no API key or agentcli variables leak in."""
    home = tmp_path / "home"
    for sub in ("config", "data", "state", "work"):
        (home / sub).mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTCLI_MODEL", "AGENTCLI_CONFIG",
                "NO_COLOR", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(home / "work")
    return home


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def fork_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer | None]:
    """One warm interpreter per test process (see forkserver.py), unless AGENTCLI_TEST_FRESH=1."""
    if os.environ.get("AGENTCLI_TEST_FRESH") == "1":
        yield None
        return
    server = ForkServer(tmp_path_factory.mktemp("fork"))
    yield server
    server.close()


@pytest.fixture
def cli(home: Path, fork_server: ForkServer | None):
    """Run the real command in a new process: ``cli("run", "hi", input="...", env={...})``.

    The process is forked from a warm interpreter (forkserver.py); ``fresh=True``
    starts a new interpreter instead, for tests about imports or start-up settings.
    """
    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 30, fresh: bool = False) -> Result:
        full_env = {**os.environ, **(env or {})}
        if fork_server is not None and not fresh and fork_server.usable(full_env):
            proc = fork_server.run(list(args), input=input or "", env=full_env,
                                   cwd=os.getcwd(), timeout=timeout)
        else:
            proc = subprocess.run([*AGENTCLI, *args], input=input if input is not None else "",
                                  capture_output=True, text=True, env=full_env,
                                  timeout=timeout, cwd=os.getcwd())
        return Result(proc.returncode, proc.stdout, proc.stderr)
    return run


@pytest.fixture
def server(openai_server: OpenAIServer) -> OpenAIServer:
    return openai_server


@pytest.fixture
def run_args(server: OpenAIServer) -> list[str]:
    """The flags that point ``agentcli run`` at the scripted server."""
    return ["--base-url", server.base_url, "-m", "test-model"]
