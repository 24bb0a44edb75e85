"""Hostile configuration: non-finite and absurd numbers, a key pasted where a
variable name belongs, a password in the base URL. Each is a config error
naming the file and key (exit 2), and a secret is never repeated."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from agentcli import config
from agentcli.errors import ConfigError


def numeric_keys(model: type, prefix: str = "") -> list[str]:
    """Every int or float key of a settings class, as a dotted TOML path."""
    keys = []
    for name, annotation in typing.get_type_hints(model).items():
        args = set(typing.get_args(annotation)) or {annotation}
        if args & {int, float} and bool not in args:
            keys.append(prefix + name)
    return keys


KEYS = (numeric_keys(config.Settings)
        + numeric_keys(config.ToolSettings, "tools.")
        + numeric_keys(config.HttpSettings, "http.")
        + numeric_keys(config.ToolLimit, "tools.limits.calculator.")
        + numeric_keys(config.ModelParams, "profiles.p."))


def toml_for(dotted: str, value: str) -> str:
    table, _, key = dotted.rpartition(".")
    return (f"[{table}]\n" if table else "") + f"{key} = {value}\n"


def test_every_numeric_key_is_covered() -> None:
    assert {"request_timeout", "max_retries", "max_steps", "temperature", "max_tokens",
            "context_window", "tools.timeout", "tools.max_parallel", "tools.max_output",
            "http.timeout", "http.max_bytes", "tools.limits.calculator.timeout",
            "tools.limits.calculator.max_calls_per_minute", "profiles.p.max_tokens"} <= set(KEYS)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e30", "true"])
@pytest.mark.parametrize("dotted", KEYS)
def test_absurd_numbers_name_the_file_and_key(home: Path, dotted: str, value: str) -> None:
    path = home / "bad.toml"
    path.write_text(toml_for(dotted, value))
    with pytest.raises(ConfigError) as info:
        config.read_toml(path)
    assert str(info.value).startswith(f"{path}: key '{dotted}'")


@pytest.mark.parametrize(("dotted", "value"), [
    ("tools.timeout", "1e10"), ("request_timeout", "86401"), ("http.timeout", "0"),
    ("tools.breaker_cooldown", "1e9"), ("max_steps", "100000000"), ("temperature", "-1"),
    ("tools.limits.http_get.timeout", "inf"),
])
def test_out_of_range_values(home: Path, dotted: str, value: str) -> None:
    path = home / "bad.toml"
    path.write_text(toml_for(dotted, value))
    with pytest.raises(ConfigError, match=f"key '{dotted}'"):
        config.read_toml(path)


def test_sensible_values_still_load(home: Path) -> None:
    path = home / "ok.toml"
    path.write_text("request_timeout = 86400\ntemperature = 0\n[tools]\ntimeout = 0.5\n"
                    "breaker_cooldown = 0\n[http]\ntimeout = 5\nmax_bytes = 10000000\n")
    settings = config.load(env={}, config_file=path).settings
    assert settings.tools.timeout == 0.5 and settings.request_timeout == 86400


def test_cli_timeout_inf_is_exit_2(cli, home: Path) -> None:
    path = home / "c.toml"
    path.write_text("[tools]\ntimeout = inf\n")
    result = cli("run", "--config", str(path), "hi")
    assert result.code == 2
    assert f"{path}: key 'tools.timeout'" in result.stderr and "finite" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_flag_out_of_range_is_exit_2(cli, home: Path) -> None:
    result = cli("run", "--max-steps", "1000000000", "hi")
    assert result.code == 2 and "key 'max_steps'" in result.stderr


PASTED = "sk-proj-Zq81hgT0aPd9QvXcL2mN7rYsK4bWeU6j"
SECRET_URL = "http://alice:Pa55w0rd-9f8e7d@127.0.0.1:9/v1"


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


@pytest.mark.parametrize("text", [
    f'api_key_env = "{PASTED}"\n',
    f'[profiles.p]\napi_key_env = "{PASTED}"\n',
    f'api_key_env = "{PASTED.replace("-", "_")}"\n',
    'api_key_env = "my key"\n',
])
def test_api_key_env_must_be_a_variable_name(home: Path, text: str) -> None:
    path = home / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="api_key_env'") as info:
        config.read_toml(path)
    assert_hidden(str(info.value), PASTED[8:], PASTED.replace("-", "_")[8:], "my key")


@pytest.mark.parametrize("command", [["run", "-v", "hi"], ["config", "show"]])
def test_key_pasted_into_api_key_env_is_never_echoed(cli, home: Path,
                                                     command: list[str]) -> None:
    path = home / "c.toml"
    path.write_text(f'api_key_env = "{PASTED}"\n')
    result = cli(*command[:2], "--config", str(path), *command[2:])
    assert result.code == 2
    assert "key 'api_key_env': this looks like a key itself" in result.stderr
    assert_hidden(result.stdout + result.stderr, PASTED[8:])


@pytest.mark.parametrize("where", ["file", "profile", "env", "flag"])
def test_password_in_base_url_is_a_config_error(home: Path, where: str) -> None:
    path = home / "c.toml"
    path.write_text({"file": f'base_url = "{SECRET_URL}"\n',
                     "profile": f'profile = "p"\n[profiles.p]\nbase_url = "{SECRET_URL}"\n'
                     }.get(where, ""))
    env = {"OPENAI_BASE_URL": SECRET_URL} if where == "env" else {}
    flags = {"base_url": SECRET_URL} if where == "flag" else {}
    with pytest.raises(ConfigError, match="base_url': a user name or password") as info:
        config.load(config_file=path, env=env, flags=flags)
    assert_hidden(str(info.value), "Pa55w0rd", "alice")


@pytest.mark.parametrize(("command", "flag", "env"), [
    (["run", "-v", "hi"], ["--base-url", SECRET_URL], {}),
    (["config", "show"], [], {"OPENAI_BASE_URL": SECRET_URL}),
])
def test_password_in_base_url_is_never_echoed(cli, home: Path, command: list[str],
                                              flag: list[str], env: dict[str, str]) -> None:
    result = cli(*command[:2], *flag, *command[2:], env=env)
    assert result.code == 2, result.stdout + result.stderr
    assert "key 'base_url': a user name or password" in result.stderr
    assert_hidden(result.stdout + result.stderr, "Pa55w0rd")
