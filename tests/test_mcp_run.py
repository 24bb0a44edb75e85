"""MCP tools through ``agentcli run``: real MCP servers (the SDK's own server side)
on loopback, the real command, the scripted model server."""

from __future__ import annotations

import json
from pathlib import Path

from mcp_fixtures import mcp_http, write_config  # noqa: F401  (fixture)
from openai_server import Call, text, tool_calls


def tool_messages(body: dict) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in body["messages"] if m["role"] == "tool"}


def http_config(home: Path, urls: dict[str, str], extra: str = "") -> None:
    write_config(home, f'[mcp.servers.web]\nurl = "{urls["normal"]}"\n'
                       'headers = { X-Home = "${HOME}" }\nexclude = ["hidden"]\n'
                       f'[mcp.servers.media]\nurl = "{urls["media"]}"\n{extra}')


def test_the_model_calls_an_mcp_tool_and_gets_its_result(cli, home, server, run_args, mcp_http):
    http_config(home, mcp_http)
    server.enqueue(tool_calls(Call("web__add", {"a": 2, "b": 40}, id="c1"),
                              Call("web__echo", {"text": "hi"}, id="c2")), text("42"))
    result = cli("run", *run_args, "--yes", "--json", "add")
    assert result.code == 0, result.stderr
    offered = [t["function"] for t in server.requests[0].body["tools"]]
    names = [f["name"] for f in offered]
    assert {"web__add", "web__echo", "media__snapshot"} <= set(names)
    assert "web__hidden" not in names  # exclude
    add = next(f for f in offered if f["name"] == "web__add")
    assert add["description"] == "Add two integers."
    assert set(add["parameters"]["required"]) == {"a", "b"}
    assert tool_messages(server.requests[1].body) == {"c1": '{"total": 42}', "c2": "echo: hi"}
    out = json.loads(result.stdout)
    assert [c["status"] for c in out["tool_calls"]] == ["ok", "ok"]
    audit = (home / "state" / "agentcli" / "audit.jsonl").read_text()
    assert '"web__add"' in audit


def test_names_are_fitted_to_the_api_rule_with_a_stable_hash(cli, home, server, run_args,
                                                             mcp_http):
    http_config(home, mcp_http)
    server.enqueue(text("a"), text("b"))
    assert cli("run", *run_args, "x").code == 0
    assert cli("run", *run_args, "y").code == 0
    first, second = ([t["function"]["name"] for t in r.body["tools"]] for r in server.requests)
    fitted = [n for n in first if n.startswith("web__find_docs_")]
    assert len(fitted) == 1 and fitted == [n for n in second if n.startswith("web__find_docs_")]
    assert all(len(n) <= 64 and n.replace("_", "").replace("-", "").isalnum() for n in first)


def test_images_errors_and_links_reach_the_model_as_text(cli, home, server, run_args, mcp_http):
    http_config(home, mcp_http)
    server.enqueue(tool_calls(Call("media__snapshot", {}, id="img"),
                              Call("media__broken", {"reason": "no disk"}, id="err"),
                              Call("media__link", {}, id="lnk")), text("seen"))
    result = cli("run", *run_args, "--yes", "--json", "look")
    assert result.code == 0, result.stderr
    answers = tool_messages(server.requests[1].body)
    assert answers["img"] == "the chart\n[image: image/png, 12,345 bytes]"
    assert answers["err"] == "error: cannot do that: no disk"
    assert answers["lnk"] == "[report](file:///srv/report.pdf) (application/pdf)"
    statuses = {c["id"]: c["status"] for c in json.loads(result.stdout)["tool_calls"]}
    assert statuses == {"img": "ok", "err": "error", "lnk": "ok"}


def test_mcp_tools_obey_policies_and_argument_validation(cli, home, server, run_args, mcp_http):
    http_config(home, mcp_http, '[tools.policy]\nweb__echo = "deny"\n')
    server.enqueue(tool_calls(Call("web__echo", {"text": "x"}, id="d"),
                              Call("web__add", {"a": "two", "b": 1}, id="v"),
                              Call("media__snapshot", {}, id="ask")), text("ok"))
    result = cli("run", *run_args, "--json", "try")  # stdin is not a terminal: "ask" is denied
    assert result.code == 0, result.stderr
    statuses = {c["id"]: c["status"] for c in json.loads(result.stdout)["tool_calls"]}
    assert statuses == {"d": "denied", "v": "error", "ask": "denied"}
    assert "a: 'two' is not of type 'integer'" in tool_messages(server.requests[1].body)["v"]


