"""Several processes writing one session: how many turns are kept.

W writer processes each run R rounds of ``agentcli run --session ID`` at once
against a loopback server that answers at once; afterwards the session file
is read and its user turns counted (1 + W*R expected). A run that cannot keep
its turn must exit non-zero and say so; the count of those is printed too.

    python bench/session_writers.py [WRITERS] [ROUNDS] [--tree DIR]

``--tree DIR`` measures another checkout of agentcli (for a before/after).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPLY = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "ok"}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                              "total_tokens": 2}}).encode()


class _Answer(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(REPLY)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(REPLY)


WRITER = """
import subprocess, sys
command, env, cwd, rounds, name = {args!r}
failed = 0
for i in range(rounds):
    done = subprocess.run(command + [f"{{name}} round {{i}}"], env=env, cwd=cwd,
                          capture_output=True, text=True)
    failed += done.returncode != 0
print(failed)
"""


def measure(tree: Path, writers: int, rounds: int) -> tuple[int, int]:
    """(turns kept in the session, runs that exited non-zero)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = Path(tempfile.mkdtemp(prefix="agentcli-writers-"))
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
           "XDG_STATE_HOME": str(home / "state"), "XDG_CONFIG_HOME": str(home / "config"),
           "PYTHONPATH": str(tree)}
    base = [sys.executable, "-m", "agentcli", "run", "--no-tools", "--no-stream",
            "--base-url", f"http://127.0.0.1:{server.server_port}/v1", "-m", "m"]
    subprocess.run([*base, "--save", "first"], env=env, cwd=home, capture_output=True,
                   check=True)
    session = next((home / "data" / "agentcli" / "sessions").glob("*.json"))
    command = [*base, "--session", session.stem]
    procs = [subprocess.Popen([sys.executable, "-c",
                               WRITER.format(args=(command, env, str(home), rounds, f"w{w}"))],
                              stdout=subprocess.PIPE, text=True) for w in range(writers)]
    failed = sum(int(p.communicate()[0]) for p in procs)
    server.shutdown()
    messages = json.loads(session.read_text())["messages"]
    return sum(m["role"] == "user" for m in messages), failed


def main() -> None:
    args = sys.argv[1:]
    tree = ROOT
    if "--tree" in args:
        at = args.index("--tree")
        tree = Path(args[at + 1]).resolve()
        del args[at:at + 2]
    writers = int(args[0]) if args else 5
    rounds = int(args[1]) if len(args) > 1 else 20
    kept, failed = measure(tree, writers, rounds)
    print(f"{tree}: {writers} writers x {rounds} rounds: kept {kept} of "
          f"{1 + writers * rounds} turns; {failed} runs exited non-zero")


if __name__ == "__main__":
    main()
