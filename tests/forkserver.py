"""Start ``python -m agentcli`` as a new process quickly, by forking a warm interpreter.

Most of a fresh ``agentcli`` process's start-up is the interpreter importing
openai and pydantic, about a second of CPU per process on a small machine. The
tests start the real command a few hundred times, so they share one
interpreter that has imported those libraries (never agentcli itself) and
fork it for each command:

* the command runs in its own process, with its own pid, its argv, environment
  and working directory, and real pipes as stdin, stdout and stderr (passed
  over a Unix socket), so it sees what a freshly started process sees;
* its exit status (a code, or the signal that killed it) comes from
  ``waitpid``, and it is ended like one (non-daemon threads joined, atexit
  handlers run, streams flushed).

What a fork cannot give is a fresh interpreter: the libraries are already
imported, and the interpreter's start-up settings (UTF-8 mode, the locale's
encoding, ``-X`` options) are those of the server. Tests about imports or
about those settings start the command with ``subprocess`` instead
(``cli(..., fresh=True)``, or ``AGENTCLI_TEST_FRESH=1`` for the whole run).
"""

from __future__ import annotations

import contextlib
import json
import locale
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

#: Imported once by the server: what every agentcli command would import anyway.
WARM = ("openai", "openai.types.chat", "openai.types.responses", "pydantic", "httpx2",
        "httpcore2", "anyio", "jsonschema", "typer", "rich.console", "rich.text",
        "simpleeval", "email.message", "zoneinfo", "tomllib")
#: Environment variables read when the interpreter starts: a different value
#: needs a fresh interpreter.
STARTUP_VARS = ("PYTHONIOENCODING", "PYTHONUTF8", "PYTHONPATH", "PYTHONHOME", "LANG", "LC_ALL",
                "LC_CTYPE", "PYTHONWARNINGS", "PYTHONDEVMODE", "PYTHONHASHSEED", "PYTHONSAFEPATH")
_LENGTH = struct.Struct("!I")


def _read_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


# ---------------------------------------------------------------- the server


def serve(path: str) -> None:
    """Import the warm set, then fork a command for every connection on ``path``."""
    import importlib

    for name in WARM:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        ready, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in ready:  # the tests are over (or gone): so is the server
            return
        conn, _ = listener.accept()
        try:
            head, fds, _, _ = socket.recv_fds(conn, _LENGTH.size, 3)
            (size,) = _LENGTH.unpack(head)
            request = json.loads(_read_exact(conn, size))
        except (OSError, EOFError, ValueError, struct.error):
            conn.close()
            continue
        if os.fork() == 0:
            listener.close()
            _supervise(conn, request, fds)
        conn.close()
        for fd in fds:
            os.close(fd)


def _supervise(conn: socket.socket, request: dict[str, object], fds: list[int]) -> None:
    """Fork the command, tell the client its pid, then its wait status."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        pid = os.fork()
        if pid == 0:
            conn.close()
            _command(request, fds)
        for fd in fds:
            os.close(fd)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        _, status = os.waitpid(pid, 0)
        conn.sendall(json.dumps({"status": status}).encode() + b"\n")
        code = 0
    finally:
        os._exit(code)


def _command(request: dict[str, object], fds: list[int]) -> None:
    """Become ``python -m agentcli ARGV`` in the requested place; never returns."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(str(request["cwd"]))
        sys.path[0] = os.getcwd()  # as ``python -m`` has it
        os.environ.clear()
        os.environ.update(request["env"])  # type: ignore[arg-type]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as the interpreter sets it at start
        _fresh_streams()
        sys.argv = ["agentcli", *request["argv"]]  # type: ignore[misc]
        code = _main()
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
        with contextlib.suppress(BaseException):
            sys.stderr.flush()
        os._exit(code)


def _fresh_streams() -> None:
    """New sys.stdin/stdout/stderr on fds 0-2, set up as the interpreter sets them up."""
    import io

    def text(fd: int, like: io.TextIOWrapper) -> io.TextIOWrapper:
        raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
        buffered = io.BufferedReader(raw) if fd == 0 else io.BufferedWriter(raw)
        line_buffering = like.line_buffering if fd == 2 else (fd == 1 and os.isatty(fd))
        return io.TextIOWrapper(buffered, encoding=like.encoding, errors=like.errors,
                                line_buffering=line_buffering, write_through=like.write_through)

    old = (sys.__stdin__, sys.__stdout__, sys.__stderr__)
    sys.stdin = sys.__stdin__ = text(0, old[0])  # type: ignore[arg-type]
    sys.stdout = sys.__stdout__ = text(1, old[1])  # type: ignore[arg-type]
    sys.stderr = sys.__stderr__ = text(2, old[2])  # type: ignore[arg-type]


def _main() -> int:
    """Run the package as ``-m`` does and end as the interpreter ends."""
    import atexit
    import runpy

    code = 0
    try:
        runpy.run_module("agentcli", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # join non-daemon threads
    atexit._run_exitfuncs()
    return code


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


# ---------------------------------------------------------------- the client


class ForkServer:
    """One warm interpreter; ``run()`` answers like ``subprocess.run``."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / "fork.sock")
        self.env = dict(os.environ)
        self._process = subprocess.Popen(
            [sys.executable, __file__, self.path], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, cwd=str(directory))
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != "ready":
            raise RuntimeError("the fork server did not start")

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def usable(self, env: dict[str, str]) -> bool:
        """True if a process forked from the server starts as one with ``env`` would."""
        return all(env.get(name) == self.env.get(name) for name in STARTUP_VARS)

    def run(self, argv: list[str], *, input: str, env: dict[str, str], cwd: str,
            timeout: float) -> subprocess.CompletedProcess[str]:
        pipes = [os.pipe() for _ in range(3)]
        child_fds = [pipes[0][0], pipes[1][1], pipes[2][1]]
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.path)
            body = json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode()
            socket.send_fds(conn, [_LENGTH.pack(len(body))], child_fds)
            conn.sendall(body)
        finally:
            for fd in child_fds:
                os.close(fd)
        out: dict[int, bytes] = {}
        readers = [threading.Thread(target=_drain, args=(fd, out), daemon=True)
                   for fd in (pipes[1][0], pipes[2][0])]
        writer = threading.Thread(target=_feed, args=(pipes[0][1], input.encode()), daemon=True)
        for thread in (*readers, writer):
            thread.start()
        conn.settimeout(timeout)
        replies = conn.makefile("r")
        pid = json.loads(replies.readline())["pid"]
        try:
            status = json.loads(replies.readline())["status"]
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            raise subprocess.TimeoutExpired(argv, timeout) from None
        finally:
            conn.close()
        for thread in readers:
            thread.join(timeout)
        code = os.waitstatus_to_exitcode(status)
        return subprocess.CompletedProcess(argv, code, _decode(out.get(pipes[1][0], b"")),
                                           _decode(out.get(pipes[2][0], b"")))


def _decode(data: bytes) -> str:
    # as subprocess.run(text=True) reads: the locale's encoding, universal newlines
    text = data.decode(locale.getpreferredencoding(False))
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _drain(fd: int, out: dict[int, bytes]) -> None:
    chunks = []
    with os.fdopen(fd, "rb", buffering=0) as stream:
        while chunk := stream.read(65536):
            chunks.append(chunk)
    out[fd] = b"".join(chunks)


def _feed(fd: int, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError), os.fdopen(fd, "wb", buffering=0) as stream:
        view = memoryview(data)
        while view:
            view = view[stream.write(view) or 0:]


if __name__ == "__main__":
    serve(sys.argv[1])
