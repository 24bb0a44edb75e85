"""Settings: TOML files, profiles, environment and flags, merged and validated.

Precedence, later winning: built-in defaults < ``$XDG_CONFIG_HOME/agentcli/
config.toml`` < ``./agentcli.toml`` (trusted directories only) < ``--config
FILE`` or ``$AGENTCLI_CONFIG`` < environment (``OPENAI_BASE_URL``,
``AGENTCLI_MODEL``) < command-line flags. A profile chosen in a file applies
on top of the files; one chosen with ``--profile`` applies on top of the
environment, since the flag is the user's latest word.

Every value remembers where it came from, for ``agentcli config show``.
API keys are never stored here: ``api_key()`` reads the variable named by
``api_key_env`` when a request is about to be made.
"""

from __future__ import annotations

import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import paths
from .errors import ConfigError

Policy = Literal["auto", "ask", "deny"]

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
NOT_A_VARIABLE = ("not a valid environment variable name (letters, digits and _, such as "
                  "OPENAI_API_KEY)")
KEY_PASTED = ("this looks like a key itself; put the key in an environment variable and "
              "name the variable here (such as OPENAI_API_KEY)")
USERINFO = ("a user name or password in the URL (user:pass@host) is not allowed; put the "
            "key in an environment variable and name it with api_key_env")
NO_SCHEME = ("must start with http:// or https:// (such as http://127.0.0.1:11434/v1 "
             "or https://api.openai.com/v1)")
UNSHOWN = ("api_key_env", "base_url")
"""Keys whose rejected value is never repeated in a message: it may be a secret."""


