"""``[mcp.servers.NAME]``: what loads, what is refused (naming the file and key),
how ``${VAR}`` is filled in, and how files merge."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcli import config
from agentcli.errors import ConfigError


def load_text(home: Path, text: str) -> config.Settings:
    path = home / "c.toml"
    path.write_text(text)
    return config.load(env={}, config_file=path).settings


def test_stdio_and_http_servers_load_with_defaults(home: Path) -> None:
    s = load_text(home, '[mcp.servers.files]\ncommand = "npx"\nargs = ["-y", "srv"]\n'
                        'env = { LOG = "${LEVEL}" }\ncwd = "/srv"\n'
                        '[mcp.servers.search]\nurl = "https://mcp.example.com/mcp"\n'
                        'headers = { Authorization = "Bearer ${TOKEN}" }\nenabled = false\n'
                        'include = ["find"]\nexclude = ["drop"]\n')
    files, search = s.mcp.servers["files"], s.mcp.servers["search"]
    assert (files.command, files.args, files.cwd) == ("npx", ["-y", "srv"], "/srv")
    assert (files.startup_timeout, files.tool_timeout, files.enabled) == (30, 60, True)
    assert (search.url, search.enabled, search.include, search.exclude) == (
        "https://mcp.example.com/mcp", False, ["find"], ["drop"])


@pytest.mark.parametrize(("body", "expected"), [
    ("", "give either 'command'"),
    ('command = "x"\nurl = "http://h/mcp"', "give either 'command'"),
    ('url = "http://h/mcp"\nargs = ["a"]', "'args', 'env' and 'cwd' are for"),
    ('command = "x"\nheaders = { A = "b" }', "'headers' are for"),
    ('url = "ftp://h/mcp"', "http:// or https://"),
    ('url = "https://me:pw@h/mcp"', "user name or password"),
    ('command = "x"\nstartup_timeout = inf', "mcp.servers.s.startup_timeout"),
    ('command = "x"\ntool_timeout = 0', "mcp.servers.s.tool_timeout"),
    ('command = "x"\nenv = { A = "${not a name}" }', "not a valid environment variable"),
    ('command = "x"\ncomand = "typo"', "unknown key 'mcp.servers.s.comand'"),
    ('command = ""', "mcp.servers.s.command"),
])
def test_bad_server_tables_are_config_errors(home: Path, body: str, expected: str) -> None:
    path = home / "bad.toml"
    path.write_text(f"[mcp.servers.s]\n{body}\n")
    with pytest.raises(ConfigError, match=r"^" + str(path).replace(".", r"\.")) as info:
        config.read_toml(path)
    assert expected in str(info.value)


def test_a_server_name_outside_the_tool_name_alphabet_is_refused(home: Path) -> None:
    path = home / "bad.toml"
    path.write_text('[mcp.servers."my server"]\ncommand = "x"\n')
    with pytest.raises(ConfigError, match="server name 'my server'"):
        config.read_toml(path)


def test_servers_from_several_files_add_up(home: Path) -> None:
    user = home / "config" / "agentcli" / "config.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text('[mcp.servers.a]\ncommand = "a"\n[mcp.servers.b]\ncommand = "b"\n')
    explicit = home / "x.toml"
    explicit.write_text('[mcp.servers.b]\nurl = "http://127.0.0.1:9/mcp"\n')
    servers = config.load(env={}, config_file=explicit).settings.mcp.servers
    assert servers["a"].command == "a"
    assert (servers["b"].command, servers["b"].url) == (None, "http://127.0.0.1:9/mcp")


def test_variables_are_filled_in_from_the_environment() -> None:
    assert config.expand("Bearer ${TOKEN}!", {"TOKEN": "t0k"}) == "Bearer t0k!"
    assert config.expand("$HOME stays", {}) == "$HOME stays"
    with pytest.raises(ConfigError, match="TOKEN is not set"):
        config.expand("Bearer ${TOKEN}", {})
