"""``agentcli mcp list``: each configured MCP server, started to see how it is."""

from __future__ import annotations

import json
import time
from typing import Any

from ..ui.safe_text import visible
from .common import CommonOptions, load_settings, reported, stderr


def list_servers(opts: CommonOptions, as_json: bool) -> int:
    """Start the enabled servers, report each one, stop them; exit 1 if one failed."""
    console = stderr(opts)
    with reported(verbose=opts.verbose) as code:
        servers = load_settings(opts, console).settings.mcp.servers
        rows = server_rows(servers)
        if as_json:
            print(json.dumps(rows, ensure_ascii=False, indent=2))
        elif not rows:
            console.print("no MCP servers are configured (see [mcp.servers.NAME] in the README)")
        else:
            _print_table(rows)
        code[0] = 1 if any(r["status"] == "failed" for r in rows) else 0
    return code[0]


def server_rows(servers: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per configured server: transport, status, tools, start time, log path."""
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
        if r["error"]:
            print(f"{'':<{width}}  {visible(r['error'])}")
