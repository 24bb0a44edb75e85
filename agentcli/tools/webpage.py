"""What ``web_fetch`` makes of a fetched body: a page's main content as Markdown.

The request itself is ``http_get``'s (:class:`agentcli.tools.http.Fetch`: the
SSRF guard, redirects, size cap and deadline); this module only renders the
response. HTML is decoded (charset from the Content-Type header, else a BOM
or the page's ``<meta>``, else UTF-8 with a Windows-1252 fallback), parsed by
lxml's forgiving parser, stripped of navigation, headers, footers, sidebars,
forms, scripts, styles and cookie or newsletter boxes, narrowed to its main
content by readability-lxml, and written as Markdown by markdownify (headings,
paragraphs, lists, tables, code and absolute links kept). JSON is
pretty-printed, plain text passed on as is, and PDFs and other binary bodies
are named in one line with their size.

The conversion is slow Python (tens of microseconds an element), so a page far
longer than ``max_chars`` is cut in the tree first, at about twice what was
asked for (elements weigh against text too), and very large pages skip
readability's scoring: the work stays within a few seconds whatever the page.

readability-lxml, markdownify and lxml cost about 150 ms to import, so they
are imported inside :func:`html_to_markdown`, on the first call only.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx2

    from .http import Body

HTML_TYPES = ("text/html", "application/xhtml+xml")
ACCEPT = "text/html,application/xhtml+xml;q=0.9,application/json;q=0.8,text/plain;q=0.8,*/*;q=0.5"
MAX_TITLE = 300
MAX_SCORED = 20_000
"""Pages with more elements than this skip readability's main-block scoring (seconds
of work there) and are shown whole, cleaned."""
ELEMENT_COST = 3
"""What an element weighs against max_chars when a long page is cut before conversion:
about the Markdown it adds, and it bounds the converter's work on tag soup."""
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.I)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
_BLANK_LINES = re.compile(r"\n[ \t]*(\n[ \t]*)+\n")
_SPACES = re.compile(r"\s+")

# Boilerplate: dropped before the main content is looked for.
_DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "object", "embed", "svg",
              "canvas", "form", "button", "input", "select", "textarea", "nav", "aside",
              "footer", "dialog", "link", "meta")
_DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search",
                         "dialog", "alertdialog", "menu", "menubar"})
_DROP_WORDS = frozenset({"cookie", "cookies", "consent", "gdpr", "newsletter", "subscribe",
                         "advert", "advertisement", "ad", "ads", "sponsored", "sidebar",
                         "breadcrumb", "breadcrumbs", "share", "social", "skip", "popup",
                         "modal", "related"})
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLOCKS = frozenset({"p", "div", "ul", "ol", "table", "pre", "blockquote", "section", "dl"})
_WORD = re.compile(r"[a-z]+")
MAX_TAG = 2_000
"""The longest start tag (name and attributes) kept as written. lxml's parser checks
each attribute against all before it, so one tag with 100,000 attributes takes
minutes; longer tags keep their name and lose their attributes before parsing."""
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
"""Characters lxml cannot hold in a tree: kept, an edit of the tree (dropping a
script next to them) fails; they become U+FFFD before parsing."""
_START_TAG = re.compile(r"""<[A-Za-z](?:[^>"']++|"[^"]*+(?:"|\Z)|'[^']*+(?:'|\Z))*+(?:>|\Z)""")
_TAG_NAME = re.compile(r"<[A-Za-z][^\s/>\"'=<]{0,100}")


