"""A loopback HTTP(S) server for the HTTP tool tests.

It listens on ``127.0.0.1`` on a free port, in daemon threads, records every
request it receives (method, path, headers, body) and serves fixed routes:

    /text  /json  /png  /empty  /status/404  /status/500
    /headers                     the request headers as JSON
    /echo                        POST (or any method): method, headers, body as JSON
    /redirect?to=URL&code=302    a redirect to URL (absolute or relative)
    /chain/N                     N redirects in a row, then "end of chain"
    /gzip-bomb                   10 MB of zeros, gzip-compressed (about 10 KB)
    /deflate[?raw=1]             the text, deflate-encoded (zlib or raw)
    /brotli                      a body with Content-Encoding: br
    /drip                        one byte every 0.2 s, 100 bytes in all
    /endless                     an endless close-delimited body
    /silent                      headers, then nothing for 10 s
    /page?name=F&type=T          tests/pages/F as Content-Type T (text/html by default;
                                 type=none sends no Content-Type)

Responses are HTTP/1.0 style: the connection closes after each one.
"""

from __future__ import annotations

import functools
import gzip
import json
import ssl
import threading
import urllib.parse
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\x00\x01\x00\x00\x05\x00\x01\r\n-\xb4"
       b"\x00\x00\x00\x00IEND\xaeB`\x82")
TEXT = "hello from the loopback server"
BOMB_SIZE = 10_000_000
PAGES = Path(__file__).parent / "pages"


@functools.cache
def gzip_bomb() -> bytes:
    return gzip.compress(b"\0" * BOMB_SIZE, compresslevel=9)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _record(self) -> Seen:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        seen = Seen(self.command, self.path, headers, body)
        self.server.owner.requests.append(seen)
        return seen

    def _send(self, status: int, body: bytes, content_type: str | None,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._route(self._record())

    do_POST = do_PUT = do_HEAD = do_GET

    def _route(self, seen: Seen) -> None:
        parsed = urllib.parse.urlsplit(seen.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        path = parsed.path
        try:
            if path.startswith("/chain/"):
                return self._chain(int(path.rsplit("/", 1)[1]))
            if path.startswith("/status/"):
                code = int(path.rsplit("/", 1)[1])
                return self._send(code, f"status {code}".encode(), "text/plain")
            handler = getattr(self, "_r_" + path.strip("/").replace("-", "_"), None)
            if handler is None:
                return self._send(404, b"no such route", "text/plain")
            handler(seen, query)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass

    def _chain(self, n: int) -> None:
        if n <= 0:
            return self._send(200, b"end of chain", "text/plain")
        self._send(302, b"", None, {"Location": f"/chain/{n - 1}"})

    def _r_text(self, seen: Seen, query: dict[str, str]) -> None:
        self._send(200, TEXT.encode(), "text/plain; charset=utf-8")

    def _r_json(self, seen: Seen, query: dict[str, str]) -> None:
        self._send(200, json.dumps({"ok": True, "query": query}).encode(), "application/json")

    def _r_page(self, seen: Seen, query: dict[str, str]) -> None:
        kind = query.get("type", "text/html")
        self._send(200, (PAGES / Path(query["name"]).name).read_bytes(),
                   None if kind == "none" else kind)

    def _r_png(self, seen: Seen, query: dict[str, str]) -> None:
        self._send(200, PNG, "image/png")

    def _r_empty(self, seen: Seen, query: dict[str, str]) -> None:
        self._send(204, b"", None)

    def _r_headers(self, seen: Seen, query: dict[str, str]) -> None:
        self._send(200, json.dumps(seen.headers).encode(), "application/json")

    def _r_echo(self, seen: Seen, query: dict[str, str]) -> None:
        reply = {"method": seen.method, "content_type": seen.headers.get("content-type"),
                 "body": seen.body.decode("utf-8", "replace")}
        self._send(200, json.dumps(reply).encode(), "application/json")

    def _r_redirect(self, seen: Seen, query: dict[str, str]) -> None:
        self._send(int(query.get("code", "302")), b"", None, {"Location": query["to"]})

    def _r_gzip_bomb(self, seen: Seen, query: dict[str, str]) -> None:
        self._send(200, gzip_bomb(), "text/plain", {"Content-Encoding": "gzip"})

    def _r_deflate(self, seen: Seen, query: dict[str, str]) -> None:
        packer = zlib.compressobj(wbits=-15 if query.get("raw") else 15)
        body = packer.compress(TEXT.encode()) + packer.flush()
        self._send(200, body, "text/plain", {"Content-Encoding": "deflate"})

    def _r_brotli(self, seen: Seen, query: dict[str, str]) -> None:
        self._send(200, b"\x8b\x03\x80hello\x03", "text/plain", {"Content-Encoding": "br"})

    def _r_drip(self, seen: Seen, query: dict[str, str]) -> None:
        self._stream(b"x", interval=0.2, count=100, length=100)

    def _r_endless(self, seen: Seen, query: dict[str, str]) -> None:
        self._stream(b"y" * 65536, interval=0, count=None, length=None)

    def _r_silent(self, seen: Seen, query: dict[str, str]) -> None:
        self._stream(b"", interval=10, count=1, length=None)

    def _stream(self, piece: bytes, *, interval: float, count: int | None,
                length: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        sent = 0
        while (count is None or sent < count) and not self.server.owner.stopping.is_set():
            self.wfile.write(piece)
            self.wfile.flush()
            sent += 1
            if interval:
                self.server.owner.stopping.wait(interval)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: LoopbackServer


class LoopbackServer:
    """Start with ``with LoopbackServer() as srv:``; ``srv.url("/text")``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Seen] = []
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


class JsonApiHandler(BaseHTTPRequestHandler):
    """The base of a fake JSON API written in a test: ``send_json`` answers; no log lines."""

    def send_json(self, status: int, body: Any) -> None:
        """One whole answer: ``body`` as JSON (bytes are sent as they are)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on 127.0.0.1 from a thread; yields the base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