DAY = 86_400.0
"""The longest time-out or cool-down, in seconds: a longer one is a typo (or ``inf``)."""
TOKENS = 100_000_000
"""More tokens than any model has (max_tokens, context_window)."""
DEFAULT_CONTEXT = 128_000
"""The context window assumed when the configuration gives none, in tokens."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _seconds(default: float | None, *, low: float = 0.0, strict_low: bool = True) -> Any:
    """A field of seconds: finite, above ``low`` (or at least it), at most a day."""
    if strict_low:
        return Field(default=default, strict=True, gt=low, le=DAY)
    return Field(default=default, strict=True, ge=low, le=DAY)


class ModelParams(_Strict):
    """What a profile may set: the provider, the parameters sent to the API, the
    system prompt and the request limits (every top-level key but ``profile``)."""

    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    api: Literal["chat", "responses", "realtime"] | None = None
    fallback_model: str | None = None
    temperature: float | None = Field(default=None, strict=True, ge=0, le=2)
    top_p: float | None = Field(default=None, strict=True, ge=0, le=1)
    max_tokens: int | None = Field(default=None, strict=True, gt=0, le=TOKENS)
    seed: int | None = Field(default=None, strict=True, ge=-(2**63), lt=2**63)
    parallel_tool_calls: bool | None = None
    context_window: int | None = Field(default=None, strict=True, gt=0, le=TOKENS)
    extra_body: dict[str, Any] | None = None
    request_timeout: float | None = _seconds(None)
    max_retries: int | None = Field(default=None, strict=True, ge=0, le=10)
    max_steps: int | None = Field(default=None, strict=True, ge=1, le=10_000)
    system: str | None = None

    @field_validator("api_key_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        if value is not None and not is_variable_name(value):
            raise ValueError(NOT_A_VARIABLE if len(value) < 16 else KEY_PASTED)
        return value

    @field_validator("base_url")
    @classmethod
    def _no_userinfo(cls, value: str | None) -> str | None:
        if value is not None and has_userinfo(value):
            raise ValueError(USERINFO)
        if value is not None and not re.match(r"https?://", value.strip(), re.I):
            raise ValueError(NO_SCHEME)
        return value


class ToolLimit(_Strict):
    """Guards for one tool (``[tools.limits.NAME]``); unset values fall back."""

    timeout: float | None = _seconds(None)
    max_calls_per_minute: int | None = Field(default=None, strict=True, ge=1, le=100_000)
    breaker_failures: int | None = Field(default=None, strict=True, ge=1, le=1_000)
    breaker_cooldown: float | None = _seconds(None, strict_low=False)


class ToolSettings(_Strict):
    policy: dict[str, Policy] = {}
    timeout: float = _seconds(30.0)
    max_parallel: int = Field(default=4, strict=True, ge=1, le=64)
    max_output: int = Field(default=16_000, strict=True, ge=100, le=100_000_000)
    strict: bool = False
    dirs: list[str] = []
    breaker_failures: int = Field(default=3, strict=True, ge=1, le=1_000)
    breaker_cooldown: float = _seconds(60.0, strict_low=False)
    limits: dict[str, ToolLimit] = {}
    rules: list[dict[str, Any]] = []
    repeat_limit: int = Field(default=3, strict=True, ge=1, le=1_000)


class HookSpec(_Strict):
    """One ``[[hooks.pre_tool]]`` or ``[[hooks.post_tool]]`` command."""

    match: str = "*"
    command: list[str] = Field(min_length=1)
    timeout: float = _seconds(10.0)


class HookSettings(_Strict):
    pre_tool: list[HookSpec] = []
    post_tool: list[HookSpec] = []


class HttpSettings(_Strict):
    allow_hosts: list[str] = []
    allow_private: bool = False
    timeout: float = _seconds(20.0)
    max_bytes: int = Field(default=1_000_000, strict=True, gt=0, le=1_000_000_000)


SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REFERENCE = re.compile(r"\$\{([^}]*)\}")


class McpServer(_Strict):
    """One MCP server (``[mcp.servers.NAME]``): a command to start (stdio) or a URL."""

    command: str | None = Field(default=None, min_length=1)
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    enabled: bool = True
    startup_timeout: float = _seconds(30.0)
    tool_timeout: float = _seconds(60.0)
    include: list[str] | None = None
    exclude: list[str] = []

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either 'command' (a program to start) or 'url' "
                             "(a streamable HTTP server), not both or neither")
        if self.url is not None and (self.args or self.env or self.cwd is not None):
            raise ValueError("'args', 'env' and 'cwd' are for a server started with 'command', "
                             "not one reached at 'url'")
        if self.command is not None and self.headers:
            raise ValueError("'headers' are for a server reached at 'url'")
        return self

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if urllib.parse.urlsplit(value.strip()).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        if has_userinfo(value):
            raise ValueError("a user name or password in the URL (user:pass@host) is not "
                             "allowed; put it in a header with ${VAR}")
        return value

    @field_validator("env", "headers")
    @classmethod
    def _references(cls, value: dict[str, str]) -> dict[str, str]:
        for text in value.values():
            for name in _REFERENCE.findall(text):
                if not _VARIABLE.fullmatch(name):
                    raise ValueError(f"${{{name}}}: {NOT_A_VARIABLE}")
        return value


class McpSettings(_Strict):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, serialize_by_alias=True)

    servers: dict[str, McpServer] = {}
    import_: list[str] = Field(default=[], alias="import")
    """``mcpServers`` JSON files to read servers from (Claude Desktop, Cursor, .mcp.json)."""

    @field_validator("servers")
    @classmethod
    def _names(cls, value: dict[str, McpServer]) -> dict[str, McpServer]:
        for name in value:
            if not SERVER_NAME.fullmatch(name):
                raise ValueError(f"server name {name!r}: use 1-64 letters, digits, '_' or '-'")
        return value


def expand(text: str, env: Mapping[str, str] | None = None) -> str:
    """``${VAR}`` replaced from the environment; ConfigError naming a variable not set."""
    env = os.environ if env is None else env

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(f"the environment variable {name} is not set (used as ${{{name}}})")
        return env[name]
    return _REFERENCE.sub(value, text)


class Settings(ModelParams):
    """The validated, effective configuration."""

    profile: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    api: Literal["chat", "responses", "realtime"] | None = "chat"
    context_window: int | None = Field(default=DEFAULT_CONTEXT, strict=True, gt=0, le=TOKENS)
    request_timeout: float = _seconds(120.0)
    max_retries: int = Field(default=2, strict=True, ge=0, le=10)
    max_steps: int = Field(default=10, strict=True, ge=1, le=10_000)
    tools: ToolSettings = ToolSettings()
    http: HttpSettings = HttpSettings()
    hooks: HookSettings = HookSettings()
    mcp: McpSettings = McpSettings()
    profiles: dict[str, ModelParams] = {}

    def api_key(self, env: Mapping[str, str] | None = None) -> str | None:
        """The API key from the environment variable named by ``api_key_env``."""
        env = os.environ if env is None else env
        return env.get(self.api_key_env or "OPENAI_API_KEY") or None


def is_variable_name(value: str) -> bool:
    """Whether ``value`` is an environment variable name and does not look like a key
    (long, with lower-case letters and digits, as keys are and variable names are not)."""
    if not _VARIABLE.fullmatch(value):
        return False
    return not (len(value) >= 32 and re.search("[a-z]", value) and re.search("[0-9]", value))


def has_userinfo(url: str) -> bool:
    """Whether ``url`` carries ``user@`` or ``user:pass@`` before its host."""
    try:
        netloc = urllib.parse.urlsplit(url.strip()).netloc
    except ValueError:
        return "@" in url
    return "@" in netloc


class Loaded(BaseModel):
    """Effective settings plus where each value came from."""

    settings: Settings
    sources: dict[str, str]
    files: list[str]


Layer = tuple[str, dict[str, Any]]

ENV_KEYS = {"OPENAI_BASE_URL": "base_url", "AGENTCLI_MODEL": "model"}


def read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file and validate it on its own, so errors name the file."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc})") from exc
    _check_rules(data, path)
    validate(data, str(path))
    return data


def _check_rules(data: dict[str, Any], path: Path) -> None:
    """``[[tools.rules]]`` checked first, so a bad rule is named by file and line."""
    tools = data.get("tools")
    if isinstance(tools, dict) and "rules" in tools:
        from .policy import parse_rules

        parse_rules(tools["rules"], str(path), path.read_text(encoding="utf-8", errors="replace"))


def validate(data: dict[str, Any], origin: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {describe_error(exc)}") from None


def describe_error(exc: ValidationError) -> str:
    """One line for the first problem pydantic found."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{key}'"
    message = err["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    if err["loc"] and err["loc"][-1] in UNSHOWN:
        return f"key '{key}': {message}"
    got = err.get("input")
    shown = repr(got) if not isinstance(got, dict) else "a table"
    return f"key '{key}': {message} (got {shown})"


def merge(layers: list[Layer]) -> tuple[dict[str, Any], dict[str, str]]:
    """Deep-merge layers in order; return the result and each leaf's source."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, data in layers:
        _merge_into(merged, data, source, sources, "")
    return merged, sources


def _merge_into(dst: dict[str, Any], src: dict[str, Any], source: str,
                sources: dict[str, str], prefix: str) -> None:
    for key, value in src.items():
        dotted = f"{prefix}{key}"
        table_key = (key in ("tools", "http", "policy", "profiles", "limits", "mcp")
                     or prefix.startswith(("profiles.", "tools.limits."))
                     or dotted == "mcp.servers")
        if isinstance(value, dict) and table_key and isinstance(dst.get(key), dict):
            _merge_into(dst[key], value, source, sources, dotted + ".")
        else:
            dst[key] = value
            _mark(sources, dotted, value, source)


def _mark(sources: dict[str, str], dotted: str, value: Any, source: str) -> None:
    for old in [k for k in sources if k.startswith(dotted + ".")]:
        del sources[old]
    if isinstance(value, dict) and value and not dotted.endswith("extra_body"):
        for key, inner in value.items():
            _mark(sources, f"{dotted}.{key}", inner, source)
    else:
        sources[dotted] = source


def load(*, config_file: Path | None = None, profile: str | None = None,
         flags: Mapping[str, Any] | None = None, cwd: Path | None = None,
         env: Mapping[str, str] | None = None, trusted: bool = False) -> Loaded:
    """Build the effective settings from every source.

    Args:
        config_file: ``--config FILE``; ``$AGENTCLI_CONFIG`` when not given.
        profile: ``--profile NAME``.
        flags: values from the command line, by settings key (None = not given).
        cwd: the working directory whose ``agentcli.toml`` may apply.
        env: the environment (``os.environ`` by default).
        trusted: whether ``cwd`` is trusted; an untrusted ``agentcli.toml`` is ignored.
    """
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    files = _config_files(config_file, cwd, env, trusted)
    layers: list[Layer] = [("default", {})]
    layers += [(str(path), read_toml(path)) for path in files]
    merged, _ = merge(layers)
    env_layer = {key: env[var] for var, key in ENV_KEYS.items() if env.get(var)}
    chosen = profile or merged.get("profile")
    profile_layer = _profile_layer(merged, chosen)
    if profile:
        layers += [("environment", env_layer), profile_layer]
    else:
        layers += [profile_layer, ("environment", env_layer)]
    layers.append(("command line", {k: v for k, v in (flags or {}).items() if v is not None}))
    if profile:
        layers[-1][1]["profile"] = profile
    merged, sources = merge(layers)
    settings = validate(merged, "command line or environment")
    return Loaded(settings=settings, sources=sources, files=[str(f) for f in files])


def _config_files(config_file: Path | None, cwd: Path, env: Mapping[str, str],
                  trusted: bool) -> list[Path]:
    files = []
    user = paths.user_config_file()
    if user.is_file():
        files.append(user)
    local = cwd / "agentcli.toml"
    if trusted and local.is_file():
        files.append(local)
    explicit = config_file or (Path(env["AGENTCLI_CONFIG"]) if env.get("AGENTCLI_CONFIG") else None)
    if explicit is not None:
        files.append(explicit)
    return files


def _profile_layer(merged: dict[str, Any], name: str | None) -> Layer:
    if not name:
        return ("default", {})
    profiles = merged.get("profiles") or {}
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none are defined"
        raise ConfigError(f"unknown profile '{name}' (known profiles: {known})")
    values = {k: v for k, v in profiles[name].items() if v is not None}
    return (f"profile '{name}'", values)


def untrusted_local_config(cwd: Path) -> Path | None:
    """The ``./agentcli.toml`` that would apply if the directory were trusted."""
    local = cwd / "agentcli.toml"
    return local if local.is_file() else None