def render(response: httpx2.Response, body: Body, max_chars: int, cap: int) -> str:
    """The ``web_fetch`` result: status, final URL, title, then the readable content."""
    content_type = response.headers.get("content-type", "")
    mime = content_type.split(";")[0].strip().lower()
    lines = [f"HTTP {response.status_code} {response.reason_phrase}".rstrip(),
             f"url: {response.url}"]
    size = f"{len(body.data):,} bytes" if not body.truncated else f"more than {cap:,} bytes"
    omitted, problem = 0, None
    if body.undecoded:
        text = (f"[the body came in {body.undecoded} encoding ({size}), which agentcli "
                "does not decode; nothing to show]")
    elif not body.data:
        text = "(empty body)"
    elif (mime in HTML_TYPES or (not mime and _looks_like_html(body.data))) \
            and not _binary(body.data):
        page = html_to_markdown(decode_html(body.data, response.charset_encoding),
                                str(response.url), max_chars)
        if page.title:
            lines.append(f"title: {page.title}")
        text, omitted = page.text or "(the page has no readable text)", page.omitted
        problem = page.problem
    else:
        if content_type:
            lines.append(f"content-type: {content_type}")
        text = _other(body, mime, response.charset_encoding, size)
    text = cut(text, max_chars, omitted)
    notes = _notes(body, cap) + ([f"[... {problem}]"] if problem else [])
    return "\n".join(lines) + "\n\n" + text + ("\n" + "\n".join(notes) if notes else "")


def cut(text: str, max_chars: int, omitted: int = 0) -> str:
    """``text`` cut to ``max_chars`` characters, saying how much was left out
    (``omitted``: characters of text already left out before, counted roughly)."""
    if len(text) <= max_chars and not omitted:
        return text
    rest = len(text) - max_chars
    if not omitted:
        return (text[:max_chars] + f"\n[... cut at {max_chars:,} characters: {rest:,} more "
                f"characters of {len(text):,} not shown; {_AGAIN}]")
    return (text[:max_chars] + f"\n[... cut at {max_chars:,} characters: about "
            f"{rest + omitted:,} more characters not shown; {_AGAIN}]")


_AGAIN = "call again with a larger max_chars to see more"


def _notes(body: Body, cap: int) -> list[str]:
    notes = []
    if body.truncated:
        notes.append(f"[... only the first {cap:,} bytes of the body were read ([http] max_bytes)]")
    if body.deadline_cut:
        notes.append(f"[... the body was cut by the deadline after {len(body.data):,} bytes]")
    if body.problem:
        notes.append(f"[... {body.problem}]")
    return notes


def _binary(data: bytes) -> bool:
    """Whether a body labelled as HTML is not text at all (an image, a PDF, an archive
    served as text/html): a PDF's signature, or NUL bytes without a UTF-16 BOM."""
    if data.startswith(b"%PDF-"):
        return True
    return b"\x00" in data[:4096] and not data.startswith((codecs.BOM_UTF16_LE,
                                                          codecs.BOM_UTF16_BE))


def _looks_like_html(data: bytes) -> bool:
    start = data[:512].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _other(body: Body, mime: str, charset: str | None, size: str) -> str:
    """JSON pretty-printed, text as is, binary bodies named in one line."""
    from .http import is_text  # already loaded: this module is used from http.py

    if mime == "application/pdf" or body.data.startswith(b"%PDF-"):
        return (f"[a PDF document, {size}; web_fetch does not extract text from PDFs, "
                "so there is nothing to show]")
    if not is_text(mime, body.data):
        return f"[binary content ({mime or 'unknown type'}), {size}; not shown]"
    text = body.data.decode(_codec(charset) or "utf-8", errors="replace")
    if mime == "application/json" or mime.endswith("+json"):
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            pass  # cut short or not JSON after all: shown as it came
    return text


# --- HTML ---------------------------------------------------------------------------------

_ASCII_PROBE = b"<p class='a+b-c'>\\x41 \\u0041 &amp; +AD4- z</p>"


def _codec(label: str | bytes | None) -> str | None:
    """The Python codec for a charset label, or None if it names no text encoding
    that reads ASCII as ASCII (``rot13``, ``zlib``, ``unicode_escape``, UTF-7, EBCDIC
    and other labels a page must not choose). Latin-1 and ASCII labels mean
    Windows-1252, as browsers read them."""
    if isinstance(label, bytes):
        label = label.decode("ascii", "replace")
    if not label:
        return None
    try:
        info = codecs.lookup(label.strip())
        fits = info._is_text_encoding and \
            _ASCII_PROBE.decode(info.name, "replace") == _ASCII_PROBE.decode("ascii")
    except (LookupError, UnicodeError, ValueError):
        return None
    if not fits:
        return None
    return "cp1252" if info.name in ("latin-1", "iso8859-1", "ascii") else info.name


