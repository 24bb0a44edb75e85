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

The settings are dataclasses whose field declarations are the whole schema:
the annotation gives the type, the field its default and, in its metadata, the
rules beyond the type: ``gt``, ``ge``, ``lt``, ``le`` (bounds of a number),
``min_length`` (of a string or list), ``check`` (a function of a value other than
None, raising ValueError with the problem) and ``key`` (the TOML name, where the
attribute's cannot be it). A class's ``_check`` method holds rules across its keys.
``validate`` walks them: integers are strict (not a bool, not a float), numbers
are finite floats or integers, booleans also read "yes"/"off"/1/0, and an unknown
key anywhere is an error, each worded as pydantic words it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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


_SECONDS: dict[str, Any] = {"gt": 0.0, "le": DAY}
"""The rules of a time-out in seconds: above zero, at most a day."""
_SECONDS_OR_ZERO: dict[str, Any] = {"ge": 0.0, "le": DAY}
"""The rules of a cool-down in seconds: zero or more, at most a day."""


def _variable_name(value: str) -> None:
    if not is_variable_name(value):
        raise ValueError(NOT_A_VARIABLE if len(value) < 16 else KEY_PASTED)


def _api_url(value: str) -> None:
    if has_userinfo(value):
        raise ValueError(USERINFO)
    if not re.match(r"https?://", value.strip(), re.I):
        raise ValueError(NO_SCHEME)


@dataclass(frozen=True, kw_only=True)
class ModelParams:
    """What a profile may set: the provider, the parameters sent to the API, the
    system prompt and the request limits (every top-level key but ``profile``)."""

    base_url: str | None = field(default=None, metadata={"check": _api_url})
    model: str | None = None
    api_key_env: str | None = field(default=None, metadata={"check": _variable_name})
    api: Literal["chat", "responses", "realtime"] | None = None
    fallback_model: str | None = None
    temperature: float | None = field(default=None, metadata={"ge": 0, "le": 2})
    top_p: float | None = field(default=None, metadata={"ge": 0, "le": 1})
    max_tokens: int | None = field(default=None, metadata={"gt": 0, "le": TOKENS})
    seed: int | None = field(default=None, metadata={"ge": -(2**63), "lt": 2**63})
    parallel_tool_calls: bool | None = None
    context_window: int | None = field(default=None, metadata={"gt": 0, "le": TOKENS})
    extra_body: dict[str, Any] | None = None
    request_timeout: float | None = field(default=None, metadata=_SECONDS)
    max_retries: int | None = field(default=None, metadata={"ge": 0, "le": 10})
    max_steps: int | None = field(default=None, metadata={"ge": 1, "le": 10_000})
    system: str | None = None


@dataclass(frozen=True, kw_only=True)
class ToolLimit:
    """Guards for one tool (``[tools.limits.NAME]``); unset values fall back."""

    timeout: float | None = field(default=None, metadata=_SECONDS)
    max_calls_per_minute: int | None = field(default=None, metadata={"ge": 1, "le": 100_000})
    breaker_failures: int | None = field(default=None, metadata={"ge": 1, "le": 1_000})
    breaker_cooldown: float | None = field(default=None, metadata=_SECONDS_OR_ZERO)


@dataclass(frozen=True, kw_only=True)
class ToolSettings:
    policy: dict[str, Policy] = field(default_factory=dict)
    timeout: float = field(default=30.0, metadata=_SECONDS)
    max_parallel: int = field(default=4, metadata={"ge": 1, "le": 64})
    max_output: int = field(default=16_000, metadata={"ge": 100, "le": 100_000_000})
    strict: bool = False
    dirs: list[str] = field(default_factory=list)
    breaker_failures: int = field(default=3, metadata={"ge": 1, "le": 1_000})
    breaker_cooldown: float = field(default=60.0, metadata=_SECONDS_OR_ZERO)
    limits: dict[str, ToolLimit] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)
    repeat_limit: int = field(default=3, metadata={"ge": 1, "le": 1_000})


@dataclass(frozen=True, kw_only=True)
class HookSpec:
    """One ``[[hooks.pre_tool]]`` or ``[[hooks.post_tool]]`` command."""

    match: str = "*"
    command: list[str] = field(metadata={"min_length": 1})
    timeout: float = field(default=10.0, metadata=_SECONDS)


