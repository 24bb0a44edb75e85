"""``http_get`` / ``http_post``: SSRF refusals, redirects, limits and results.

Everything goes to servers on 127.0.0.1 started here; names other than IP
literals are answered by fake resolvers, and a "public" address is reached by
patching httpcore2's socket backend so that nothing leaves the machine.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpcore2
import pytest
from http_server import PNG, TEXT, LoopbackServer
from openai_server import Call, text, tool_calls

from agentcli.config import HttpSettings
from agentcli.errors import ConfigError, InvalidArguments, ToolError
from agentcli.tools.http import MAX_REDIRECTS, http_tools
from agentcli.tools.netguard import (
    AllowList,
    HostPolicy,
    HttpFailed,
    HttpRefused,
    HttpTimeout,
    classify,
)

SECRET = "sk-test-0123456789abcdef"


@pytest.fixture
def srv() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


def settings(srv: LoopbackServer | None = None, *extra: str, **kw: Any) -> HttpSettings:
    hosts = ([f"127.0.0.1:{srv.port}"] if srv else []) + list(extra)
    return HttpSettings(allow_hosts=hosts, **{"timeout": 5.0, **kw})


def call(config: HttpSettings, name: str = "http_get", *, resolver: Any = None,
         secrets: list[str] | None = None, **arguments: Any) -> str:
    """Validate (the pre-approval checks) and run one tool call, as the agent does."""
    tools = {t.name: t for t in http_tools(config, secrets=secrets or [], resolver=resolver)}
    chosen = tools[name]
    return chosen(**chosen.validate(arguments))


class FakeResolver:
    """Answers per name, one answer (a list of addresses) per call; the last repeats."""

    def __init__(self, **answers: list[list[str]]) -> None:
        self.answers = {name.replace("_", "."): list(a) for name, a in answers.items()}
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        queue = self.answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]


def forbid_resolution(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} was resolved although the call should be refused first")


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connect httpcore2 makes, recorded (and still carried out)."""
    seen: list[tuple[str, int]] = []
    real = httpcore2.SyncBackend.connect_tcp

    def record(self: Any, host: str, port: int, *args: Any, **kw: Any) -> Any:
        seen.append((host, port))
        return real(self, host, port, *args, **kw)
    monkeypatch.setattr(httpcore2.SyncBackend, "connect_tcp", record)
    return seen


@pytest.fixture
def internet(monkeypatch: pytest.MonkeyPatch, srv: LoopbackServer) -> list[tuple[str, int]]:
    """A pretend internet: every connection to port 80 lands on the loopback server."""
    seen: list[tuple[str, int]] = []
    real = httpcore2.SyncBackend.connect_tcp

    def route(self: Any, host: str, port: int, *args: Any, **kw: Any) -> Any:
        seen.append((host, port))
        return real(self, "127.0.0.1", srv.port, *args, **kw)
    monkeypatch.setattr(httpcore2.SyncBackend, "connect_tcp", route)
    return seen


# --- the address classifier ---------------------------------------------------------------

