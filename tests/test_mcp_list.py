"""``agentcli mcp list``: each configured server's transport, status, tool
count, start time and log path."""

from __future__ import annotations

import json

from mcp_fixtures import mcp_http, write_config  # noqa: F401  (fixture)


def test_mcp_list_reports_every_server(cli, home, mcp_http):
    write_config(home, f'[mcp.servers.web]\nurl = "{mcp_http["normal"]}"\nexclude = ["hidden"]\n'
                       '[mcp.servers.gone]\ncommand = "no-such-mcp-command"\n'
                       '[mcp.servers.off]\nurl = "http://127.0.0.1:9/mcp"\nenabled = false\n')
    result = cli("mcp", "list", "--json")
    assert result.code == 1, result.stderr  # a server failed
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    logs = home / "state" / "agentcli" / "mcp"
    web, gone, off = rows["web"], rows["gone"], rows["off"]
    assert (web["transport"], web["status"], web["tools"]) == ("http", "ready", 4)
    assert web["started"] and web["log"] == str(logs / "web.log")
    assert (gone["transport"], gone["status"], gone["tools"]) == ("stdio", "failed", 0)
    assert "no-such-mcp-command" in gone["error"] and gone["log"] == str(logs / "gone.log")
    assert off["status"] == "disabled"
    table = cli("mcp", "list")
    line = next(ln for ln in table.stdout.splitlines() if ln.startswith("web "))
    assert "http" in line and "ready" in line and "4 tools" in line and "web.log" in line


def test_mcp_list_with_no_servers_says_so(cli, home):
    result = cli("mcp", "list")
    assert result.code == 0 and result.stdout == ""
    assert "no MCP servers are configured" in result.stderr
