"""``agentcli batch --backend openai-batch``: every model step of the open tasks as
one Batch API job, against a loopback server that implements the files and
batches endpoints the way the openai SDK calls them.

The server keeps uploaded files and batches in memory. A batch moves on one
status per ``GET /v1/batches/{id}`` (validating, in_progress, then its end);
its output is made by answering each uploaded request with ``script(body)``,
a chat completion, at the moment it ends. ``plan`` decides how successive
batches end: ``complete``, ``expire`` (only the first request answered, the
others in the error file as ``batch_expired``),
``fail`` (refused as a whole, no files), ``hold`` (stays in progress until
``release()``).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import AGENTCLI, Result

RESULT_KEYS = {"id", "status", "answer", "data", "error", "tool_calls", "usage", "duration_ms"}
ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions")
FAST = {"AGENTCLI_BATCH_POLL_SECONDS": "0.02"}

Script = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def completion(body: dict[str, Any], content: str | None = None,
               calls: list[tuple[str, dict[str, Any]]] = ()) -> tuple[int, dict[str, Any]]:
    """A 200 chat completion: text, or tool calls (name, arguments)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{n}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(args)}}
            for n, (name, args) in enumerate(calls)]
    return 200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                 "model": body["model"],
                 "choices": [{"index": 0, "message": message, "logprobs": None,
                              "finish_reason": "tool_calls" if calls else "stop"}],
                 "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def failure(status: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": message, "type": "server_error", "code": None}}