@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("10.1.2.3", "private"),
    ("172.16.0.1", "private"), ("172.31.255.254", "private"), ("192.168.1.1", "private"),
    ("100.64.0.1", "CGNAT"), ("169.254.169.254", "link-local"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("240.0.0.1", "reserved"), ("255.255.255.255", "broadcast"),
    ("192.0.2.1", "special-use"), ("::1", "loopback"), ("::", "unspecified"),
    ("fc00::1", "unique-local"), ("fd12::1", "unique-local"), ("fe80::1", "link-local"),
    ("fe80::1%2", "link-local"), ("fec0::1", "site-local"), ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback, embedded IPv4 127.0.0.1"),
    ("::ffff:10.0.0.1", "private, embedded IPv4 10.0.0.1"),
    ("::ffff:169.254.169.254", "link-local, embedded"),
    ("::ffff:0:7f00:1", "loopback, embedded IPv4 127.0.0.1"),  # SIIT IPv4-translated
    ("::127.0.0.1", "loopback, embedded IPv4 127.0.0.1"),
    ("::10.0.0.1", "private, embedded IPv4 10.0.0.1"),
    ("2002:7f00:1::", "loopback, embedded IPv4 127.0.0.1"),
    ("2002:0a00:0001::", "private, embedded IPv4 10.0.0.1"),
    ("64:ff9b::7f00:1", "loopback, embedded IPv4 127.0.0.1"),
    ("64:ff9b::a00:1", "private, embedded IPv4 10.0.0.1"),
    ("64:ff9b:1::a9fe:a9fe", "link-local, embedded IPv4 169.254.169.254"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
    # Teredo: the client is the last 32 bits XOR 0xffffffff: 80ff:fffe -> 7f00:0001
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback, embedded IPv4 127.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private, embedded IPv4 10.0.0.1"),
    # ISATAP: the interface id ::0:5efe:a.b.c.d (or ::200:5efe:...) carries the IPv4 address
    ("2600::5efe:7f00:1", "loopback, embedded IPv4 127.0.0.1"),
    ("2600::200:5efe:a00:1", "private, embedded IPv4 10.0.0.1"),
])
def test_non_public_addresses_are_classified(address: str, kind: str) -> None:
    found = classify(ipaddress.ip_address(address))
    assert found is not None and kind in found


def test_python_calls_some_embedding_forms_global_so_they_are_unwrapped() -> None:
    assert ipaddress.ip_address("2002:7f00:1::").is_global  # why unwrapping is needed
    assert classify(ipaddress.ip_address("2002:7f00:1::")) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.216.34",
                                     "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                     "2002:808:808::", "64:ff9b::808:808", "2600::5efe:808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert classify(ipaddress.ip_address(address)) is None


def test_allow_private_never_allows_unspecified_or_multicast() -> None:
    policy = HostPolicy([], allow_private=True)
    for address in ("127.0.0.1", "10.0.0.1", "fd00::1", "169.254.1.1"):
        policy.check_address("h", 80, ipaddress.ip_address(address))
    for address in ("0.0.0.0", "224.0.0.1", "::", "ff02::1", "::ffff:0.0.0.0"):
        with pytest.raises(HttpRefused, match="never allowed"):
            policy.check_address("h", 80, ipaddress.ip_address(address))


def test_allow_hosts_entries_and_matching() -> None:
    allow = AllowList(["Intranet.Example", "10.0.0.5:8080", "[::1]:9000", "bücher.example:80"])
    assert allow.allows("intranet.example.", 1234)
    assert allow.allows("10.0.0.5", 8080) and not allow.allows("10.0.0.5", 80)
    assert allow.allows("::1", 9000) and not allow.allows("::1", 80)
    assert allow.allows("xn--bcher-kva.example", 80) and not allow.allows("xn--bcher-kva.example", 81)
    for bad in ("http://x/", "user@host", "a b", ""):
        with pytest.raises(ConfigError, match="allow_hosts"):
            AllowList([bad])
    with pytest.raises(HttpRefused, match="never allowed"):
        HostPolicy(["0.0.0.0"]).check_address("0.0.0.0", 80, ipaddress.ip_address("0.0.0.0"))


# --- refused before approval (Tool.check) ---------------------------------------------------

