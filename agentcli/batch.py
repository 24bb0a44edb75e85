"""Running many tasks in one process: workers, one client, one shared backoff.

Every task gets its own conversation and agent loop; all of them share the
provider's HTTP client, the tool registry, the audit log and a ``BackoffGate``:
when one worker is told to wait (a 429, a server error), every worker waits
before its next request, so a rate limit slows the whole batch together.
"""

from __future__ import annotations

import copy
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from .agent import Agent, Limits
from .audit import AuditLog
from .batch_io import Task
from .config import ToolSettings
from .conversation import Conversation
from .errors import AgentCLIError, MaxStepsReached, SchemaMismatch
from .events import ApprovalRequest, Decision, TurnResult
from .policy import Rules
from .providers import Provider
from .schema import AnswerSchema, request_format
from .schema import answer as schema_answer
from .tools.registry import ToolRegistry


class BackoffGate:
    """One wait shared by every worker: ``sleep`` extends it, ``wait`` honours it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock, self._sleep = clock, sleep
        self._until = 0.0
        self._lock = threading.Lock()

    def hold(self, seconds: float) -> None:
        """No worker sends a request for ``seconds`` from now (or longer, if already held)."""
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)

    def wait(self) -> None:
        """Block until the gate is open."""
        while True:
            with self._lock:
                left = self._until - self._clock()
            if left <= 0:
                return
            self._sleep(left)

    def sleep(self, seconds: float) -> None:
        """The provider's retry wait, shared: hold the gate, then wait with everyone."""
        self.hold(seconds)
        self.wait()


def gated(provider: Provider, gate: BackoffGate) -> Provider:
    """``provider`` with every request passing the gate and every retry wait holding it."""
    create = type(provider).create

    def gated_create(request: dict[str, Any]) -> Any:
        gate.wait()
        return create(provider, request)
    provider.sleep = gate.sleep
    provider.create = gated_create  # type: ignore[method-assign]
    return provider


class DenyAsking:
    """Calls that would ask are denied (no one is there); they are counted for the summary."""

    def __init__(self) -> None:
        self.denied = 0

    def __call__(self, request: ApprovalRequest) -> Decision:
        self.denied += 1
        return Decision(False, unattended=True)


@dataclass
class TaskRunner:
    """Runs one task to a result line, with everything the tasks share."""

    provider: Provider
    registry: ToolRegistry
    approve: Any
    limits: Limits
    tool_settings: ToolSettings
    audit: AuditLog | None = None
    strict: bool = False
    system: str | None = None
    schema: AnswerSchema | None = None
    tool_choice: Any = None
    rules: Rules | None = None

    def __post_init__(self) -> None:
        if self.schema is not None:
            self.provider.answer_format = request_format(self.schema)

    def agent(self, model: str | None) -> Agent:
        provider = copy.copy(self.provider)
        provider.model = model or self.provider.model
        return Agent(provider, self.registry, approve=self.approve, limits=self.limits,
                     stream=False, tool_settings=self.tool_settings, audit=self.audit,
                     strict=self.strict, rules=self.rules)

    def __call__(self, task: Task) -> dict[str, Any]:
        started = time.monotonic()
        if task.problem is not None:
            line = result_line(task, "error", error=task.problem)
        else:
            line = self._run(task)
        line["duration_ms"] = round((time.monotonic() - started) * 1000)
        return line

    def _run(self, task: Task) -> dict[str, Any]:
        agent = self.agent(task.model)
        conv = Conversation(model=agent.provider.model)
        conv.set_system(task.system if task.system is not None else self.system)
        try:
            if self.schema is None:
                turn = agent.run_turn(conv, task.query, tool_choice=self.tool_choice)
                return result_line(task, "ok", turn)
            turn, data = schema_answer(agent, conv, task.query, self.schema,
                                       tool_choice=self.tool_choice)
            return result_line(task, "ok", turn, data=data)
        except MaxStepsReached as exc:
            return result_line(task, "max_steps", exc.result, error=str(exc))
        except SchemaMismatch as exc:
            return result_line(task, "schema", exc.result, error=str(exc))
        except AgentCLIError as exc:
            return result_line(task, "error", error=str(exc))
        except Exception as exc:  # one task's fault never ends the batch
            return result_line(task, "error", error=f"{type(exc).__name__}: {exc}")


def result_line(task: Task, status: str, turn: TurnResult | None = None, *, data: Any = None,
                error: str | None = None) -> dict[str, Any]:
    """A result in the SPEC's shape (``duration_ms`` is added by the runner)."""
    turn = turn or TurnResult()
    return {"id": task.id, "status": status, "answer": turn.answer if turn.steps else None,
            "data": data, "error": error, "tool_calls": [r.as_json() for r in turn.tool_calls],
            "usage": asdict(turn.usage)}


@dataclass
class Tally:
    """What the batch has done so far (updated from every worker)."""

    total: int = 0
    done: int = 0
    failed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, line: dict[str, Any]) -> None:
        with self.lock:
            self.done += 1
            self.failed += line["status"] != "ok"
            self.by_status[line["status"]] = self.by_status.get(line["status"], 0) + 1

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def rate(self) -> float:
        """Tasks finished per second so far."""
        elapsed = self.elapsed()
        return self.done / elapsed if elapsed > 0 else 0.0


_STOP = object()


def run_all(tasks: Iterable[Task], work: Callable[[Task], dict[str, Any]],
            finished: Callable[[dict[str, Any]], None], parallel: int) -> None:
    """Run ``work`` on every task with ``parallel`` worker threads; ``finished`` gets
    each result as soon as it is ready. Ctrl-C (KeyboardInterrupt) stops feeding
    tasks and is raised at once; tasks still running are abandoned, unwritten."""
    inbox: queue.Queue[Any] = queue.Queue(maxsize=parallel)
    failures: list[Exception] = []
    workers = [threading.Thread(target=_worker, args=(inbox, work, finished, failures),
                                daemon=True, name=f"batch-{n}") for n in range(parallel)]
    for worker in workers:
        worker.start()
    for task in tasks:
        inbox.put(task)
    for _ in workers:
        inbox.put(_STOP)
    for worker in workers:
        while worker.is_alive():
            worker.join(0.2)
    if failures:
        raise failures[0]


def _worker(inbox: queue.Queue[Any], work: Callable[[Task], dict[str, Any]],
            finished: Callable[[dict[str, Any]], None], failures: list[Exception]) -> None:
    """Run tasks until told to stop; once a result could not be kept (OUT cannot be
    written), the remaining tasks are only drained, not run."""
    while (task := inbox.get()) is not _STOP:
        if failures:
            continue
        try:
            finished(work(task))
        except Exception as exc:
            failures.append(exc)
