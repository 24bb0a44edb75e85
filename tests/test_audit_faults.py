"""An audit log that cannot be written, or that is a symbolic link: the answer
still comes, one warning line names the path, and no link is followed.

Tests may run as root, where permissions do not stop writes, so the faults
used are a directory at the log's path, a regular file as its folder, links,
and a FIFO."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from openai_server import Call, text, tool_calls

from agentcli import audit
from agentcli.events import ToolRecord


def log_path(home: Path) -> Path:
    return home / "state" / "agentcli" / "audit.jsonl"


def two_calls_then_answer(server) -> None:
    server.enqueue(tool_calls(Call("calculator", {"expression": "6*7"}, id="c1"),
                              Call("calculator", {"expression": "1+1"}, id="c2")),
                   tool_calls(Call("calculator", {"expression": "2+2"}, id="c3")),
                   text("forty-two"))


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "audit log" in line]


def test_log_that_is_a_directory_warns_once_and_the_answer_comes(cli, server, run_args, home):
    log_path(home).mkdir(parents=True)
    two_calls_then_answer(server)
    result = cli("run", *run_args, "-y", "-q", "x")
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == "forty-two"
    lines = warnings_in(result.stderr)
    assert len(lines) == 1
    assert lines[0].startswith(f"agentcli: warning: cannot write the audit log {log_path(home)}")
    assert "Is a directory" in lines[0] and "not being logged" in lines[0]


def test_log_folder_that_is_a_file_warns(cli, server, run_args, home):
    (home / "state" / "agentcli").write_text("not a folder")
    two_calls_then_answer(server)
    result = cli("run", *run_args, "-y", "x")
    assert result.code == 0 and result.stdout.strip() == "forty-two"
    assert len(warnings_in(result.stderr)) == 1


def test_symlinked_log_is_not_followed(cli, server, run_args, home, tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    log_path(home).parent.mkdir(parents=True)
    log_path(home).symlink_to(target)
    two_calls_then_answer(server)
    result = cli("run", *run_args, "-y", "x")
    assert result.code == 0 and result.stdout.strip() == "forty-two"
    assert target.read_text() == "precious\n"
    [line] = warnings_in(result.stderr)
    assert "symbolic link, which is not followed" in line


def record() -> ToolRecord:
    found = ToolRecord("c1", "calculator", {"expression": "1"})
    found.status, found.result = "ok", "1"
    return found


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts as a new process would: nothing warned yet."""
    monkeypatch.setattr(audit, "_WARNED", set())


def test_symlinked_folder_is_not_followed(tmp_path: Path, fresh_warnings: None) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "state").symlink_to(real)
    warned: list[str] = []
    log = audit.AuditLog(tmp_path / "state" / "audit.jsonl", warn=warned.append)
    log.write(record(), session=None)
    assert list(real.iterdir()) == []
    assert len(warned) == 1 and "is a symbolic link" in warned[0]


def test_fifo_is_refused_without_blocking(tmp_path: Path, fresh_warnings: None) -> None:
    path = tmp_path / "audit.jsonl"
    os.mkfifo(path)
    warned: list[str] = []
    audit.AuditLog(path, warn=warned.append).write(record(), session=None)
    assert len(warned) == 1 and "not a regular file" in warned[0]


def test_a_writable_log_gets_every_call_and_no_warning(tmp_path: Path,
                                                       fresh_warnings: None) -> None:
    path = tmp_path / "state" / "audit.jsonl"
    warned: list[str] = []
    log = audit.AuditLog(path, warn=warned.append)
    log.write(record(), session="s")
    log.write(record(), session="s")
    assert len(path.read_text().splitlines()) == 2 and warned == []