@pytest.mark.parametrize("url, message", [
    ("file:///etc/passwd", "file URLs are not allowed"),
    ("ftp://example.com/x", "ftp URLs are not allowed"),
    ("gopher://example.com:70/_x", "gopher URLs are not allowed"),
    ("data:text/plain,hello", "data URLs are not allowed"),
    ("//example.com/x", "scheme-less URLs are not allowed"),
    ("http://user:pw@example.com/", "user name or password"),
    ("http://user@example.com/", "user name or password"),
    ("http://@example.com/", "user name or password"),
    ("http://example.com:8080/", 'port 8080 is not allowed (only 80 and 443); add "example.com:8080"'),
    ("https://example.com:22/", "port 22 is not allowed"),
    ("http://[::1]:6379/", 'add "[::1]:6379"'),
    ("http://exa mple.com/", "invalid URL: it contains U+0020 (SPACE)"),
    ("http://exa%2fmple.com/", "invalid URL: the host name 'exa%2fmple.com' contains '%'"),
    ("http://[::1/", "invalid URL"),
    ("http://example.com/a\r\nHost: evil", "invalid URL"),
    ("http:///nohost", "has no host"),
])
def test_bad_urls_refused_by_validate(url: str, message: str) -> None:
    tool = http_tools(settings(), resolver=forbid_resolution)[0]
    with pytest.raises(InvalidArguments) as info:
        tool.validate({"url": url})
    assert message in str(info.value)


def test_allow_hosts_opens_a_port_for_that_host_only() -> None:
    tool = http_tools(settings(None, "example.com:8080"))[0]
    tool.validate({"url": "http://example.com:8080/"})
    with pytest.raises(InvalidArguments, match="port 8081"):
        tool.validate({"url": "http://example.com:8081/"})
    with pytest.raises(InvalidArguments, match="port 8080"):
        tool.validate({"url": "http://other.example:8080/"})


@pytest.mark.parametrize("headers, message", [
    ({"X-A": "ok\r\nInjected: 1"}, "control character"),
    ({"X-A": "ok\nInjected: 1"}, "control character"),
    ({"X-A": "a\x00b"}, "control character"),
    ({"X-A\r\nInjected": "1"}, "not a valid HTTP token"),
    ({"Bad Name": "1"}, "not a valid HTTP token"),
    ({"X:Y": "1"}, "not a valid HTTP token"),
    ({"": "1"}, "not a valid HTTP token"),
    ({"X-A": "caf\u00e9"}, "not plain ASCII"),
    ({"Host": "internal.example"}, "Host header is set by agentcli"),
    ({"host": "internal.example"}, "host header"),
    ({"Transfer-Encoding": "chunked"}, "Transfer-Encoding header"),
    ({"Content-Length": "5"}, "Content-Length header"),
    ({"Connection": "close"}, "Connection header"),
    ({"Keep-Alive": "1"}, "Keep-Alive"), ({"TE": "trailers"}, "TE header"),
    ({"Trailer": "X"}, "Trailer"), ({"Upgrade": "h2c"}, "Upgrade"),
    ({"Proxy-Authorization": "Basic eA=="}, "Proxy-Authorization"),
    ({"Proxy-Connection": "keep-alive"}, "Proxy-Connection"),
    ({"Accept-Encoding": "br"}, "Accept-Encoding"),
])
def test_bad_headers_refused_by_validate(headers: dict[str, str], message: str) -> None:
    for tool in http_tools(settings(), resolver=forbid_resolution)[:2]:  # web_fetch has none
        with pytest.raises(InvalidArguments) as info:
            tool.validate({"url": "https://example.com/", "headers": headers})
        assert message in str(info.value) and "refused" in str(info.value)


def test_ordinary_headers_pass() -> None:
    tool = http_tools(settings())[0]
    tool.validate({"url": "https://example.com/", "headers": {
        "Accept": "application/json", "Authorization": "Bearer abc", "X-Tab": "a b"}})


@pytest.mark.parametrize("arguments", [
    {"url": f"https://example.com/?key={SECRET}"},
    {"url": "https://example.com/?key=" + SECRET.replace("-", "%2D")},
    {"url": "https://example.com/", "params": {"k": SECRET}},
    {"url": "https://example.com/", "headers": {"Authorization": f"Bearer {SECRET}"}},
    {"url": "https://example.com/", "headers": {"X-Key": SECRET}},
    {"url": f"https://{SECRET}.example.com/"},
])
def test_the_model_api_key_never_leaves_in_a_request(arguments: dict[str, Any]) -> None:
    tool = http_tools(settings(), secrets=[SECRET], resolver=forbid_resolution)[0]
    with pytest.raises(InvalidArguments, match="model API key"):
        tool.validate(arguments)


