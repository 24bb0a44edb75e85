"""Configuration: files, precedence, profiles, validation errors, config commands."""

from __future__ import annotations

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
    for key in config.Settings.model_fields:
        assert key in text, key
    for key in list(config.ToolSettings.model_fields) + list(config.HttpSettings.model_fields):
        assert key in text, key


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
