"""MCP servers from other programs' files: ``mcp.import`` and a trusted ``./.mcp.json``.

Claude Desktop, Cursor and ``.mcp.json`` files share one shape, an
``mcpServers`` object of servers with ``command``/``args``/``env``/``cwd`` or
``url``/``headers``, and sometimes ``type`` and ``disabled``. Each server found
becomes an ordinary ``McpServer``. The config's own ``[mcp.servers.NAME]`` wins
over an imported server of the same name, and among imported files the first to
name a server wins; each server that loses is noted.

A file that is missing or broken is one warning naming it, never a crash. A
relative path (and the current directory's ``.mcp.json``) names a project's file,
and a project's servers are commands: they are read only when the current
directory is trusted, as its ``tools.d`` and ``agentcli.toml`` are.

Nothing here imports the ``mcp`` SDK.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import SERVER_NAME, McpServer, Settings, validate_server
from ..errors import ConfigError
from ..nesting import shape_problem

LOCAL_FILE = ".mcp.json"
MAX_BYTES = 1_000_000
"""Larger import files are refused (these files hold a few servers)."""
HTTP_TYPES = {"http", "streamable-http", "streamable_http", "streamableHttp"}
_CURSOR_VARIABLE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_BAD_NAME = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class Servers:
    """Every server to use, where each came from, and what was noted on the way."""

    servers: dict[str, McpServer] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """Servers defined twice: which one is used (shown by ``mcp list`` and ``--verbose``)."""
    warnings: list[str] = field(default_factory=list)
    """Files or entries that could not be used (always shown)."""


def configured_servers(settings: Settings, *, cwd: Path, trusted: bool,
                       untrusted_notice: Callable[[Path], bool] | None = None) -> Servers:
    """The config's servers, then those of each import file, then a trusted ``./.mcp.json``.

    Args:
        settings: the effective settings (``mcp.servers`` and ``mcp.import``).
        cwd: the current directory, against which relative paths are read.
        trusted: whether ``cwd`` is trusted.
        untrusted_notice: called with a project file skipped because ``cwd`` is not
            trusted; a warning is given when it returns True (the first time).
    """
    found = Servers(dict(settings.mcp.servers), {n: "config" for n in settings.mcp.servers})
    for path, local, explicit in _files(settings.mcp.import_, cwd):
        if local and not trusted:
            if path.is_file() and (untrusted_notice is None or untrusted_notice(path)):
                found.warnings.append(f"not reading the MCP servers in {path}: this directory "
                                      "is not trusted (run 'agentcli trust' to use them)")
            continue
        for name, server in _read(path, found.warnings, explicit=explicit):
            _add(found, name, server, str(path))
    return found


def _files(entries: list[str], cwd: Path) -> list[tuple[Path, bool, bool]]:
    """The import files in order, then ``./.mcp.json``, each once: (path, whether it is a
    project's file (a relative path), whether mcp.import names it)."""
    files = [(*_resolve(entry, cwd), True) for entry in entries]
    files.append((cwd / LOCAL_FILE, True, False))
    seen: set[Path] = set()
    unique = []
    for path, local, explicit in files:
        if path.absolute() not in seen:
            seen.add(path.absolute())
            unique.append((path, local, explicit))
    return unique


def _resolve(entry: str, cwd: Path) -> tuple[Path, bool]:
    """The file an import entry names, and whether it is a project's (relative) file."""
    path = Path(entry).expanduser()
    if path.is_absolute():
        return path, False
    return cwd / path, True


def _add(found: Servers, name: str, server: McpServer, source: str) -> None:
    if name in found.servers:
        used = found.sources[name]
        where = "[mcp.servers." + name + "] in the config" if used == "config" else used
        found.notes.append(f"MCP server {name} from {source} is not used: {where} defines "
                           "it too and wins")
        return
    found.servers[name] = server
    found.sources[name] = source


def _read(path: Path, warnings: list[str], *, explicit: bool) -> list[tuple[str, McpServer]]:
    """The servers of one file; a missing (when named explicitly) or broken file is
    one warning."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO waits, /dev/zero never ends
            warnings.append(f"{path}: not read: not a regular file")
            return []
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            warnings.append(f"{path}: not read: larger than {MAX_BYTES:,} bytes")
            return []
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        if explicit:
            warnings.append(f"{path}: MCP import file not found (listed in mcp.import)")
        return []
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        warnings.append(f"{path}: cannot read the MCP servers in it ({_reason(exc)})")
        return []
    problem = shape_problem(data)
    if problem is not None:  # every walk below stays far from the recursion limit
        warnings.append(f"{path}: cannot read the MCP servers in it (it {problem})")
        return []
    entries = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        warnings.append(f"{path}: no \"mcpServers\" object in it; nothing imported")
        return []
    servers = []
    for raw_name, entry in entries.items():
        made = _server(str(raw_name), entry, path, warnings)
        if made is not None:
            servers.append(made)
    return servers


def _reason(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} at line {exc.lineno}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc) or type(exc).__name__


def _server(raw_name: str, entry: Any, path: Path,
            warnings: list[str]) -> tuple[str, McpServer] | None:
    """One ``mcpServers`` entry as a server, or None (with a warning) if it cannot be used."""
    name = _BAD_NAME.sub("_", raw_name)[:64]
    shown = raw_name if len(raw_name) <= 80 else raw_name[:80] + "..."
    where = f"{path}: server {json.dumps(shown, ensure_ascii=True)}"
    if not SERVER_NAME.fullmatch(name):
        warnings.append(f"{where}: skipped: it has no usable name")
        return None
    if not isinstance(entry, dict):
        warnings.append(f"{where}: skipped: expected an object")
        return None
    kind = entry.get("type")
    if kind == "sse" or (isinstance(kind, str) and kind not in HTTP_TYPES | {"stdio"}):
        warnings.append(f"{where}: skipped: the {kind[:40]!r} transport is not supported "
                        "(stdio and streamable HTTP are)")
        return None
    fields = {key: _cursor_variables(entry[key]) for key in
              ("command", "args", "env", "cwd", "url", "headers") if key in entry}
    if entry.get("disabled") is True:
        fields["enabled"] = False
    try:
        return name, validate_server(fields)
    except ConfigError as exc:  # its text leaves out the value: env often holds tokens
        warnings.append(f"{where}: skipped: {exc}")
        return None


def _cursor_variables(value: Any) -> Any:
    """Cursor's ``${env:NAME}`` written as agentcli's ``${NAME}``."""
    if isinstance(value, str):
        return _CURSOR_VARIABLE.sub(r"${\1}", value)
    if isinstance(value, dict):
        return {k: _cursor_variables(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cursor_variables(v) for v in value]
    return value