def test_the_api_key_is_not_posted_either_and_short_dummy_keys_are_ignored() -> None:
    post = http_tools(settings(), secrets=[SECRET])[1]
    with pytest.raises(InvalidArguments, match="model API key"):
        post.validate({"url": "https://example.com/", "json": {"k": SECRET}})
    with pytest.raises(InvalidArguments, match="model API key"):
        post.validate({"url": "https://example.com/", "data": f"k={SECRET}"})
    dummy = http_tools(settings(), secrets=["x"])[0]
    dummy.validate({"url": "https://example.com/x"})


def test_json_and_data_together_refused() -> None:
    post = http_tools(settings())[1]
    with pytest.raises(InvalidArguments, match="either json or data"):
        post.validate({"url": "https://example.com/", "json": {}, "data": "a=1"})


def test_preview_shows_method_decoded_host_and_full_url() -> None:
    get, post, _ = http_tools(settings())
    rows = get.preview({"url": "https://bücher.example/a?b=1", "params": {"q": "x y"}})
    assert rows == {"method": "GET", "host": "bücher.example",
                    "url": "https://xn--bcher-kva.example/a?b=1&q=x+y"}
    assert post.preview({"url": "http://example.com"})["method"] == "POST"
    assert get.preview({"url": "http://[::1"}) == {"method": "GET", "url": "http://[::1"}


def test_schemas_and_docstrings() -> None:
    get, post, fetch = http_tools(settings())
    assert (get.name, post.name, fetch.name) == ("http_get", "http_post", "web_fetch")
    assert set(get.parameters["properties"]) == {"url", "params", "headers"}
    assert set(post.parameters["properties"]) == {"url", "json", "data", "headers"}
    assert set(fetch.parameters["properties"]) == {"url", "max_chars"}
    assert fetch.parameters["properties"]["max_chars"]["default"] == 20_000
    for tool in (get, post, fetch):
        assert tool.parameters["required"] == ["url"]
        assert tool.description and all(p.get("description")
                                        for p in tool.parameters["properties"].values())


# --- results ----------------------------------------------------------------------------------

def test_text_result_has_status_final_url_type_and_body(srv: LoopbackServer) -> None:
    result = call(settings(srv), url=srv.url("/text"))
    assert result == (f"HTTP 200 OK\nurl: {srv.url('/text')}\n"
                      f"content-type: text/plain; charset=utf-8\n\n{TEXT}")


def test_json_with_params(srv: LoopbackServer) -> None:
    result = call(settings(srv), url=srv.url("/json"), params={"city": "Zürich"})
    head, body = result.split("\n\n", 1)
    assert "content-type: application/json" in head and "city=Z%C3%BCrich" in head
    assert json.loads(body) == {"ok": True, "query": {"city": "Zürich"}}


def test_binary_body_is_summarised(srv: LoopbackServer) -> None:
    result = call(settings(srv), url=srv.url("/png"))
    assert f"[binary body, {len(PNG)} bytes of image/png, not shown; sha256 " in result
    assert "PNG" not in result and "IHDR" not in result


@pytest.mark.parametrize("status, reason", [(404, "Not Found"), (500, "Internal Server Error")])
def test_http_error_statuses_are_results(srv: LoopbackServer, status: int, reason: str) -> None:
    result = call(settings(srv), url=srv.url(f"/status/{status}"))
    assert result.startswith(f"HTTP {status} {reason}\n") and result.endswith(f"status {status}")


