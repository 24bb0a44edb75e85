"""Scoped approvals in ``agentcli chat`` (a real pseudo-terminal) and the
untrusted-content switch, against loopback HTTP servers and the scripted model."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_server import TEXT, LoopbackServer
from openai_server import Call, text, tool_calls
from test_chat import QUESTION, chat, last_tool_message, plain  # noqa: F401  (fixture)


@pytest.fixture
def two() -> Iterator[tuple[LoopbackServer, LoopbackServer]]:
    with LoopbackServer() as first, LoopbackServer() as second:
        yield first, second


def http_config(tmp_path: Path, *servers: LoopbackServer, extra: str = "") -> Path:
    hosts = ", ".join(f'"127.0.0.1:{s.port}"' for s in servers)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[http]\nallow_hosts = [{hosts}]\ntimeout = 5.0\n{extra}")
    return cfg


def get(srv: LoopbackServer, path: str = "/text") -> Call:
    return Call("http_get", {"url": srv.url(path)})


def test_always_approves_one_host_and_a_second_host_still_asks(chat, server, tmp_path, two):
    first, second = two
    cfg = http_config(tmp_path, first, second)
    server.enqueue(tool_calls(get(first)), tool_calls(get(first, "/json")),
                   tool_calls(get(second)), text("fetched"),
                   tool_calls(get(first)), text("asked again"))
    session = chat("--config", str(cfg))
    session.say("fetch")
    session.expect(re.escape(f"[a]lways for http://127.0.0.1:{first.port}"))
    session.expect(QUESTION)
    session.key("a")
    session.expect(re.escape(f"[a]lways for http://127.0.0.1:{second.port}"))
    session.expect(QUESTION)
    session.key("y")
    session.expect("fetched")
    assert plain(session.screen).count("always for: ") == 2  # /json on the first host: no panel
    assert len(first.requests) == 2 and len(second.requests) == 1
    assert TEXT in last_tool_message(server, 3)["content"]
    session.say("/approve")
    session.expect(f"http_get for http://127.0.0.1:{first.port}")
    session.say("/approve reset")
    session.expect("forgotten")
    session.say("again")
    session.expect(QUESTION)  # the scope was forgotten: the first host asks again
    session.key("n")
    session.expect("Reason")
    session.say("")
    session.expect("asked again")
    assert len(first.requests) == 2
    assert session.exit() == 0


def test_a_post_after_a_fetched_page_asks_again_and_the_panel_says_why(chat, server, tmp_path,
                                                                     two):
    first, _ = two
    cfg = http_config(tmp_path, first, extra='[tools.policy]\nhttp_get = "auto"\n'
                                             'http_post = "auto"\n')
    post = Call("http_post", {"url": first.url("/echo"), "json": {"a": 1}})
    server.enqueue(tool_calls(post), tool_calls(get(first)), tool_calls(post), tool_calls(post),
                   text("posted"))
    session = chat("--config", str(cfg))
    session.say("go")
    before = plain(session.expect(QUESTION))
    assert [r.method for r in first.requests] == ["POST", "GET"]  # both ran without asking
    assert "asks again: http_post changes things" in before
    session.key("a")
    session.expect("asks again")  # even after "always", outside text keeps it asking
    session.expect(QUESTION)
    session.key("y")
    session.expect("posted")
    assert [r.method for r in first.requests] == ["POST", "GET", "POST", "POST"]
    assert session.exit() == 0


def test_untrusted_content_turns_auto_into_ask_without_a_terminal(cli, server, run_args,
                                                                 tmp_path, two):
    first, _ = two
    cfg = http_config(tmp_path, first, extra='[tools.policy]\nhttp_get = "auto"\n'
                                             'http_post = "auto"\n')
    post = Call("http_post", {"url": first.url("/echo"), "data": "x=1"}, id="p2")
    server.enqueue(tool_calls(Call("http_post", {"url": first.url("/echo"), "data": "x=1"}, id="p1")),
                   tool_calls(get(first)), tool_calls(post), text("done"))
    result = cli("run", *run_args, "--config", str(cfg), "go")
    assert result.code == 0, result.stderr
    messages = server.requests[3].body["messages"]
    results = [m["content"] for m in messages if m["role"] == "tool"]
    assert "x=1" in results[0]  # the first post ran: no outside text yet
    assert results[2] == "denied: no one was there to approve it"
    assert [r.method for r in first.requests] == ["POST", "GET"]


def test_a_rule_allowing_the_post_keeps_it_running_and_piped_stdin_counts_as_outside(
        cli, server, run_args, tmp_path, two):
    first, _ = two
    rule = (f'[tools.policy]\nhttp_post = "auto"\n\n[[tools.rules]]\ntool = "http_post"\n'
            f'args = {{ url = "http://127.0.0.1:{first.port}/echo" }}\naction = "auto"\n')
    plain_auto = http_config(tmp_path, first, extra='[tools.policy]\nhttp_post = "auto"\n')
    plain_auto = plain_auto.rename(tmp_path / "auto.toml")
    allowed = http_config(tmp_path, first, extra=rule)
    post = Call("http_post", {"url": first.url("/echo"), "data": "y=2"})
    server.enqueue(tool_calls(post), text("one"), tool_calls(post), text("two"))
    assert cli("run", *run_args, "--config", str(allowed), "go", input="page text").code == 0
    assert cli("run", *run_args, "--config", str(plain_auto), "go", input="page text").code == 0
    assert len(first.requests) == 1  # the rule let the first post run; the second asked
    last = [m for m in server.requests[3].body["messages"] if m["role"] == "tool"][-1]
    assert last["content"] == "denied: no one was there to approve it"


def test_a_resumed_session_with_a_fetched_page_still_counts_as_outside(cli, server, run_args,
                                                                       tmp_path, two):
    first, _ = two
    cfg = http_config(tmp_path, first, extra='[tools.policy]\nhttp_get = "auto"\n'
                                             'http_post = "auto"\n')
    server.enqueue(tool_calls(get(first)), text("fetched"),
                   tool_calls(Call("http_post", {"url": first.url("/echo"), "data": "z=3"})),
                   text("done"))
    saved = cli("run", *run_args, "--config", str(cfg), "--save", "--json", "fetch")
    session = json.loads(saved.stdout)["session_id"]
    assert cli("run", *run_args, "--config", str(cfg), "--session", session, "post").code == 0
    assert [r.method for r in first.requests] == ["GET"]  # the post asked; no one was there
    last = [m for m in server.requests[3].body["messages"] if m["role"] == "tool"][-1]
    assert last["content"] == "denied: no one was there to approve it"
