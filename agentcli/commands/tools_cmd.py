"""``agentcli tools list|show|call|check|stats``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import audit, paths
from ..conversation import Conversation
from ..errors import ToolNotFound, UsageError
from ..executor import Limits, ToolExecutor
from ..messages import ToolCall
from ..policy import Rules
from ..tools.base import Tool
from ..tools.builtins import builtin_tools
from ..tools.http import http_tools
from ..tools.loader import LoadReport, load_dir, plugin_files
from ..tools.registry import ToolRegistry
from ..ui.render import for_output, plugin_output, stats_text
from ..ui.safe_text import visible
from .common import (
    CommonOptions,
    audit_log,
    build_registry,
    choose_approver,
    load_rules,
    load_settings,
    reported,
    stderr,
    stdin_is_terminal,
    tool_dirs,
)

if TYPE_CHECKING:
    from rich.console import Console


def _registry(opts: CommonOptions, console: Console) -> tuple[Any, ToolRegistry]:
    settings = load_settings(opts, console).settings
    return settings, build_registry(settings, opts, console)


def _rules(opts: CommonOptions, console: Console) -> Rules:
    return load_rules(opts, load_settings(opts, console))


def _named(registry: ToolRegistry, name: str) -> Tool:
    """The tool the user named; an unknown name is a usage error (exit 2)."""
    try:
        return registry.get(name)
    except ToolNotFound as exc:
        raise UsageError(str(exc)) from None


def summary(tool: Tool) -> str:
    return visible(tool.description.split("\n")[0]) if tool.description else ""


def list_tools(opts: CommonOptions, as_json: bool) -> int:
    console = stderr(opts)
    with reported(verbose=opts.verbose) as code:
        _, registry = _registry(opts, console)
        rows = [{"name": t.name, "source": t.source, "policy": registry.policy(t.name),
                 "description": summary(t)} for t in registry.all()]
        if as_json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
        else:
            width = max((len(r["name"]) for r in rows), default=4)
            for r in rows:
                print(f"{r['name']:<{width}}  {r['policy']:<4}  {r['description']}  [{visible(r['source'])}]")
            for h in registry.hooks:
                print(f"hook {h.event} {visible(h.match)}: {visible(h.name)}  [{visible(h.source)}]")
    return code[0]


def estimate_tokens(text: str) -> int:
    """A rough token count: about four characters per token for JSON and English."""
    return max(1, round(len(text) / 4))


def show_tool(opts: CommonOptions, name: str) -> int:
    console = stderr(opts)
    with reported(verbose=opts.verbose) as code:
        settings, registry = _registry(opts, console)
        schema = _named(registry, name).schema(strict=settings.tools.strict)
        wire = json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
        print(json.dumps(schema, ensure_ascii=False, indent=2))
        console.print(f"{len(wire):,} characters, about {estimate_tokens(wire):,} tokens "
                      "(estimated at 4 characters per token)")
    return code[0]


def parse_call_arguments(tool: Tool, items: list[str]) -> dict[str, Any]:
    """One JSON object, or ``key=value`` pairs (values parsed as JSON unless the
    parameter is a string)."""
    if len(items) == 1 and items[0].lstrip().startswith("{"):
        try:
            value = json.loads(items[0])
        except ValueError as exc:
            raise UsageError(f"the arguments are not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise UsageError("the arguments must be a JSON object")
        return value
    props = tool.parameters.get("properties", {})
    arguments: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value or one JSON object, got {item!r}")
        if props.get(key, {}).get("type") == "string":
            arguments[key] = raw
            continue
        try:
            arguments[key] = json.loads(raw)
        except ValueError:
            arguments[key] = raw
    return arguments


def call_tool(opts: CommonOptions, name: str, items: list[str]) -> int:
    console = stderr(opts)
    with reported(verbose=opts.verbose) as code:
        settings, registry = _registry(opts, console)
        tool = _named(registry, name)
        arguments = parse_call_arguments(tool, items)
        approve = choose_approver(yes=opts.yes and opts.policy is None, can_ask=stdin_is_terminal())
        t = settings.tools
        executor = ToolExecutor(registry, approve=approve, tool_settings=t,
                                rules=_rules(opts, console),
                                limits=Limits(max_parallel=1, tool_timeout=t.timeout,
                                              max_output=t.max_output),
                                audit=audit_log([k for k in [settings.api_key()] if k]))
        call = ToolCall(id="call_manual", name=name, arguments=json.dumps(arguments))
        out = {"ok": sys.stdout, "error": sys.stderr}
        terminal = {status: stream.isatty() for status, stream in out.items()}
        record = executor.run(Conversation(), [call])[0]
        if record.output.strip():
            console.print(plugin_output(record))
        status = "ok" if record.status == "ok" else "error"
        out[status].write(for_output(record.result, terminal=terminal[status]) + "\n")
        code[0] = 0 if record.status == "ok" else 1
    return code[0]


def check_tools(opts: CommonOptions, directory: Path | None) -> int:
    console = stderr(opts)
    with reported(verbose=opts.verbose) as code:
        if directory is not None and not directory.is_dir():
            raise UsageError(f"{directory}: not a directory")
        loaded = load_settings(opts, console)
        settings = loaded.settings
        rules = load_rules(opts, loaded)
        if directory is not None:
            dirs = [directory]
        elif opts.no_tools:
            dirs = []
        else:
            dirs = tool_dirs(settings, opts, console)
        report = LoadReport()
        files = 0
        for d in dirs:
            files += len(plugin_files(d))
            load_dir(d, report, timeout=settings.tools.timeout)
        registry = _with_builtins(settings)
        registry.extend(report.tools)
        problems = [str(p) for p in report.errors] + registry.skipped
        for problem in problems:
            print(visible(problem))
        for warning in [w for w in registry.warnings if w not in registry.skipped]:
            print(f"warning: {visible(warning)}")
        console.print(f"{files} plugin file(s), {len(report.tools) - len(registry.skipped)} "
                      f"tool(s), {len(problems)} problem(s), {len(rules.rules)} rule(s)")
        code[0] = 1 if problems else 0
    return code[0]


def _with_builtins(settings: Any) -> ToolRegistry:
    """A registry holding only the built-in tools, so plugins that take their names show."""
    registry = ToolRegistry()
    registry.extend(builtin_tools())
    registry.extend(http_tools(settings.http))
    return registry


def tool_stats(as_json: bool) -> int:
    rows = audit.stats(audit.read(paths.audit_log()))
    if as_json:
        print(json.dumps([r.as_json() for r in rows], ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(f"no tool calls recorded yet ({paths.audit_log()})")
        return 0
    print(stats_text(rows))
    return 0
