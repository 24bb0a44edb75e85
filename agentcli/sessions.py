"""Saved conversations: one JSON file per session, written atomically.

A save writes a temporary file in the same directory, fsyncs it and renames
it over the old one, so a crash, a full disk or a second Ctrl-C leaves the
previous version intact. A file that cannot be read is reported and never
overwritten.

Several processes may write one session (two ``run --session ID`` at once,
two chats). A save holds the session's lock (``.ID.lock``, flock) while it
re-reads the file; if another process saved since this one last read or
wrote it, this process's new messages are appended after what is on disk,
so no turn is lost. A lock held for longer than ``LOCK_TIMEOUT`` seconds is
``SessionBusy``. A chat also marks the session it has open (``.ID.open``),
so a second chat can tell the user.

Only regular files are session files: symbolic links and other entries are
never followed, and a file nested deeper than any session is corrupt.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import paths
from .conversation import SCHEMA_VERSION, Conversation
from .errors import NoSuchSession, SessionError
from .messages import Message
from .nesting import shape_problem

if TYPE_CHECKING:
    from pydantic import TypeAdapter

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LOCK_TIMEOUT = 5.0
"""Seconds a save waits for another process's save of the same session."""
MAX_DEPTH = 32
"""Deepest bracket nesting a session file may have (ours have 4)."""
MIN_SECRET = 8
"""Shorter API keys (``ollama``, ``x``) are placeholders, not secrets, and are not redacted."""
REDACTED = "[redacted]"


class SessionBusy(SessionError):
    """Another process held the session's lock for longer than the time-out."""


@dataclass
class Saved:
    """Where a save went, and whether another process's messages were merged in first."""

    path: Path
    merged: bool = False


@cache
def _validator() -> TypeAdapter[Conversation]:
    """pydantic's validator of a saved conversation, built the first time a file is read
    (so a command that reads none never imports pydantic)."""
    from pydantic import TypeAdapter

    return TypeAdapter(Conversation)


def parse(text: str) -> Conversation:
    """A conversation from a session file's text; ValueError if it is not one.

    The nesting is checked (``nesting.shape_problem``) before pydantic walks the
    data; the JSON parser itself stops at its recursion limit. Keys the
    dataclasses do not have are ignored.
    """
    too_deep = f"nested more than {MAX_DEPTH} levels deep"
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError(too_deep) from None
    if shape_problem(data, MAX_DEPTH) is not None:
        raise ValueError(too_deep)
    from pydantic import ValidationError

    try:
        return _validator().validate_python(data)
    except ValidationError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None


