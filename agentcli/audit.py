"""The audit log of tool calls, and the statistics drawn from it.

Every call is appended as one JSON line to ``$XDG_STATE_HOME/agentcli/
audit.jsonl``: time, session, tool, arguments (values of keys that look like
secrets, and any known secret string, redacted), decision, status, duration
and result size. ``stats`` summarises the log per tool.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .events import ToolRecord
from .nesting import MAX_DEPTH

SECRET_KEY = re.compile(r"(pass(word|wd)?|secret|token|api[-_]?key|auth|authorization|cookie|"
                        r"credential|private[-_]?key|session[-_]?id)", re.I)
SECRET_PAIR = re.compile(SECRET_KEY.pattern + r"(?P<rest>[\w.-]{0,40}?)(?P<sep>\s{0,8}[=:]\s{0,8})"
                         r"(?:bearer\s{1,8}|basic\s{1,8})?(?:\"[^\"]*\"|'[^']*'|[^\s&;,]+)", re.I)
"""``password=hunter2``, ``token: abc``, ``Authorization: Bearer x`` inside a text.

Every repeat is bounded or anchored on a keyword, so a long text takes linear time."""
REDACTED = "[redacted]"
TOO_DEEP = "[nested too deeply]"


def redact(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of ``value`` with secret-looking keys and known secret strings hidden.

    Levels past ``MAX_DEPTH`` are replaced by a marker, so no input is too deep.
    """
    return _redact(value, [s for s in secrets if s], 0)


def _redact(value: Any, secrets: list[str], depth: int) -> Any:
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEY.search(str(k)) and v not in (None, "")
                else _redact(v, secrets, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, secrets, depth + 1) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        value = SECRET_PAIR.sub(lambda m: f"{m[1]}{m['rest']}{m['sep']}{REDACTED}", value)
    return value


def entry(record: ToolRecord, session: str | None, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """One audit line for ``record``, secrets redacted."""
    line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "session": session, "tool": record.name,
            "arguments": redact(record.arguments, secrets),
            "decision": record.decision, "status": record.status,
            "duration_ms": record.duration_ms, "result_size": len(record.result)}
    for key in ("rule", "scope", "hook"):
        if getattr(record, key) is not None:
            line[key] = redact(getattr(record, key), secrets)
    if record.status != "ok":
        line["error"] = redact(record.result[:200], secrets)
    return line


Warn = Callable[[str], None]
_WARNED: set[str] = set()
"""Audit logs already reported as unwritable in this process (one warning each)."""
_NOT_FOLLOWED = "it is a symbolic link, which is not followed"
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
"""No symbolic link is followed; a FIFO without a reader fails (ENXIO) instead of blocking."""


class _Refused(OSError):
    """The log is not written to on purpose; the message says why."""


class AuditLog:
    """Appends one line per call; a log that cannot be written never stops a call.

    The log and its folder are opened without following symbolic links, and only
    a regular file is written to. The first failure is passed to ``warn`` once
    per process and path; the calls go on unlogged.
    """

    def __init__(self, path: Path, secrets: Iterable[str] = (), *,
                 warn: Warn | None = None) -> None:
        self.path = path
        self.secrets = [s for s in secrets if s]
        self.warn = warn
        self.failed: str | None = None

    def write(self, record: ToolRecord, *, session: str | None) -> None:
        line = json.dumps(entry(record, session, self.secrets), ensure_ascii=False) + "\n"
        try:
            self._append(line.encode("utf-8"))
        except OSError as exc:
            self._failed(_reason(exc))

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            if not self.path.parent.is_symlink():
                raise
            raise _Refused(f"its folder {self.path.parent} is a symbolic link, "
                           "which is not followed") from None
        try:
            fd = os.open(self.path.name, _APPEND, 0o600, dir_fd=folder)
        finally:
            os.close(folder)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise _Refused("it is not a regular file")
            os.write(fd, data)
        finally:
            os.close(fd)

    def _failed(self, reason: str) -> None:
        self.failed = f"cannot write the audit log {self.path} ({reason})"
        if self.warn is not None and str(self.path) not in _WARNED:
            _WARNED.add(str(self.path))
            self.warn(f"warning: {self.failed}; tool calls are not being logged "
                      "(make it a writable regular file, or remove it)")


def _reason(exc: OSError) -> str:
    """Why a write failed, in words; ELOOP from O_NOFOLLOW means a symbolic link."""
    if isinstance(exc, _Refused):
        return str(exc)
    if exc.errno == errno.ELOOP:
        return _NOT_FOLLOWED
    if exc.errno == errno.ENXIO:
        return "it is not a regular file"
    return exc.strerror or str(exc)


def read(path: Path) -> list[dict[str, Any]]:
    """Entries of the log; lines that do not parse are skipped."""
    entries = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("tool"), str):
            entries.append(entry)
    return entries


@dataclass
class ToolStats:
    tool: str
    calls: int = 0
    """Calls that ran; denied and cancelled ones are counted apart."""
    failures: int = 0
    denied: int = 0
    cancelled: int = 0
    durations: list[int] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.durations) if self.durations else 0.0

    @property
    def p95_ms(self) -> float:
        if len(self.durations) < 2:
            return float(self.durations[0]) if self.durations else 0.0
        return statistics.quantiles(self.durations, n=20, method="inclusive")[-1]

    def as_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "calls": self.calls, "failures": self.failures,
                "denied": self.denied, "cancelled": self.cancelled,
                "failure_rate": round(self.failure_rate, 4), "mean_ms": round(self.mean_ms, 1),
                "p95_ms": round(self.p95_ms, 1), "common_errors": self.errors.most_common(3)}


def stats(entries: Iterable[dict[str, Any]]) -> list[ToolStats]:
    """Per-tool calls, failures (errors and time-outs), durations and common errors."""
    table: dict[str, ToolStats] = {}
    for entry in entries:
        row = table.setdefault(entry["tool"], ToolStats(entry["tool"]))
        status = entry.get("status")
        if status in ("denied", "cancelled"):
            setattr(row, status, getattr(row, status) + 1)
            continue
        row.calls += 1
        if status in ("error", "timeout"):
            row.failures += 1
            row.errors[_error_kind(entry.get("error", status or ""))] += 1
        row.durations.append(_duration(entry))
    return sorted(table.values(), key=lambda r: (-(r.calls + r.denied + r.cancelled), r.tool))


def _duration(entry: dict[str, Any]) -> int:
    """The entry's duration in ms (0 when missing or not a number)."""
    try:
        return int(entry.get("duration_ms") or 0)
    except (TypeError, ValueError):
        return 0


def _error_kind(text: str) -> str:
    """The stable head of an error message, so similar errors count together."""
    head = str(text).split(":", 2)
    return ":".join(head[:2]).strip()[:80] if len(head) > 1 else str(text)[:80]