class BatchServer:
    """The files and batches endpoints of the OpenAI API, in memory, on 127.0.0.1:0."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset(lambda body: completion(body, "hi"))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reset(self, script: Script, plan: list[str] | None = None) -> None:
        self.script = script
        self.plan = list(plan or [])
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.uploads: list[list[dict[str, Any]]] = []  # the request lines of each upload
        self.created: list[str] = []  # batch ids, in order
        self.polls = 0
        self.problems: list[str] = []  # requests the real API would have refused
        self.held = threading.Event()
        self.ids = itertools.count(1)
        self.refuse_creates = 0  # how many batch creations to refuse next
        #: rewrites the output file's lines (hostile result files); None leaves them
        self.tamper: Callable[[list[bytes]], list[bytes]] | None = None
        #: a status the batch shows instead of in_progress (one the API never sent)
        self.odd_status: str | None = None

    def release(self) -> None:
        self.held.set()

    # ---- the endpoints

    def upload(self, content_type: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        form = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        fields = {part.get_param("name", header="content-disposition"): part
                  for part in form.iter_parts()}
        if fields["purpose"].get_content().strip() != "batch" or "file" not in fields:
            self.problems.append("upload without purpose=batch or a file part")
            return failure(400, "purpose must be batch")
        data = fields["file"].get_payload(decode=True)
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        for line in lines:
            if set(line) != {"custom_id", "method", "url", "body"} or line["method"] != "POST":
                self.problems.append(f"bad request line {line}")
            if line["body"].get("stream"):
                self.problems.append("a batch request asks for a stream")
        if len({line["custom_id"] for line in lines}) != len(lines):
            self.problems.append("custom_id repeated in one file")
        file_id = self._store(data, "batch", fields["file"].get_filename())
        self.uploads.append(lines)
        return 200, self._file_object(file_id)

    def create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.refuse_creates:
            self.refuse_creates -= 1
            return 400, {"error": {"message": "Enqueued token limit reached for test-model.",
                                   "type": "invalid_request_error", "code": "token_limit"}}
        if body.get("input_file_id") not in self.files or body.get("endpoint") not in ENDPOINTS \
                or body.get("completion_window") != "24h":
            self.problems.append(f"bad batch {body}")
            return failure(400, "invalid batch")
        lines = [json.loads(line) for line in self.files[body["input_file_id"]]["data"].splitlines()]
        if any(line["url"] != body["endpoint"] for line in lines):
            self.problems.append("request url differs from the batch endpoint")
        batch_id = f"batch_{len(self.created) + 1}"
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": "24h",
            "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": int(time.time()), "in_progress_at": None, "expires_at": None,
            "completed_at": None, "failed_at": None, "expired_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"), "end": self.plan.pop(0) if self.plan else "complete"}
        self.created.append(batch_id)
        return 200, self._public(batch_id)

    def retrieve(self, batch_id: str) -> tuple[int, dict[str, Any]]:
        batch = self.batches.get(batch_id)
        if batch is None:
            return failure(404, f"No batch found with id '{batch_id}'.")
        self.polls += 1
        if batch["status"] == "validating":
            batch["status"], batch["in_progress_at"] = "in_progress", int(time.time())
        if self.odd_status is not None:
            return 200, {**self._public(batch_id), "status": self.odd_status}
        elif batch["status"] == "in_progress" and (batch["end"] != "hold" or self.held.is_set()):
            self._end(batch)
        return 200, self._public(batch_id)

    def _end(self, batch: dict[str, Any]) -> None:
        if batch["end"] == "fail":  # refused as a whole: no files at all
            batch.update(status="failed", failed_at=int(time.time()), errors={
                "object": "list", "data": [{"code": "invalid_request", "line": 1, "param": None,
                                            "message": "The input file could not be read."}]})
            return
        lines = [json.loads(line) for line in self.files[batch["input_file_id"]]["data"].splitlines()]
        output, errors = [], []
        for number, line in enumerate(lines):
            item = {"id": f"batch_req_{next(self.ids)}", "custom_id": line["custom_id"],
                    "response": None, "error": None}
            if batch["end"] == "expire" and number > 0:  # only the first one ran in time
                item["error"] = {"code": "batch_expired", "message": "This request could not be "
                                 "executed before the completion window expired."}
                errors.append(item)
                continue
            status, body = self.script(line["body"])
            item["response"] = {"status_code": status, "request_id": "req_1", "body": body}
            (output if status == 200 else errors).append(item)
        for name, items in (("output_file_id", output), ("error_file_id", errors)):
            if items:
                encoded = [json.dumps(item).encode() for item in items]
                if self.tamper is not None and name == "output_file_id":
                    encoded = self.tamper(encoded)
                data = b"".join(line + b"\n" for line in encoded)
                batch[name] = self._store(data, "batch_output", "batch_output.jsonl")
        batch["status"] = "expired" if batch["end"] == "expire" else "completed"
        batch["completed_at" if batch["status"] == "completed" else "expired_at"] = int(time.time())
        batch["request_counts"].update(completed=len(output), failed=len(errors))

    def content(self, file_id: str) -> bytes | None:
        stored = self.files.get(file_id)
        return None if stored is None else stored["data"]

    def _store(self, data: bytes, purpose: str, filename: str | None) -> str:
        file_id = f"file-{next(self.ids)}"
        self.files[file_id] = {"data": data, "purpose": purpose, "filename": filename or "upload",
                               "created_at": int(time.time())}
        return file_id

    def _file_object(self, file_id: str) -> dict[str, Any]:
        stored = self.files[file_id]
        return {"id": file_id, "object": "file", "bytes": len(stored["data"]),
                "created_at": stored["created_at"], "filename": stored["filename"],
                "purpose": stored["purpose"], "status": "processed"}

    def _public(self, batch_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[batch_id].items() if k != "end"}

    def requests_of(self, upload: int) -> dict[str, dict[str, Any]]:
        """custom_id → body, for the n-th upload."""
        return {line["custom_id"]: line["body"] for line in self.uploads[upload]}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _json(self, answer: tuple[int, dict[str, Any]]) -> None:
        self._reply(answer[0], json.dumps(answer[1]).encode())

    def do_POST(self) -> None:
        owner: BatchServer = self.server.owner
        raw = self._body()
        with owner.lock:
            if self.path == "/v1/files":
                return self._json(owner.upload(self.headers["Content-Type"], raw))
            if self.path == "/v1/batches":
                return self._json(owner.create(json.loads(raw)))
        self._json(failure(404, f"no route {self.path}"))

    def do_GET(self) -> None:
        owner: BatchServer = self.server.owner
        parts = self.path.strip("/").split("/")
        with owner.lock:
            if parts[:2] == ["v1", "batches"] and len(parts) == 3:
                return self._json(owner.retrieve(parts[2]))
            if parts[:2] == ["v1", "files"] and len(parts) == 4 and parts[3] == "content":
                data = owner.content(parts[2])
                if data is not None:
                    return self._reply(200, data, "application/octet-stream")
        self._json(failure(404, f"no route {self.path}"))


@pytest.fixture(scope="module")
def batch_server() -> BatchServer:
    server = BatchServer()
    yield server
    server.httpd.shutdown()


@pytest.fixture
def api(batch_server: BatchServer, home) -> BatchServer:
    batch_server.reset(lambda body: completion(body, "hi"))
    yield batch_server
    assert batch_server.problems == []


@pytest.fixture
def here(home, capsys, monkeypatch):
    """Run the command in this process (no start-up cost): ``here(*args) -> Result``."""
    from agentcli.cli import app

    for name, value in FAST.items():
        monkeypatch.setenv(name, value)

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = app(list(args), standalone_mode=False)
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return Result(code or 0, captured.out, captured.err)
    return run


def write_tasks(path: Path, *tasks: Any) -> Path:
    path.write_text("".join(json.dumps(task) + "\n" for task in tasks))
    return path


def results(path: Path) -> dict[str, dict[str, Any]]:
    return {str(line["id"]): line for line in map(json.loads, path.read_text().splitlines())}


def batch_args(server: BatchServer, tasks: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", str(tasks), "-o", str(out), "--backend", "openai-batch",
            "--base-url", server.base_url, "-m", "test-model", *extra]


def last_role(body: dict[str, Any]) -> str:
    return body["messages"][-1]["role"]


def calculate_then_say(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """First step: call the calculator on the task's query; then report its result."""
    if last_role(body) == "user":
        return completion(body, calls=[("calculator", {"expression": body["messages"][-1]["content"]})])
    return completion(body, "it is " + body["messages"][-1]["content"])


