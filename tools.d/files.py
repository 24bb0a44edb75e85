"""Example plugin: read-only access to the files under one root directory.

The root comes from the environment variable ``AGENTCLI_FILES_ROOT`` (default:
the current working directory when the tool is called). The model can list
directories and read text files there, nothing else: no writes, no paths
outside the root.

How a path the model gives is checked:

* NUL bytes and ``..`` components are refused outright.
* The path is joined to the root and resolved with ``os.path.realpath``, which
  follows every symlink (in the middle of the path too); the result must be
  the root or inside it (``os.path.commonpath``). So ``/etc/passwd``, a symlink
  to a file outside, or a symlinked directory pointing outside are refused; an
  absolute path is accepted only when it resolves inside the root.
* The resolved path is then opened component by component from the root with
  ``O_NOFOLLOW`` (``dir_fd``), so a symlink swapped in after the check is not
  followed either.
* Only regular files are read: the type is checked with ``lstat`` before
  opening (a FIFO would block, a device could be endless), and the final open
  uses ``O_NOFOLLOW | O_NONBLOCK`` with a second check on the open descriptor.
* Binary files (a NUL byte in the first 8 KiB) are summarised, not shown.
  Invalid UTF-8 is decoded with replacement characters and the output says so.

Policy: ``list_files`` is "auto": it shows names and sizes only, under a
directory the user chose. ``read_file`` stays at the default "ask": file
contents go to the model provider, so the user sees which file first.
"always" approves reading one directory (the scope), not every file, and a
read file counts as text from outside (tools with side effects ask again).
"""

from __future__ import annotations

import codecs
import errno
import fnmatch
import os
import stat
from typing import Annotated, Any

from pydantic import Field

from agentcli import tool
from agentcli.errors import ToolError

ROOT_ENV = "AGENTCLI_FILES_ROOT"
MAX_ENTRIES = 200
MAX_LIMIT = 100_000
MAX_SCAN = 64 * 1024 * 1024  # bytes read at most to reach an offset
CHUNK = 64 * 1024
SNIFF = 8192
_MAGIC = {b"\x89PNG": "PNG image", b"\xff\xd8\xff": "JPEG image", b"GIF8": "GIF image",
          b"%PDF": "PDF document", b"PK\x03\x04": "ZIP archive", b"\x7fELF": "ELF executable",
          b"\x1f\x8b": "gzip data", b"SQLite format 3": "SQLite database"}


def _root() -> str:
    configured = os.environ.get(ROOT_ENV) or os.getcwd()
    root = os.path.realpath(configured)
    if not os.path.isdir(root):
        raise ToolError(f"the files root {configured} is not a directory")
    return root


def _resolve(path: str) -> tuple[str, list[str]]:
    """The root and the symlink-free components, inside it, of ``path``."""
    if "\x00" in path:
        raise ToolError("refused: the path contains a NUL byte")
    if ".." in path.replace("\\", "/").split("/"):
        raise ToolError(f"refused: {path!r} contains '..'; give a path inside the root directory")
    root = _root()
    real = os.path.realpath(os.path.join(root, path))
    if os.path.commonpath([root, real]) != root:
        raise ToolError(f"refused: {path!r} is outside the directory this tool may read ({root})")
    rel = os.path.relpath(real, root)
    return root, [] if rel == "." else rel.split(os.sep)


def _open(path: str, *, directory: bool) -> int:
    """Open ``path`` under the root without following any symlink; return the fd."""
    root, parts = _resolve(path)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
            if i < len(parts) - 1 or directory:
                flags |= os.O_DIRECTORY
            else:
                _require_regular(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode, path)
                flags |= os.O_NONBLOCK
            try:
                new = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                raise _os_error(exc, path, _is_link(part, fd)) from None
            os.close(fd)
            fd = new
    except OSError as exc:  # from the stat before the final open
        os.close(fd)
        raise _os_error(exc, path, False) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _require_regular(mode: int, path: str) -> None:
    if stat.S_ISREG(mode):
        return
    kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a symbolic link" if stat.S_ISLNK(mode)
            else "not a regular file")
    raise ToolError(f"refused: {path!r} is {kind}; only regular files can be read")


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _os_error(exc: OSError, path: str, link: bool) -> ToolError:
    if link or exc.errno == errno.ELOOP:
        return ToolError(f"refused: {path!r} changed into a symbolic link while being opened")
    if exc.errno == errno.ENOENT:
        return ToolError(f"{path!r} does not exist")
    if exc.errno == errno.ENOTDIR:
        return ToolError(f"{path!r} is not a directory, or a part of it is not")
    return ToolError(f"cannot open {path!r}: {exc.strerror}")


