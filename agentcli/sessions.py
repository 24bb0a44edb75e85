"""Saved conversations: one JSON file per session, written atomically.

A save writes a temporary file in the same directory, fsyncs it and renames
it over the old one, so a crash, a full disk or a second Ctrl-C leaves the
previous version intact. A file that cannot be read is reported and never
overwritten.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from pydantic import ValidationError

from . import paths
from .conversation import SCHEMA_VERSION, Conversation
from .errors import SessionError

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class SessionStore:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or paths.sessions_dir()
        self._unreadable: set[str] = set()

    def path(self, session_id: str) -> Path:
        if not _ID.match(session_id) or ".." in session_id:
            raise SessionError(f"invalid session id {session_id!r}: use letters, digits, '-', '_' and '.'")
        return self.directory / f"{session_id}.json"

    def load(self, session_id: str) -> Conversation:
        """Read a session; a file that ends with unanswered calls is repaired in memory."""
        file = self.path(session_id)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SessionError(f"no saved session '{session_id}' (see: agentcli sessions list)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise self._corrupt(session_id, file, str(exc)) from None
        try:
            data = json.loads(text)
            conv = Conversation.model_validate(data)
        except (ValueError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            raise self._corrupt(session_id, file, first) from None
        if conv.schema_version > SCHEMA_VERSION:
            raise SessionError(f"{file}: written by a newer agentcli (schema {conv.schema_version})")
        conv.id = session_id
        conv.repair()
        return conv

    def _corrupt(self, session_id: str, file: Path, why: str) -> SessionError:
        self._unreadable.add(session_id)
        return SessionError(f"{file}: the session file is corrupt and was left untouched ({why})")

    def save(self, conv: Conversation) -> Path:
        """Write ``conv`` atomically; refuses to replace a file that failed to load."""
        file = self.path(conv.id)
        if conv.id in self._unreadable:
            raise SessionError(f"{file}: not overwriting a session file that could not be read")
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = conv.model_dump_json(indent=1)
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
        return file

    def list(self) -> list[Path]:
        """Session files, newest first."""
        if not self.directory.is_dir():
            return []
        files = [p for p in self.directory.glob("*.json") if not p.name.startswith(".")]
        return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)

    def remove(self, session_id: str) -> None:
        file = self.path(session_id)
        try:
            file.unlink()
        except FileNotFoundError:
            raise SessionError(f"no saved session '{session_id}'") from None