def test_post_json_and_form_data(srv: LoopbackServer) -> None:
    echoed = json.loads(call(settings(srv), "http_post", url=srv.url("/echo"),
                             json={"a": [1, 2]}).split("\n\n", 1)[1])
    assert echoed == {"method": "POST", "content_type": "application/json", "body": '{"a":[1,2]}'}
    echoed = json.loads(call(settings(srv), "http_post", url=srv.url("/echo"),
                             data="a=1&b=two").split("\n\n", 1)[1])
    assert echoed["content_type"] == "application/x-www-form-urlencoded"
    assert echoed["body"] == "a=1&b=two"
    echoed = json.loads(call(settings(srv), "http_post", url=srv.url("/echo"), data="plain",
                             headers={"Content-Type": "text/plain"}).split("\n\n", 1)[1])
    assert echoed["content_type"] == "text/plain"


def test_only_gzip_and_deflate_are_accepted_and_no_auth_is_added(srv: LoopbackServer) -> None:
    seen = json.loads(call(settings(srv), url=srv.url("/headers")).split("\n\n", 1)[1])
    assert seen["accept-encoding"] == "gzip, deflate"
    assert not {"authorization", "cookie", "proxy-authorization"} & set(seen)


@pytest.mark.parametrize("path", ["/deflate", "/deflate?raw=1"])
def test_deflate_bodies_are_decoded(srv: LoopbackServer, path: str) -> None:
    assert call(settings(srv), url=srv.url(path)).endswith("\n\n" + TEXT)


def test_encodings_not_asked_for_are_not_decoded(srv: LoopbackServer) -> None:
    result = call(settings(srv), url=srv.url("/brotli"))
    assert result.endswith("[body in br encoding, 9 bytes, not decoded and not shown]")


# --- limits -----------------------------------------------------------------------------------

def test_gzip_bomb_stops_at_the_decoded_cap(srv: LoopbackServer) -> None:
    started = time.monotonic()
    result = call(settings(srv, max_bytes=50_000), url=srv.url("/gzip-bomb"))
    assert time.monotonic() - started < 3
    assert "[binary body, more than 50,000 bytes of text/plain" in result
    assert result.endswith("[... body truncated at 50,000 bytes]")


def test_endless_body_stops_at_the_cap(srv: LoopbackServer) -> None:
    result = call(settings(srv, max_bytes=200_000), url=srv.url("/endless"))
    body = result.split("\n\n", 1)[1]
    assert body == "y" * 200_000 + "\n[... body truncated at 200,000 bytes]"


def test_slow_drip_is_cut_by_the_overall_deadline(srv: LoopbackServer) -> None:
    started = time.monotonic()
    result = call(settings(srv, timeout=1.0), url=srv.url("/drip"))
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 2.0
    body = result.split("\n\n", 1)[1]
    assert body.startswith("xx") and "[... body cut by the deadline after " in body
    assert body.count("x") < 10


def test_silence_after_the_headers_is_cut_by_the_deadline(srv: LoopbackServer) -> None:
    started = time.monotonic()
    result = call(settings(srv, timeout=0.5), url=srv.url("/silent"))
    assert time.monotonic() - started < 1.5
    assert result.startswith("HTTP 200 OK") and "cut by the deadline after 0 bytes" in result


def test_no_answer_at_all_is_a_timeout_error() -> None:
    with socket.socket() as listener:  # accepts (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(HttpTimeout, match=r"timed out: no response from 127.0.0.1"):
            call(HttpSettings(allow_hosts=[f"127.0.0.1:{port}"], timeout=0.5),
                 url=f"http://127.0.0.1:{port}/")
        assert time.monotonic() - started < 1.5


