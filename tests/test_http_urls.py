"""Invalid URLs are refused as invalid, with the reason, before the approval
panel: control characters and spaces, absurd lengths, bad host names and bad
IDNA, never a misleading "non-public address" or a failure at run time."""

from __future__ import annotations

from typing import Any

import pytest
from openai_server import Call, text, tool_calls

from agentcli.config import HttpSettings
from agentcli.errors import InvalidArguments
from agentcli.tools.http import http_tools


def never_resolve(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} was looked up, although the URL is invalid")


def refusal(url: str, **extra: Any) -> str:
    tool = http_tools(HttpSettings(), resolver=never_resolve)[0]
    with pytest.raises(InvalidArguments) as info:
        tool.validate({"url": url, **extra})
    message = str(info.value)
    assert message.startswith("invalid URL"), message
    assert "non-public" not in message and len(message) < 400
    return message


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1/a\r\nHost: evil", "U+000D"),
    ("http://10.0.0.1/\n", "U+000A"),
    ("https://example.com/a b", "U+0020 (SPACE)"),
    ("https://example.com/\tx", "U+0009"),
    ("https://example.com/\x7f", "U+007F"),
    ("https://example.com/\u00a0", "NO-BREAK SPACE"),
    ("https://example.com/\u2028", "LINE SEPARATOR"),
    ("https://example.com/\u202e", "RIGHT-TO-LEFT OVERRIDE"),
    ("https://exa\u200bmple.com/", "ZERO WIDTH SPACE"),
])
def test_control_characters_and_spaces(url: str, why: str) -> None:
    assert why in refusal(url)


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "example.com"])
def test_a_100_kb_url_is_too_long_and_not_repeated(host: str) -> None:
    message = refusal(f"http://{host}/?q=" + "a" * 100_000)
    assert "100,0" in message and "limit is 8,192" in message


def test_params_count_toward_the_length() -> None:
    message = refusal("https://example.com/", params={"q": "a" * 9_000})
    assert "with its parameters" in message and "limit is 8,192" in message


@pytest.mark.parametrize(("host", "why"), [
    ("xn--zz.com", "not a valid internationalized (IDNA) name"),
    ("xn--a.example", "not a valid internationalized (IDNA) name"),
    ("\u2603.com", "internationalized (IDNA)"),
    ("a..b.com", "empty label"),
    (".example.com", "empty label"),
    ("a" * 64 + ".com", "label of 64 characters (the limit is 63)"),
    (".".join(["a" * 60] * 5), "304 characters long (the limit is 253)"),
    ("-bad.com", "starts or ends with '-'"),
    ("bad-.com", "starts or ends with '-'"),
])
def test_bad_host_names(host: str, why: str) -> None:
    assert why in refusal(f"https://{host}/")


@pytest.mark.parametrize("url", [
    "https://xn--bcher-kva.de/", "https://bücher.de/x", "https://example.com./",
    "https://a-b.example.com/?q=%20x%0D", "https://" + ".".join(["a" * 63] * 3) + ".com/",
])
def test_valid_urls_pass(url: str) -> None:
    http_tools(HttpSettings(), resolver=never_resolve)[0].validate({"url": url})


def test_refused_before_the_approval_panel(cli: Any, server: Any, run_args: list[str]) -> None:
    bad = ["http://127.0.0.1/\r\nX: 1", "https://xn--zz.com/", "https://x.com/?" + "a" * 20_000]
    server.enqueue(tool_calls(*[Call("http_get", {"url": u}, id=f"c{i}")
                                for i, u in enumerate(bad)]), text("done"))
    result = cli("run", *run_args, "fetch it")
    assert result.code == 0, result.stderr
    contents = [m["content"] for m in server.requests[1].body["messages"] if m["role"] == "tool"]
    assert len(contents) == 3
    assert all(c.startswith("error: invalid URL") for c in contents), contents
    assert "no one was there to approve" not in result.stderr
    assert "a" * 1000 not in result.stderr
