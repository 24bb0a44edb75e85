"""Hooks around tool calls: commands from ``[[hooks.pre_tool]]`` /
``[[hooks.post_tool]]`` and ``@hook(...)`` functions in plugin files.

A pre_tool hook sees ``{"tool", "arguments", "session", "cwd"}`` before the
call is approved; it may let it go on (exit 0, or return None), change the
arguments (``{"arguments": {...}}``) or deny it (exit 2 with the reason on
stderr; ``{"deny": "reason"}`` from Python). A post_tool hook also sees
``"status"`` and ``"result"`` and may replace the result (``{"result": ...}``).
A hook that fails, hangs past its time-out or answers with garbage raises
``HookFailed``: the call gets an error result. A hook never approves a call.
"""

from __future__ import annotations

import fnmatch
import json
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Event = Literal["pre_tool", "post_tool"]
EVENTS: tuple[Event, ...] = ("pre_tool", "post_tool")
DEFAULT_TIMEOUT = 10.0
MAX_REASON = 500


class HookFailed(Exception):
    """The hook did not give a usable answer; the message says why."""


@dataclass
class Answer:
    """What a hook said: deny (with a reason), new arguments, or a new result."""

    deny: str | None = None
    arguments: dict[str, Any] | None = None
    result: Any = None
    has_result: bool = False


@dataclass
class Hook:
    """One hook: a command (argv) or a Python function, for tools matching ``match``."""

    event: Event
    name: str
    source: str
    match: str = "*"
    command: list[str] = field(default_factory=list)
    func: Callable[[dict[str, Any]], Any] | None = None
    timeout: float = DEFAULT_TIMEOUT

    def applies(self, tool: str) -> bool:
        return fnmatch.fnmatchcase(tool, self.match)

    def run(self, payload: dict[str, Any]) -> Answer:
        """Call the hook with ``payload``; raises HookFailed."""
        if self.func is not None:
            return _python(self, payload)
        return _command(self, payload)


def hook(event: Event, *, match: str = "*", timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Make a plugin function a hook: ``@hook("pre_tool", match="http_*")``.

    The function gets the call as a dict and returns None (go on), or a dict:
    ``{"arguments": {...}}`` or ``{"deny": "reason"}`` before a call,
    ``{"result": ...}`` after it.
    """
    if event not in EVENTS:
        raise ValueError(f"@hook: the event must be 'pre_tool' or 'post_tool', not {event!r}")

    def wrap(func: Callable[[dict[str, Any]], Any]) -> Hook:
        return Hook(event, getattr(func, "__name__", "hook"), "plugin", match=match, func=func,
                    timeout=timeout)
    return wrap


def _command(hook: Hook, payload: dict[str, Any]) -> Answer:
    try:
        done = subprocess.run(hook.command, input=json.dumps(payload, ensure_ascii=False),
                              capture_output=True, text=True, errors="replace",
                              timeout=hook.timeout, check=False)
    except subprocess.TimeoutExpired:
        raise HookFailed(f"did not finish within {hook.timeout:g} s") from None
    except (OSError, ValueError) as exc:
        raise HookFailed(f"cannot be run ({exc})") from None
    reason = " ".join(done.stderr.split())[:MAX_REASON]
    if done.returncode == 2:
        return Answer(deny=reason or f"denied by the hook {hook.name}")
    if done.returncode != 0:
        raise HookFailed(f"exited with status {done.returncode}" + (f": {reason}" if reason else ""))
    if not done.stdout.strip():
        return Answer()
    try:
        value = json.loads(done.stdout)
    except (ValueError, RecursionError):
        raise HookFailed("printed something that is not JSON") from None
    return _answer(value)


def _python(hook: Hook, payload: dict[str, Any]) -> Answer:
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(("ok", hook.func(payload)))  # type: ignore[misc]
        except BaseException as exc:  # a hook must not stop the program
            box.append(("error", exc))
    thread = threading.Thread(target=target, name=f"hook-{hook.name}", daemon=True)
    thread.start()
    thread.join(hook.timeout)
    if not box:
        raise HookFailed(f"did not finish within {hook.timeout:g} s")
    kind, value = box[0]
    if kind == "error":
        raise HookFailed(f"raised {type(value).__name__}: {str(value)[:MAX_REASON]}")
    if value is None:
        return Answer()
    return _answer(value)


def _answer(value: Any) -> Answer:
    """Check what a hook answered: a JSON object with known keys of the right types."""
    if not isinstance(value, dict):
        raise HookFailed("answered with something that is not a JSON object")
    unknown = sorted(set(value) - {"arguments", "result", "deny"})
    if unknown:
        raise HookFailed(f"answered with an unknown key {unknown[0]!r}")
    arguments, deny = value.get("arguments"), value.get("deny")
    if arguments is not None and not isinstance(arguments, dict):
        raise HookFailed("answered with arguments that are not a JSON object")
    if deny is not None and not isinstance(deny, str):
        raise HookFailed("answered with a deny reason that is not text")
    return Answer(deny=deny, arguments=arguments, result=value.get("result"),
                  has_result="result" in value)


def from_config(settings: Any, origin: str = "config") -> list[Hook]:
    """The ``[[hooks.pre_tool]]`` and ``[[hooks.post_tool]]`` commands of the settings."""
    hooks = []
    for event in EVENTS:
        for spec in getattr(settings, event):
            hooks.append(Hook(event, " ".join(spec.command), origin, match=spec.match,
                              command=list(spec.command), timeout=spec.timeout))
    return hooks


def result_text(value: Any) -> str:
    """A replacement result as the model reads it: text as is, anything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        raise HookFailed("answered with a result that cannot be shown as JSON") from None
