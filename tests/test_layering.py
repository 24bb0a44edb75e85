"""Import budgets: the entry point loads typer only; the core loads no UI."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("openai", "rich", "prompt_toolkit", "pydantic", "httpx", "agentcli.tools", "mcp")
UI_AND_SDK = ("openai", "rich", "prompt_toolkit", "httpx", "agentcli.tools")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def roots(modules: set[str], names: tuple[str, ...]) -> set[str]:
    return {m for m in modules if any(m == n or m.startswith(n + ".") for n in names)}


def after_cli(*argv: str) -> set[str]:
    code = ("import sys\nfrom agentcli.cli import app\n"
            f"sys.argv = ['agentcli', *{list(argv)!r}]\n"
            "try:\n    app()\nexcept SystemExit:\n    pass")
    return loaded_after(code)


def test_version_and_help_import_nothing_heavy():
    for argv in (["--version"], ["--help"]):
        assert roots(after_cli(*argv), HEAVY) == set(), argv


def test_command_help_loads_no_sdk_and_no_ui():
    # typer itself validates command parameters with pydantic; nothing else loads
    assert roots(after_cli("run", "--help"), UI_AND_SDK) == set()


def test_the_core_imports_no_ui():
    modules = loaded_after("import agentcli.agent, agentcli.config, agentcli.sessions")
    assert roots(modules, ("typer", "rich", "prompt_toolkit")) == set()


def test_plugin_api_is_importable_from_the_package():
    modules = loaded_after("from agentcli import tool\nassert callable(tool)")
    assert roots(modules, ("rich", "typer", "openai", "prompt_toolkit")) == set()


def test_the_mcp_sdk_loads_only_when_a_server_is_configured(home):
    for argv in (["tools", "list"], ["mcp", "list"], ["mcp", "--help"]):
        assert roots(after_cli(*argv), ("mcp", "agentcli.mcp")) == set(), argv
    config = home / "config" / "agentcli" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[mcp.servers.x]\ncommand = "no-such-mcp-command"\n')
    assert "mcp" in after_cli("tools", "list")
