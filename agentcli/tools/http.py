"""The built-in ``http_get``, ``http_post`` and ``web_fetch`` tools.

This module owns what the model may ask for and what it gets back: the
checks that run before the approval panel (``Tool.check``: the URL rules from
netguard, headers, json-or-data, the model API key),
the panel rows (``Tool.preview``), redirects followed by hand (each hop checked
again, at most 5, credentials dropped across origins), the body read under a
decoded-size cap and one overall deadline, and the text result. Where a
connection may go is decided in :mod:`agentcli.tools.netguard`, at connect
time, against the address actually connected to.
"""

from __future__ import annotations

import hashlib
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, cast

import httpx2
from pydantic import Field

from ..config import HttpSettings
from ..errors import InvalidArguments
from .base import Tool
from .disguise import SecretForms, strings
from .netguard import (
    Deadline,
    GuardedBackend,
    GuardedTransport,
    HostPolicy,
    HttpFailed,
    HttpRefused,
    HttpTimeout,
    Resolver,
    check_target,
    clip,
    default_port,
    parse_url,
)

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)
CREDENTIALS = ("authorization", "cookie", "proxy-authorization")
FORBIDDEN_HEADERS = frozenset({"host", "transfer-encoding", "content-length", "connection",
                               "keep-alive", "te", "trailer", "upgrade", "accept-encoding"})
DEFAULT_HEADERS = {"User-Agent": "agentcli", "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TEXT_SUBTYPES = ("json", "xml", "javascript", "ecmascript", "x-www-form-urlencoded", "yaml",
                  "x-yaml", "ndjson", "x-ndjson", "csv", "graphql", "sql", "x-sh", "markdown")


# --- checks before approval -------------------------------------------------------------

def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse malformed header names and values and headers agentcli must control."""
    for name, value in headers.items():
        if not name or any(c not in _TOKEN for c in name):
            raise InvalidArguments(f"refused: header name {name!r} is not a valid HTTP token "
                                   "(letters, digits and !#$%&'*+-.^_`|~ only)")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise InvalidArguments(f"refused: the value of header {name!r} contains a control "
                                   "character (CR, LF, ...)")
        if any(ord(c) > 0x7E for c in value):
            raise InvalidArguments(f"refused: the value of header {name!r} is not plain ASCII")
        lower = name.lower()
        if lower in FORBIDDEN_HEADERS or lower.startswith("proxy-"):
            raise InvalidArguments(f"refused: the {name} header is set by agentcli, not by "
                                   "the tool call; leave it out")


_PARTS = {"url": "URL", "params": "query parameters", "json": "JSON body", "data": "body"}


def check_secrets(arguments: Mapping[str, Any], secrets: SecretForms) -> None:
    """Refuse a call that carries a secret, in any disguise, in any part the model wrote:
    the URL (host, path and query), params, header names and values, json or data."""
    if not secrets:
        return
    for part, value in arguments.items():
        try:
            found = next((form for text in strings(value)
                          if (form := secrets.find(text)) is not None), None)
        except ValueError as exc:
            raise InvalidArguments(f"refused: the {part} is too large to check ({exc})") from None
        if found is not None:
            shown = "" if found == "as is" else f", {found}"
            raise InvalidArguments(f"refused: the model API key is in the {_PARTS.get(part, part)}"
                                   f"{shown}; it must never be sent to a tool")


def make_check(policy: HostPolicy, secrets: list[str]) -> Callable[[dict[str, Any]], None]:
    """The ``Tool.check`` hook shared by both tools."""
    forms = SecretForms(secrets)

    def check(kwargs: dict[str, Any]) -> None:
        check_secrets(kwargs, forms)  # first: no other message may repeat the key
        url = parse_url(kwargs["url"], kwargs.get("params"))
        check_target(url, policy, InvalidArguments, kwargs["url"])
        check_headers(kwargs.get("headers") or {})
        if kwargs.get("json") is not None and kwargs.get("data") is not None:
            raise InvalidArguments("give either json or data, not both")
    return check


def make_preview(method: str) -> Callable[[dict[str, Any]], dict[str, str]]:
    """The ``Tool.preview`` hook: method, the parsed (IDNA-decoded) host, the full URL."""
    def preview(arguments: dict[str, Any]) -> dict[str, str]:
        try:
            url = parse_url(str(arguments.get("url", "")), arguments.get("params") or None)
        except (InvalidArguments, TypeError, ValueError, AttributeError):
            return {"method": method, "url": str(arguments.get("url", ""))}
        return {"method": method, "host": url.host, "url": str(url)}
    return preview


# --- the request ------------------------------------------------------------------------

@dataclass
class Fetch:
    """One tool call's request; ``run`` returns the result text."""

    config: HttpSettings
    method: str
    url: str
    params: dict[str, str] | None = None
    headers: dict[str, str] | None = None
    json: Any = None
    data: str | None = None
    resolver: Resolver | None = None

    def run(self) -> str:
        return format_result(*self.fetch(), self.config.max_bytes)

    def fetch(self) -> tuple[httpx2.Response, Body]:
        """The final response (redirects followed, each hop checked) and its body, read
        under the size cap and the deadline; ``web_fetch`` renders the same pair."""
        deadline = Deadline(self.config.timeout)
        policy = HostPolicy(self.config.allow_hosts, self.config.allow_private)
        backend = GuardedBackend(policy, deadline, self.resolver)
        with httpx2.Client(transport=GuardedTransport(backend), trust_env=False,
                          headers=DEFAULT_HEADERS, follow_redirects=False) as client:
            response = self._follow(client, self._first(client), policy, deadline)
            try:
                body = read_body(response, self.config.max_bytes, deadline)
            finally:
                response.close()
        return response, body

    def _first(self, client: httpx2.Client) -> httpx2.Request:
        headers = dict(self.headers or {})
        content: bytes | None = None
        if self.data is not None:
            content = self.data.encode("utf-8")
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/x-www-form-urlencoded"
        return client.build_request(self.method, parse_url(self.url, self.params),
                                    headers=headers, content=content, json=self.json)

    def _follow(self, client: httpx2.Client, request: httpx2.Request, policy: HostPolicy,
                deadline: Deadline) -> httpx2.Response:
        for hop in range(MAX_REDIRECTS + 1):
            response = send(client, request, deadline)
            location = response.headers.get("location")
            if response.status_code not in REDIRECTS or location is None:
                return response
            response.close()
            if hop == MAX_REDIRECTS:
                raise HttpFailed(f"too many redirects: more than {MAX_REDIRECTS} "
                                 f"(the last one pointed to {clip(location)})")
            request = next_request(client, request, response.status_code, location, policy)
        raise AssertionError("unreachable")


