"""Hostile tool data: arguments nested too deeply, plugin results that cannot be
shown, nulls for optional parameters, and plugins that hang or write to file
descriptor 1. Each is one error (or one dropped null) for that call; the
process survives, the other calls of the reply run, the audit log gets its
lines and the saved session stays loadable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from openai_server import Call, text, tool_calls

from agentcli import tool
from agentcli.audit import redact
from agentcli.errors import InvalidArguments
from agentcli.executor import parse_arguments
from agentcli.nesting import MAX_DEPTH
from agentcli.sessions import SessionStore
from agentcli.tools.runner import Job, run_batch


def nested(depth: int) -> str:
    """A JSON object ``depth`` levels deep."""
    return '{"a":' * (depth - 1) + '{"a":1}' + "}" * (depth - 1)


def plugin_dir(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "plugins"
    directory.mkdir(exist_ok=True)
    for name, body in files.items():
        (directory / f"{name}.py").write_text(textwrap.dedent(body))
    return directory


def answers(server, request: int = 1) -> dict[str, str]:
    messages = server.requests[request].body["messages"]
    return {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}


def audit_lines(home: Path) -> list[dict]:
    path = home / "state" / "agentcli" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def saved_session(home: Path, stdout: str):
    """The session written by ``run --save --json``, loaded back."""
    session_id = json.loads(stdout)["session_id"]
    return SessionStore(home / "data" / "agentcli" / "sessions").load(session_id)


# ------------------------------------------------------------------ 1. deep arguments


def test_deep_arguments_are_one_error_each_and_the_other_call_runs(cli, server, run_args, home):
    server.enqueue(tool_calls(Call("calculator", nested(400), id="deep"),
                              Call("no_such_tool", nested(400), id="unknown"),
                              Call("calculator", {"expression": "2+3"}, id="fine"), split=10_000),
                   text("done"))
    result = cli("run", *run_args, "-y", "--save", "--json", "x")
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    got = answers(server)
    assert f"nested deeper than {MAX_DEPTH} levels" in got["deep"]
    assert got["unknown"].startswith("error: unknown tool 'no_such_tool'")
    assert got["fine"] == "5"
    out = json.loads(result.stdout)
    assert out["answer"] == "done"
    assert [c["status"] for c in out["tool_calls"]] == ["error", "error", "ok"]
    assert [e["tool"] for e in audit_lines(home)] == ["calculator", "no_such_tool", "calculator"]
    assert len(saved_session(home, result.stdout).messages) == 6


def test_deep_arguments_to_a_denied_tool_do_not_crash(cli, server, run_args, home, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[tools.policy]\ncalculator = "deny"\n')
    server.enqueue(tool_calls(Call("calculator", '{"expression": ' + nested(300) + "}", id="d"),
                              split=10_000), text("ok"))
    result = cli("run", *run_args, "--config", str(config), "x")
    assert result.code == 0, result.stderr
    assert "nested deeper than" in answers(server)["d"]
    assert len(audit_lines(home)) == 1


def test_the_depth_bound_is_exact():
    assert parse_arguments(nested(MAX_DEPTH)) is not None
    with pytest.raises(InvalidArguments, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_arguments(nested(MAX_DEPTH + 1))
    with pytest.raises(InvalidArguments, match="nested deeper"):
        parse_arguments(nested(100_000))


def test_redaction_of_any_depth_is_bounded():
    value: object = "sk-secret"
    for _ in range(5000):
        value = {"a": [value]}
    shown = json.dumps(redact(value, ["sk-secret"]))
    assert "[nested too deeply]" in shown and "sk-secret" not in shown


LOOPING_SCHEMA = """
    from agentcli import tool

    @tool(parameters={"type": "object", "allOf": [{"$ref": "#"}]})
    def loops(**kwargs) -> str:
        return "never"
"""

LOOP_ON_X = """
    from agentcli import tool

    @tool(parameters={"type": "object",
                      "properties": {"x": {"allOf": [{"$ref": "#/properties/x"}]}}})
    def loops_on_x(**kwargs) -> str:
        return "never"
"""


def test_a_schema_whose_ref_loops_is_a_load_error(cli, tmp_path):
    plugins = plugin_dir(tmp_path, loops=LOOPING_SCHEMA, good="""
        from agentcli import tool

        @tool
        def fine() -> str:
            return "ok"
    """)
    result = cli("tools", "check", str(plugins))
    assert result.code == 1
    assert "loops.py" in result.stdout and "refers to itself without end" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "1 tool(s), 1 problem(s)" in result.stderr


def test_a_ref_loop_met_only_by_some_arguments_is_an_error_result(cli, server, run_args, home,
                                                                tmp_path):
    plugins = plugin_dir(tmp_path, loops=LOOP_ON_X)
    server.enqueue(tool_calls(Call("loops_on_x", {"x": 1}, id="loop"),
                              Call("calculator", {"expression": "1+1"}, id="fine")), text("ok"))
    result = cli("run", *run_args, "--tools-dir", str(plugins), "-y", "--save", "--json", "x")
    assert result.code == 0, result.stderr
    got = answers(server)
    assert "refers to itself without end" in got["loop"] and got["fine"] == "2"
    assert len(audit_lines(home)) == 2
    saved_session(home, result.stdout)


# ------------------------------------------------------------------ 2. results that cannot be shown

UNSHOWABLE = """
    import time
    from agentcli import tool

    class Loud:
        def __str__(self):
            raise RuntimeError("no text for you")

    class Slow:
        def __str__(self):
            time.sleep(20)
            return "late"

    @tool
    def big_int() -> object:
        return 10 ** 5000

    @tool
    def self_list() -> object:
        box = [1]
        box.append(box)
        return box

    @tool
    def deep_dict() -> object:
        value = {}
        for _ in range(5000):
            value = {"a": value}
        return value

    @tool
    def bad_str() -> object:
        return {"x": Loud()}

    @tool(timeout=1)
    def slow_str() -> object:
        return Slow()

    @tool
    def fine() -> object:
        return {"ok": True}
