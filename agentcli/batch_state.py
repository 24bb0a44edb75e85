"""The state of a Batch API run, ``OUT.jsonl.state``: what it holds and how it is kept.

One JSON object, replaced whole (temporary file, fsync, rename) after every
change, and locked while a run uses it, so a run that stops at any moment
leaves either the old state or the new one, and two runs never drive the
same jobs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from .errors import AgentCLIError, UsageError
from .messages import Message, Usage

STATE_VERSION = 1


class OpenTask(BaseModel):
    """A task not finished yet: its conversation and where its turn stands."""

    id: str | int
    model: str
    messages: list[Message]
    request: int = 1  # the number of the request to send next (the custom_id's suffix)
    step: int = 0  # model replies in the current turn
    repair: bool = False  # the --schema repair turn is running
    choice: Any = None  # tool_choice for the next request
    answer: str | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    attempts: int = 0  # failed sends of the current request
    started: float = Field(default_factory=time.time)


class Job(BaseModel):
    """One Batch API job: its uploaded input file, its id once created, its requests."""

    model: str
    endpoint: str
    input_file_id: str
    batch_id: str | None = None
    requests: list[str]  # custom ids


class State(BaseModel):
    version: int = STATE_VERSION
    endpoint: str
    dropped: list[str] = Field(default_factory=list)
    tasks: dict[str, OpenTask] = Field(default_factory=dict)
    jobs: list[Job] = Field(default_factory=list)


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".state")


class StateFile:
    """``OUT.jsonl.state``: read once, replaced whole (temp file, fsync, rename), and
    held under an exclusive lock so two runs never drive the same jobs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None

    def lock(self) -> None:
        """Raises UsageError: another run holds the lock."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UsageError(f"cannot create {lock_path} ({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UsageError(f"another agentcli batch is running on {self.path.name[:-6]} "
                             "(its state file is locked); wait for it or stop it") from None
        self._lock_fd = fd

    def unlock(self, *, remove: bool) -> None:
        if self._lock_fd is None:
            return
        if remove:
            for path in (self.path, self.path.with_name(self.path.name + ".lock")):
                path.unlink(missing_ok=True)
        os.close(self._lock_fd)
        self._lock_fd = None

    def load(self) -> State | None:
        """Raises UsageError: the file exists but is not a state file of this version."""
        try:
            if not stat.S_ISREG(self.path.stat().st_mode):  # a FIFO waits, /dev/zero never ends
                raise UsageError(f"{self.path} is not a regular file, so not a batch state "
                                 "file; move it away to start the unfinished tasks again")
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UsageError(f"cannot read {self.path} ({exc.strerror or exc})") from None
        try:
            state = State.model_validate_json(text)
        except (ValidationError, ValueError, RecursionError):
            raise UsageError(f"{self.path} is not a batch state file agentcli can read; move it "
                             "away to start the unfinished tasks again (results already in the "
                             "output are kept and skipped)") from None
        if state.version != STATE_VERSION:
            raise UsageError(f"{self.path} was written by another version of agentcli "
                             f"(state version {state.version}); finish it with that version")
        return state

    def save(self, state: State) -> None:
        """Raises AgentCLIError: the file cannot be written."""
        temp = self.path.with_name(self.path.name + ".tmp")
        try:
            with temp.open("wb") as handle:
                handle.write(state.model_dump_json().encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise AgentCLIError(f"cannot write {self.path} ({exc.strerror or exc}); the batch "
                                "stopped, and the same command resumes it") from None
