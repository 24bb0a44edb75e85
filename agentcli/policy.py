"""Policy rules on tool calls and the loop guard.

A rule (``[[tools.rules]]``) names a tool glob, globs over argument values
(dotted paths reach into nested objects) and an action: ``auto`` (or
``allow``), ``ask`` or ``deny``. Among the rules that match a call, a
``deny`` decides; otherwise the first match does. Rules come from the config
files and from ``--policy FILE``; a policy file also makes every call that no
rule allows a denial.

The loop guard counts identical calls (same tool, same arguments compared as
canonical JSON) in one turn and stops a call proposed too often.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

ACTIONS = {"auto": "auto", "allow": "auto", "ask": "ask", "deny": "deny"}
RULE_KEYS = {"tool", "args", "action"}
_RULE_TABLE = re.compile(r"^\s*\[\[\s*(?:tools\s*\.\s*rules|\"tools\"\s*\.\s*\"rules\")\s*\]\]")
MAX_PATH = 32
"""Most parts in one dotted argument path."""


@dataclass(frozen=True)
class Rule:
    """One rule; ``origin`` says where it was written (``file:line``)."""

    tool: str
    args: tuple[tuple[str, str], ...]
    action: str
    origin: str

    def matches(self, name: str, arguments: dict[str, Any]) -> bool:
        if not fnmatch.fnmatchcase(name, self.tool):
            return False
        return all(_value_matches(lookup(arguments, path), glob) for path, glob in self.args)


@dataclass
class Verdict:
    """What the rules say about one call; ``rule`` is None when none matched."""

    action: str | None
    rule: Rule | None = None


@dataclass
class Rules:
    """The rules in force; ``strict``: a call no rule allows is denied (``--policy``)."""

    rules: list[Rule] = field(default_factory=list)
    strict: bool = False

    def judge(self, name: str, arguments: dict[str, Any]) -> Verdict:
        matching = [r for r in self.rules if r.matches(name, arguments)]
        deny = next((r for r in matching if r.action == "deny"), None)
        if deny is not None:
            return Verdict("deny", deny)
        if matching:
            return Verdict(matching[0].action, matching[0])
        return Verdict("deny" if self.strict else None)


_MISSING = object()


def lookup(arguments: Any, path: str) -> Any:
    """The value at a dotted path (``headers.Accept``, ``items.0``), or a marker if absent."""
    value = arguments
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _value_matches(value: Any, glob: str) -> bool:
    """Strings are matched as they are; other values as their JSON text."""
    if value is _MISSING:
        return False
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                           ensure_ascii=False)
    return fnmatch.fnmatchcase(text, glob)


# --- reading rules -----------------------------------------------------------------------

def rule_lines(text: str) -> list[int]:
    """The line number of each ``[[tools.rules]]`` header, in order."""
    return [n for n, line in enumerate(text.splitlines(), 1) if _RULE_TABLE.match(line)]


def parse_rules(raw: Any, origin: str, text: str = "") -> list[Rule]:
    """Check ``tools.rules`` from a file; a bad rule is a ConfigError naming file and line."""
    if not isinstance(raw, list):
        raise ConfigError(f"{origin}: tools.rules must be a list of tables ([[tools.rules]])")
    lines = rule_lines(text)
    rules = []
    for index, item in enumerate(raw):
        where = f"{origin}:{lines[index]}" if index < len(lines) else f"{origin} (rule {index + 1})"
        rules.append(_rule(item, where))
    return rules


def _rule(item: Any, where: str) -> Rule:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: a rule must be a table with tool, args and action")
    unknown = sorted(set(item) - RULE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' in a rule "
                          "(a rule has tool, args and action)")
    tool, action = item.get("tool", "*"), item.get("action")
    if not isinstance(tool, str) or not tool:
        raise ConfigError(f"{where}: 'tool' must be a glob over tool names, such as \"http_*\"")
    if action not in ACTIONS:
        raise ConfigError(f"{where}: 'action' must be auto, ask or deny (got {action!r})")
    args = _flatten(item.get("args", {}), "", where)
    return Rule(tool, tuple(args), ACTIONS[action], where)


def _flatten(args: Any, prefix: str, where: str) -> list[tuple[str, str]]:
    """``{headers = {Accept = "x"}}`` and ``{"headers.Accept" = "x"}`` alike."""
    if not isinstance(args, dict):
        raise ConfigError(f"{where}: 'args' must be a table of argument globs, "
                          'such as args = { url = "https://api.github.com/*" }')
    pairs: list[tuple[str, str]] = []
    for key, glob in args.items():
        path = f"{prefix}{key}"
        if not key or path.count(".") >= MAX_PATH:
            raise ConfigError(f"{where}: the argument path {path!r} is empty or too long")
        if isinstance(glob, dict):
            pairs += _flatten(glob, path + ".", where)
        elif isinstance(glob, str):
            pairs.append((path, glob))
        else:
            raise ConfigError(f"{where}: args.{path} must be a glob in quotes "
                              f"(got {type(glob).__name__})")
    return pairs


def read_policy(path: Path) -> list[Rule]:
    """The rules of a policy file (``[[tools.rules]]`` tables and nothing else)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: policy file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the policy file ({exc})") from None
    tools = data.get("tools", {})
    unknown = sorted(set(data) - {"tools"}) or sorted(set(tools) - {"rules"})
    if unknown:
        raise ConfigError(f"{path}: unknown key '{unknown[0]}' (a policy file holds "
                          "[[tools.rules]] tables only)")
    return parse_rules(tools.get("rules", []), str(path), text)


def config_rules(files: list[str]) -> list[Rule]:
    """Rules from the config files, each with its file and line (the most local file's
    list replaces the others', as lists in config do)."""
    rules: list[Rule] = []
    for name in files:
        try:
            text = Path(name).read_text(encoding="utf-8")
            raw = tomllib.loads(text).get("tools", {}).get("rules")
        except (OSError, ValueError) as exc:  # changed since the config was read
            raise ConfigError(f"{name}: cannot read the rules again ({exc})") from None
        if raw is not None:
            rules = parse_rules(raw, name, text)
    return rules


# --- the loop guard ----------------------------------------------------------------------

def canonical(name: str, arguments: Any) -> str:
    """One string per distinct call: the name and the arguments as sorted, compact JSON."""
    return name + "\0" + json.dumps(arguments, sort_keys=True, separators=(",", ":"),
                                    ensure_ascii=False, default=str)


class LoopGuard:
    """Counts identical calls in one turn; ``over`` is True past ``limit``.

    It counts from the first ``new_turn()`` on (the agent loop starts each turn
    with one); a bare executor running calls one by one has no turns to count.
    """

    def __init__(self, limit: int = 3) -> None:
        self.limit = limit
        self.seen: Counter[str] = Counter()
        self.active = False

    def new_turn(self) -> None:
        self.seen.clear()
        self.active = True

    def over(self, name: str, arguments: Any) -> bool:
        if not self.active:
            return False
        key = canonical(name, arguments)
        self.seen[key] += 1
        return self.seen[key] > self.limit

    def reason(self, name: str) -> str:
        times = "once" if self.limit == 1 else f"{self.limit} times"
        return (f"denied: this exact call to {name} was already proposed {times} in this turn "
                "(tools.repeat_limit), so it was not run again; use the results you have, or "
                "change the arguments or the approach")
