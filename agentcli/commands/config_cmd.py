"""``agentcli config show|path|init`` and ``agentcli trust``."""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from .. import paths, trust
from ..config import Settings, as_table
from ..errors import UsageError
from .common import CommonOptions, load_settings, reported, stderr

_SECRET = re.compile(r"(key|token|secret|password|passwd|authorization|auth|cookie)", re.I)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data and not prefix.endswith("extra_body."):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def _redact(key: str, value: Any) -> Any:
    leaf = key.rsplit(".", 1)[-1]
    if leaf != "api_key_env" and _SECRET.search(leaf) and value not in (None, ""):
        return "[redacted]"
    if isinstance(value, dict):
        return {k: _redact(k, v) for k, v in value.items()}
    return value


COMPUTED = {
    "model": "chosen when run: gpt-4o-mini on OpenAI, else the first model the server lists",
    "base_url": "chosen when run: OpenAI if the API key is set, else the first local "
                "server answering on 127.0.0.1 ports 11434, 8080, 1234, 8000",
}
"""Keys left unset whose effective value is worked out when a command runs."""


def describe(settings: Settings, sources: dict[str, str]) -> list[str]:
    """``key = value  # source`` lines, secrets redacted, the API key only as set/unset."""
    lines = []
    for key, value in _flatten(as_table(settings)).items():
        shown = json.dumps(_redact(key, value), ensure_ascii=False)
        source = sources.get(key, "default")
        if value is None and key in COMPUTED:
            source = f"{source}; {COMPUTED[key]}"
        lines.append(f"{key} = {shown}  # {source}")
    var = settings.api_key_env or "OPENAI_API_KEY"
    state = "set" if settings.api_key() else "not set"
    lines.append(f"api_key = [{state}]  # from ${var}, never shown")
    return lines


def show(config: Path | None, profile: str | None) -> int:
    console = stderr(CommonOptions())
    with reported(verbose=False) as code:
        loaded = load_settings(CommonOptions(config=config, profile=profile), console)
        print("\n".join(describe(loaded.settings, loaded.sources)))
        if loaded.files:
            console.print("files read: " + ", ".join(loaded.files))
    return code[0]


def show_paths() -> int:
    env_file = os.environ.get("AGENTCLI_CONFIG")
    rows = [("user config", paths.user_config_file()), ("project config", Path.cwd() / "agentcli.toml"),
            ("user tools", paths.config_dir() / "tools.d"), ("sessions", paths.sessions_dir()),
            ("audit log", paths.audit_log()), ("trusted dirs", paths.trust_file()),
            ("chat history", paths.history_file())]
    if env_file:
        rows.insert(2, ("$AGENTCLI_CONFIG", Path(env_file)))
    for label, path in rows:
        print(f"{label + ':':16} {path}")
    return 0


def init(force: bool) -> int:
    target = paths.user_config_file()
    with reported(verbose=False) as code:
        if target.exists() and not force:
            raise UsageError(f"{target} already exists (use --force to overwrite it)")
        target.parent.mkdir(parents=True, exist_ok=True)
        text = resources.files("agentcli").joinpath("config.example.toml").read_text("utf-8")
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target}")
    return code[0]


def trust_command(directory: Path | None, list_: bool, revoke: Path | None) -> int:
    with reported(verbose=False) as code:
        if list_:
            for entry in trust.trusted_dirs():
                print(entry)
        elif revoke is not None:
            if trust.revoke(revoke):
                print(f"no longer trusted: {revoke.resolve()}")
            else:
                print(f"{revoke.resolve()} was not trusted")
        else:
            print(f"trusted: {trust.trust(directory or Path.cwd())}")
    return code[0]