def test_connection_refused_and_unknown_names_are_tool_errors() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(HttpFailed, match=r"request to 127.0.0.1 failed"):
        call(HttpSettings(allow_hosts=[f"127.0.0.1:{port}"]), url=f"http://127.0.0.1:{port}/")

    def nxdomain(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    with pytest.raises(HttpFailed, match=r"could not resolve nowhere.test"):
        call(settings(), url="http://nowhere.test/", resolver=nxdomain)


# --- address checks at connect time -----------------------------------------------------------

@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f000001/", "http://127.1/",
                                 "http://127.0.0.1/", "http://localhost/", "http://[::1]/",
                                 "http://[::ffff:127.0.0.1]/", "http://10.0.0.1/",
                                 "http://169.254.169.254/latest/meta-data/",
                                 "http://100.64.0.1/", "http://0.0.0.0/"])
def test_address_spellings_are_judged_by_resolution_and_nothing_connects(
        url: str, srv: LoopbackServer, connects: list[tuple[str, int]]) -> None:
    with pytest.raises(HttpRefused, match="non-public address") as info:
        call(settings(srv), url=url)
    assert str(info.value).startswith("refused: ")
    assert connects == [] and srv.requests == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1"])
def test_the_real_resolver_reads_numeric_spellings_as_loopback(host: str) -> None:
    assert {info[4][0] for info in socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)} == \
        {"127.0.0.1"}


def test_octal_spelling_httpx_cannot_parse_is_refused_by_validate() -> None:
    tool = http_tools(settings(), resolver=forbid_resolution)[0]
    with pytest.raises(InvalidArguments, match=r"0177.0.0.1 means 127.0.0.1, a non-public "
                                               r"address \(loopback\)"):
        tool.validate({"url": "http://0177.0.0.1/"})


def test_encoded_loopback_on_the_servers_own_port_is_refused(
        srv: LoopbackServer, connects: list[tuple[str, int]]) -> None:
    for host in ("2130706433", "0x7f000001", "127.1", "localhost"):
        with pytest.raises(ToolError, match="refused"):
            call(settings(srv), url=f"http://{host}:{srv.port}/text")
    assert connects == [] and srv.requests == []


def test_one_bad_address_among_many_refuses_the_name(
        internet: list[tuple[str, int]], srv: LoopbackServer) -> None:
    resolver = FakeResolver(mixed_test=[["93.184.216.34", "10.0.0.5"]])
    with pytest.raises(HttpRefused) as info:
        call(settings(), url="http://mixed.test/text", resolver=resolver)
    assert str(info.value) == ('refused: mixed.test resolves to 10.0.0.5, a non-public address '
                               '(private); add "mixed.test:80" to [http] allow_hosts to allow it')
    assert internet == [] and srv.requests == []


def test_rebinding_name_is_resolved_once_and_the_checked_address_is_used(
        internet: list[tuple[str, int]], srv: LoopbackServer) -> None:
    resolver = FakeResolver(public_test=[["93.184.216.34"], ["127.0.0.1"]])
    result = call(settings(), url="http://public.test/text", resolver=resolver)
    assert result.endswith(TEXT)
    assert resolver.calls == ["public.test"]
    assert internet == [("93.184.216.34", 80)]
    assert srv.requests[0].headers["host"] == "public.test"


def test_rebinding_to_a_private_address_is_refused(
        internet: list[tuple[str, int]], srv: LoopbackServer) -> None:
    resolver = FakeResolver(public_test=[["192.168.0.10"], ["93.184.216.34"]])
    with pytest.raises(HttpRefused, match=r"public.test resolves to 192.168.0.10, a non-public"):
        call(settings(), url="http://public.test/text", resolver=resolver)
    assert resolver.calls == ["public.test"] and internet == []


def test_allow_listed_name_connects_to_its_checked_address_with_its_host_header(
        srv: LoopbackServer, connects: list[tuple[str, int]]) -> None:
    resolver = FakeResolver(myservice_test=[["127.0.0.1"], ["10.9.9.9"]])
    config = settings(None, f"myservice.test:{srv.port}")
    result = call(config, url=f"http://myservice.test:{srv.port}/text", resolver=resolver)
    assert result.endswith(TEXT)
    assert resolver.calls == ["myservice.test"]
    assert connects == [("127.0.0.1", srv.port)]
    assert srv.requests[0].headers["host"] == f"myservice.test:{srv.port}"


