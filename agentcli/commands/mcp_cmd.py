"""``agentcli mcp list``: each configured MCP server, started to see how it is."""

from __future__ import annotations

import json
import time
from typing import Any

from .. import collector
from ..ui.safe_text import visible
from .common import CommonOptions, configured_mcp, load_settings, reported, stderr


def list_servers(opts: CommonOptions, as_json: bool) -> int:
    """Start the enabled servers, report each one, stop them; exit 1 if one failed."""
    console = stderr(opts)
    with reported(verbose=opts.verbose) as code:
        settings = load_settings(opts, console).settings
        found = configured_mcp(settings, console, notes=True)
        rows = server_rows(found.servers, found.sources) if found else []
        if as_json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
        elif not rows:
            console.print("no MCP servers are configured (see [mcp.servers.NAME] and "
                          "mcp.import in the README)")
        else:
            _print_table(rows)
        code[0] = 1 if any(r["status"] == "failed" for r in rows) else 0
    return code[0]


def server_rows(servers: dict[str, Any], sources: dict[str, str]) -> list[dict[str, Any]]:
    """One row per configured server: transport, status, tools, start time, log path, and
    where it is defined ("config" or an import file)."""
    rows: dict[str, dict[str, Any]] = {}
    enabled = {name: cfg for name, cfg in servers.items() if cfg.enabled}
    if enabled:
        from ..mcp.lifecycle import start_servers, stop_servers

        manager = start_servers(enabled)
        for state in manager.servers.values():
            rows[state.name] = _row(state.name, state.transport, state.status, len(state.tools),
                                    state.started_at, str(state.log_path), state.error)
        stop_servers()
    for name, cfg in servers.items():
        if name not in rows:
            rows[name] = _row(name, "stdio" if cfg.command else "http", "disabled", 0, None,
                              None, "")
    for name, row in rows.items():
        row["source"] = sources.get(name, "config")
    return [rows[name] for name in sorted(rows)]


def _row(name: str, transport: str, status: str, tools: int, started: float | None,
         log: str | None, error: str) -> dict[str, Any]:
    when = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)) if started else None
    return {"name": name, "transport": transport, "status": status, "tools": tools,
            "started": when, "log": log, "error": error or None}


def _print_table(rows: list[dict[str, Any]]) -> None:
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        started = r["started"] or "-"
        line = (f"{visible(r['name']):<{width}}  {r['transport']:<5}  {r['status']:<8}  "
                f"{r['tools']:>3} tools  {started}  {r['log'] or '-'}")
        print(line)
        if r["source"] != "config":
            print(f"{'':<{width}}  from {visible(r['source'])}")
        if r["error"]:
            print(f"{'':<{width}}  {visible(r['error'])}")


def serve_tools(opts: CommonOptions, allow: list[str]) -> int:
    """``agentcli mcp serve``: agentcli's tools over stdio until the client leaves.

    The wire is claimed first, before settings and plugins load, so nothing
    written on the way (a plugin's print at import, a warning) reaches it.
    """
    from ..mcp.serve import claim_stdio

    console = stderr(opts)
    with reported(verbose=opts.verbose) as code:
        wire = claim_stdio()
        service = _service(opts, allow, console)
        from ..mcp.serve import serve

        collector.resume()  # set-up is over: see agentcli.collector
        console.print(f"agentcli: serving up to {len(service.registry)} tool(s) over MCP on "
                      "stdio; tools that ask for approval are offered only to clients that "
                      "can be asked, or with --allow NAME")
        serve(service, wire, lambda line: console.print(f"agentcli: {line}"))
    return code[0]


def _service(opts: CommonOptions, allow: list[str], console: Any) -> Any:
    """The tools, rules and limits every call of ``mcp serve`` shares."""
    from ..errors import UsageError
    from ..mcp.serve import Service, never_runs, unknown_allowed
    from .common import audit_log, build_registry, load_rules

    loaded = load_settings(opts, console)
    settings = loaded.settings
    registry = build_registry(settings, opts, console, with_mcp=False)
    rules = load_rules(opts, loaded)
    unknown = unknown_allowed(registry, allow)
    if unknown:
        known = ", ".join(t.name for t in registry.all()) or "none"
        raise UsageError(f"--allow {visible(unknown[0])}: no such tool (tools: {known})")
    for name in allow:
        if never_runs(name, registry, rules):
            console.print(f"agentcli: --allow {name}: its policy denies every call, "
                          "so it is not served")
    secrets = [k for k in [settings.api_key()] if k]
    return Service(registry, rules, settings.tools, set(allow), audit=audit_log(secrets))
