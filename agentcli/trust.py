"""Which directories the user trusts to supply ``./tools.d`` and ``./agentcli.toml``.

A cloned repository can carry plugins (code) and a config; they are used only
once the user has said the directory is trusted. The list lives in
``$XDG_CONFIG_HOME/agentcli/trusted.json`` as resolved absolute paths.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import paths
from .errors import ConfigError


def _read() -> list[str]:
    file = paths.trust_file()
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file}: cannot read the list of trusted directories ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("trusted"), list):
        raise ConfigError(f"{file}: expected an object with a 'trusted' list")
    return [str(p) for p in data["trusted"]]


def _write(dirs: list[str]) -> None:
    file = paths.trust_file()
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"trusted": sorted(set(dirs))}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, file)


def is_trusted(directory: Path) -> bool:
    """True if ``directory`` (resolved) was trusted by the user."""
    return str(directory.resolve()) in _read()


def trust(directory: Path) -> Path:
    resolved = directory.resolve()
    if not resolved.is_dir():
        raise ConfigError(f"{directory}: not a directory")
    _write([*_read(), str(resolved)])
    return resolved


def revoke(directory: Path) -> bool:
    """Forget ``directory``; False if it was not trusted."""
    resolved = str(directory.resolve())
    dirs = _read()
    if resolved not in dirs:
        return False
    _write([d for d in dirs if d != resolved])
    return True


def trusted_dirs() -> list[str]:
    return sorted(_read())


def first_notice(directory: Path, kind: str) -> bool:
    """True the first time notice ``kind`` is due for ``directory``; later False.

    What was said is remembered in the state directory; if that cannot be read
    or written, the notice is given every time rather than never.
    """
    file = paths.notices_file()
    key = f"{kind}:{directory.resolve()}"
    try:
        seen = json.loads(file.read_text(encoding="utf-8")).get("seen", [])
    except (OSError, ValueError, AttributeError):
        seen = []
    if not isinstance(seen, list):
        return True
    if key in seen:
        return False
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"seen": [*seen, key]}, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, file)
    except OSError:
        pass
    return True
