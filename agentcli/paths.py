"""Where agentcli keeps its files, following the XDG base directory spec."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var, "")
    return Path(value) if value else Path.home() / fallback


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/agentcli``: config.toml, the user's tools.d, trusted dirs."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "agentcli"


def data_dir() -> Path:
    """``$XDG_DATA_HOME/agentcli``: saved sessions and the REPL history."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "agentcli"


def state_dir() -> Path:
    """``$XDG_STATE_HOME/agentcli``: the audit log."""
    return _xdg("XDG_STATE_HOME", ".local/state") / "agentcli"


def user_config_file() -> Path:
    return config_dir() / "config.toml"


def sessions_dir() -> Path:
    return data_dir() / "sessions"


def audit_log() -> Path:
    return state_dir() / "audit.jsonl"


def trust_file() -> Path:
    return config_dir() / "trusted.json"


def history_file() -> Path:
    """The input history of ``agentcli chat``."""
    return data_dir() / "history"


def notices_file() -> Path:
    """Which one-time notices were already given (see ``trust.first_notice``)."""
    return state_dir() / "notices.json"
