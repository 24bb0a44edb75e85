"""A loopback OpenAI-compatible server that answers at once: a calculator call
for "what is 17*23", then the answer once the tool result is in the request.

It answers every request by what it contains (not from a queue), so whole
processes of different programs can take turns against one server.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "17*23 = 391"
CALL = {"index": 0, "id": "call_1", "type": "function",
        "function": {"name": "calculator", "arguments": json.dumps({"expression": "17*23"})}}


def _reply(request: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The assistant message and finish reason for ``request``."""
    messages = request.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        return {"role": "assistant", "content": ANSWER}, "stop"
    return {"role": "assistant", "content": None, "tool_calls": [CALL]}, "tool_calls"


def _chunks(message: dict[str, Any], finish: str) -> list[dict[str, Any]]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    return [{**head, "choices": [{"index": 0, "delta": message, "finish_reason": None}]},
            {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
            {**head, "choices": [], "usage": usage}]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        message, finish = _reply(request)
        if request.get("stream"):
            events = [f"data: {json.dumps(c)}\n\n" for c in _chunks(message, finish)]
            self._send("text/event-stream", "".join(events) + "data: [DONE]\n\n")
        else:
            body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}
            self._send("application/json", json.dumps(body))

    def _send(self, content_type: str, text: str) -> None:
        data = text.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ToolServer:
    """``with ToolServer() as srv:`` serves on ``srv.base_url`` (``.../v1``)."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ToolServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
