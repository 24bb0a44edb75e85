"""Reading a batch's tasks (INPUT.jsonl) and appending its results (OUT.jsonl).

Each input line is a JSON string (the query) or an object with ``id``,
``query``, ``system``, ``model`` and ``vars``. A line that cannot be used
becomes a task whose result is an error, so one bad line never ends the batch.
Results are appended one whole line at a time under an exclusive lock, so two
processes writing the same file never interleave, and a run that stops keeps
every line it wrote.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import AgentCLIError, UsageError
from .nesting import shape_problem

FIELDS = ("id", "query", "system", "model", "vars")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Task:
    """One line of the input; ``problem`` set means it cannot run (an error result)."""

    id: Any
    line: int
    query: str = ""
    system: str | None = None
    model: str | None = None
    problem: str | None = None

    @property
    def key(self) -> str:
        """The id as compared for duplicates and resuming (``7`` and ``"7"`` are one id)."""
        return str(self.id)


def fill(template: str, values: dict[str, Any]) -> str:
    """``{name}`` replaced by ``values[name]`` (text as is, anything else as JSON);
    ``{{`` and ``}}`` are literal braces.

    Raises:
        KeyError: a placeholder has no value (its name is the argument).
    """
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)[0]
        value = values[name]
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _PLACEHOLDER.sub(replace, template)


def read_tasks(path: Path, template: str | None = None) -> Iterator[Task]:
    """The tasks of INPUT, in order; blank lines are skipped.

    Raises:
        UsageError: INPUT cannot be opened.
    """
    for number, raw in _lines(path):
        if raw.strip():
            yield parse_line(raw, number, template)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror or exc}); pass a JSONL file with "
                         "one task per line") from None
    with handle:
        yield from enumerate(handle, start=1)


def parse_line(raw: bytes, number: int, template: str | None) -> Task:
    """One input line as a task (with ``problem`` set when it cannot run)."""
    task = Task(id=f"line-{number}", line=number)
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return _bad(task, "is not UTF-8 text")
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else (
            str(exc) if isinstance(exc, ValueError) else "nested too deeply")
        return _bad(task, f"is not JSON ({reason}); write a JSON string or object per line")
    problem = shape_problem(value)
    if problem is not None:
        return _bad(task, f"cannot be used: it {problem}")
    if isinstance(value, str):
        value = {"query": value}
    if not isinstance(value, dict):
        return _bad(task, "must be a JSON string (the query) or an object "
                          '{"id", "query", "system", "model", "vars"}')
    return _from_object(task, value, template)


def _from_object(task: Task, obj: dict[str, Any], template: str | None) -> Task:
    if isinstance(obj.get("id"), (str, int)) and not isinstance(obj.get("id"), bool):
        task.id = obj["id"]
    problem = _field_problem(obj)
    if problem is not None:
        return _bad(task, problem)
    task.system, task.model = obj.get("system"), obj.get("model")
    values = {**(obj.get("vars") or {})}
    if obj.get("query") is not None:
        values.setdefault("query", obj["query"])
    try:
        task.query = fill(template, values) if template is not None else obj.get("query") or ""
    except KeyError as exc:
        return _bad(task, f"has no value for {{{exc.args[0]}}} in the prompt template "
                          "(add it to \"vars\")")
    if not task.query.strip():
        return _bad(task, 'has no query (give "query", or --prompt with "vars")')
    return task


def _field_problem(obj: dict[str, Any]) -> str | None:
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        return f"has an unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})"
    if "id" in obj and (not isinstance(obj["id"], (str, int)) or isinstance(obj["id"], bool)):
        return '"id" must be a string or an integer'
    for name in ("query", "system", "model"):
        if obj.get(name) is not None and not isinstance(obj[name], str):
            return f'"{name}" must be a string'
    if obj.get("vars") is not None and not isinstance(obj["vars"], dict):
        return '"vars" must be an object'
    return None


def _bad(task: Task, problem: str) -> Task:
    task.problem = f"line {task.line} {problem}"
    return task


def check_ids(path: Path, template: str | None) -> set[str]:
    """Every task's id, refusing duplicate ids before anything runs.

    Raises:
        UsageError: two lines share an id (both line numbers are named).
    """
    seen: dict[str, int] = {}
    for task in read_tasks(path, template):
        if task.key in seen:
            raise UsageError(f"{path}: line {task.line} repeats the id {task.key!r} of line "
                             f"{seen[task.key]}; every task needs its own id")
        seen[task.key] = task.line
    return set(seen)


def done_ids(path: Path | None) -> set[str]:
    """Ids already in OUT (lines that do not parse, such as a cut last line, are ignored)."""
    if path is None or not path.exists():
        return set()
    ids: set[str] = set()
    try:
        with path.open("rb") as handle:
            for raw in handle:
                ids.update(_result_id(raw))
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror or exc})") from None
    return ids


def _result_id(raw: bytes) -> list[str]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return []
    return [str(value["id"])] if isinstance(value, dict) and "id" in value else []


class ResultWriter:
    """Appends result lines to OUT (or stdout), each whole and flushed at once."""

    def __init__(self, path: Path | None,
                 dumps: Callable[[Any], str] = lambda obj: json.dumps(obj, ensure_ascii=False)) -> None:
        self.path = path
        self.dumps = dumps
        self._lock = threading.Lock()
        self._stream: IO[str] | None = None
        self._fd: int | None = None
        if path is None:
            self._stream = sys.stdout
            return
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UsageError(f"cannot write {path} ({exc.strerror or exc})") from None

    def write(self, result: dict[str, Any]) -> None:
        line = self.dumps(result) + "\n"
        with self._lock:
            if self._fd is None:
                assert self._stream is not None
                self._stream.write(line)
                self._stream.flush()
                return
            try:
                self._append(line.encode("utf-8"))
            except OSError as exc:
                raise AgentCLIError(f"cannot write {self.path} ({exc.strerror or exc}); the "
                                    "batch stopped, and the same command resumes it") from None

    def _append(self, data: bytes) -> None:
        """Under an exclusive lock: end a line cut by a crash, then write every byte."""
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Wait for a write in progress, then stop writing (no line is left half done)."""
        self._lock.acquire()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._stream = None