def test_two_tool_calling_steps_go_out_as_two_jobs(here, api, tmp_path):
    api.reset(calculate_then_say)
    tasks = write_tasks(tmp_path / "in.jsonl", {"id": "a", "query": "6*7"}, {"id": 2, "query": "2+3"},
                        {"id": "c", "query": "9-1", "system": "be exact"})
    out = tmp_path / "out.jsonl"
    result = here(*batch_args(api, tasks, out, "-y"))
    assert result.code == 0, result.stderr
    got = results(out)
    assert all(set(line) == RESULT_KEYS for line in got.values())
    assert {key: line["answer"] for key, line in got.items()} == {
        "a": "it is 42", "2": "it is 5", "c": "it is 8"}
    assert got["2"]["id"] == 2  # the id keeps its JSON type
    assert got["a"]["tool_calls"][0]["name"] == "calculator"
    assert got["a"]["tool_calls"][0]["result"] == "42"
    assert got["a"]["usage"] == {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
    assert len(api.created) == 2 and len(api.uploads) == 2
    first, second = api.requests_of(0), api.requests_of(1)
    assert sorted(first) == ["2#1", "a#1", "c#1"] and sorted(second) == ["2#2", "a#2", "c#2"]
    assert first["c#1"]["messages"][0] == {"role": "system", "content": "be exact"}
    assert first["a#1"]["tools"][0]["function"]["name"]  # the same body the provider sends
    assert [m["role"] for m in second["a#2"]["messages"]] == ["user", "assistant", "tool"]
    assert second["a#2"]["messages"][-1]["content"] == "42"
    submitted = [line for line in result.stderr.splitlines() if "submitted batch_" in line]
    assert len(submitted) == 2 and "(3 requests" in submitted[0]
    assert "batch: 3 ok, 0 failed" in result.stderr
    assert not (tmp_path / "out.jsonl.state").exists()  # a finished run leaves no state
    again = here(*batch_args(api, tasks, out, "-y"))
    assert again.code == 0 and len(api.created) == 2 and "3 skipped" in again.stderr


def test_a_stopped_run_resumes_the_job_in_flight(here, api, tmp_path):
    api.reset(calculate_then_say, plan=["hold"])
    tasks = write_tasks(tmp_path / "in.jsonl", {"id": "a", "query": "6*7"}, {"id": "b", "query": "1+1"})
    out = tmp_path / "out.jsonl"
    state = tmp_path / "out.jsonl.state"
    env = {**os.environ, **FAST}

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen([*AGENTCLI, *batch_args(api, tasks, out, "-y")], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        polls = api.polls
        deadline = time.monotonic() + 15
        while api.polls < polls + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        return proc

    first = start()  # Ctrl-C while polling: the state stays, and the user is told
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=15)
    assert first.returncode == 130
    assert "batch_1 still running at the provider" in stderr and "resumes" in stderr
    assert "0 ok, 0 failed, 2 open" in stderr
    assert json.loads(state.read_text())["jobs"][0]["batch_id"] == "batch_1"
    second = start()  # killed outright while polling the same job
    second.send_signal(signal.SIGKILL)
    second.wait(timeout=15)
    assert api.created == ["batch_1"] and len(api.uploads) == 1
    api.release()
    result = here(*batch_args(api, tasks, out, "-y"))
    assert result.code == 0, result.stderr
    assert api.created == ["batch_1", "batch_2"]  # step 1 was never sent again
    assert "picking up batch_1" in result.stderr
    assert sorted(api.requests_of(1)) == ["a#2", "b#2"]
    assert {key: line["answer"] for key, line in results(out).items()} == {
        "a": "it is 42", "b": "it is 2"}
    assert not state.exists()


def test_requests_an_expired_or_failed_batch_never_ran_go_in_the_next_job(here, api, tmp_path):
    api.reset(calculate_then_say, plan=["expire", "fail"])
    tasks = write_tasks(tmp_path / "in.jsonl", {"id": "a", "query": "6*7"}, {"id": "b", "query": "1+1"})
    out = tmp_path / "out.jsonl"
    result = here(*batch_args(api, tasks, out))  # no --yes: the calls are denied
    assert result.code == 0, result.stderr
    assert sorted(api.requests_of(0)) == ["a#1", "b#1"]
    assert sorted(api.requests_of(1)) == ["a#2", "b#1"]  # b again, with a's next step
    assert sorted(api.requests_of(2)) == ["a#2", "b#1"]  # the failed job, all again
    assert sorted(api.requests_of(3)) == ["b#2"] and len(api.created) == 4
    got = results(out)
    assert [got[key]["tool_calls"][0]["status"] for key in "ab"] == ["denied", "denied"]
    assert got["b"]["status"] == "ok"
    assert "2 call(s) that would ask were denied" in result.stderr


def test_failed_requests_are_retried_a_few_times_then_reported(here, api, tmp_path):
    sent: dict[str, int] = {}

    def flaky(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        query = body["messages"][-1]["content"]
        sent[query] = sent.get(query, 0) + 1
        if query == "never" or (query == "once" and sent[query] == 1):
            return failure(500, "The server had an error while processing your request.")
        if query == "garbled" and sent[query] == 1:
            return 200, {"object": "chat.completion", "choices": "not a list"}
        return completion(body, "fine: " + query)

    api.reset(flaky)
    tasks = write_tasks(tmp_path / "in.jsonl", {"id": "ok", "query": "at once"},
                        {"id": "flaky", "query": "once"}, {"id": "down", "query": "never"},
                        {"id": "garbled", "query": "garbled"})
    out = tmp_path / "out.jsonl"
    result = here(*batch_args(api, tasks, out, "--no-tools"))
    assert result.code == 1
    got = results(out)
    assert got["ok"]["answer"] == "fine: at once" and got["flaky"]["answer"] == "fine: once"
    assert got["garbled"]["answer"] == "fine: garbled"  # a malformed reply is sent again
    assert got["down"]["status"] == "error" and got["down"]["answer"] is None
    assert "after 3 attempts" in got["down"]["error"]
    assert "500: The server had an error" in got["down"]["error"]
    assert sent == {"at once": 1, "once": 2, "never": 3, "garbled": 2}
    assert len(api.created) == 3 and "batch: 3 ok, 1 failed (1 error)" in result.stderr


def test_schema_repair_is_one_more_step(here, api, tmp_path):
    schema = '{"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}'

    def answer(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        said = body["messages"][-1]["content"]
        if said.startswith("Your answer does not match"):
            return completion(body, '{"n": 42}' if "at /n" in said else "still not JSON")
        return completion(body, '{"n": "forty-two"}' if "good" in said else "no JSON here")

    api.reset(answer)
    tasks = write_tasks(tmp_path / "in.jsonl", {"id": "good", "query": "good"},
                        {"id": "bad", "query": "bad"})
    out = tmp_path / "out.jsonl"
    result = here(*batch_args(api, tasks, out, "--no-tools", "--schema", schema))
    assert result.code == 1
    got = results(out)
    assert got["good"]["status"] == "ok" and got["good"]["data"] == {"n": 42}
    assert got["bad"]["status"] == "schema" and "even after one repair turn" in got["bad"]["error"]
    first = api.requests_of(0)["good#1"]
    assert first["response_format"]["type"] == "json_schema"
    assert first["response_format"]["json_schema"]["schema"] == json.loads(schema)
    assert sorted(api.requests_of(1)) == ["bad#2", "good#2"] and len(api.created) == 2


def test_a_rejected_response_format_is_dropped_and_the_answer_still_checked(here, api, tmp_path):
    def strict_server(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if "response_format" in body:
            return failure(400, "Invalid parameter: 'response_format' is not supported")
        return completion(body, '{"n": 7}')

    api.reset(strict_server)
    tasks = write_tasks(tmp_path / "in.jsonl", "seven")
    out = tmp_path / "out.jsonl"
    result = here(*batch_args(api, tasks, out, "--no-tools", "--schema", '{"type": "object"}'))
    assert result.code == 0, result.stderr
    assert results(out)["line-1"]["data"] == {"n": 7}
    assert "response_format" not in api.requests_of(1)["line-1#1"]


def test_a_batch_that_could_not_be_created_is_created_from_the_same_upload(here, api, tmp_path):
    api.refuse_creates = 1
    tasks = write_tasks(tmp_path / "in.jsonl", "hello")
    out = tmp_path / "out.jsonl"
    result = here(*batch_args(api, tasks, out, "--no-tools"))
    assert result.code == 1 and "Traceback" not in result.stderr
    assert "creating the batch at" in result.stderr and "Enqueued token limit" in result.stderr
    assert "the same command resumes the run" in result.stderr and out.read_text() == ""
    result = here(*batch_args(api, tasks, out, "--no-tools"))
    assert result.code == 0, result.stderr
    assert len(api.uploads) == 1 and api.created == ["batch_1"]
    assert results(out)["line-1"]["answer"] == "hi"


def test_two_runs_never_drive_the_same_jobs(here, api, tmp_path):
    from agentcli.batch_state import StateFile

    tasks = write_tasks(tmp_path / "in.jsonl", "hello")
    out = tmp_path / "out.jsonl"
    other = StateFile(tmp_path / "out.jsonl.state")
    other.lock()  # as another process running on the same OUT would
    try:
        result = here(*batch_args(api, tasks, out))
    finally:
        other.unlock(remove=False)
    assert result.code == 2 and "another agentcli batch is running on out.jsonl" in result.stderr
    assert api.uploads == []


def test_the_backend_needs_an_output_file(here, tmp_path):
    tasks = write_tasks(tmp_path / "in.jsonl", "hello")
    result = here("batch", str(tasks), "--backend", "openai-batch", "-m", "m")
    assert result.code == 2 and "needs -o OUT.jsonl" in result.stderr
    result = here("batch", str(tasks), "--backend", "nowhere", "-m", "m")
    assert result.code == 2 and "choose one of local, openai-batch" in result.stderr


def test_a_damaged_state_file_is_a_clear_error_and_loses_nothing(here, api, tmp_path):
    tasks = write_tasks(tmp_path / "in.jsonl", "hello")
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.state").write_text('{"version": 1, "tasks": [')
    result = here(*batch_args(api, tasks, out))
    assert result.code == 2 and "not a batch state file" in result.stderr
    assert "Traceback" not in result.stderr and api.created == []
    assert (tmp_path / "out.jsonl.state").read_text() == '{"version": 1, "tasks": ['


def test_max_steps_applies_to_each_task(here, api, tmp_path):
    api.reset(lambda body: completion(body, calls=[("calculator", {"expression": "1+1"})]))
    tasks = write_tasks(tmp_path / "in.jsonl", {"id": "loop", "query": "go"})
    out = tmp_path / "out.jsonl"
    result = here(*batch_args(api, tasks, out, "-y", "--max-steps", "2"))
    assert result.code == 1
    line = results(out)["loop"]
    assert line["status"] == "max_steps" and "stopped after 2 steps" in line["error"]
    assert [call["status"] for call in line["tool_calls"]] == ["ok", "cancelled"]
    assert len(api.created) == 2


def test_the_responses_api_goes_to_its_own_endpoint(here, api, tmp_path):
    def respond(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body["input"][-1].get("type") == "function_call_output":
            output = [{"type": "message", "role": "assistant", "status": "completed", "id": "m1",
                       "content": [{"type": "output_text", "annotations": [],
                                    "text": "it is " + body["input"][-1]["output"]}]}]
        else:
            output = [{"type": "function_call", "id": "fc1", "call_id": "call_r1",
                       "name": "calculator", "arguments": '{"expression": "6*7"}'}]
        return 200, {"id": "resp_1", "object": "response", "model": body["model"],
                     "status": "completed", "output": output,
                     "usage": {"input_tokens": 4, "output_tokens": 2, "total_tokens": 6}}

    api.reset(respond)
    config = tmp_path / "responses.toml"
    config.write_text('api = "responses"\n')
    tasks = write_tasks(tmp_path / "in.jsonl", "what is 6*7?")
    out = tmp_path / "out.jsonl"
    result = here(*batch_args(api, tasks, out, "-y", "--config", str(config)))
    assert result.code == 0, result.stderr
    assert results(out)["line-1"]["answer"] == "it is 42"
    assert all(line["url"] == "/v1/responses" for upload in api.uploads for line in upload)
    assert api.batches["batch_1"]["endpoint"] == "/v1/responses"
    assert api.requests_of(1)["line-1#2"]["input"][-1] == {
        "type": "function_call_output", "call_id": "call_r1", "output": "42"}


# --- hostile result files and batch objects ------------------------------------------------

def test_a_hostile_output_file_neither_crashes_nor_answers_a_task_twice(here, api, tmp_path):
    def tamper(lines: list[bytes]) -> list[bytes]:
        items = [json.loads(line) for line in lines]
        b_line = next((item for item in items if item["custom_id"] == "b#1"), None)
        if b_line is None:  # a later job: left as it is
            return lines
        wrong = {**b_line, "response": {"status_code": 200, "body": {
            "choices": [{"message": {"content": 42}}]}}}  # content of the wrong kind
        other = {**b_line, "response": {"status_code": 200, "body": {"choices": [
            {"message": {"role": "assistant", "content": "the second answer"},
             "finish_reason": "stop"}]}}}
        return [b"not json at all", b"[" * 100_000 + b"]" * 100_000, b'"a string"',
                b"\xff\xfe binary", b"{}", json.dumps({"custom_id": "zzz#1"}).encode(),
                json.dumps({"custom_id": ["a#1"]}).encode(),
                b'{"custom_id": "a#1", "response": {"status_code": 200, "body": "x' +
                b"y" * 2_000_000 + b'"}}',
                *lines, json.dumps(wrong).encode(), json.dumps(other).encode()]

    api.reset(lambda body: completion(body, "answer " + body["messages"][-1]["content"]))
    api.tamper = tamper
    tasks = write_tasks(tmp_path / "in.jsonl", {"id": "a", "query": "one"},
                        {"id": "b", "query": "two"})
    out = tmp_path / "out.jsonl"
    result = here(*batch_args(api, tasks, out, "--no-tools"))
    assert "Traceback" not in result.stderr
    got = results(out)
    assert len(out.read_text().splitlines()) == 2  # one line a task, whatever the file held
    assert got["b"]["answer"] == "answer two"  # the first line for a custom_id counts
    # a's first line was a 200 without a reply object: it failed, and went out again
    assert got["a"]["answer"] == "answer one" and sorted(api.requests_of(1)) == ["a#1"]


def test_a_batch_with_a_status_the_api_never_sends_stops_with_a_clear_error(here, api, tmp_path):
    api.reset(lambda body: completion(body, "hi"))
    api.odd_status = "paused\x1b[2J"
    tasks = write_tasks(tmp_path / "in.jsonl", "hello")
    out = tmp_path / "out.jsonl"
    started = time.monotonic()
    result = here(*batch_args(api, tasks, out))
    assert time.monotonic() - started < 10
    assert result.code != 0 and "Traceback" not in result.stderr
    assert "paused\\u001b[2J" in result.stderr and "\x1b" not in result.stderr
    assert (tmp_path / "out.jsonl.state").exists()  # the same command resumes it
    api.odd_status = None
    resumed = here(*batch_args(api, tasks, out))
    assert resumed.code == 0, resumed.stderr
    assert [line["answer"] for line in results(out).values()] == ["hi"]


@pytest.mark.parametrize("kind", ["fifo", "zero", "directory", "deep"])
def test_a_state_file_that_cannot_be_one_is_a_clear_error(here, api, tmp_path, kind):
    tasks = write_tasks(tmp_path / "in.jsonl", "hello")
    out = tmp_path / "out.jsonl"
    state = tmp_path / "out.jsonl.state"
    if kind == "fifo":
        os.mkfifo(state)  # reading it would wait for a writer for ever
    elif kind == "zero":
        state.symlink_to("/dev/zero")  # reading it would never end
    elif kind == "directory":
        state.mkdir()
    else:
        state.write_text('{"version": 1, "endpoint": "/v1/chat/completions", "tasks": {"a": '
                         '{"id": "a", "model": "m", "messages": [], "choice": '
                         + "[" * 50_000 + "]" * 50_000 + "}}}")
    result = here(*batch_args(api, tasks, out))
    assert result.code == 2 and "Traceback" not in result.stderr
    assert str(state) in result.stderr and api.created == []
    assert state.exists() or state.is_symlink()  # left in place
