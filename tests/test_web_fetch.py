"""``web_fetch``: pages as Markdown, other bodies, and the same guard as ``http_get``.

The pages in tests/pages are served by a loopback server shared by the module;
the server is reached through ``[http] allow_hosts``, the way a user lets the
HTTP tools reach a host of their own.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from http_server import PAGES, TEXT, LoopbackServer
from openai_server import Call, text, tool_calls

from agentcli.config import HttpSettings
from agentcli.errors import InvalidArguments, ToolError
from agentcli.tools.base import Tool
from agentcli.tools.http import http_tools
from agentcli.tools.webpage import cut, decode_html, html_to_markdown

SECRET = "sk-test-0123456789abcdef"


@pytest.fixture(scope="module")
def srv() -> Iterator[LoopbackServer]:
    with LoopbackServer() as server:
        yield server


def web_fetch(srv: LoopbackServer | None, *, secrets: list[str] | None = None,
              **settings: Any) -> Tool:
    hosts = [f"127.0.0.1:{srv.port}"] if srv else []
    config = HttpSettings(allow_hosts=hosts, **{"timeout": 5.0, **settings})
    return {t.name: t for t in http_tools(config, secrets=secrets or [])}["web_fetch"]


def fetch(srv: LoopbackServer, path: str, **arguments: Any) -> str:
    tool = web_fetch(srv)
    return str(tool(**tool.validate({"url": srv.url(path), **arguments})))


def page(srv: LoopbackServer, name: str, kind: str | None = None, **arguments: Any) -> str:
    return fetch(srv, f"/page?name={name}" + (f"&type={kind}" if kind else ""), **arguments)


def content(result: str) -> str:
    """What follows the header lines (status, url, title, content-type)."""
    return result.split("\n\n", 1)[1]


# --- pages as Markdown ---------------------------------------------------------------------

def test_an_article_keeps_its_text_and_structure_and_drops_the_rest(srv):
    result = page(srv, "article.html")
    head, body = result.split("\n\n", 1)
    assert head.splitlines() == [
        "HTTP 200 OK", f"url: {srv.url('/page?name=article.html')}",
        "title: Why the Night Trains Came Back | The Rail Review"]
    assert body.startswith("# Why the Night Trains Came Back\n")
    for kept in ("\n## A new kind of passenger\n", "\n### Subsidies and tracks\n",
                 "\n- families who count a hotel night saved,\n",
                 "\n2. Several governments pay for the first years of a new route.\n",
                 "(https://example.org/reports/2025-sleeper-survey)",
                 '\n> "We sell a night\'s sleep', "Berlin\u2013Stockholm and Paris\u2013Rome"):
        assert kept in body, kept
    for dropped in ("cookies", "Accept all", "Sign in", "Most read", "Advertisement",
                    "newsletter", "All rights reserved", "gtag", "dataLayer", "font-family",
                    "querySelector"):
        assert dropped not in body, dropped


def test_a_documentation_page_in_latin_1_keeps_code_tables_and_absolute_links(srv):
    body = content(page(srv, "docs.html"))  # charset only in <meta http-equiv>
    assert "Café owners and naïve users" in body
    assert "```\n[cache]\nmax_entries = 10000\nttl = \"15m\"\neviction = \"lru\"\n```" in body
    assert "| `ttl` | 15m | How long an entry stays valid. |" in body
    assert f"[Cache.clear()]({srv.url('/api.html#kestrel.Cache.clear')})" in body
    for dropped in ("Changelog", "Search docs", "Previous", "Copyright", "Sphinx", "Docs »",
                    "SphinxRtdTheme"):
        assert dropped not in body, dropped


def test_the_header_charset_wins_over_the_meta_one():
    html = '<meta charset="iso-8859-1"><p>naïve</p>'.encode()
    assert "naïve" in decode_html(html, "utf-8")
    assert "naÃ¯ve" in decode_html(html, None)  # the page's own (wrong) word is taken
    assert "naïve" in decode_html("<p>naïve</p>".encode("cp1252"), None)  # not UTF-8 at all


def test_broken_html_is_repaired_not_fatal(srv):
    result = page(srv, "broken.html", "none")  # no Content-Type: recognised by its start
    assert "title: Lighthouse keeper's log" in result
    body = content(result)
    assert "# Lighthouse keeper's log\n\n## Entry for 3 November\n" in body
    assert "force 7 by the afternoon" in body and "- Visibility at midnight: under 200 m" in body
    assert "written by script" not in body and "Powered by" not in body


def test_a_wrapper_named_like_boilerplate_keeps_the_page():
    html = ('<div class="layout has-sidebar"><div class="content"><h2>Notes</h2>'
            "<p>The first paragraph of the notes, long enough to count.</p>"
            "<p>The second paragraph, with more words in it.</p></div>"
            '<div class="sidebar"><p>Side links</p></div>'
            '<div id="cookie-notice">We use cookies</div></div>')
    text = html_to_markdown(html, "http://e.example/").text
    assert text.startswith("## Notes\n\nThe first paragraph")
    assert "second paragraph" in text
    assert "Side links" not in text and "cookies" not in text


def test_a_page_with_no_text_says_so(srv):
    assert content(page(srv, "comment-only.html")) == "(the page has no readable text)"


def test_max_chars_cuts_and_says_how_much_was_left(srv):
    whole = content(page(srv, "article.html"))
    cut = content(page(srv, "article.html", max_chars=300))
    assert cut.startswith(whole[:300] + "\n[... cut at 300 characters: ")
    found = re.search(r"cut at 300 characters: ([\d,]+) more characters of ([\d,]+) not shown",
                      cut)
    assert found and int(found[1].replace(",", "")) == len(whole) - 300
    assert int(found[2].replace(",", "")) == len(whole)
    with pytest.raises(InvalidArguments, match="max_chars"):
        web_fetch(srv).validate({"url": srv.url("/text"), "max_chars": 0})


def test_a_huge_page_is_cut_before_conversion_and_says_so_roughly():
    rows = "".join(f"<tr><td>row {i}</td><td>{i * 7}</td></tr>" for i in range(30_000))
    started = time.monotonic()
    page = html_to_markdown(f"<title>Big</title><table>{rows}</table>", "http://e.example/",
                            limit=2_000)
    assert time.monotonic() - started < 10  # whole, the conversion takes minutes
    assert page.title == "Big" and page.text.startswith("| row 0 | 0 |\n| --- | --- |\n")
    assert page.omitted > 300_000
    shown = cut(page.text, 2_000, page.omitted)
    assert re.search(r"\n\[\.\.\. cut at 2,000 characters: about [\d,]+ more characters not "
                     r"shown; call again with a larger max_chars to see more\]$", shown)


def test_pathological_html_gives_text_or_nothing_never_an_error():
    deep = "<div>" * 20_000 + "deep" + "</div>" * 20_000
    for html in (deep, "<p>" + "<b>" * 5_000 + "bold", "<script>only()</script>", "",
                 "\x00<p>a\x00b</p>", "<base href='http://[::1'><a href='x'>link</a>",
                 "<p>\ud800 lone surrogate</p>", "<?xml version='1.0'?><p>xml</p>"):
        page = html_to_markdown(html, "http://e.example/")
        assert isinstance(page.text, str)
    assert "a\ufffdb" in html_to_markdown("<p>a\x00b</p>", "http://e.example/").text
    page = html_to_markdown("<p>shallow</p>" + deep, "http://e.example/")
    assert page.text == "shallow" and "nests its elements too deeply" in str(page.problem)
    assert html_to_markdown("<p>fine</p>", "http://e.example/").problem is None


# --- other bodies --------------------------------------------------------------------------

def test_json_is_pretty_printed_and_plain_text_shown_as_is(srv):
    assert content(fetch(srv, "/json?city=Z%C3%BCrich")) == (
        '{\n  "ok": true,\n  "query": {\n    "city": "Zürich"\n  }\n}')
    assert content(fetch(srv, "/text")) == TEXT
    assert "content-type: text/plain; charset=utf-8" in fetch(srv, "/text")


def test_pdf_and_binary_bodies_are_named_with_their_size(srv):
    size = (PAGES / "report.pdf").stat().st_size
    assert content(page(srv, "report.pdf", "application/pdf")) == (
        f"[a PDF document, {size} bytes; web_fetch does not extract text from PDFs, "
        "so there is nothing to show]")
    assert content(fetch(srv, "/png")) == "[binary content (image/png), 67 bytes; not shown]"


# --- the same fetch path as http_get -------------------------------------------------------

def test_redirects_are_followed_and_the_final_url_shown(srv):
    result = fetch(srv, "/redirect?to=/page%3Fname%3Darticle.html")
    assert f"url: {srv.url('/page?name=article.html')}\n" in result
    assert "# Why the Night Trains Came Back" in result


def test_loopback_and_private_addresses_are_refused_as_for_http_get(srv):
    tool = web_fetch(None)
    with pytest.raises(InvalidArguments, match="refused: port"):
        tool.validate({"url": srv.url("/text")})
    with pytest.raises(ToolError, match=r"127\.0\.0\.1 is a non-public address \(loopback\)"):
        tool(**tool.validate({"url": "http://127.0.0.1/"}))  # refused before connecting
    seen = len(srv.requests)
    allowed = web_fetch(srv)
    redirect = srv.url("/redirect?to=http://10.1.2.3/admin")
    with pytest.raises(ToolError, match=r"10\.1\.2\.3 is a non-public address \(private\)"):
        allowed(**allowed.validate({"url": redirect}))
    assert len(srv.requests) == seen + 1  # the redirect only; nothing went to 10.1.2.3


def test_the_model_api_key_is_never_sent(srv):
    tool = web_fetch(srv, secrets=[SECRET])
    seen = len(srv.requests)
    with pytest.raises(InvalidArguments, match="model API key is in the URL"):
        tool.validate({"url": srv.url(f"/text?k={SECRET}")})
    assert len(srv.requests) == seen


def test_the_size_cap_and_the_deadline_apply(srv):
    tool = web_fetch(srv, max_bytes=1_000)
    result = tool(**tool.validate({"url": srv.url("/page?name=article.html")}))
    assert "title: Why the Night Trains Came Back" in result
    assert result.endswith("[... only the first 1,000 bytes of the body were read "
                           "([http] max_bytes)]")
    slow = web_fetch(srv, timeout=0.5)
    started = time.monotonic()
    result = slow(**slow.validate({"url": srv.url("/drip")}))
    assert time.monotonic() - started < 2
    assert re.search(r"\[\.\.\. the body was cut by the deadline after \d+ bytes\]$", result)


def test_the_panel_scope_and_policy_are_those_of_http_get(srv):
    tool = web_fetch(srv)
    url = srv.url("/page?name=article.html")
    assert tool.preview is not None and tool.preview({"url": url}) == {
        "method": "GET", "host": "127.0.0.1", "url": url}
    assert tool.scope is not None and tool.scope({"url": url}) == f"http://127.0.0.1:{srv.port}"
    assert tool.side_effects is False and tool.untrusted_output is True
    assert tool.policy is None  # asks, like http_get, unless configured otherwise


# --- end to end ----------------------------------------------------------------------------

def test_a_run_sends_the_readable_page_to_the_model(cli, server, run_args, srv, tmp_path: Path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[http]\nallow_hosts = ["127.0.0.1:{srv.port}"]\ntimeout = 5.0\n')
    url = srv.url("/page?name=article.html")
    server.enqueue(tool_calls(Call("web_fetch", {"url": url, "max_chars": 500})),
                   text("Sleeper trains are back."))
    result = cli("run", "--config", str(cfg), "-y", *run_args, "summarise the page")
    assert result.code == 0, result.stderr
    assert result.stdout == "Sleeper trains are back.\n"
    names = [t["function"]["name"] for t in server.requests[0].body["tools"]]
    assert "web_fetch" in names
    sent = server.requests[1].body["messages"][-1]
    assert sent["role"] == "tool"
    assert "\n\n# Why the Night Trains Came Back\n" in sent["content"]
    assert "[... cut at 500 characters" in sent["content"]
    assert "Accept all" not in sent["content"]


# --- hostile pages -------------------------------------------------------------------------

def test_a_tag_with_a_huge_number_of_attributes_is_read_quickly():
    # the parser compares each attribute with all before it: 100,000 take minutes
    attrs = " ".join(f'data-a{i}="{i}"' for i in range(100_000))
    quoted = " ".join(f'a{i}="<>"' for i in range(50_000))  # quotes hide < and >
    started = time.monotonic()
    for html in (f"<title>T</title><p {attrs}>kept text</p><a href='/x'>link</a>",
                 f"<title>T</title><p {quoted}>kept text</p><a href='/x'>link</a>"):
        page = html_to_markdown(html, "http://e.example/")
        assert page.title == "T" and "kept text" in page.text
        assert "[link](http://e.example/x)" in page.text  # short tags keep their attributes
    assert time.monotonic() - started < 8
    unclosed = html_to_markdown("<p>before</p><p " + "a " * 100_000, "http://e.example/")
    assert unclosed.text.startswith("before")


@pytest.mark.parametrize("charset", ["rot13", "zlib", "unicode_escape", "raw_unicode_escape",
                                     "utf-7", "cp037", "idna", "no-such-charset"])
def test_a_charset_that_is_no_web_text_encoding_is_read_as_utf_8(srv, charset):
    kind = f"text/html;charset={charset}"
    result = page(srv, "article.html", kind)
    assert "# Why the Night Trains Came Back" in result
    assert decode_html(b"<p>a\\u001b[2J +ADw-b+AD4-</p>", charset) == (
        "<p>a\\u001b[2J +ADw-b+AD4-</p>")  # not turned into ESC or a tag
    assert decode_html(f'<meta charset="{charset}"><p>\\x41</p>'.encode(), None).endswith(
        "<p>\\x41</p>")
    http_get = {t.name: t for t in http_tools(HttpSettings(
        allow_hosts=[f"127.0.0.1:{srv.port}"], timeout=5.0))}["http_get"]
    raw = http_get(**http_get.validate({"url": srv.url(
        f"/page?name=article.html&type=text/plain;charset={charset}")}))
    assert "Why the Night Trains Came Back" in raw


def test_control_characters_in_a_page_are_replaced_before_parsing():
    controls = "".join(chr(c) for c in range(1, 32) if chr(c) not in "\t\n\r")
    page = html_to_markdown(f"<title>a\x1b]0;pwned\x07</title><div><p>{controls}text</p>"
                            f"<script>x()</script>{controls}\uffff tail</div>",
                            "http://e.example/")
    assert page.title == "a\ufffd]0;pwned\ufffd"
    assert "text" in page.text and "tail" in page.text
    assert not any(ch in page.text for ch in controls + "\uffff")


def test_escapes_in_a_page_title_and_text_are_visible_in_the_result_line():
    from agentcli.events import ToolRecord
    from agentcli.ui.render import tool_result_line

    page = html_to_markdown("<title>\u2066pwned\u2069 \u202eevil</title><p>a\u200bb</p>",
                            "http://e.example/")
    result = f"title: {page.title}\n\n{page.text}\n\x1b[2J\x1b]0;x\x07"  # as http_get has it
    line = tool_result_line(ToolRecord(id="c1", name="web_fetch", arguments={"url": "http://e.example/"},
                                       result=result, status="ok", duration_ms=1)).plain
    assert not any(ch in line for ch in "\x1b\x07\u202e\u2066\u2069\u200b")
    assert "\\u2066pwned\\u2069 \\u202eevil" in line and "a\\u200bb" in line
    assert "\\u001b[2J\\u001b]0;x\\u0007" in line


def test_a_binary_body_labelled_as_html_is_named_not_parsed(srv):
    import httpx2
    from http_server import PNG

    from agentcli.tools.http import Body
    from agentcli.tools.webpage import render

    size = (PAGES / "report.pdf").stat().st_size
    assert content(page(srv, "report.pdf", "text/html")).startswith(
        f"[a PDF document, {size} bytes;")
    for data, kind in ((PNG, "text/html"), (bytes(range(256)) * 100, "application/xhtml+xml"),
                       (b"\x00\x01garbage" * 1000, "")):
        response = httpx2.Response(200, headers={"content-type": kind} if kind else {},
                                   content=data, request=httpx2.Request("GET", "http://e.example/"))
        shown = content(render(response, Body(data), 20_000, 1_000_000))
        assert shown.startswith("[binary content (") and shown.endswith(" bytes; not shown]")
    utf16 = "\ufeff<title>Wide</title><p>wide text</p>".encode("utf-16-le")
    response = httpx2.Response(200, headers={"content-type": "text/html"}, content=utf16,
                               request=httpx2.Request("GET", "http://e.example/"))
    assert "wide text" in render(response, Body(utf16), 20_000, 1_000_000)



def test_a_redirect_loop_with_huge_locations_is_one_short_error(srv):
    import urllib.parse

    url = "/text"
    for _ in range(7):  # more hops than allowed, each Location longer than the last
        url = f"/redirect?to={urllib.parse.quote(url, safe='')}&pad={'x' * 300}"
    tool = web_fetch(srv)
    with pytest.raises(ToolError, match="too many redirects: more than 5") as caught:
        tool(**tool.validate({"url": srv.url(url)}))
    assert len(str(caught.value)) < 300 and "characters)" in str(caught.value)