def send(client: httpx2.Client, request: httpx2.Request, deadline: Deadline) -> httpx2.Response:
    """Send one hop within what is left of the deadline; map failures to ToolErrors."""
    host = request.url.host
    try:
        wait = deadline.clamp(None, HttpTimeout)
        request.extensions["timeout"] = httpx2.Timeout(wait).as_dict()
        return client.send(request, stream=True)
    except httpx2.TimeoutException:
        raise HttpTimeout(f"timed out: no response from {host} within the overall deadline "
                          f"of {deadline.seconds:g} s") from None
    except httpx2.HTTPError as exc:
        raise HttpFailed(f"request to {host} failed: {exc or type(exc).__name__}") from None
    except HttpTimeout:
        raise HttpTimeout(f"timed out: the overall deadline of {deadline.seconds:g} s passed "
                          f"before {host} answered") from None


def next_request(client: httpx2.Client, request: httpx2.Request, status: int, location: str,
                 policy: HostPolicy) -> httpx2.Request:
    """The request for a redirect: re-checked, method per RFC 9110, credentials per origin."""
    try:
        target = request.url.join(location)
    except (httpx2.InvalidURL, UnicodeError) as exc:
        raise HttpFailed(f"redirect to an invalid URL {clip(location)}: {str(exc)[:200]}") from None
    check_target(target, policy, HttpRefused, location)
    method, content = request.method, cast(bytes | None, request.content)
    headers = request.headers.copy()
    for name in ("host", "content-length"):
        headers.pop(name, None)
    if status in (301, 302, 303) and method != "HEAD":
        method, content = "GET", None
        for name in ("content-type", "transfer-encoding"):
            headers.pop(name, None)
    if origin(target) != origin(request.url):
        for name in CREDENTIALS:
            headers.pop(name, None)
    return client.build_request(method, target, headers=headers, content=content)