def test_proxy_variables_do_not_route_around_the_check(
        srv: LoopbackServer, connects: list[tuple[str, int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9/")
    monkeypatch.setenv("NO_PROXY", "")
    assert call(settings(srv), url=srv.url("/text")).endswith(TEXT)
    assert connects == [("127.0.0.1", srv.port)]
    with pytest.raises(HttpRefused, match="non-public"):
        call(settings(), url="http://127.0.0.1/")


# --- redirects --------------------------------------------------------------------------------

def test_redirect_to_itself_and_a_chain_of_five(srv: LoopbackServer) -> None:
    result = call(settings(srv), url=srv.url("/redirect?to=/text"))
    assert result.startswith(f"HTTP 200 OK\nurl: {srv.url('/text')}\n")
    result = call(settings(srv), url=srv.url(f"/chain/{MAX_REDIRECTS}"))
    assert result.endswith("end of chain") and f"url: {srv.url('/chain/0')}" in result


def test_six_redirects_are_an_error(srv: LoopbackServer) -> None:
    with pytest.raises(HttpFailed, match="too many redirects: more than 5"):
        call(settings(srv), url=srv.url("/chain/6"))
    assert len(srv.requests) == 6


@pytest.mark.parametrize("target, message", [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a non-public address"),
    ("http://2130706433/", "2130706433 resolves to 127.0.0.1, a non-public address"),
    ("http://[::ffff:10.0.0.1]/", "non-public address (private, embedded IPv4 10.0.0.1)"),
    ("file:///etc/passwd", "file URLs are not allowed"),
    ("http://user:pw@example.com/", "user name or password"),
    ("http://127.0.0.1:22/", "port 22 is not allowed"),
])
def test_each_redirect_hop_is_checked_again(srv: LoopbackServer, target: str, message: str,
                                            connects: list[tuple[str, int]]) -> None:
    with pytest.raises(HttpRefused) as info:
        call(settings(srv), url=srv.url("/redirect"), params={"to": target})
    assert message in str(info.value)
    assert len(srv.requests) == 1 and connects == [("127.0.0.1", srv.port)]


def test_redirect_through_a_rebinding_name_is_checked_at_connect(srv: LoopbackServer) -> None:
    resolver = FakeResolver(evil_test=[["10.0.0.7"]])
    config = settings(srv)
    with pytest.raises(HttpRefused, match=r"evil.test resolves to 10.0.0.7"):
        call(config, url=srv.url("/redirect"), params={"to": "http://evil.test/"},
             resolver=resolver)


def test_303_turns_post_into_get_and_307_keeps_the_body(srv: LoopbackServer) -> None:
    body = call(settings(srv), "http_post", url=srv.url("/redirect?code=303&to=/echo"),
                json={"x": 1}).split("\n\n", 1)[1]
    assert json.loads(body) == {"method": "GET", "content_type": None, "body": ""}
    body = call(settings(srv), "http_post", url=srv.url("/redirect?code=307&to=/echo"),
                json={"x": 1}).split("\n\n", 1)[1]
    assert json.loads(body) == {"method": "POST", "content_type": "application/json",
                                "body": '{"x":1}'}


def test_credentials_kept_on_same_origin_and_dropped_across_origins(srv: LoopbackServer) -> None:
    creds = {"Authorization": "Bearer tool-token", "Cookie": "session=1", "X-Other": "kept"}
    same = json.loads(call(settings(srv), url=srv.url("/redirect?to=/headers"),
                           headers=creds).split("\n\n", 1)[1])
    assert same["authorization"] == "Bearer tool-token" and same["cookie"] == "session=1"
    resolver = FakeResolver(other_test=[["127.0.0.1"]])
    config = settings(srv, f"other.test:{srv.port}")
    other = srv.url("/headers", host="other.test")
    cross = json.loads(call(config, url=srv.url("/redirect"), params={"to": other},
                            headers=creds, resolver=resolver).split("\n\n", 1)[1])
    assert "authorization" not in cross and "cookie" not in cross
    assert cross["x-other"] == "kept" and cross["host"] == f"other.test:{srv.port}"


# --- TLS: the checked IP is connected to, the hostname is verified -----------------------------

@pytest.fixture
def tls_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=myservice.test",
                    "-addext", "subjectAltName=DNS:myservice.test"],
                   check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this one certificate
    with LoopbackServer(tls=context) as server:
        yield server


def test_tls_verifies_the_hostname_not_the_address(tls_server: LoopbackServer) -> None:
    port = tls_server.port
    resolver = FakeResolver(myservice_test=[["127.0.0.1"]], wrong_test=[["127.0.0.1"]])
    config = HttpSettings(allow_hosts=[f"myservice.test:{port}", f"wrong.test:{port}"])
    result = call(config, url=f"https://myservice.test:{port}/text", resolver=resolver)
    assert result.endswith(TEXT)
    assert tls_server.requests[0].headers["host"] == f"myservice.test:{port}"
    with pytest.raises(HttpFailed, match=r"certificate verify failed|hostname"):
        call(config, url=f"https://wrong.test:{port}/text", resolver=resolver)
    assert len(tls_server.requests) == 1


# --- end to end through agentcli run ----------------------------------------------------------

def _tool_results(server: Any) -> list[str]:
    return [m["content"] for m in server.requests[1].body["messages"] if m["role"] == "tool"]


def test_agentcli_run_fetches_from_an_allow_listed_loopback_server(
        cli: Any, server: Any, run_args: list[str], srv: LoopbackServer, tmp_path: Path) -> None:
    config = tmp_path / "http.toml"
    config.write_text(f'[http]\nallow_hosts = ["127.0.0.1:{srv.port}"]\n')
    server.enqueue(tool_calls(Call("http_get", {"url": srv.url("/text")})), text("done"))
    result = cli("run", *run_args, "--config", str(config), "-y", "fetch it")
    assert result.code == 0, result.stderr
    names = [t["function"]["name"] for t in server.requests[0].body["tools"]]
    assert {"http_get", "http_post"} <= set(names)
    [content] = _tool_results(server)
    assert content.startswith("HTTP 200 OK") and content.endswith(TEXT)
    assert srv.requests[0].path == "/text"


def test_agentcli_run_refusals_reach_the_model(cli: Any, server: Any, run_args: list[str],
                                               srv: LoopbackServer) -> None:
    server.enqueue(tool_calls(Call("http_get", {"url": "http://127.0.0.1/text"}, id="a"),
                              Call("http_get", {"url": srv.url("/text")}, id="b"),
                              Call("http_get", {"url": f"https://example.com/?k={SECRET}"},
                                   id="c")),
                   text("done"))
    result = cli("run", *run_args, "-y", "fetch it", env={"OPENAI_API_KEY": SECRET})
    assert result.code == 0, result.stderr
    local, port, secret = _tool_results(server)
    assert local.startswith("error: refused: 127.0.0.1 is a non-public address (loopback)")
    assert f"port {srv.port} is not allowed" in port
    assert "model API key" in secret
    assert srv.requests == []


def test_a_slow_name_lookup_is_cut_by_the_overall_deadline() -> None:
    def slow_resolver(host: str, port: int) -> list[str]:
        time.sleep(5)
        return ["93.184.216.34"]
    started = time.monotonic()
    with pytest.raises(HttpTimeout, match="timed out"):
        call(settings(timeout=0.5), url="http://slow-dns.test/", resolver=slow_resolver)
    assert time.monotonic() - started < 1.5
