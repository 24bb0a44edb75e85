"""What every command needs: options, settings, tools and a provider."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import paths, trust
from ..config import DEFAULT_CONTEXT, Loaded, Settings, load, untrusted_local_config
from ..errors import AgentCLIError, ConfigError
from ..policy import Rules, config_rules, read_policy
from ..ui.console import stderr_console
from ..ui.safe_text import visible

if TYPE_CHECKING:  # the SDK, the agent loop and the tools load when a command builds them
    from rich.console import Console

    from ..agent import Agent
    from ..audit import AuditLog
    from ..events import ApprovalRequest, Approver, Decision, Event
    from ..mcp.manager import McpManager
    from ..tools.loader import LoadReport
    from ..tools.registry import ToolRegistry


@dataclass
class CommonOptions:
    model: str | None = None
    base_url: str | None = None
    profile: str | None = None
    config: Path | None = None
    tools_dirs: list[Path] = field(default_factory=list)
    no_tools: bool = False
    yes: bool = False
    tool_choice: str | None = None
    max_steps: int | None = None
    system: str | None = None
    verbose: bool = False
    quiet: bool = False
    policy: Path | None = None

    def flags(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": self.base_url, "max_steps": self.max_steps,
                "system": self.system}


@contextmanager
def reported(*, verbose: bool,
             on_error: Callable[[AgentCLIError], None] | None = None) -> Iterator[list[int]]:
    """Turn an AgentCLIError into one line on stderr; yields a cell for the exit code.

    ``on_error`` is then called with the error (``run --json`` prints it on stdout).
    The console is made only for an error (on a terminal it is rich's).
    """
    code = [0]
    try:
        yield code
    except AgentCLIError as exc:
        console = stderr_console()
        if verbose:
            console.print(visible(traceback.format_exc(), keep_newlines=True))
        console.print(f"agentcli: error: {visible(str(exc))}")
        code[0] = exc.exit_code
        if on_error is not None:
            on_error(exc)


def load_settings(opts: CommonOptions, console: Console, *, cwd: Path | None = None) -> Loaded:
    cwd = cwd or Path.cwd()
    trusted = trust.is_trusted(cwd)
    if not trusted:
        local = untrusted_local_config(cwd)
        if local is not None and trust.first_notice(cwd, "config"):
            console.print(f"agentcli: ignoring {local}: this directory is not trusted "
                          "(run 'agentcli trust' to use it; this is said once)")
    return load(config_file=opts.config, profile=opts.profile, flags=opts.flags(), cwd=cwd,
                trusted=trusted)


def tool_dirs(settings: Settings, opts: CommonOptions, console: Console,
              cwd: Path | None = None) -> list[Path]:
    """Tools directories from least to most local: user, ./tools.d (trusted), config, flags.

    An untrusted ./tools.d is mentioned once (ever), and not at all when it is
    named explicitly (in ``tools.dirs`` or with ``--tools-dir``).
    """
    cwd = cwd or Path.cwd()
    named = [Path(d).expanduser() for d in settings.tools.dirs] + list(opts.tools_dirs)
    dirs = [paths.config_dir() / "tools.d"]
    local = cwd / "tools.d"
    if local.is_dir():
        if trust.is_trusted(cwd):
            dirs.append(local)
        elif not _named(local, named) and trust.first_notice(cwd, "tools.d"):
            console.print(f"agentcli: not loading the plugins in {local}: this directory is "
                          "not trusted (run 'agentcli trust' or pass --tools-dir tools.d to "
                          "load them; this is said once)")
    return dirs + named


def _named(directory: Path, named: list[Path]) -> bool:
    """Whether ``directory`` is one of ``named`` (compared as resolved paths)."""
    target = directory.resolve()
    return any(d.resolve() == target for d in named)


def build_registry(settings: Settings, opts: CommonOptions, console: Console,
                   report: LoadReport | None = None, *, with_mcp: bool = True,
                   mcp: McpManager | None = None) -> ToolRegistry:
    """Built-ins plus every plugin (and, ``with_mcp``, the configured MCP servers' tools);
    problems are reported on stderr and skipped.

    ``mcp``: servers that ``start_mcp`` started without waiting; their tools are
    added at the registry's first refresh, once they are up (chat's prompt
    does not wait for them).
    """
    from ..hooks import from_config as hooks_from_config
    from ..tools.builtins import builtin_tools
    from ..tools.http import http_tools
    from ..tools.loader import LoadReport, load_dir
    from ..tools.registry import ToolRegistry

    registry = ToolRegistry(settings.tools.policy)
    if opts.no_tools:
        return registry
    registry.extend(builtin_tools())
    registry.extend(http_tools(settings.http, secrets=[k for k in [settings.api_key()] if k]))
    report = report or LoadReport()
    for directory in tool_dirs(settings, opts, console):
        load_dir(directory, report, timeout=settings.tools.timeout)
    registry.extend(report.tools)
    registry.hooks = hooks_from_config(settings.hooks) + report.hooks
    if mcp is not None:
        add_started_mcp(registry, mcp, console)
    elif with_mcp:
        add_mcp_tools(settings, registry, console, verbose=opts.verbose)
    for line in [str(e) for e in report.errors] + report.output + registry.warnings:
        console.print(f"agentcli: {visible(line)}")
    return registry


def start_mcp(settings: Settings, opts: CommonOptions, console: Console) -> McpManager | None:
    """Start the MCP servers to use without waiting for them (None when there are
    none, or under ``--no-tools``); ``build_registry(..., mcp=manager)`` adds their tools."""
    if opts.no_tools:
        return None
    servers = _enabled_mcp(settings, console, verbose=opts.verbose)
    if not servers:
        return None
    from ..mcp.lifecycle import start_servers

    return start_servers(servers, wait=False)


def add_started_mcp(registry: ToolRegistry, manager: McpManager, console: Console) -> None:
    """The tools of servers ``start_mcp`` started, added once they are up."""
    from ..mcp.lifecycle import add_tools

    add_tools(registry, {name: state.config for name, state in manager.servers.items()},
              lambda line: console.print(f"agentcli: {visible(line)}"), manager=manager)


def add_mcp_tools(settings: Settings, registry: ToolRegistry, console: Console,
                  *, verbose: bool = False) -> None:
    """The tools of the configured MCP servers (started here, stopped at exit).

    The ``mcp`` SDK is imported only when a server is enabled.
    """
    servers = _enabled_mcp(settings, console, verbose=verbose)
    if not servers:
        return
    from ..mcp.lifecycle import add_tools

    add_tools(registry, servers, lambda line: console.print(f"agentcli: {visible(line)}"))


def _enabled_mcp(settings: Settings, console: Console, *, verbose: bool) -> dict[str, Any]:
    """The enabled servers of ``configured_mcp``, by name."""
    found = configured_mcp(settings, console, notes=verbose)
    return {name: cfg for name, cfg in found.servers.items() if cfg.enabled} if found else {}


def configured_mcp(settings: Settings, console: Console, *, notes: bool,
                   cwd: Path | None = None) -> Any:
    """The MCP servers to use (``agentcli.mcp.imports.Servers``): the config's, then
    those of ``mcp.import`` files and a trusted ``./.mcp.json``; None when there is
    nothing to read (``agentcli.mcp`` is not even imported then). Problems are one
    line each on stderr; with ``notes``, so are servers shadowed by another."""
    cwd = cwd or Path.cwd()
    if not (settings.mcp.servers or settings.mcp.import_ or (cwd / ".mcp.json").is_file()):
        return None
    from ..mcp.imports import configured_servers

    found = configured_servers(settings, cwd=cwd, trusted=trust.is_trusted(cwd),
                               untrusted_notice=lambda _: trust.first_notice(cwd, "mcp.json"))
    for line in found.warnings + (found.notes if notes else []):
        console.print(f"agentcli: {visible(line)}")
    return found


def tool_choice(value: str | None, registry: ToolRegistry) -> Any:
    """``--tool-choice``: auto, none, required, or a tool's name."""
    if value in (None, "auto", "none", "required"):
        return value
    if value not in registry:
        raise ConfigError(f"--tool-choice {value}: no such tool (see: agentcli tools list)")
    return {"type": "function", "function": {"name": value}}


def build_agent(settings: Settings, registry: ToolRegistry, *, approve: Approver,
                on_event: Callable[[Event], None], notice: Callable[[str], None],
                stream: bool = True, verbose: bool = False, rules: Rules | None = None) -> Agent:
    """The agent loop with its provider, limits, guards and audit log, as configured."""
    from ..agent import Agent, Limits
    from ..providers import provider_class

    api_key = settings.api_key()
    kind = provider_class(settings.api)
    debug = (lambda text: notice(f"debug: {text}")) if verbose else None
    provider = kind(settings, api_key, notice=notice, debug=debug)
    tools = settings.tools
    limits = Limits(max_steps=settings.max_steps, max_parallel=tools.max_parallel,
                    tool_timeout=tools.timeout, max_output=tools.max_output,
                    context_window=settings.context_window or DEFAULT_CONTEXT,
                    reply_tokens=settings.max_tokens or 0)
    audit = audit_log([api_key] if api_key else [])
    return Agent(provider, registry, approve=approve, on_event=on_event, limits=limits,
                 stream=stream, tool_settings=tools, audit=audit, strict=tools.strict,
                 rules=rules)


def load_rules(opts: CommonOptions, loaded: Loaded) -> Rules:
    """The config's ``[[tools.rules]]``; with ``--policy FILE``, that file's rules first,
    and every call no rule allows is denied."""
    rules = config_rules(loaded.files)
    if opts.policy is None:
        return Rules(rules)
    return Rules(read_policy(opts.policy) + rules, strict=True)


def audit_log(secrets: list[str]) -> AuditLog:
    """The audit log; if it cannot be written, one warning line on stderr (even with
    --quiet: calls going unlogged is worth knowing)."""
    from ..audit import AuditLog

    console = stderr_console()
    return AuditLog(paths.audit_log(), secrets=secrets,
                    warn=lambda text: console.print(f"agentcli: {visible(text)}"))


def stderr(opts: CommonOptions) -> Console:
    return stderr_console(quiet=opts.quiet)


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def approve_all(request: ApprovalRequest) -> Decision:
    """``--yes``: every call that would ask is approved (no panel, so no rich)."""
    from ..events import Decision

    return Decision(True)


def choose_approver(*, yes: bool, can_ask: bool) -> Approver:
    """``--yes`` approves; a terminal asks (single keys, on stderr); otherwise a
    call that asks is denied. Under ``--policy`` callers pass ``yes=False``: there,
    only a rule allows a call without asking.

    Its console ignores ``--quiet``: an approval question must always be seen.
    prompt_toolkit is imported only here, when there is a terminal to ask.
    """
    if yes:
        return approve_all
    from ..ui.approve import UnattendedApprover  # rich and the panels: only when asking

    console = stderr_console()
    if not can_ask:
        return UnattendedApprover(console)
    from prompt_toolkit.output import create_output

    from ..ui.chat_approve import chat_approver
    return chat_approver(console, output=create_output(stdout=sys.stderr))
