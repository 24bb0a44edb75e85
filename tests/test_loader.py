"""Plugin loading: each file on its own, broken files reported and skipped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from agentcli.tools.loader import load_dir
from agentcli.tools.registry import ToolRegistry

GOOD = '''from agentcli import tool

@tool
def {name}(x: int) -> int:
    """Double x."""
    return x * 2
'''


def plugin(directory: Path, filename: str, text: str | bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize("body, line, message", [
    ("x = 1\ndef broken(:\n", 2, "syntax error"),
    ("import json\nimport no_such_module_here\n", 2, "ModuleNotFoundError"),
    ("\n\nraise RuntimeError('boom')\n", 3, "RuntimeError: boom"),
    ("import sys\nsys.exit(3)\n", 2, "sys.exit(3)"),
    ("raise KeyboardInterrupt\n", 1, "KeyboardInterrupt"),
    ("from agentcli import tool\n\n@tool(name='bad name')\ndef f() -> str:\n    return ''\n", 3,
     "invalid tool name"),
])
def test_a_broken_file_is_reported_with_its_line_and_the_rest_load(tmp_path, body, line, message):
    bad = plugin(tmp_path, "bad.py", body)
    plugin(tmp_path, "good.py", GOOD.format(name="double"))
    report = load_dir(tmp_path)
    assert [t.name for t in report.tools] == ["double"]
    assert len(report.errors) == 1
    text = str(report.errors[0])
    assert text.startswith(f"{bad}:{line}: ") and message in text


def test_skipped_files(tmp_path):
    plugin(tmp_path, "_private.py", GOOD.format(name="private"))
    plugin(tmp_path, "x.py~", GOOD.format(name="backup"))
    plugin(tmp_path, ".#x.py", GOOD.format(name="lock"))
    plugin(tmp_path / "__pycache__", "c.py", GOOD.format(name="cache"))
    plugin(tmp_path, "notes.txt", "hello")
    report = load_dir(tmp_path)
    assert report.tools == [] and report.errors == []


def test_non_utf8_file_is_reported_and_skipped(tmp_path):
    plugin(tmp_path, "latin.py", b"# caf\xe9\nx = 1\n")
    report = load_dir(tmp_path)
    assert "not UTF-8" in str(report.errors[0])


def test_plugin_named_like_a_module_does_not_shadow_it(tmp_path):
    plugin(tmp_path, "json.py", GOOD.format(name="from_json_py"))
    before = sys.modules["json"]
    report = load_dir(tmp_path)
    assert [t.name for t in report.tools] == ["from_json_py"]
    assert sys.modules["json"] is before
    assert str(tmp_path) not in sys.path


def test_output_at_import_is_captured(tmp_path, capsys):
    plugin(tmp_path, "loud.py", "print('hello from plugin')\n" + GOOD.format(name="loud"))
    report = load_dir(tmp_path)
    assert capsys.readouterr().out == ""
    assert "hello from plugin" in report.output[0]


def test_more_local_plugin_wins_with_a_warning_and_builtins_cannot_be_taken(tmp_path):
    from agentcli.tools.builtins import builtin_tools
    user, local = tmp_path / "user", tmp_path / "local"
    plugin(user, "a.py", GOOD.format(name="shared"))
    plugin(local, "b.py", GOOD.format(name="shared"))
    plugin(local, "c.py", GOOD.format(name="calculator"))
    registry = ToolRegistry()
    registry.extend(builtin_tools())
    report = load_dir(user)
    load_dir(local, report)
    registry.extend(report.tools)
    assert registry.get("shared").source == str(local / "b.py")
    assert registry.get("calculator").source == "builtin"
    warnings = "\n".join(registry.warnings)
    assert str(user / "a.py") in warnings and str(local / "b.py") in warnings
    assert "built in" in warnings


def test_an_invalid_handwritten_schema_is_reported_and_the_tool_skipped(tmp_path):
    bad = plugin(tmp_path, "schema.py", "from agentcli import tool\n\n"
                 "@tool(parameters={'type': 'object', 'properties': {'n': {'type': 'integr'}}})\n"
                 "def f(n):\n    return n\n")
    plugin(tmp_path, "good.py", GOOD.format(name="double"))
    report = load_dir(tmp_path)
    assert [t.name for t in report.tools] == ["double"]
    text = str(report.errors[0])
    assert text.startswith(f"{bad}:3: ") and "invalid JSON schema" in text