@dataclass(frozen=True, kw_only=True)
class HookSettings:
    pre_tool: list[HookSpec] = field(default_factory=list)
    post_tool: list[HookSpec] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    allow_hosts: list[str] = field(default_factory=list)
    allow_private: bool = False
    timeout: float = field(default=20.0, metadata=_SECONDS)
    max_bytes: int = field(default=1_000_000, metadata={"gt": 0, "le": 1_000_000_000})


SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REFERENCE = re.compile(r"\$\{([^}]*)\}")


def _http_url(value: str) -> None:
    if urllib.parse.urlsplit(value.strip()).scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if has_userinfo(value):
        raise ValueError("a user name or password in the URL (user:pass@host) is not "
                         "allowed; put it in a header with ${VAR}")


def _references(value: dict[str, str]) -> None:
    for text in value.values():
        for name in _REFERENCE.findall(text):
            if not _VARIABLE.fullmatch(name):
                raise ValueError(f"${{{name}}}: {NOT_A_VARIABLE}")


@dataclass(frozen=True, kw_only=True)
class McpServer:
    """One MCP server (``[mcp.servers.NAME]``): a command to start (stdio) or a URL."""

    command: str | None = field(default=None, metadata={"min_length": 1})
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict, metadata={"check": _references})
    cwd: str | None = None
    url: str | None = field(default=None, metadata={"check": _http_url})
    headers: dict[str, str] = field(default_factory=dict, metadata={"check": _references})
    enabled: bool = True
    startup_timeout: float = field(default=30.0, metadata=_SECONDS)
    tool_timeout: float = field(default=60.0, metadata=_SECONDS)
    include: list[str] | None = None
    exclude: list[str] = field(default_factory=list)

    def _check(self) -> None:
        """The rules across keys, checked once each key is valid on its own."""
        if (self.command is None) == (self.url is None):
            raise ValueError("give either 'command' (a program to start) or 'url' "
                             "(a streamable HTTP server), not both or neither")
        if self.url is not None and (self.args or self.env or self.cwd is not None):
            raise ValueError("'args', 'env' and 'cwd' are for a server started with 'command', "
                             "not one reached at 'url'")
        if self.command is not None and self.headers:
            raise ValueError("'headers' are for a server reached at 'url'")


def _server_names(value: dict[str, McpServer]) -> None:
    for name in value:
        if not SERVER_NAME.fullmatch(name):
            raise ValueError(f"server name {name!r}: use 1-64 letters, digits, '_' or '-'")


@dataclass(frozen=True, kw_only=True)
class McpSettings:
    servers: dict[str, McpServer] = field(default_factory=dict,
                                          metadata={"check": _server_names})
    import_: list[str] = field(default_factory=list, metadata={"key": "import"})
    """``mcpServers`` JSON files to read servers from (Claude Desktop, Cursor, .mcp.json)."""


def expand(text: str, env: Mapping[str, str] | None = None) -> str:
    """``${VAR}`` replaced from the environment; ConfigError naming a variable not set."""
    env = os.environ if env is None else env

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(f"the environment variable {name} is not set (used as ${{{name}}})")
        return env[name]
    return _REFERENCE.sub(value, text)