"""


def test_unshowable_results_are_one_error_each(cli, server, run_args, home, tmp_path):
    plugins = plugin_dir(tmp_path, odd=UNSHOWABLE)
    names = ["big_int", "self_list", "deep_dict", "bad_str", "slow_str", "fine"]
    server.enqueue(tool_calls(*[Call(n, {}, id=n) for n in names]), text("done"))
    started = time.monotonic()
    result = cli("run", *run_args, "--tools-dir", str(plugins), "-y", "--save", "--json", "x")
    assert time.monotonic() - started < 15  # the sleeping __str__ is cut at 1 s
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    got = answers(server)
    unconvertible = "the tool's return value could not be converted to text"
    assert unconvertible in got["big_int"] and "more than 4,300 digits" in got["big_int"]
    assert unconvertible in got["self_list"] and "contains itself" in got["self_list"]
    assert unconvertible in got["deep_dict"] and f"nested deeper than {MAX_DEPTH}" in got["deep_dict"]
    assert unconvertible in got["bad_str"] and "RuntimeError: no text for you" in got["bad_str"]
    assert got["slow_str"].startswith("timed out after 1 s: slow_str did not finish")
    assert got["fine"] == '{"ok": true}'
    statuses = {c["name"]: c["status"] for c in json.loads(result.stdout)["tool_calls"]}
    assert statuses == {"big_int": "error", "self_list": "error", "deep_dict": "error",
                        "bad_str": "error", "slow_str": "timeout", "fine": "ok"}
    assert sorted(e["tool"] for e in audit_lines(home)) == sorted(names)
    assert len(saved_session(home, result.stdout).messages) == 9


@tool
def raises_unprintable() -> str:
    """Raise an exception whose message cannot be read."""
    class Odd(Exception):
        def __str__(self) -> str:
            raise ValueError("no")
    raise Odd()


def test_an_exception_whose_str_raises_is_still_an_error_result():
    results = [None]
    run_batch([Job(raises_unprintable, {}, 5)], results, max_parallel=1, max_output=1000)
    assert results[0].status == "error" and "Odd" in results[0].result


# ------------------------------------------------------------------ 11. nulls for optional parameters

NULLS = """
    from pydantic import BaseModel
    from agentcli import tool

    SCHEMA = {"type": "object", "required": ["n"], "properties": {
        "n": {"type": "number"},
        "mod": {"type": "number"},
        "opts": {"type": "object", "required": ["scale"], "properties": {
            "scale": {"type": "number"},
            "step": {"type": "integer"},
            "label": {"type": ["string", "null"]}}}}}

    @tool(parameters=SCHEMA)
    def hand(n, mod=10, opts=None) -> str:
        return repr((n, mod, opts))

    class Inner(BaseModel):
        a: int
        b: int = 3

    @tool
    def typed(x: int, mod: float = 1.5, inner: Inner | None = None) -> str:
        return repr((x, mod, inner.model_dump() if inner else None))
"""


def test_null_for_an_optional_parameter_means_not_given(cli, server, run_args, home, tmp_path):
    plugins = plugin_dir(tmp_path, nulls=NULLS)
    server.enqueue(tool_calls(
        Call("hand", {"n": 7, "mod": None}, id="top"),
        Call("hand", {"n": 1, "opts": {"scale": 2, "step": None, "label": None}}, id="nested"),
        Call("hand", {"n": None}, id="required"),
        Call("hand", {"n": 1, "opts": {"scale": None}}, id="nested_required"),
        Call("typed", {"x": 1, "mod": None, "inner": {"a": 2, "b": None}}, id="typed")),
        text("done"))
    result = cli("run", *run_args, "--tools-dir", str(plugins), "-y", "x")
    assert result.code == 0, result.stderr
    got = answers(server)
    assert got["top"] == "(7, 10, None)"
    assert got["nested"] == "(1, 10, {'scale': 2, 'label': None})"
    assert got["required"].startswith("error: invalid arguments for hand: n:")
    assert got["nested_required"].startswith("error: invalid arguments for hand: opts.scale:")
    assert got["typed"] == "(1, 1.5, {'a': 2, 'b': 3})"


def test_null_dropping_keeps_nulls_the_schema_allows():
    schema = {"type": "object", "properties": {
        "a": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "b": {"type": "number"},
        "c": {"enum": ["x", None]},
        "d": {},
        "e": {"type": "array", "items": {"$ref": "#/$defs/item"}}},
        "$defs": {"item": {"type": "object", "properties": {"k": {"type": "string"}}}}}
    checked = tool(name="t", parameters=schema)(lambda **kw: kw)
    given = {"a": None, "b": None, "c": None, "d": None, "e": [{"k": None}, {"k": "v"}]}
    assert checked.validate(given) == {"a": None, "c": None, "d": None, "e": [{}, {"k": "v"}]}
    assert given["b"] is None  # the model's own arguments are left as they were


# ------------------------------------------------------------------ 12. plugins that misbehave

HANGS = """
    import time
    time.sleep(60)
