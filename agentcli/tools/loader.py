"""Loading plugin files from tools directories, each on its own.

Every ``*.py`` file is imported under a private module name (so a plugin
called ``json.py`` shadows nothing) without touching ``sys.path``. What it
prints at import, even straight to file descriptor 1, is captured. A file
that fails in any way, ``SystemExit`` and ``KeyboardInterrupt`` included, or
whose import does not finish in time, becomes a ``PluginLoadError`` carrying
``path:line: message``, and the other files still load.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TypeVar

from ..errors import PluginLoadError
from ..hooks import Hook
from .base import Tool
from .runner import capture_thread_output, fd1_captured, route_tool_output

_T = TypeVar("_T", Tool, Hook)

#: Seconds a plugin file may take to import, unless the caller says otherwise.
IMPORT_TIMEOUT = 30.0


@dataclass
class LoadReport:
    tools: list[Tool] = field(default_factory=list)
    errors: list[PluginLoadError] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    hooks: list[Hook] = field(default_factory=list)


def plugin_files(directory: Path) -> list[Path]:
    """The files of ``directory`` that are plugins, in name order."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.suffix == ".py" and p.is_file() and not p.name.startswith(("_", ".")))


def load_dir(directory: Path, report: LoadReport | None = None, *,
             timeout: float = IMPORT_TIMEOUT) -> LoadReport:
    """Load every plugin file of ``directory``; each may take ``timeout`` seconds to import."""
    report = report or LoadReport()
    for path in plugin_files(directory):
        try:
            module, printed = _load(path, timeout)
        except PluginLoadError as exc:
            report.errors.append(exc)
            continue
        report.tools.extend(_found(module, Tool, path))
        report.hooks.extend(_found(module, Hook, path))
        if printed.strip():
            report.output.append(f"{path}: plugin output: {printed.strip()}")
    return report


def _found(module: ModuleType, kind: type[_T], path: Path) -> list[_T]:
    """The objects of ``kind`` (tools or hooks) a plugin module defines, marked with its file."""
    found = [obj for obj in vars(module).values() if isinstance(obj, kind)]
    for obj in found:
        obj.source = str(path)
    return found


def _module_name(path: Path) -> str:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"agentcli_plugin_{digest}_{stem}"


def load_file(path: Path, *, timeout: float = IMPORT_TIMEOUT) -> tuple[list[Tool], str]:
    """Import one plugin file; return its tools and whatever it printed.

    The import runs in a daemon thread; one that does not finish within
    ``timeout`` seconds is a load error, and nothing of it is registered.
    """
    module, printed = _load(path, timeout)
    return _found(module, Tool, path), printed


def _load(path: Path, timeout: float) -> tuple[ModuleType, str]:
    """Import one plugin file: its module, and whatever it printed."""
    try:
        source = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise PluginLoadError(str(path), None, "not UTF-8 text; skipped") from None
    except OSError as exc:
        raise PluginLoadError(str(path), None, f"cannot read: {exc.strerror}") from None
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PluginLoadError(str(path), None, "cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        printed = _import(module, source, path, timeout)
    except PluginLoadError:
        sys.modules.pop(name, None)
        raise
    return module, printed


class _Importer:
    """One daemon thread that runs plugin imports, one at a time, for as long as
    none hangs: starting a thread for every file would cost more than most
    imports. A file that does not finish in time leaves its thread behind; the
    next file gets a new one."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="plugin-import", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self.jobs.get()()


_importer: _Importer | None = None


def _import(module: ModuleType, source: str, path: Path, timeout: float) -> str:
    """Run the module's code in the import thread with a deadline; return what it printed.

    Its ``print`` goes to its own buffer, and file descriptor 1 is captured
    meanwhile, so nothing a plugin writes at import reaches stdout.
    """
    global _importer
    buffer = io.StringIO()
    failure: list[BaseException] = []
    done = threading.Event()

    def job() -> None:
        capture_thread_output(buffer)
        try:
            exec(compile(source, str(path), "exec"), module.__dict__)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: a plugin must not stop us
            failure.append(exc)
        finally:
            capture_thread_output(None)
            done.set()

    route_tool_output()
    with fd1_captured() as written:
        _importer = _importer or _Importer()
        _importer.jobs.put(job)
        finished = done.wait(timeout)
    if not finished:
        _importer = None  # its thread is stuck in this file
        raise PluginLoadError(str(path), None,
                              f"import did not finish within {timeout:g} s; skipped")
    if failure:
        raise _load_error(path, failure[0]) from None
    return buffer.getvalue() + "".join(written)


def _load_error(path: Path, exc: BaseException) -> PluginLoadError:
    if isinstance(exc, SyntaxError):
        return PluginLoadError(str(path), exc.lineno, f"syntax error: {exc.msg}")
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno
    kind = type(exc).__name__
    if isinstance(exc, SystemExit):
        return PluginLoadError(str(path), line, f"called sys.exit({exc.code!r}) at import")
    if isinstance(exc, KeyboardInterrupt):
        return PluginLoadError(str(path), line, "raised KeyboardInterrupt at import")
    detail = f"{kind}: {exc}" if str(exc) else kind
    return PluginLoadError(str(path), line, detail)