@dataclass(frozen=True, kw_only=True)
class Settings(ModelParams):
    """The validated, effective configuration."""

    profile: str | None = None
    api_key_env: str | None = field(default="OPENAI_API_KEY", metadata={"check": _variable_name})
    api: Literal["chat", "responses", "realtime"] | None = "chat"
    context_window: int | None = field(default=DEFAULT_CONTEXT, metadata={"gt": 0, "le": TOKENS})
    request_timeout: float = field(default=120.0, metadata=_SECONDS)
    max_retries: int = field(default=2, metadata={"ge": 0, "le": 10})
    max_steps: int = field(default=10, metadata={"ge": 1, "le": 10_000})
    tools: ToolSettings = field(default_factory=ToolSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    hooks: HookSettings = field(default_factory=HookSettings)
    mcp: McpSettings = field(default_factory=McpSettings)
    profiles: dict[str, ModelParams] = field(default_factory=dict)

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


@dataclass
class Loaded:
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
    """``data`` as settings; ConfigError naming ``origin`` and the first problem."""
    try:
        settings: Settings = _table(Settings, data, ())
    except Invalid as exc:
        raise ConfigError(f"{origin}: {describe_error(exc)}") from None
    return settings


def validate_server(data: dict[str, Any]) -> McpServer:
    """One MCP server's table; ConfigError with its first problem, the value left out
    (a server's ``env`` often holds tokens): ``'key': problem``, or the problem alone."""
    try:
        server: McpServer = _table(McpServer, data, ())
    except Invalid as exc:
        key = ".".join(str(part) for part in exc.loc)
        raise ConfigError(f"'{key}': {exc.message}" if key else exc.message) from None
    return server


def describe_error(exc: Invalid) -> str:
    """One line for a problem ``validate`` found."""
    key = ".".join(str(part) for part in exc.loc) or "(top level)"
    if exc.unknown:
        return f"unknown key '{key}'"
    if exc.loc and exc.loc[-1] in UNSHOWN:
        return f"key '{key}': {exc.message}"
    shown = repr(exc.value) if not isinstance(exc.value, dict) else "a table"
    return f"key '{key}': {exc.message} (got {shown})"


def as_table(settings: Any) -> dict[str, Any]:
    """A settings object as nested dicts and lists, by TOML key (``mcp.import``)."""
    return {_key(f): _plain(getattr(settings, f.name)) for f in dataclasses.fields(settings)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return as_table(value)
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_plain(inner) for inner in value]
    return value


# The validator: each settings class becomes a plan, one function per key, built from
# the annotations and the fields' rules on first use. Every function takes a value
# and its location (the keys and list positions leading to it) and gives the value to
# keep, or raises Invalid for the first problem, in the order of the fields.

Location = tuple[Any, ...]
Check = Callable[[Any, Location], Any]


class Invalid(Exception):
    """The first problem in a table of settings: where (keys and list positions), what,
    and the value rejected; ``unknown`` for a key that is not a setting."""

    def __init__(self, loc: Location, message: str, value: Any, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.value = value
        self.unknown = unknown


@dataclass
class _Plan:
    checks: list[tuple[str, str, Check, bool]]
    """Attribute name, TOML key, check, and whether the key is required."""
    keys: frozenset[str]


_PLANS: dict[type, _Plan] = {}


def _key(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("key", f.name))


def _plan(cls: type) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        checks = [(f.name, _key(f), _check_for(hints[f.name], f.metadata),
                   f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
                  for f in dataclasses.fields(cls)]
        plan = _PLANS[cls] = _Plan(checks, frozenset(key for _, key, _, _ in checks))
    return plan


def _table(cls: type[Any], data: Any, loc: Location) -> Any:
    """A settings object of class ``cls`` from a table: each key in field order, then
    unknown keys, then the rules across keys (a class's ``_check``)."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise Invalid(loc, f"input should be a valid dictionary or instance of {cls.__name__}",
                      data)
    plan = _plan(cls)
    values = {}
    for name, key, check, required in plan.checks:
        if key in data:
            values[name] = check(data[key], (*loc, key))
        elif required:
            raise Invalid((*loc, key), "field required", data)
    for key, value in data.items():
        if key not in plan.keys:
            if not isinstance(key, str):
                raise Invalid((*loc, key), "keys should be strings", key)
            raise Invalid((*loc, key), "extra inputs are not permitted", value, unknown=True)
    made = cls(**values)
    whole = getattr(made, "_check", None)
    if whole is not None:
        try:
            whole()
        except ValueError as exc:
            raise Invalid(loc, _sentence(exc), data) from None
    return made


def _sentence(exc: ValueError) -> str:
    message = str(exc)
    return message[:1].lower() + message[1:]


def _check_for(hint: Any, rules: Mapping[str, Any]) -> Check:
    """The check of one annotation (with the field's rules, if any)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = _check_for(next(arg for arg in args if arg is not type(None)), rules)
        return lambda value, loc: None if value is None else inner(value, loc)
    base: Check
    if hint is bool:
        base = _boolean
    elif hint is int:
        base = _integer
    elif hint is float:
        base = _number
    elif hint is str:
        base = _string
    elif hint is Any:
        base = _anything
    elif origin is Literal:
        base = _choice(args)
    elif origin is list:
        base = _list(_check_for(args[0], {}))
    elif origin is dict:
        base = _dict(_check_for(args[1], {}))
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        base = _nested(hint)
    else:
        raise TypeError(f"no check for settings of type {hint!r}")
    return _with_rules(base, rules) if rules else base


def _nested(cls: type[Any]) -> Check:
    return lambda value, loc: _table(cls, value, loc)


def _with_rules(base: Check, rules: Mapping[str, Any]) -> Check:
    bounds = [(rules[name], test, words) for name, test, words in _BOUNDS if name in rules]
    least = rules.get("min_length")
    extra = rules.get("check")

    def check(value: Any, loc: Location) -> Any:
        result = base(value, loc)
        for bound, test, words in bounds:
            if not test(result, bound):
                raise Invalid(loc, f"input should be {words} {_number_text(bound)}", value)
        if least is not None and len(result) < least:
            raise Invalid(loc, _too_short(result, least), value)
        if extra is not None:
            try:
                extra(result)
            except ValueError as exc:
                raise Invalid(loc, _sentence(exc), value) from None
        return result
    return check


_BOUNDS: list[tuple[str, Callable[[Any, Any], bool], str]] = [
    ("gt", lambda value, bound: value > bound, "greater than"),
    ("ge", lambda value, bound: value >= bound, "greater than or equal to"),
    ("lt", lambda value, bound: value < bound, "less than"),
    ("le", lambda value, bound: value <= bound, "less than or equal to"),
]


def _number_text(bound: float) -> str:
    """A bound as errors write it: 86400, not 86400.0."""
    if isinstance(bound, float) and bound.is_integer():
        return str(int(bound))
    return str(bound)


def _too_short(value: Any, least: int) -> str:
    if isinstance(value, str):
        return f"string should have at least {least} character{'s' * (least != 1)}"
    return (f"list should have at least {least} item{'s' * (least != 1)} after validation, "
            f"not {len(value)}")


def _anything(value: Any, loc: Location) -> Any:
    return value


def _string(value: Any, loc: Location) -> str:
    if not isinstance(value, str):
        raise Invalid(loc, "input should be a valid string", value)
    return value


_TRUE = frozenset(("1", "on", "t", "true", "y", "yes"))
_FALSE = frozenset(("0", "off", "f", "false", "n", "no"))
_BOOL_WORDS = "input should be a valid boolean, unable to interpret input"


def _boolean(value: Any, loc: Location) -> bool:
    """A boolean, or a word or number standing for one: "yes", "off", 1, 0.0 (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise Invalid(loc, _BOOL_WORDS, value)
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if whole and -(2**63) <= value < 2**63:
        if value in (0, 1):
            return bool(value)
        raise Invalid(loc, _BOOL_WORDS, value)
    raise Invalid(loc, "input should be a valid boolean", value)


def _integer(value: Any, loc: Location) -> int:
    """An integer, strictly: not a bool, not a float (even 1.0), not a string."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(loc, "input should be a valid integer", value)
    return value


def _number(value: Any, loc: Location) -> float:
    """A finite float, or an integer (not a bool) made one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(loc, "input should be a valid number", value)
    try:
        number = float(value)
    except OverflowError:
        raise Invalid(loc, "input should be a valid number", value) from None
    if not math.isfinite(number):
        raise Invalid(loc, "input should be a finite number", value)
    return number


def _choice(choices: tuple[str, ...]) -> Check:
    shown = [repr(choice) for choice in choices]
    words = "input should be " + (" or ".join((", ".join(shown[:-1]), shown[-1]))
                                  if len(shown) > 1 else shown[0])

    def check(value: Any, loc: Location) -> Any:
        if not isinstance(value, str) or value not in choices:
            raise Invalid(loc, words, value)
        return value
    return check


def _list(item: Check) -> Check:
    def check(value: Any, loc: Location) -> list[Any]:
        if not isinstance(value, list):
            raise Invalid(loc, "input should be a valid list", value)
        return [item(inner, (*loc, index)) for index, inner in enumerate(value)]
    return check


def _dict(item: Check) -> Check:
    def check(value: Any, loc: Location) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise Invalid(loc, "input should be a valid dictionary", value)
        out = {}
        for key, inner in value.items():
            if not isinstance(key, str):
                raise Invalid((*loc, key, "[key]"), "input should be a valid string", key)
            out[key] = item(inner, (*loc, key))
        return out
    return check


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