def test_tools_list_shows_the_server_as_source(cli, home, mcp_http):
    http_config(home, mcp_http)
    result = cli("tools", "list", "--json")
    assert result.code == 0, result.stderr
    sources = {t["name"]: t["source"] for t in json.loads(result.stdout)}
    assert sources["web__echo"] == "mcp:web" and sources["media__link"] == "mcp:media"
    assert sources["calculator"] == "builtin"


def test_an_unset_variable_in_headers_is_one_line_and_the_rest_works(cli, home, server,
                                                                    run_args, mcp_http):
    write_config(home, f'[mcp.servers.web]\nurl = "{mcp_http["normal"]}"\n'
                       'headers = { Authorization = "Bearer ${NO_SUCH_TOKEN_VAR}" }\n')
    server.enqueue(tool_calls(Call("calculator", {"expression": "2+2"}, id="c")), text("4"))
    result = cli("run", *run_args, "--yes", "sum")
    assert result.code == 0, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("agentcli: MCP server web")]
    assert len(lines) == 1 and "NO_SUCH_TOKEN_VAR is not set" in lines[0]
    assert "web.log" in lines[0]
    assert tool_messages(server.requests[1].body) == {"c": "4"}


def test_a_changed_tool_list_is_read_again_before_the_next_request(cli, home, server, run_args,
                                                                   mcp_http):
    write_config(home, f'[mcp.servers.live]\nurl = "{mcp_http["changer"]}"\n')
    server.enqueue(tool_calls(Call("live__grow", {}, id="g")),
                   tool_calls(Call("live__extra", {"word": "new"}, id="e")), text("done"))
    result = cli("run", *run_args, "--yes", "grow")
    assert result.code == 0, result.stderr
    names = [[t["function"]["name"] for t in r.body["tools"]] for r in server.requests]
    assert "live__extra" not in names[0]
    assert "live__extra" in names[1]
    assert tool_messages(server.requests[2].body)["e"] == "extra: new"


def test_two_tools_fitted_to_one_name_are_reported(cli, home, server, run_args, mcp_http):
    write_config(home, f'[mcp.servers.m]\nurl = "{mcp_http["media"]}"\n'
                       f'[mcp.servers.m__x]\nurl = "{mcp_http["normal"]}"\n')
    server.enqueue(text("ok"))
    result = cli("run", *run_args, "hi")
    assert result.code == 0, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if "m__x__echo" in ln]
    assert len(lines) == 1 and "m/x__echo" in lines[0] and "m__x/echo" in lines[0]
    names = [t["function"]["name"] for t in server.requests[0].body["tools"]]
    assert names.count("m__x__echo") == 1


def test_a_long_error_from_a_server_is_capped_like_any_output(cli, home, server, run_args,
                                                             mcp_http):
    http_config(home, mcp_http, "[tools]\nmax_output = 1000\n")
    server.enqueue(tool_calls(Call("media__broken", {"reason": "x" * 50_000}, id="big")),
                   text("ok"))
    result = cli("run", *run_args, "--yes", "go")
    assert result.code == 0, result.stderr
    answer = tool_messages(server.requests[1].body)["big"]
    assert answer.startswith("error: cannot do that: xxx")
    assert len(answer) < 1200 and "output truncated" in answer


def test_after_an_mcp_result_only_read_only_tools_run_unasked(cli, home, server, run_args,
                                                             mcp_http):
    # an MCP result is outside text; a tool the server does not mark read-only then asks again
    http_config(home, mcp_http, '[tools.policy]\nweb__echo = "auto"\nweb__add = "auto"\n')
    server.enqueue(tool_calls(Call("web__echo", {"text": "hi"}, id="c1")),
                   tool_calls(Call("web__echo", {"text": "again"}, id="c2"),
                              Call("web__add", {"a": 1, "b": 2}, id="c3")), text("done"))
    result = cli("run", *run_args, "--json", "go")
    assert result.code == 0, result.stderr
    status = {c["id"]: c["status"] for c in json.loads(result.stdout)["tool_calls"]}
    assert status == {"c1": "ok", "c2": "denied", "c3": "ok"}
