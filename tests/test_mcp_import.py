"""``mcp.import``: servers from Claude Desktop, Cursor and ``.mcp.json`` files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mcp_fixtures import script, write_config
from test_layering import after_cli, roots

from agentcli import trust
from agentcli.config import validate
from agentcli.mcp.imports import configured_servers


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def settings(data: dict) -> object:
    return validate(data, "test")


CLAUDE = {"mcpServers": {
    "files": {"command": "npx", "args": ["-y", "server-filesystem", "/srv"],
              "env": {"LOG_LEVEL": "warn"}, "cwd": "/srv"},
    "search": {"type": "http", "url": "https://mcp.example.com/mcp",
               "headers": {"Authorization": "Bearer ${TOKEN}"}},
    "off": {"command": "sleep", "disabled": True},
    "old web": {"type": "sse", "url": "https://example.com/sse"},
    "broken": {"args": ["no command and no url"]},
}}


def test_a_claude_desktop_file_gives_its_servers(tmp_path):
    path = write_json(tmp_path / "claude_desktop_config.json", CLAUDE)
    found = configured_servers(settings({"mcp": {"import": [str(path)]}}), cwd=tmp_path,
                               trusted=False)
    assert sorted(found.servers) == ["files", "off", "search"]
    files, search = found.servers["files"], found.servers["search"]
    assert (files.command, files.args, files.env, files.cwd) == \
        ("npx", ["-y", "server-filesystem", "/srv"], {"LOG_LEVEL": "warn"}, "/srv")
    assert search.url == "https://mcp.example.com/mcp"
    assert search.headers == {"Authorization": "Bearer ${TOKEN}"}
    assert found.servers["off"].enabled is False
    assert found.sources["files"] == str(path)
    assert len(found.warnings) == 2
    sse, broken = found.warnings
    assert '"old web"' in sse and "'sse' transport is not supported" in sse
    assert '"broken"' in broken and "command" in broken and str(path) in broken


def test_cursor_variables_become_agentcli_variables(tmp_path):
    path = write_json(tmp_path / "mcp.json", {"mcpServers": {"gh": {
        "command": "gh-mcp", "env": {"GITHUB_TOKEN": "${env:GITHUB_TOKEN}"}}}})
    found = configured_servers(settings({"mcp": {"import": [str(path)]}}), cwd=tmp_path,
                               trusted=False)
    assert found.servers["gh"].env == {"GITHUB_TOKEN": "${GITHUB_TOKEN}"}


def test_the_config_wins_over_an_import_and_the_first_import_over_the_next(tmp_path):
    first = write_json(tmp_path / "a.json", {"mcpServers": {"x": {"command": "from-a"},
                                                            "y": {"command": "from-a"}}})
    second = write_json(tmp_path / "b.json", {"mcpServers": {"y": {"command": "from-b"}}})
    found = configured_servers(settings({"mcp": {
        "servers": {"x": {"command": "mine"}}, "import": [str(first), str(second)]}}),
        cwd=tmp_path, trusted=False)
    assert (found.servers["x"].command, found.servers["y"].command) == ("mine", "from-a")
    assert found.sources == {"x": "config", "y": str(first)}
    assert len(found.notes) == 2 and found.warnings == []
    assert "x from " + str(first) in found.notes[0] and "[mcp.servers.x]" in found.notes[0]
    assert "y from " + str(second) in found.notes[1] and str(first) in found.notes[1]


def test_missing_and_broken_files_are_one_warning_each(tmp_path):
    broken = write_json(tmp_path / "broken.json", '{"mcpServers": {')
    wrong = write_json(tmp_path / "wrong.json", ["not", "an", "object"])
    missing = tmp_path / "missing.json"
    good = write_json(tmp_path / "good.json", {"mcpServers": {"ok": {"command": "ok"}}})
    found = configured_servers(settings({"mcp": {"import": [
        str(missing), str(broken), str(wrong), str(good)]}}), cwd=tmp_path, trusted=False)
    assert list(found.servers) == ["ok"]  # the rest still load
    assert len(found.warnings) == 3
    for path, warning in zip((missing, broken, wrong), found.warnings, strict=True):
        assert warning.startswith(f"{path}: ")
    assert "not found" in found.warnings[0] and "not valid JSON" in found.warnings[1]


def test_a_projects_own_files_are_read_only_when_it_is_trusted(tmp_path):
    write_json(tmp_path / ".mcp.json", {"mcpServers": {"local": {"command": "local-server"}}})
    write_json(tmp_path / "team.json", {"mcpServers": {"team": {"command": "team-server"}}})
    config = settings({"mcp": {"import": ["team.json"]}})
    untrusted = configured_servers(config, cwd=tmp_path, trusted=False)
    assert untrusted.servers == {}
    assert len(untrusted.warnings) == 2 and all("not trusted" in w for w in untrusted.warnings)
    trusted = configured_servers(config, cwd=tmp_path, trusted=True)
    assert sorted(trusted.servers) == ["local", "team"]
    assert trusted.sources["local"] == str(tmp_path / ".mcp.json")


def test_a_missing_local_mcp_json_is_not_a_warning(tmp_path):
    found = configured_servers(settings({}), cwd=tmp_path, trusted=True)
    assert (found.servers, found.warnings) == ({}, [])


# --- the real command ------------------------------------------------------------------------

def test_mcp_list_shows_imported_servers_and_says_which_one_wins(cli, home):
    imported = write_json(home / "claude.json", {"mcpServers": {
        "notes": {"command": sys.executable, "args": [script("normal"), "stdio"]},
        "dup": {"command": "no-such-command"}}})
    write_config(home, f'[mcp]\nimport = ["{imported}", "~/missing.json"]\n'
                       '[mcp.servers.dup]\nurl = "http://127.0.0.1:9/mcp"\nenabled = false\n')
    work = Path.cwd()
    write_json(work / ".mcp.json", {"mcpServers": {"project": {"command": "project-server",
                                                                "disabled": True}}})
    result = cli("mcp", "list", "--json")
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert result.code == 0, result.stderr
    assert sorted(rows) == ["dup", "notes"]  # ./.mcp.json: this directory is not trusted
    assert (rows["notes"]["status"], rows["notes"]["tools"]) == ("ready", 4)
    assert rows["notes"]["source"] == str(imported)
    assert (rows["dup"]["source"], rows["dup"]["status"]) == ("config", "disabled")
    lines = result.stderr.splitlines()
    assert sum("missing.json: MCP import file not found" in ln for ln in lines) == 1
    assert any(f"dup from {imported} is not used" in ln for ln in lines)
    assert any(".mcp.json: this directory is not trusted" in ln for ln in lines)

    trust.trust(work)
    write_config(home, "")  # no server to start this time: only the project's, disabled
    trusted = cli("mcp", "list", "--json")
    rows = {r["name"]: r for r in json.loads(trusted.stdout)}
    assert rows["project"]["source"] == str(work / ".mcp.json")
    assert rows["project"]["status"] == "disabled"


def test_an_import_with_no_server_in_it_loads_no_sdk(home):
    missing = home / "nothing-here.json"
    write_config(home, f'[mcp]\nimport = ["{missing}"]\n')
    assert roots(after_cli("tools", "list"), ("mcp",)) == set()


def test_a_rejected_entry_never_repeats_its_values(tmp_path):
    path = write_json(tmp_path / "claude.json", {"mcpServers": {
        "gh": {"command": "gh-mcp", "env": {"GITHUB_TOKEN": 1234567890123}},
        "web": {"url": "https://user:hunter2-secret@example.com/mcp"},
        "deep": {"command": "x", "args": [[[["nested"]]]]}}})
    nested = write_json(tmp_path / "nested.json", "[" * 100_000 + "]" * 100_000)
    found = configured_servers(settings({"mcp": {"import": [str(path), str(nested)]}}),
                               cwd=tmp_path, trusted=False)
    assert found.servers == {} and len(found.warnings) == 4
    text = "\n".join(found.warnings)
    assert "1234567890123" not in text and "hunter2" not in text
    assert "env.GITHUB_TOKEN" in text and "user name or password" in text
    assert f"{nested}: cannot read" in found.warnings[-1]


def test_hostile_import_files_are_one_warning_each_and_the_rest_load(tmp_path):
    import os

    deep = "[" * 950 + "]" * 950  # parses, but deeper than any walk may go
    hostile = {
        "deep.json": ('{"mcpServers": {"deep": {"command": "x", "args": ' + deep + "}}}").encode(),
        "latin1.json": '{"mcpServers": {"caf\xe9": {"command": "x"}}}'.encode("latin-1"),
        "huge.json": b" " * 1_000_001,
    }
    paths = []
    for name, data in hostile.items():
        path = tmp_path / name
        path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
        paths.append(path)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # reading it would wait for a writer for ever
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")  # reading it would never end
    names = write_json(tmp_path / "names.json", {"mcpServers": {
        "n" * 100_000: {"command": "x"}, "t": {"command": "x", "type": "t" * 100_000},
        "ok": {"command": "ok", "env": {"TOKEN": "sk-secret-0123456789"}}}})
    found = configured_servers(settings({"mcp": {"import": [
        *map(str, paths), str(fifo), str(link), str(tmp_path), str(names)]}}),
        cwd=tmp_path, trusted=False)
    assert list(found.servers) == ["n" * 64, "ok"]  # a long name is cut, as any name is
    # "nested deeper than 64 levels", or "nested too deeply" where the parser itself gives up
    expected = ["nested", "cannot read", "larger than 1,000,000 bytes",
                "not a regular file", "not a regular file", "not a regular file"]
    for path, warning, what in zip([*paths, fifo, link, tmp_path], found.warnings, expected,
                                   strict=False):
        assert warning.startswith(f"{path}: ") and what in warning
    assert len(found.warnings) == 7 and max(map(len, found.warnings)) < 500
    assert not any("sk-secret" in w for w in found.warnings)
