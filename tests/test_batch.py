"""``agentcli batch``: many tasks from a JSONL file, run at once against the
scripted server, resumable, with one shared backoff."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import AGENTCLI
from openai_server import Call, Reply, error, slow, text, tool_calls

RESULT_KEYS = {"id", "status", "answer", "data", "error", "tool_calls", "usage", "duration_ms"}


class Echo(Reply):
    """Answers ``echo: <the last user message>``, whatever order requests arrive in."""

    def send(self, ex) -> None:
        text("echo: " + ex.request.body["messages"][-1]["content"]).send(ex)


def write_lines(path: Path, *lines: object) -> Path:
    with path.open("a") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def results(path: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return {str(line["id"]): line for line in lines}


def test_each_line_gets_a_result_and_a_bad_line_is_only_its_own_error(cli, server, run_args, tmp_path):
    tasks = write_lines(tmp_path / "in.jsonl", json.dumps("first"),
                        {"id": "b", "query": "second", "system": "be brief", "model": "other"},
                        "this is not json", {"id": "d", "query": 5}, {"id": "e", "colour": "red"})
    server.enqueue(Echo(), Echo())
    out = tmp_path / "out.jsonl"
    result = cli("batch", str(tasks), "-o", str(out), *run_args, "--no-tools")
    assert result.code == 1  # not every task was ok
    got = results(out)
    assert all(set(line) == RESULT_KEYS for line in got.values())
    assert got["line-1"]["status"] == "ok" and got["line-1"]["answer"] == "echo: first"
    assert got["b"]["answer"] == "echo: second"
    assert got["line-3"]["status"] == "error" and "line 3 is not JSON" in got["line-3"]["error"]
    assert '"query" must be a string' in got["d"]["error"]
    assert "unknown field 'colour'" in got["e"]["error"]
    sent = {r.body["messages"][-1]["content"]: r.body for r in server.requests}
    assert sent["second"]["model"] == "other"
    assert sent["second"]["messages"][0] == {"role": "system", "content": "be brief"}
    assert "batch: 2 ok, 3 failed (3 error)" in result.stderr


def test_hostile_lines_are_errors_for_those_lines_only(cli, server, run_args, tmp_path):
    tasks = write_lines(tmp_path / "in.jsonl", "[" * 100_000 + "]" * 100_000,
                        '{"query": ' + "9" * 5000 + "}", '{"id": "ok", "query": "fine"}')
    (tmp_path / "in.jsonl").open("ab").write(b'"\xff\xfe"\n')
    server.enqueue(Echo())
    result = cli("batch", str(tasks), *run_args, "--no-tools")
    lines = {line["id"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert lines["ok"]["status"] == "ok"
    assert [lines[f"line-{n}"]["status"] for n in (1, 2, 4)] == ["error"] * 3
    assert "not UTF-8" in lines["line-4"]["error"]
    assert "Traceback" not in result.stderr


def test_prompt_template_is_filled_from_vars(cli, server, run_args, tmp_path):
    tasks = write_lines(tmp_path / "in.jsonl", {"id": 1, "vars": {"word": "cat", "n": 2}},
                        {"id": 2, "vars": {"n": 3}})
    server.enqueue(Echo())
    result = cli("batch", str(tasks), *run_args, "--no-tools",
                 "--prompt", "Say {word} {n} times {{exactly}}")
    lines = {line["id"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert lines[1]["answer"] == "echo: Say cat 2 times {exactly}"
    assert lines[2]["status"] == "error" and "{word}" in lines[2]["error"]
    assert result.code == 1


def test_duplicate_ids_are_refused_before_anything_runs(cli, server, run_args, tmp_path):
    tasks = write_lines(tmp_path / "in.jsonl", {"id": "a", "query": "x"}, {"id": "b", "query": "y"},
                        {"id": "a", "query": "z"})
    out = tmp_path / "out.jsonl"
    result = cli("batch", str(tasks), "-o", str(out), *run_args)
    assert result.code == 2
    assert "line 3 repeats the id 'a' of line 1" in result.stderr
    assert server.requests == [] and not out.exists()


def test_the_same_command_again_skips_ids_already_written(cli, server, run_args, tmp_path):
    tasks = write_lines(tmp_path / "in.jsonl", {"id": "a", "query": "x"}, {"id": "b", "query": "y"})
    out = tmp_path / "out.jsonl"
    server.enqueue(Echo(), Echo(), Echo())
    assert cli("batch", str(tasks), "-o", str(out), *run_args, "--no-tools").code == 0
    with out.open("a") as handle:
        handle.write('{"id": "half a line from a cra')  # a crash in the middle of a line
    write_lines(tasks, {"id": "c", "query": "z"})
    result = cli("batch", str(tasks), "-o", str(out), *run_args, "--no-tools")
    assert result.code == 0, result.stderr
    assert len(server.requests) == 3 and server.requests[-1].body["messages"][-1]["content"] == "z"
    assert "2 skipped" in result.stderr
    lines = out.read_text().splitlines()
    assert lines[2].startswith('{"id": "half') and json.loads(lines[3])["id"] == "c"


def test_parallel_tasks_are_in_flight_together(cli, server, run_args, tmp_path):
    tasks = write_lines(tmp_path / "in.jsonl", *[f'"task {n}"' for n in range(4)])
    server.enqueue(*[slow(0.6, Echo()) for _ in range(4)])
    result = cli("batch", str(tasks), *run_args, "--no-tools", "--parallel", "4")
    assert result.code == 0, result.stderr
    arrivals = [r.at for r in server.requests]
    assert max(arrivals) - min(arrivals) < 0.5  # one at a time would take 0.6 s each


def test_a_429_pauses_every_worker(cli, server, run_args, tmp_path):
    # Each answer takes 0.3 s: without a shared wait, the three other workers
    # would go on sending a request every 0.3 s while the server asks to wait.
    tasks = write_lines(tmp_path / "in.jsonl", *[f'"task {n}"' for n in range(12)])
    server.enqueue(error(429, "slow down", headers={"Retry-After": "2"}),
                   *[slow(0.3, Echo()) for _ in range(12)])
    result = cli("batch", str(tasks), *run_args, "--no-tools", "--parallel", "4")
    assert result.code == 0, result.stderr
    limited = server.requests[0].at
    during = [r.at - limited for r in server.requests if 0.6 < r.at - limited < 1.8]
    assert during == []  # nobody sent anything while the server asked to wait
    assert len(result.stdout.splitlines()) == 12


def test_calls_that_would_ask_are_denied_unless_yes(cli, server, run_args, tmp_path):
    tasks = write_lines(tmp_path / "in.jsonl", '"add"')
    server.enqueue(tool_calls(Call("calculator", {"expression": "2+2"}, id="c1")), text("done"))
    denied = cli("batch", str(tasks), *run_args)
    line = json.loads(denied.stdout)
    assert line["tool_calls"][0]["status"] == "denied"
    assert "1 call(s) that would ask were denied" in denied.stderr
    server.enqueue(tool_calls(Call("calculator", {"expression": "2+2"}, id="c2")), text("done"))
    allowed = json.loads(cli("batch", str(tasks), *run_args, "--yes").stdout)
    assert allowed["tool_calls"][0]["status"] == "ok" and allowed["tool_calls"][0]["result"] == "4"


def test_policy_rules_decide_in_a_batch_whatever_yes_says(cli, server, run_args, tmp_path):
    tasks = write_lines(tmp_path / "in.jsonl", '"add and tell the time"')
    policy = tmp_path / "policy.toml"
    policy.write_text('[[tools.rules]]\ntool = "calculator"\naction = "auto"\n')
    server.enqueue(tool_calls(Call("calculator", {"expression": "2+2"}, id="c1"),
                              Call("current_time", {}, id="c2")), text("done"))
    result = cli("batch", str(tasks), *run_args, "--yes", "--policy", str(policy))
    calls = {c["name"]: c for c in json.loads(result.stdout)["tool_calls"]}
    assert calls["calculator"]["status"] == "ok" and calls["calculator"]["result"] == "4"
    assert calls["current_time"]["status"] == "denied"
    assert "no rule" in calls["current_time"]["result"]


def test_schema_applies_to_each_task(cli, server, run_args, tmp_path):
    tasks = write_lines(tmp_path / "in.jsonl", '"one"', '"two"')
    server.enqueue(text('{"n": 1}'), text("no"), text("still no"))
    result = cli("batch", str(tasks), *run_args, "--no-tools", "--parallel", "1",
                 "--schema", '{"type": "object", "required": ["n"]}')
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["status"], line["data"]) for line in lines] == [("ok", {"n": 1}), ("schema", None)]
    assert "response_format" in server.requests[0].body
    assert result.code == 1


def _spawn(tasks: Path, out: Path, run_args: list[str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen([*AGENTCLI, "batch", str(tasks), "-o", str(out), *run_args,
                             "--no-tools", *extra], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_processes_on_one_output_never_interleave_lines(server, run_args, tmp_path, home):
    big = "x" * 70_000  # larger than a pipe buffer: no single small write
    for name in "ab":
        write_lines(tmp_path / f"{name}.jsonl", *[{"id": f"{name}{n}", "query": big}
                                                   for n in range(15)])
    server.enqueue(*[Echo() for _ in range(30)])
    out = tmp_path / "out.jsonl"
    procs = [_spawn(tmp_path / f"{name}.jsonl", out, run_args) for name in "ab"]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(f"{c}{n}" for c in "ab" for n in range(15))
    assert all(line["answer"] == "echo: " + big for line in lines)


def test_ctrl_c_keeps_every_line_written_and_a_rerun_finishes(cli, server, run_args, tmp_path, home):
    tasks = write_lines(tmp_path / "in.jsonl", *[f'"task {n}"' for n in range(6)])
    server.enqueue(Echo(), *[slow(5, Echo()) for _ in range(5)])
    out = tmp_path / "out.jsonl"
    proc = _spawn(tasks, out, run_args, "--parallel", "1")
    deadline = time.monotonic() + 30
    while not (out.exists() and out.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted: the same command resumes it" in err
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["line-1"]
    server.requests.clear()
    server._queue.clear()
    server.enqueue(*[Echo() for _ in range(5)])
    rerun = cli("batch", str(tasks), "-o", str(out), *run_args, "--no-tools")
    assert rerun.code == 0 and len(server.requests) == 5
    assert len(out.read_text().splitlines()) == 6



def test_a_terminal_shows_a_progress_bar_and_a_pipe_only_the_summary(cli, server, run_args,
                                                                      tmp_path, home):
    import sys

    import pexpect

    tasks = write_lines(tmp_path / "in.jsonl", '"one"', "oops", '"three"')
    server.enqueue(slow(0.5, Echo()), slow(0.5, Echo()))
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    child = pexpect.spawn(sys.executable, ["-m", "agentcli", "batch", str(tasks), "-o",
                                           str(tmp_path / "out.jsonl"), *run_args, "--no-tools",
                                           "--parallel", "1"],
                          env=env, encoding="utf-8", timeout=30, dimensions=(40, 120))
    child.expect(r"1 failed")
    child.expect("ETA")
    child.expect(r"batch: 2 ok, 1 failed")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    server.enqueue(Echo(), Echo())
    piped = cli("batch", str(tasks), "-o", str(tmp_path / "again.jsonl"), *run_args, "--no-tools")
    assert "ETA" not in piped.stderr and piped.stderr.startswith("agentcli: batch: 2 ok, 1 failed")


def test_results_on_a_terminal_show_control_characters_visibly(cli, server, run_args, tmp_path,
                                                              home):
    import sys

    import pexpect

    tasks = write_lines(tmp_path / "in.jsonl", '"one"')
    server.enqueue(text("right\u202eleft"), text("right\u202eleft"))
    child = pexpect.spawn(sys.executable, ["-m", "agentcli", "batch", str(tasks), *run_args,
                                           "--no-tools"], env={**os.environ, "TERM": "xterm"},
                          encoding="utf-8", timeout=30)
    child.expect(pexpect.EOF)
    child.close()
    assert "right\\u202eleft" in child.before and "\u202e" not in child.before
    piped = cli("batch", str(tasks), *run_args, "--no-tools")
    assert json.loads(piped.stdout)["answer"] == "right\u202eleft"  # byte-exact when piped


def test_a_writer_waits_for_the_lock_held_by_another(server, run_args, tmp_path, home):
    import fcntl

    tasks = write_lines(tmp_path / "in.jsonl", '"one"')
    server.enqueue(Echo())
    out = tmp_path / "out.jsonl"
    with out.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process in the middle of its line
        proc = _spawn(tasks, out, run_args)
        deadline = time.monotonic() + 30
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        assert proc.poll() is None and out.read_text() == ""
        fcntl.flock(held, fcntl.LOCK_UN)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert json.loads(out.read_text())["answer"] == "echo: one"