def _entry(entry: os.DirEntry[str]) -> dict[str, Any]:
    info = entry.stat(follow_symlinks=False)
    mode = info.st_mode
    kind = ("dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode)
            else "symlink" if stat.S_ISLNK(mode) else "other")
    return {"name": entry.name, "type": kind, "size": info.st_size if kind == "file" else None}


def _listed_folder(arguments: dict[str, Any]) -> str:
    """The approval scope of list_files: the directory listed (under the root)."""
    return os.path.normpath(str(arguments.get("path", ".")))


def _file_folder(arguments: dict[str, Any]) -> str:
    """The approval scope of read_file: the directory of the file (under the root)."""
    return os.path.dirname(os.path.normpath(str(arguments.get("path", "")))) or "."


@tool(policy="auto", scope=_listed_folder)
def list_files(path: str = ".", pattern: str = "*") -> list[dict]:
    """List the entries of a directory under the user's chosen root directory (not recursive).

    Args:
        path: Directory relative to the root; "." is the root itself.
        pattern: Shell-style wildcard matched against entry names, e.g. "*.py".
    """
    fd = _open(path, directory=True)
    try:
        with os.scandir(fd) as it:
            names = sorted((e for e in it if fnmatch.fnmatch(e.name, pattern)), key=lambda e: e.name)
            entries = [_entry(e) for e in names[:MAX_ENTRIES]]
    except OSError as exc:
        raise ToolError(f"cannot list {path!r}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(names) > MAX_ENTRIES:
        entries.append({"note": f"{len(names) - MAX_ENTRIES} more entries not shown; "
                                "use a narrower pattern"})
    return entries


def _window(fd: int, offset: int, limit: int, errors: str) -> tuple[str, int, bool]:
    """Characters [offset, offset+limit) of the file: (text, characters seen, more follow)."""
    os.lseek(fd, 0, os.SEEK_SET)
    decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)
    end, seen, scanned, parts = offset + limit, 0, 0, []
    while True:
        chunk = os.read(fd, CHUNK)
        scanned += len(chunk)
        if scanned > MAX_SCAN + CHUNK:
            raise ToolError(f"refused: reading that far needs more than {MAX_SCAN:,} bytes")
        text = decoder.decode(chunk, final=not chunk)
        if seen + len(text) > offset and seen < end:
            parts.append(text[max(offset - seen, 0):end - seen])
        seen += len(text)
        if seen > end or not chunk:
            return "".join(parts), seen, seen > end


def _binary_summary(head: bytes, size: int, path: str) -> str:
    kind = next((name for magic, name in _MAGIC.items() if head.startswith(magic)), "binary data")
    return f"[{path}: binary file ({kind}), {size:,} bytes; not shown]"


@tool(scope=_file_folder, untrusted_output=True)
def read_file(path: str, offset: Annotated[int, Field(ge=0)] = 0,
              limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 12_000) -> str:
    """Read a text file under the user's chosen root directory (read-only; binary files are only summarised).

    Args:
        path: File path relative to the root directory.
        offset: Character to start at; use the offset given in a truncation marker to read on.
        limit: Most characters to return.
    """
    fd = _open(path, directory=False)
    try:
        info = os.fstat(fd)
        _require_regular(info.st_mode, path)
        head = os.pread(fd, SNIFF, 0)
        if b"\x00" in head:
            return _binary_summary(head, info.st_size, path)
        note = ""
        try:
            text, seen, more = _window(fd, offset, limit, "strict")
        except UnicodeDecodeError:
            text, seen, more = _window(fd, offset, limit, "replace")
            note = "[note: the file is not valid UTF-8; undecodable bytes are shown as \ufffd]\n"
    finally:
        os.close(fd)
    if offset and offset >= seen and not more:
        return f"{note}[offset {offset:,} is past the end of the file ({seen:,} characters)]"
    if more:
        stop = offset + len(text)
        text += (f"\n[... truncated at character {stop:,}; the file has {info.st_size:,} bytes; "
                 f"call read_file with offset={stop} to read on]")
    return note + text
