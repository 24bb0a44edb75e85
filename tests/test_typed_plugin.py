"""The README's plugin example type-checks with ``mypy --strict`` against agentcli
as an installed package: agentcli ships ``py.typed`` and a typed ``@tool``."""

import importlib.util
import re
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def readme_plugin_example() -> str:
    """The first ```python block of the README that imports ``tool`` from agentcli."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return next(b for b in blocks if "from agentcli import tool" in b)


def fake_install(tmp_path: Path) -> Path:
    """A bare venv whose site-packages holds agentcli (via a .pth path entry) and this
    venv's packages, so mypy treats agentcli as installed and needs its py.typed."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(env)}))
    lines = [str(ROOT), *site.getsitepackages()]
    (purelib / "agentcli-src.pth").write_text("\n".join(lines) + "\n")
    return env / "bin" / "python"


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None,
                    reason="mypy is not installed (pip install -e '.[dev]')")
def test_readme_plugin_example_passes_mypy_strict(tmp_path: Path) -> None:
    example = tmp_path / "weather.py"
    example.write_text(readme_plugin_example())
    python = fake_install(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--python-executable", str(python), str(example)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
