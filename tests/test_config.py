"""Configuration: files, precedence, profiles, validation errors, config commands."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agentcli import config, trust
from agentcli.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults(home):
    loaded = config.load(env={})
    s = loaded.settings
    assert s.max_steps == 10 and s.tools.timeout == 30 and s.tools.max_parallel == 4
    assert s.api_key_env == "OPENAI_API_KEY" and s.model is None
    assert loaded.sources.get("max_steps", "default") == "default"


def test_precedence_user_local_explicit_env_flags(home):
    user = write(home / "config" / "agentcli" / "config.toml", 'model = "user"\nmax_steps = 4\n')
    write(Path.cwd() / "agentcli.toml", 'model = "local"\ntemperature = 0.5\n')
    explicit = write(home / "x.toml", 'model = "explicit"\n')
    s = config.load(env={}, trusted=True).settings
    assert (s.model, s.max_steps, s.temperature) == ("local", 4, 0.5)
    s = config.load(env={}, trusted=True, config_file=explicit).settings
    assert s.model == "explicit"
    s = config.load(env={"AGENTCLI_MODEL": "env"}, trusted=True, config_file=explicit).settings
    assert s.model == "env"
    loaded = config.load(env={"AGENTCLI_MODEL": "env"}, trusted=True, config_file=explicit,
                         flags={"model": "flag"})
    assert loaded.settings.model == "flag"
    assert loaded.sources["model"] == "command line"
    assert loaded.sources["max_steps"] == str(user)


def test_untrusted_local_config_is_ignored(home):
    write(Path.cwd() / "agentcli.toml", 'model = "local"\n')
    assert config.load(env={}, trusted=False).settings.model is None


def test_agentcli_config_env_var_names_a_file(home):
    f = write(home / "y.toml", "max_steps = 3\n")
    assert config.load(env={"AGENTCLI_CONFIG": str(f)}).settings.max_steps == 3


def test_profiles(home):
    f = write(home / "p.toml", 'profile = "local"\nmodel = "top"\n'
              '[profiles.local]\nbase_url = "http://127.0.0.1:11434/v1"\nmodel = "qwen"\n'
              '[profiles.other]\nmodel = "other-model"\napi_key_env = "OTHER_KEY"\n')
    s = config.load(env={}, config_file=f).settings
    assert (s.base_url, s.model) == ("http://127.0.0.1:11434/v1", "qwen")
    # a profile in a file sits below the environment
    assert config.load(env={"AGENTCLI_MODEL": "env"}, config_file=f).settings.model == "env"
    # one chosen with --profile sits above it
    s = config.load(env={"AGENTCLI_MODEL": "env", "OTHER_KEY": "k"}, config_file=f,
                    profile="other").settings
    assert s.model == "other-model" and s.api_key({"OTHER_KEY": "k"}) == "k"


def test_unknown_profile(home):
    f = write(home / "p.toml", "[profiles.a]\nmodel = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown profile 'b'.*known profiles: a"):
        config.load(env={}, config_file=f, profile="b")


@pytest.mark.parametrize("text, expected", [
    ("modle = 'x'\n", "unknown key 'modle'"),
    ("[tools]\ntimout = 3\n", "unknown key 'tools.timout'"),
    ("max_steps = 'many'\n", "key 'max_steps'"),
    ("[tools.policy]\ncalculator = 'sometimes'\n", "key 'tools.policy.calculator'"),
    ("model = \n", "not valid TOML"),
])
def test_bad_files_name_the_file_and_key(home, text, expected):
    f = write(home / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        config.load(env={}, config_file=f)
    message = str(info.value)
    assert message.startswith(str(f)) and expected in message
    assert "\n" not in message


@pytest.mark.parametrize("text", ["modle = 'x'\n", "max_steps = 'x'\n", "[broken\n"])
def test_cli_reports_bad_config_with_exit_2(cli, home, text):
    f = write(home / "bad.toml", text)
    result = cli("run", "--config", str(f), "hi")
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(f) in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_config_file_is_exit_2(cli, home):
    result = cli("run", "--config", "/nonexistent/x.toml", "hi")
    assert result.code == 2 and "not found" in result.stderr


def test_config_show_lists_sources_and_hides_the_key(cli, home):
    f = write(home / "c.toml", 'model = "m1"\nextra_body = { api_token = "hunter2", top_k = 4 }\n')
    result = cli("config", "show", "--config", str(f), env={"OPENAI_API_KEY": "sk-topsecret"})
    assert result.code == 0, result.stderr
    assert f'model = "m1"  # {f}' in result.stdout
    assert "max_steps = 10  # default" in result.stdout
    assert "api_key = [set]" in result.stdout
    assert "sk-topsecret" not in result.stdout + result.stderr
    assert "hunter2" not in result.stdout and '"top_k": 4' in result.stdout


def test_config_init_writes_a_valid_starter_file(cli, home):
    result = cli("config", "init")
    assert result.code == 0
    target = home / "config" / "agentcli" / "config.toml"
    assert config.read_toml(target) == config.read_toml(Path(config.__file__).parent / "config.example.toml")
    again = cli("config", "init")
    assert again.code == 2 and "already exists" in again.stderr


def test_example_config_documents_every_key():
    text = (Path(config.__file__).parent / "config.example.toml").read_text()
    for f in dataclasses.fields(config.Settings):
        assert f.name in text, f.name
    for f in dataclasses.fields(config.ToolSettings) + dataclasses.fields(config.HttpSettings):
        assert f.name in text, f.name


def test_config_path_lists_the_files(cli, home):
    result = cli("config", "path")
    assert result.code == 0
    assert str(home / "config" / "agentcli" / "config.toml") in result.stdout


def test_trust_commands(cli, home, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    assert cli("trust", str(project)).code == 0
    assert trust.is_trusted(project)
    assert str(project) in cli("trust", "--list").stdout
    assert cli("trust", "--revoke", str(project)).code == 0
    assert not trust.is_trusted(project)


def test_run_in_untrusted_dir_skips_local_tools_and_config(cli, home, server, run_args):
    from openai_server import text
    write(Path.cwd() / "agentcli.toml", "max_steps = 1\n")
    write(Path.cwd() / "tools.d" / "evil.py", "from agentcli import tool\n@tool\ndef evil() -> str:\n"
          "    \"\"\"x\"\"\"\n    return 'x'\n")
    server.enqueue(text("ok"))
    result = cli("run", *run_args, "x")
    assert result.code == 0
    assert "not trusted" in result.stderr
    assert "evil" not in [t["function"]["name"] for t in server.requests[0].body["tools"]]
    trust.trust(Path.cwd())
    server.enqueue(text("ok"))
    cli("run", *run_args, "x")
    assert "evil" in [t["function"]["name"] for t in server.requests[1].body["tools"]]


# What the settings classes declare is checked key by key: types as strict as the
# declarations say, unknown keys at every depth, and pydantic's wording for each problem.

@pytest.mark.parametrize("text, expected", [
    ("max_steps = true\n", "key 'max_steps': input should be a valid integer (got True)"),
    ("temperature = false\n", "key 'temperature': input should be a valid number (got False)"),
    ("[http]\nmax_bytes = 1000.0\n",
     "key 'http.max_bytes': input should be a valid integer (got 1000.0)"),
    ("temperature = nan\n", "key 'temperature': input should be a finite number (got nan)"),
    ("[mcp.servers.a]\ncommand = 'x'\ntool_timeout = -inf\n",
     "key 'mcp.servers.a.tool_timeout': input should be a finite number (got -inf)"),
    ("[tools]\ndirs = 'tools.d'\n", "key 'tools.dirs': input should be a valid list (got 'tools.d')"),
    ("[tools]\ndirs = ['a', 3]\n", "key 'tools.dirs.1': input should be a valid string (got 3)"),
    ("[model]\nname = 'gpt'\n", "key 'model': input should be a valid string (got a table)"),
    ("tools = 3\n",
     "key 'tools': input should be a valid dictionary or instance of ToolSettings (got 3)"),
    ("[tools]\nmax_parallel = 65\n",
     "key 'tools.max_parallel': input should be less than or equal to 64 (got 65)"),
    ("request_timeout = 0\n", "key 'request_timeout': input should be greater than 0 (got 0)"),
    ("api = 'soap'\n", "key 'api': input should be 'chat', 'responses' or 'realtime' (got 'soap')"),
    ("[tools]\nstrict = 'maybe'\n",
     "key 'tools.strict': input should be a valid boolean, unable to interpret input (got 'maybe')"),
    ("[profiles.p]\nx = 1\n", "unknown key 'profiles.p.x'"),
    ("[profiles.p]\nprofile = 'q'\n", "unknown key 'profiles.p.profile'"),
    ("[tools.limits.calculator]\nx = 1\n", "unknown key 'tools.limits.calculator.x'"),
    ("[mcp.servers.a]\ncommand = 'x'\nx = 1\n", "unknown key 'mcp.servers.a.x'"),
    ("[mcp]\nimport_ = []\n", "unknown key 'mcp.import_'"),
    ("[[hooks.pre_tool]]\ncommand = ['true']\nx = 1\n", "unknown key 'hooks.pre_tool.0.x'"),
    ("[[hooks.pre_tool]]\nmatch = '*'\n",
     "key 'hooks.pre_tool.0.command': field required (got a table)"),
    ("[[hooks.post_tool]]\ncommand = []\n", "key 'hooks.post_tool.0.command': list should have "
     "at least 1 item after validation, not 0 (got [])"),
    ("[mcp.servers.a]\ncommand = ''\n",
     "key 'mcp.servers.a.command': string should have at least 1 character (got '')"),
    ("[mcp.servers.'a b']\ncommand = 'x'\n", "key 'mcp.servers': server name 'a b': use 1-64 "
     "letters, digits, '_' or '-' (got a table)"),
    ("[mcp.servers.a]\nurl = 'http://h/mcp'\ncwd = '/'\n", "key 'mcp.servers.a': 'args', 'env' "
     "and 'cwd' are for a server started with 'command', not one reached at 'url' (got a table)"),
    # the first problem in the order of the declarations, unknown keys after the known ones
    ("zz = 1\nmodel = 5\n[tools]\ntimeout = 'x'\n",
     "key 'model': input should be a valid string (got 5)"),
    ("zz = 1\nyy = 2\n", "unknown key 'zz'"),
])
def test_each_kind_of_bad_value_is_worded_as_before(home, text, expected):
    f = write(home / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        config.read_toml(f)
    assert str(info.value) == f"{f}: {expected}"


def test_numbers_and_words_that_are_accepted(home):
    f = write(home / "ok.toml", "temperature = 1\n[tools]\ntimeout = 5\nstrict = 'yes'\n"
              "[http]\nallow_private = 1\n[mcp.servers.a]\ncommand = 'x'\nenabled = 'Off'\n")
    settings = config.load(env={}, config_file=f).settings
    assert settings.temperature == 1.0 and isinstance(settings.temperature, float)
    assert settings.tools.timeout == 5.0 and isinstance(settings.tools.timeout, float)
    assert settings.tools.strict is True and settings.http.allow_private is True
    assert settings.mcp.servers["a"].enabled is False
    assert settings.tools.max_parallel == 4 and settings.mcp.import_ == []


def test_defaults_are_not_shared_between_settings():
    first, second = config.Settings(), config.Settings()
    first.tools.dirs.append("x")
    assert second.tools.dirs == [] and first.tools is not second.tools


def test_config_show_writes_numbers_as_validated_and_mcp_import_by_its_key(cli, home):
    f = write(home / "c.toml", "[tools]\ntimeout = 5\n[mcp]\nimport = ['servers.json']\n")
    result = cli("config", "show", "--config", str(f))
    assert result.code == 0, result.stderr
    assert f"tools.timeout = 5.0  # {f}" in result.stdout
    assert f'mcp.import = ["servers.json"]  # {f}' in result.stdout
    assert "import_" not in result.stdout