def read_regular(file: Path) -> str | None:
    """The text of ``file``; None if it does not exist. A symbolic link, a
    directory or any other non-regular entry is an OSError, never followed."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(exc.errno, "a symbolic link, not a session file", str(file)) from None
        raise
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(file))
        return fh.read().decode("utf-8")


def secret_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """Matches each secret as it is, in any letter case, or percent-encoded."""
    forms = {form for s in secrets if len(s) >= MIN_SECRET for form in (s, quote(s, safe=""))}
    if not forms:
        return None
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)), re.I)


def scrub(value: Any, pattern: re.Pattern[str] | None) -> Any:
    """``value`` (a dumped conversation) with every match of ``pattern`` redacted."""
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: scrub(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, pattern) for v in value]
    return value


class SessionStore:
    def __init__(self, directory: Path | None = None, *, secrets: Iterable[str] = (),
                 lock_timeout: float = LOCK_TIMEOUT) -> None:
        self.directory = directory or paths.sessions_dir()
        self.lock_timeout = lock_timeout
        self._secrets = secret_pattern(secrets)
        self._unreadable: set[str] = set()
        self._seen: dict[str, str] = {}  # id -> the text last read or written here
        self._synced: dict[str, list[Message]] = {}  # id -> the messages that text holds
        self._open: tuple[str, int] | None = None  # the session marked open, its fd

    def path(self, session_id: str) -> Path:
        if not _ID.match(session_id) or ".." in session_id:
            raise SessionError(f"invalid session id {session_id!r}: use letters, digits, '-', '_' and '.'")
        return self.directory / f"{session_id}.json"

    def load(self, session_id: str) -> Conversation:
        """Read a session; a file that ends with unanswered calls is repaired in memory."""
        file = self.path(session_id)
        try:
            text = read_regular(file)
        except (OSError, UnicodeDecodeError) as exc:
            raise self._corrupt(session_id, file, getattr(exc, "strerror", None) or str(exc)) from None
        if text is None:
            raise NoSuchSession(f"no saved session '{session_id}' (see: agentcli sessions list)")
        conv = self._parse(session_id, file, text)
        conv.id = session_id
        conv.repair()
        self._remember(conv, text)
        return conv

    def _parse(self, session_id: str, file: Path, text: str) -> Conversation:
        try:
            conv = parse(text)
        except ValueError as exc:
            raise self._corrupt(session_id, file, str(exc)) from None
        if conv.schema_version > SCHEMA_VERSION:
            raise SessionError(f"{file}: written by a newer agentcli (schema {conv.schema_version})")
        return conv

    def _corrupt(self, session_id: str, file: Path, why: str) -> SessionError:
        self._unreadable.add(session_id)
        return SessionError(f"{file}: the session file is corrupt and was left untouched ({why})")

    def _remember(self, conv: Conversation, text: str) -> None:
        self._seen[conv.id] = text
        self._synced[conv.id] = list(conv.messages)

    def save(self, conv: Conversation) -> Saved:
        """Write ``conv`` atomically, under the session's lock.

        If another process saved the session since this store last read or
        wrote it, ``conv`` becomes what is on disk followed by the messages
        added here since (a changed system prompt replaces the one on disk).
        Refuses to replace a file that failed to load; any OSError becomes a
        SessionError naming the path.
        """
        file = self.path(conv.id)
        if conv.id in self._unreadable:
            raise SessionError(f"{file}: not overwriting a session file that could not be read")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._locked(conv.id):
                merged = self._merge_newer(conv, file)
                self._write(conv, file)
        except OSError as exc:
            where = exc.filename or file
            raise SessionError(f"cannot save the session to {where}: {exc.strerror or exc}") from None
        return Saved(file, merged)

    def _merge_newer(self, conv: Conversation, file: Path) -> bool:
        """Put what another process saved under ``conv``'s new messages; whether it did."""
        text = read_regular(file)
        if text is None or text == self._seen.get(conv.id):
            return False
        on_disk = self._parse(conv.id, file, text)
        on_disk.repair()
        known = {id(m) for m in self._synced.get(conv.id, [])}
        ours = [m for m in conv.messages if id(m) not in known]
        system = next((m.content for m in ours[:1] if m is conv.messages[0] and m.role == "system"), None)
        conv.created = on_disk.created
        conv.messages = on_disk.messages + [m for m in ours if m.role != "system"]
        if system is not None:
            conv.set_system(system)
        return True

    def _write(self, conv: Conversation, file: Path) -> None:
        payload = json.dumps(scrub(asdict(conv), self._secrets), indent=1, ensure_ascii=False)
        fd, tmp = tempfile.mkstemp(prefix=f".{conv.id}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._remember(conv, payload)

    @contextmanager
    def _locked(self, session_id: str) -> Iterator[None]:
        """Hold ``.ID.lock`` exclusively; SessionBusy after ``lock_timeout`` seconds."""
        file = lock_path(self.directory, session_id)
        fd = _open_marker(file)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    raise SessionBusy(
                        f"session '{session_id}' is busy: another agentcli process has held "
                        f"its lock ({file}) for over "
                        f"{self.lock_timeout:g} s")
                time.sleep(0.02)
            yield
        finally:
            os.close(fd)

    def mark_open(self, session_id: str) -> bool:
        """Mark ``session_id`` open in this process (until another is marked or
        the process ends); False if another live process has it open."""
        self.close_marker()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = _open_marker(self.directory / f".{session_id}.open")
        except OSError:
            return True  # nothing can be shared through a directory we cannot write
        if not _try_lock(fd):
            os.close(fd)
            return False
        self._open = (session_id, fd)
        return True

    def open_elsewhere(self, session_id: str) -> bool:
        """Whether another live process (a chat) has ``session_id`` marked open."""
        if self.marked_open == session_id:
            return False
        try:
            fd = os.open(self.directory / f".{session_id}.open", os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False  # no marker: never opened, or nothing can be shared here
        try:
            return not _try_lock(fd)
        finally:
            os.close(fd)  # closing drops the lock taken just to look

    @property
    def marked_open(self) -> str | None:
        """The session this process has marked open, if any."""
        return self._open[0] if self._open else None

    def close_marker(self) -> None:
        """Stop marking a session open."""
        if self._open is not None:
            os.close(self._open[1])
            self._open = None

    def list(self) -> list[Path]:
        """Session files, newest first. Every ``*.json`` entry is listed, even one
        that cannot be read (a dangling link, a file removed meanwhile): loading
        it reports the problem."""
        try:
            with os.scandir(self.directory) as entries:
                found = [(_mtime(e), Path(e.path)) for e in entries
                         if e.name.endswith(".json") and not e.name.startswith(".")]
        except OSError:
            return []
        return [path for _, path in sorted(found, key=lambda pair: pair[0], reverse=True)]

    def latest(self, *, free: bool = False) -> str | None:
        """The newest session that can be read, or None. With ``free``, the newest
        one that no other chat has open, if there is one."""
        readable = (file.stem for file in self.list() if self._readable(file.stem))
        first = None
        for session_id in readable:
            if not free or not self.open_elsewhere(session_id):
                return session_id
            first = first or session_id
        return first

    def _readable(self, session_id: str) -> bool:
        try:
            self.load(session_id)
        except SessionError:
            return False
        return True

    def remove(self, session_id: str) -> None:
        """Delete a session file (and its lock file; the lock is only taken to save)."""
        file = self.path(session_id)
        try:
            file.unlink()
        except FileNotFoundError:
            raise NoSuchSession(f"no saved session '{session_id}'") from None
        lock_path(self.directory, session_id).unlink(missing_ok=True)


def lock_path(directory: Path, session_id: str) -> Path:
    """The lock file of a session."""
    return directory / f".{session_id}.lock"


def _open_marker(file: Path) -> int:
    return os.open(file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return 0.0