def origin(url: httpx2.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or default_port(url)


# --- the body ---------------------------------------------------------------------------

@dataclass
class Body:
    data: bytes
    truncated: bool = False
    deadline_cut: bool = False
    problem: str | None = None
    undecoded: str | None = None  # a content-encoding left as it came


class _Decoder:
    """gzip/deflate decoding that never yields more than asked for (bomb-proof)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        wbits = {"gzip": 31, "x-gzip": 31, "deflate": 15}.get(encoding)
        self.zlib = zlib.decompressobj(wbits) if wbits else None
        self.started = False

    def decode(self, chunk: bytes, limit: int) -> bytes:
        if self.zlib is None:
            return chunk[:limit]
        try:
            out = self.zlib.decompress(chunk, limit)
        except zlib.error:
            if self.encoding != "deflate" or self.started:
                raise
            self.zlib = zlib.decompressobj(-15)  # raw deflate, as some servers send it
            out = self.zlib.decompress(chunk, limit)
        self.started = True
        return out


def read_body(response: httpx2.Response, cap: int, deadline: Deadline) -> Body:
    """Read and decode at most ``cap`` bytes of body before the deadline."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    known = encoding in ("identity", "", "gzip", "x-gzip", "deflate")
    decoder = _Decoder(encoding if known else "identity")
    body = Body(b"", undecoded=None if known else encoding)
    out = bytearray()
    try:
        for chunk in response.iter_raw():
            out += decoder.decode(chunk, cap + 1 - len(out))
            if len(out) > cap:
                body.truncated = True
                break
            if deadline.expired():
                body.deadline_cut = True
                break
    except httpx2.TimeoutException:
        body.deadline_cut = True
    except (httpx2.HTTPError, zlib.error) as exc:
        body.problem = f"the body ended early: {exc or type(exc).__name__}"
    body.data = bytes(out[:cap])
    return body


# --- the result -------------------------------------------------------------------------

def is_text(content_type: str, data: bytes) -> bool:
    """Whether a body should be shown as text: by its media type, else by sniffing."""
    mime = content_type.split(";")[0].strip().lower()
    if b"\x00" in data[:4096]:  # NUL bytes: not text, whatever the label says
        return False
    if mime:
        kind, _, sub = mime.partition("/")
        return kind == "text" or sub in _TEXT_SUBTYPES or sub.endswith(("+json", "+xml"))
    sample = data[:4096]
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(sample) - 3  # only a character cut at the end
    return True


def format_result(response: httpx2.Response, body: Body, cap: int) -> str:
    """``HTTP <status> <reason>``, the final URL, the content type, then the body."""
    content_type = response.headers.get("content-type", "")
    lines = [f"HTTP {response.status_code} {response.reason_phrase}".rstrip(),
             f"url: {response.url}"]
    if content_type:
        lines.append(f"content-type: {content_type}")
    return "\n".join(lines) + "\n\n" + render_body(body, content_type, response, cap)


def render_body(body: Body, content_type: str, response: httpx2.Response, cap: int) -> str:
    """The body as text, or a one-line summary for binary or undecoded bodies."""
    size = f"{len(body.data):,} bytes" if not body.truncated else f"more than {cap:,} bytes"
    if body.undecoded:
        text = f"[body in {body.undecoded} encoding, {size}, not decoded and not shown]"
    elif not body.data and not (body.truncated or body.deadline_cut or body.problem):
        text = "(empty body)"
    elif is_text(content_type, body.data):
        text = body.data.decode(_charset(response), errors="replace")
    else:
        digest = hashlib.sha256(body.data).hexdigest()[:16]
        kind = content_type.split(";")[0].strip() or "unknown type"
        text = f"[binary body, {size} of {kind}, not shown; sha256 {digest}...]"
    if body.truncated:
        text += f"\n[... body truncated at {cap:,} bytes]"
    if body.deadline_cut:
        text += f"\n[... body cut by the deadline after {len(body.data):,} bytes]"
    if body.problem:
        text += f"\n[... {body.problem}]"
    return text


def _charset(response: httpx2.Response) -> str:
    """The body's codec: its charset if that names an ASCII-compatible text encoding
    (not ``rot13``, ``unicode_escape`` or UTF-7), else UTF-8."""
    from .webpage import charset_codec

    return charset_codec(response.charset_encoding) or "utf-8"


# --- the tools --------------------------------------------------------------------------

def http_tools(config: HttpSettings, *, secrets: list[str] = [],  # noqa: B006 (read only)
               resolver: Resolver | None = None) -> list[Tool]:
    """The built-in ``http_get``, ``http_post`` and ``web_fetch`` tools for ``[http]``
    settings; ``web_fetch`` is ``http_get`` with the body rendered as readable Markdown
    (:mod:`agentcli.tools.webpage`).

    Args:
        config: The ``[http]`` settings: allow_hosts, allow_private, timeout, max_bytes.
        secrets: Strings that must never leave in a request (the model API key).
        resolver: ``resolver(host, port) -> [ip, ...]``; getaddrinfo by default
            (tests inject a fake one).

    Raises:
        ConfigError: An ``allow_hosts`` entry is not a host or host:port.
    """
    policy = HostPolicy(config.allow_hosts, config.allow_private)
    tools = []
    for method, func in (("GET", _get_function(config, resolver)),
                         ("POST", _post_function(config, resolver)),
                         ("GET", _web_fetch_function(config, resolver))):
        with warnings.catch_warnings():  # a field named "json" shadows BaseModel.json
            warnings.filterwarnings("ignore", message='Field name "json"')
            made = Tool(func)
        made.check = make_check(policy, list(secrets))
        made.preview = make_preview(method)
        made.scope, made.untrusted_output = origin_scope, True
        made.side_effects = method == "POST"
        tools.append(made)
    return tools


def origin_scope(arguments: dict[str, Any]) -> str:
    """The approval scope of a request: scheme://host[:port] of its URL (no default port)."""
    url = parse_url(str(arguments.get("url", "")), arguments.get("params") or None)
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = url.port if url.port not in (None, default_port(url)) else None
    return f"{url.scheme}://{host}" + (f":{port}" if port else "")


def _get_function(config: HttpSettings, resolver: Resolver | None) -> Callable[..., str]:
    def http_get(url: str, params: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> str:
        """Fetch a public web page or API with HTTP GET; returns status, final URL, content type and body.

        Only http:// and https:// URLs on public addresses are allowed. Binary
        bodies (images, archives) are summarised, not shown; long bodies are cut.
        HTTP errors such as 404 come back as results.

        Args:
            url: The full URL, e.g. "https://api.example.com/items?id=3".
            params: Query parameters added to the URL, e.g. {"q": "weather"}.
            headers: Extra request headers, e.g. {"Accept": "application/json"}.
        """
        return Fetch(config, "GET", url, params, headers, resolver=resolver).run()
    return http_get


def _post_function(config: HttpSettings, resolver: Resolver | None) -> Callable[..., str]:
    def http_post(url: str, json: Any | None = None, data: str | None = None,
                  headers: dict[str, str] | None = None) -> str:
        """Send an HTTP POST to a public web API; returns status, final URL, content type and body.

        Give json for a JSON body or data for a form/text body, not both.
        Only http:// and https:// URLs on public addresses are allowed.

        Args:
            url: The full URL, e.g. "https://api.example.com/items".
            json: A JSON value sent as the body with Content-Type application/json.
            data: A text body, sent as application/x-www-form-urlencoded (e.g.
                "a=1&b=2") unless headers set another Content-Type.
            headers: Extra request headers, e.g. {"Accept": "application/json"}.
        """
        return Fetch(config, "POST", url, headers=headers, json=json, data=data,
                     resolver=resolver).run()
    return http_post


def _web_fetch_function(config: HttpSettings, resolver: Resolver | None) -> Callable[..., str]:
    def web_fetch(url: str, max_chars: Annotated[int, Field(ge=1, le=1_000_000)] = 20_000) -> str:
        """Read a public web page as Markdown: its main text, headings, lists and links, without menus, ads or scripts.

        Returns the status, the final URL and the page title, then the content.
        JSON is pretty-printed and plain text shown as is; PDFs and other binary
        files are only named with their size. Use http_get for raw bodies.

        Args:
            url: The page's full http:// or https:// URL, e.g. "https://example.org/article".
            max_chars: The most characters of content to return; longer content
                is cut, with a note saying how much was left.
        """
        from .webpage import ACCEPT, render

        fetch = Fetch(config, "GET", url, headers={"Accept": ACCEPT}, resolver=resolver)
        return render(*fetch.fetch(), max_chars, config.max_bytes)
    return web_fetch