"""

GOOD = """
    from agentcli import tool

    @tool
    def fine() -> str:
        return "fine"
"""


def test_a_plugin_whose_import_hangs_is_a_load_error(cli, tmp_path):
    plugins = plugin_dir(tmp_path, hangs=HANGS, good=GOOD)
    config = tmp_path / "c.toml"
    config.write_text("[tools]\ntimeout = 1\n")
    started = time.monotonic()
    result = cli("tools", "check", "--config", str(config), str(plugins), timeout=20)
    assert time.monotonic() - started < 10
    assert result.code == 1
    assert f"{plugins / 'hangs.py'}: import did not finish within 1 s; skipped" in result.stdout
    assert "1 tool(s), 1 problem(s)" in result.stderr


def test_run_answers_despite_a_hanging_plugin(cli, server, run_args, tmp_path):
    plugins = plugin_dir(tmp_path, hangs=HANGS, good=GOOD)
    config = tmp_path / "c.toml"
    config.write_text("[tools]\ntimeout = 1\n")
    server.enqueue(tool_calls(Call("fine", {}, id="f")), text("all good"))
    result = cli("run", *run_args, "--config", str(config), "--tools-dir", str(plugins), "-y", "x",
                 timeout=20)
    assert result.code == 0, result.stderr
    assert result.stdout == "all good\n"
    assert "import did not finish within 1 s" in result.stderr
    assert answers(server)["f"] == "fine"


FD1 = """
    import os, subprocess, sys
    from agentcli import tool

    os.write(1, b"IMPORT-NOISE\\n")

    @tool
    def noisy() -> str:
        os.write(1, b"TOOL-NOISE\\n")
        subprocess.run([sys.executable, "-c", "print('CHILD-NOISE')"], check=True)
        return "quiet result"
"""


@pytest.mark.parametrize("as_json", [False, True])
def test_writes_to_file_descriptor_1_never_reach_the_answer(cli, server, run_args, home, tmp_path,
                                                            as_json):
    plugins = plugin_dir(tmp_path, noisy=FD1)
    server.enqueue(tool_calls(Call("noisy", {}, id="n"), Call("calculator", {"expression": "1+1"})),
                   text("the answer"))
    flags = ["--json"] if as_json else []
    result = cli("run", *run_args, "--tools-dir", str(plugins), "-y", *flags, "x")
    assert result.code == 0, result.stderr
    if as_json:
        assert json.loads(result.stdout)["answer"] == "the answer"
    else:
        assert result.stdout == "the answer\n"
    for noise in ("IMPORT-NOISE", "TOOL-NOISE", "CHILD-NOISE"):
        assert noise in result.stderr
    assert answers(server)["n"] == "quiet result"


BATCH_SCRIPT = """
import os, sys, threading, time
from agentcli import tool
from agentcli.tools.runner import Job, run_batch

@tool
def noisy() -> str:
    os.write(1, b"RAW\\n")
    print("PRINTED")
    time.sleep(0.3)
    return "done"

def other_thread():
    time.sleep(0.1)
    print("MAIN-PROGRAM", flush=True)

threading.Thread(target=other_thread).start()
results = [None]
printed = run_batch([Job(noisy, {}, 5)], results, max_parallel=1, max_output=1000)
sys.stderr.write(repr((printed, results[0].output, results[0].result)))
print("AFTER")
"""


def test_fd1_capture_keeps_the_programs_own_stdout():
    proc = subprocess.run([sys.executable, "-c", BATCH_SCRIPT], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "MAIN-PROGRAM\nAFTER\n"
    assert proc.stderr == repr(("RAW\n", "PRINTED\n", "done"))


@tool
def stubborn(seconds: float) -> str:
    """Sleep, ignoring any deadline."""
    time.sleep(seconds)
    return "woke"


def test_a_timed_out_sync_tool_is_said_to_maybe_still_run():
    results = [None]
    run_batch([Job(stubborn, {"seconds": 5}, 0.2)], results, max_parallel=1, max_output=1000)
    assert results[0].status == "timeout"
    assert results[0].result == ("timed out after 0.2 s: stubborn did not finish "
                                 "(it may still be running in the background)")