charset_codec = _codec


def decode_html(data: bytes, header_charset: str | None) -> str:
    """An HTML body as text: BOM, then the header's charset, then ``<meta>``, then
    UTF-8 (Windows-1252 when the bytes are not UTF-8). Undecodable bytes become U+FFFD."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data.decode(name, errors="replace")
    found = _META_CHARSET.search(data[:4096])
    chosen = _codec(header_charset) or _codec(found.group(1) if found else None)
    if chosen and not chosen.startswith("utf-16"):  # a page in UTF-16 has a BOM
        return data.decode(chosen, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3:  # a character cut at the end by the size cap
            return data.decode("utf-8", errors="replace")
        return data.decode("cp1252", errors="replace")


@dataclass
class Page:
    """A page rendered as Markdown."""

    title: str | None
    text: str
    omitted: int = 0
    """Characters of page text left out before conversion (only on pages far longer
    than asked for; ``text`` then already holds more than was asked for)."""
    problem: str | None = None
    """Why part of the page could not be read, if it could not."""


def html_to_markdown(html: str, url: str, limit: int = 1_000_000) -> Page:
    """A page's title and main content as Markdown, links made absolute against
    ``url``, for about ``limit`` characters: text beyond that is left out before
    the (slow) conversion and counted in ``Page.omitted``. Broken HTML is repaired
    by the parser; what cannot be parsed at all gives no text rather than an error."""
    import lxml.etree
    import lxml.html

    parser = lxml.html.HTMLParser(encoding="utf-8")
    try:
        doc = lxml.html.document_fromstring(
            _short_tags(_NOT_XML.sub("\ufffd", html)).encode("utf-8", "replace"), parser=parser)
    except (lxml.etree.ParserError, ValueError):  # empty, or nothing but a comment
        return Page(None, "")
    problem = None
    if any(e.type_name == "ERR_RESOURCE_LIMIT" for e in parser.error_log):
        problem = ("the page nests its elements too deeply (hundreds of levels); the parser "
                   "stopped there, so what follows is missing")
    title = _title(doc)
    _drop_boilerplate(doc)
    _unnest_headings(doc)
    with contextlib.suppress(ValueError):  # a base URL lxml cannot use: links stay as written
        doc.make_links_absolute(url, handle_failures="discard")
    for link in doc.iter("a"):
        if link.get("href", "").strip().lower().startswith(("javascript:", "data:")):
            del link.attrib["href"]
    body = doc.find("body")
    chosen = body if body is not None else doc
    main = _main_content(doc)
    # readability keeps one block; on pages that are not one article (a list, a
    # home page) that block can be a small part: then the cleaned page is better
    if main is not None and _text_length(main) >= 0.4 * _text_length(chosen):
        chosen = main
    omitted = _prune(chosen, 2 * limit + 10_000)
    try:
        text = _markdown(lxml.html.tostring(chosen, encoding="unicode"))
    except RecursionError:  # nesting too deep for the converter: the plain text
        text = _SPACES.sub(" ", chosen.text_content()).strip()
    return Page(title, text, omitted, problem)


def _short_tags(html: str) -> str:
    """``html`` with the attributes of every start tag longer than ``MAX_TAG`` removed.

    A quote inside a tag runs to the same quote, wherever it stands, so a tag is
    never judged shorter than the parser reads it; a tag or quote left open runs to
    the end. Every match succeeds, so the scan is linear.
    """
    pieces, done = [], 0
    for tag in _START_TAG.finditer(html):
        if tag.end() - tag.start() > MAX_TAG:
            name = _TAG_NAME.match(html, tag.start())
            pieces += [html[done:tag.start()], name.group() if name else "<"]
            done = tag.end() - 1 if tag.group().endswith(">") else tag.end()
    if not pieces:
        return html
    pieces.append(html[done:])
    return "".join(pieces)


def _text_length(element: Any) -> int:
    return len(_SPACES.sub("", element.text_content()))


def _prune(root: Any, budget: int) -> int:
    """Remove everything under ``root`` after ``budget`` units of work (a character of
    text is one, an element ``ELEMENT_COST``); return the characters of text removed."""
    spent = 0
    for element in root.iter():
        spent += ELEMENT_COST + len(element.text or "")
        if element is not root:
            spent += len(element.tail or "")
        if spent > budget:
            break
    else:
        return 0
    before = len(root.text_content())
    for child in list(element):  # its text is kept, what it holds is not
        element.remove(child)
    node = element
    while node is not root:
        parent = node.getparent()
        for following in list(node.itersiblings()):
            parent.remove(following)
        node.tail = None
        node = parent
    return before - len(root.text_content())


def _title(doc: Any) -> str | None:
    for path in (".//title", ".//h1"):
        found = doc.find(path)
        if found is not None:
            text = _SPACES.sub(" ", found.text_content()).strip()
            if text:
                return text if len(text) <= MAX_TITLE else text[:MAX_TITLE] + "..."
    return None


def _drop_boilerplate(doc: Any) -> None:
    """Remove navigation, page headers and footers, scripts, forms and boxes whose
    role, class or id says navigation, cookie, consent, newsletter, sidebar, ...
    (never the page's main or article element, anything holding its h1, or a box
    holding most of the page's text: a class such as "has-sidebar" on a wrapper)."""
    for element in list(doc.iter(*_DROP_TAGS, "header")):
        if element.getparent() is None:
            continue
        if element.tag != "header" or not any(a.tag in ("article", "main")
                                              for a in element.iterancestors()):
            element.drop_tree()
    total = len(doc.text_content())
    for element in list(doc.iter("div", "section", "p", "span", "ul", "ol", "table")):
        if element.getparent() is not None and _is_boilerplate(element, total):
            element.drop_tree()


def _unnest_headings(doc: Any) -> None:
    """Move blocks out of a heading that swallowed them (an unclosed ``<h1>`` holding the
    next heading and paragraphs), so that each becomes its own Markdown block."""
    for heading in list(doc.iter(*_HEADINGS)):
        for child in reversed(list(heading)):
            if child.tag in _HEADINGS or child.tag in _BLOCKS:
                heading.addnext(child)


def _is_boilerplate(element: Any, total: int) -> bool:
    if (element.get("role") or "").strip().lower() in _DROP_ROLES:
        return True
    if element.get("aria-modal") == "true" or element.get("hidden") is not None:
        return True
    words = set(_WORD.findall(f"{element.get('class', '')} {element.get('id', '')}".lower()))
    if not words & _DROP_WORDS:
        return False
    if next(element.iter("h1", "article", "main"), None) is not None:
        return False
    return len(element.text_content()) <= total / 2


def _main_content(doc: Any) -> Any:
    """readability-lxml's choice of the main block (None when it finds none, or when
    the page is too large for its scoring to finish quickly)."""
    import lxml.html
    from readability import Document
    from readability.readability import Unparseable

    if sum(1 for _ in doc.iter()) > MAX_SCORED:
        return None
    # readability logs its failures with a traceback; a page it cannot score is
    # simply shown whole (the logger would print to stderr, mid-answer)
    logging.getLogger("readability.readability").disabled = True
    try:
        summary = Document(doc).summary(html_partial=True)
        return lxml.html.document_fromstring(summary).find("body")
    except (Unparseable, ValueError, TypeError, RecursionError, lxml.etree.ParserError):
        return None


def _markdown(html: str) -> str:
    from markdownify import MarkdownConverter

    text = MarkdownConverter(heading_style="ATX", bullets="-", strip=["img"],
                             escape_misc=False, table_infer_header=True,
                             bs4_options="lxml").convert(html)
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return _BLANK_LINES.sub("\n\n", text).strip()
