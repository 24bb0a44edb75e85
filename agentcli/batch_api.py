"""Batch runs on the OpenAI Batch API (``agentcli batch --backend openai-batch``).

Every model step of every open task goes out together as one Batch API job:
the requests are written to a JSONL file, uploaded (``/v1/files``), submitted
(``/v1/batches``) and polled; when the job ends its output and error files are
read, the proposed tool calls run here (same approvals and policies as the
local backend), and the tasks that go on make up the next job. Requests that
failed, or that an expired, failed or cancelled job never ran, are sent again
in the next job, a bounded number of times.

Everything needed to go on is kept in ``OUT.jsonl.state`` (written atomically),
so a run that stops, even for days, resumes: the same command picks up the job
in flight by its id instead of submitting it again.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

import openai

from .agent import Agent
from .batch import TaskRunner
from .batch_io import Task
from .batch_state import Job, OpenTask, State, StateFile
from .conversation import Conversation
from .errors import AgentCLIError, UsageError
from .messages import Message, Usage
from .providers import Reply, ResponsesProvider, shapes
from .providers.base import MENTIONS, error_message
from .schema import repair_prompt
from .ui.safe_text import visible

#: How many times one request is sent before its task becomes an error line.
MAX_ATTEMPTS = 3
#: The Batch API takes at most this many requests in one input file.
MAX_REQUESTS = 50_000
#: Seconds between two polls of a job in flight (tests set it much lower).
POLL_ENV = "AGENTCLI_BATCH_POLL_SECONDS"
DEFAULT_POLL = 30.0
ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
#: The statuses of a batch still under way.
RUNNING = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
#: Fields a server may reject in a batch request; dropped and remembered, as in ``run``.
DROPPABLE = ("response_format", "text")


def poll_interval() -> float:
    """``AGENTCLI_BATCH_POLL_SECONDS`` (a positive number), else ``DEFAULT_POLL``."""
    try:
        value = float(os.environ.get(POLL_ENV, ""))
    except ValueError:
        return DEFAULT_POLL
    return value if 0 < value < 86_400 else DEFAULT_POLL


class BatchApiRun:
    """Drives the open tasks through Batch API jobs until every one has a result line.

    Args:
        runner: what the tasks share (provider, tools, approvals, limits, schema).
        states: the state file, already locked.
        finished: called with each result line (written to OUT, counted).
        say: one line on stderr (a submitted job, a retry).
        parallel: tasks whose tool calls run at once between steps.
    """

    def __init__(self, runner: TaskRunner, states: StateFile, *,
                 finished: Callable[[dict[str, Any]], None], say: Callable[[str], None],
                 parallel: int = 4, poll: float = DEFAULT_POLL,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.runner = runner
        self.states = states
        self.finished = finished
        self.say = say
        self.parallel = parallel
        self.poll = poll
        self.sleep = sleep
        provider = runner.provider
        self.endpoint = ("/v1/responses" if isinstance(provider, ResponsesProvider)
                         else "/v1/chat/completions")
        self.client: Any = provider.client.with_options(max_retries=3)
        self.where = provider.where()
        self.state = State(endpoint=self.endpoint)
        self._agents: dict[str, Agent] = {}

    # ---- the run ---------------------------------------------------------------------

    def start(self, tasks: Iterable[Task], done: set[str]) -> int:
        """Load the state, drop what OUT already holds, open the new tasks.

        Returns:
            How many tasks are open (in the state) now.
        """
        loaded = self.states.load()
        if loaded is not None:
            if loaded.endpoint != self.endpoint:
                raise UsageError(f"{self.states.path} holds a run on {loaded.endpoint}, but this "
                                 f"one would use {self.endpoint} (check api in the config)")
            self.state = loaded
            if self.pending():
                self.say(f"batch: picking up {', '.join(self.pending())} (from {self.states.path})")
        self.runner.provider.dropped_fields.update(self.state.dropped)
        for key in [k for k in self.state.tasks if k in done]:
            del self.state.tasks[key]
        for task in tasks:
            if task.key in self.state.tasks or task.key in done:
                continue
            if task.problem is not None:
                self.finished(_line(task.id, "error", error=task.problem))
                continue
            self.state.tasks[task.key] = self._open(task)
        self.states.save(self.state)
        return len(self.state.tasks)

    def _open(self, task: Task) -> OpenTask:
        conv = Conversation()
        conv.set_system(task.system if task.system is not None else self.runner.system)
        conv.add(Message(role="user", content=task.query))
        return OpenTask(id=task.id, model=task.model or self.runner.provider.model,
                        messages=conv.messages, choice=self.runner.tool_choice)

    def run(self) -> None:
        """Submit, poll and carry on until no task is open; the state file goes at the end.

        Raises:
            KeyboardInterrupt: Ctrl-C; the state is saved and the jobs go on at the provider.
            AgentCLIError: the Batch API cannot be used (the state is kept).
        """
        while self.state.tasks or self.state.jobs:
            if not self.state.jobs:
                self._submit_all()
                continue
            self._wait()

    def pending(self) -> list[str]:
        """The ids of jobs in flight at the provider."""
        return [job.batch_id for job in self.state.jobs if job.batch_id]

    # ---- submitting ------------------------------------------------------------------

    def _submit_all(self) -> None:
        """Every open task's next request, one job per model (split at the API's limits)."""
        self.runner.registry.refresh()
        registry = self.runner.registry
        schemas = registry.schemas(strict=self.runner.strict) if len(registry) else []
        filling: dict[str, _Spool] = {}
        ready: list[_Spool] = []
        try:
            for key in list(self.state.tasks):
                line = self._request(key, schemas)
                if line is None:
                    continue
                model = line["body"]["model"]
                spool = filling.get(model)
                if spool is None or spool.full():
                    spool = filling[model] = _Spool(model)
                    ready.append(spool)
                spool.add(line)
            self.states.save(self.state)  # tasks that could not be sent are gone
            for spool in ready:
                self._submit(spool)
        finally:
            for spool in ready:
                spool.file.close()

    def _request(self, key: str, schemas: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The JSONL line of a task's next request (None: it ended with an error line)."""
        task = self.state.tasks[key]
        agent = self._agent(key, task)
        conv = Conversation(messages=task.messages)
        try:
            messages = agent.fit_context(conv, schemas)
        except (AgentCLIError, ValueError) as exc:
            self._finish(key, "error", error=str(exc))
            return None
        provider = agent.provider
        body = provider.build_request(provider.model, messages, schemas,
                                      task.choice if schemas else None, False)
        body.update(body.pop("extra_body", None) or {})
        return {"custom_id": f"{key}#{task.request}", "method": "POST", "url": self.endpoint,
                "body": body}

    def _submit(self, spool: _Spool) -> None:
        spool.file.seek(0)
        uploaded = self._call("uploading the requests", self.client.files.create,
                              file=("agentcli-batch.jsonl", spool.file), purpose="batch")
        job = Job(model=spool.model, endpoint=self.endpoint, input_file_id=uploaded.id,
                  requests=spool.ids)
        self.state.jobs.append(job)
        self.states.save(self.state)
        self._create(job)

    def _create(self, job: Job) -> None:
        created = self._call("creating the batch", self.client.batches.create,
                             input_file_id=job.input_file_id, endpoint=job.endpoint,
                             completion_window="24h",
                             metadata={"created_by": "agentcli batch"})
        job.batch_id = created.id
        self.states.save(self.state)
        self.say(f"batch: submitted {created.id} ({len(job.requests)} request"
                 f"{'s' if len(job.requests) != 1 else ''}, model {job.model})")

    # ---- waiting and reading the results ---------------------------------------------

    def _wait(self) -> None:
        """Poll until a job ends, then carry its tasks on."""
        for job in list(self.state.jobs):
            if job.batch_id is None:  # stopped between upload and create
                self._create(job)
        while True:
            for job in list(self.state.jobs):
                batch = self._call("checking the batch", self.client.batches.retrieve,
                                   job.batch_id)
                if batch.status in ENDED:
                    self._ended(job, batch)
                    return
                if batch.status not in RUNNING:
                    raise AgentCLIError(
                        f"the batch {visible(str(job.batch_id))} has the status "
                        f"'{visible(str(batch.status))[:200]}', which agentcli does not know; "
                        "the batch stopped here, and the same command resumes it")
            self.sleep(self.poll)

    def _ended(self, job: Job, batch: Any) -> None:
        results = self._results(batch)
        missing = _why_missing(batch)
        replies: dict[str, Reply] = {}
        for custom_id in job.requests:
            key, _, number = custom_id.rpartition("#")
            task = self.state.tasks.get(key)
            if task is None or str(task.request) != number:
                continue  # finished already, or an answer to an older request
            outcome = results.get(custom_id, missing)
            if isinstance(outcome, Reply):
                replies[key] = outcome
            else:
                self._failed(key, task, outcome)
        self._carry_on(replies)
        self.state.jobs.remove(job)
        self.states.save(self.state)

    def _results(self, batch: Any) -> dict[str, Reply | str]:
        """custom_id → the reply, or why the request failed."""
        found: dict[str, Reply | str] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for text in self._lines(file_id):
                try:
                    item = json.loads(text)
                except (ValueError, RecursionError):
                    continue
                if isinstance(item, dict) and isinstance(item.get("custom_id"), str):
                    found.setdefault(item["custom_id"], self._outcome(item))
        return found

    def _lines(self, file_id: str) -> Iterator[str]:
        """The lines of a result file, read as they arrive (memory stays flat)."""
        try:
            with self.client.files.with_streaming_response.content(file_id) as response:
                for line in response.iter_lines():
                    if line.strip():
                        yield line
        except openai.APIError as exc:
            raise self._error("downloading the results", exc) from None

    def _outcome(self, item: dict[str, Any]) -> Reply | str:
        response: dict[str, Any] = item["response"] if isinstance(item.get("response"), dict) else {}
        status, body = response.get("status_code"), response.get("body")
        if status == 200 and isinstance(body, dict):
            try:
                return self.runner.provider.read_whole(body, lambda _: None)
            except shapes.Malformed as exc:
                return f"the reply was malformed ({exc})"
        error = item.get("error") if isinstance(item.get("error"), dict) else None
        if error is None and isinstance(body, dict) and isinstance(body.get("error"), dict):
            error = body["error"]
        detail = str((error or {}).get("message") or (error or {}).get("code") or "no reason given")
        return f"{status}: {detail[:300]}" if isinstance(status, int) else detail[:300]

    def _failed(self, key: str, task: OpenTask, why: str) -> None:
        self._drop_rejected(why)
        task.attempts += 1
        if task.attempts >= MAX_ATTEMPTS:
            self._finish(key, "error", error=f"the Batch API did not answer this request after "
                                             f"{task.attempts} attempts (the last: {why})")

    def _drop_rejected(self, why: str) -> None:
        """A 400 naming an optional field: left out from now on (as ``run`` does)."""
        if not why.startswith("400"):
            return
        for name in DROPPABLE:
            mentioned = any(mention in why for mention in MENTIONS.get(name, (name,)))
            if mentioned and name not in self.state.dropped:
                self.state.dropped.append(name)
                self.runner.provider.dropped_fields.add(name)

    def _carry_on(self, replies: dict[str, Reply]) -> None:
        """Each reply moves its task on (running its tool calls); several at once."""
        pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="batch-tools")
        try:
            ended = list(pool.map(lambda item: self._advance(*item), replies.items()))
        finally:  # after Ctrl-C, no task not yet started starts
            pool.shutdown(wait=False, cancel_futures=True)
        for key, line in zip(replies, ended, strict=True):
            if line is not None:
                self._write(key, line)

    # ---- one task's step -------------------------------------------------------------

    def _advance(self, key: str, reply: Reply) -> dict[str, Any] | None:
        """The task after this reply: its result line if it ended, else None."""
        task = self.state.tasks[key]
        agent = self._agent(key, task)
        conv = Conversation(id=f"batch-{key}"[:200], messages=task.messages)
        task.step += 1
        task.usage.add(reply.usage)
        task.answer = reply.content
        task.attempts = 0
        conv.add(Message(role="assistant", content=reply.content, tool_calls=reply.tool_calls))
        try:
            if not reply.tool_calls:
                return self._answered(task, conv)
            limit = self.runner.limits.max_steps
            if task.step >= limit:
                records = agent.tools.refuse(
                    conv, reply.tool_calls, f"not run: the step limit ({limit}) was reached")
                task.tool_calls += [r.as_json() for r in records]
                return self._line(task, "max_steps", error=f"stopped after {limit} steps: the "
                                  "model was still calling tools (raise --max-steps to allow more)")
            records = agent.tools.run(conv, reply.tool_calls)
            task.tool_calls += [r.as_json() for r in records]
            cut = [c for c in reply.tool_calls if c.truncated]
            if cut:
                return self._line(task, "error", error=(
                    f"the reply was cut off by the token limit in the middle of a call to "
                    f"'{cut[0].name}'; that call was not run (raise max_tokens and try again)"))
        except AgentCLIError as exc:
            return self._line(task, "error", error=str(exc))
        except Exception as exc:  # one task's fault never ends the batch
            return self._line(task, "error", error=f"{type(exc).__name__}: {exc}")
        if task.choice not in (None, "none", "auto"):
            task.choice = "auto"
        task.messages = conv.messages
        task.request += 1
        return None

    def _answered(self, task: OpenTask, conv: Conversation) -> dict[str, Any] | None:
        schema = self.runner.schema
        if schema is None:
            return self._line(task, "ok")
        data, errors = schema.problems(task.answer or "")
        if not errors:
            return self._line(task, "ok", data=data)
        if task.repair:
            return self._line(task, "schema", error="the answer does not match --schema, even "
                              "after one repair turn: " + "; ".join(errors))
        conv.add(Message(role="user", content=repair_prompt(errors)))
        task.messages = conv.messages
        task.repair, task.step, task.choice = True, 0, None
        task.request += 1
        return None

    # ---- helpers ---------------------------------------------------------------------

    def _agent(self, key: str, task: OpenTask) -> Agent:
        """One agent per open task while this process runs (its loop guard lives there)."""
        agent = self._agents.get(key)
        if agent is None:
            agent = self._agents[key] = self.runner.agent(task.model)
        return agent

    def _line(self, task: OpenTask, status: str, *, data: Any = None,
              error: str | None = None) -> dict[str, Any]:
        line = _line(task.id, status, answer=task.answer, data=data, error=error,
                     tool_calls=task.tool_calls, usage=asdict(task.usage))
        line["duration_ms"] = max(0, round((time.time() - task.started) * 1000))
        return line

    def _finish(self, key: str, status: str, *, error: str) -> None:
        self._write(key, self._line(self.state.tasks[key], status, error=error))

    def _write(self, key: str, line: dict[str, Any]) -> None:
        """The line goes to OUT before the task leaves the state: a crash in between
        only means the task is skipped as done when the run resumes."""
        self.finished(line)
        self.state.tasks.pop(key, None)
        self._agents.pop(key, None)

    def _call(self, doing: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """An SDK call; its failure is one readable error that says the run can resume."""
        try:
            return method(*args, **kwargs)
        except openai.APIError as exc:
            raise self._error(doing, exc) from None

    def _error(self, doing: str, exc: openai.APIError) -> AgentCLIError:
        hint, detail = "", error_message(exc)
        if isinstance(exc, openai.APIStatusError):
            detail = f"{exc.status_code}: {detail}"
            if exc.status_code in (404, 405):
                hint = " (is it a server with the Batch API? else use --backend local)"
        detail = self.runner.provider.scrub(detail)[:300]
        return AgentCLIError(f"{doing} at {self.where} failed ({detail}){hint}; the state is "
                             "kept, and the same command resumes the run")


def _line(task_id: Any, status: str, *, answer: str | None = None, data: Any = None,
          error: str | None = None, tool_calls: list[dict[str, Any]] | None = None,
          usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """A result line with exactly the local backend's fields."""
    return {"id": task_id, "status": status, "answer": answer, "data": data, "error": error,
            "tool_calls": tool_calls or [], "usage": usage or asdict(Usage()),
            "duration_ms": 0}


class _Spool:
    """The request lines of one job, written to a temporary file as they are made."""

    #: The Batch API's limits for one input file (its size with some room to spare).
    MAX_BYTES = 190_000_000

    def __init__(self, model: str) -> None:
        self.model = model
        self.file = tempfile.TemporaryFile("w+b")  # noqa: SIM115  (closed by _submit_all)
        self.ids: list[str] = []
        self.size = 0

    def add(self, line: dict[str, Any]) -> None:
        data = json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n"
        self.file.write(data)
        self.ids.append(line["custom_id"])
        self.size += len(data)

    def full(self) -> bool:
        return len(self.ids) >= MAX_REQUESTS or self.size >= self.MAX_BYTES


def _why_missing(batch: Any) -> str:
    """Why a request of an ended job has no line in either file."""
    if batch.status == "expired":
        return "the batch expired (24 h) before this request ran"
    if batch.status == "cancelled":
        return "the batch was cancelled before this request ran"
    if batch.status == "failed":
        errors = getattr(getattr(batch, "errors", None), "data", None) or []
        detail = "; ".join(str(e.message or e.code) for e in errors[:3]) or "no reason given"
        return f"the batch failed ({detail[:300]})"
    return "the batch returned no result for this request"
