"""Where the HTTP tools may connect: address classes, the allow-list, and a
guarded httpx2 transport that connects only to addresses it has checked.

This module owns the SSRF defence of ``http_get`` / ``http_post``:

* :func:`classify` names the class of a non-public address (loopback, private,
  CGNAT, link-local, ...). IPv6 forms that carry an IPv4 address (mapped,
  compatible, SIIT, 6to4, NAT64, Teredo, ISATAP) are judged by the IPv4 address they
  carry, since Python's ``ipaddress`` calls some of them global.
* :class:`HostPolicy` combines that with ``[http] allow_hosts`` and
  ``allow_private``; :func:`check_target` holds the URL rules (http/https
  only, no userinfo, a real host name, ports 80/443 unless allow-listed),
  applied before approval and again to every redirect target.
* :class:`GuardedBackend` is an httpcore2 network backend. httpcore2 asks it for
  a TCP connection to ``(hostname, port)``; it resolves the name once, checks
  every address the name resolves to, and hands the *checked IP literal* to
  httpcore2's own socket backend, so there is no second DNS lookup that a
  rebinding name could answer differently. Only the TCP connect sees the IP:
  httpcore2 still builds the request from the URL (``Host: hostname``) and
  calls ``start_tls(server_hostname=hostname)`` on the returned stream, so SNI
  and certificate verification (``check_hostname``) are against the hostname
  the model asked for, not the IP.
* The streams it returns clamp every connect/read/write timeout to one
  wall-clock :class:`Deadline` for the whole call (httpx2 timeouts are per
  operation, so a slow drip would otherwise never time out).
* :class:`GuardedTransport` is an ``httpx2.BaseTransport`` (the public
  custom-transport interface) over an ``httpcore2.ConnectionPool`` built with
  that backend as its public ``network_backend`` argument; it has no proxy, so
  environment proxy variables cannot route around the check.

This is the stack the openai SDK runs on, so a run loads one HTTP library.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
import unicodedata
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any, cast

import httpcore2
import httpx2

from ..errors import ConfigError, InvalidArguments, ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""``resolver(host, port)`` returns the IP addresses ``host`` resolves to."""

NEVER = frozenset({"unspecified", "multicast", "broadcast"})
"""Classes refused even for allow-listed hosts and with ``allow_private``."""

_V4_CLASSES: list[tuple[str, str]] = [
    ("0.0.0.0/8", "unspecified"), ("127.0.0.0/8", "loopback"), ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"), ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "shared address space, CGNAT"), ("169.254.0.0/16", "link-local"),
    ("224.0.0.0/4", "multicast"), ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
]
_V4_NETS = [(ipaddress.IPv4Network(net), name) for net, name in _V4_CLASSES]
_V6_NETS = [(ipaddress.IPv6Network(net), name) for net, name in [
    ("ff00::/8", "multicast"), ("fe80::/10", "link-local"), ("fec0::/10", "site-local"),
    ("fc00::/7", "unique-local"),
]]
_HOST_RE = re.compile(r"^([a-z0-9_-]+(\.[a-z0-9_-]+)*|[0-9a-f:.]*:[0-9a-f:.%a-z]*)$")
_LABEL_RE = re.compile(r"[a-z0-9_-]+")
MAX_URL = 8_192
"""The longest URL accepted, in characters (after params are merged into it)."""
MAX_HOST = 253
MAX_LABEL = 63
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
"""Unicode categories never allowed in a URL: controls, format characters (bidi
overrides, zero-width), surrogates and every kind of space."""
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPAT = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


class HttpRefused(ToolError):
    """The request was refused by the address, scheme, port or header rules."""


class HttpTimeout(ToolError):
    """The overall deadline passed before the response headers arrived."""


class HttpFailed(ToolError):
    """The network failed: no such host, connection refused, protocol error."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 address an IPv6 address carries, in any form that routes to it.

    Args:
        ip: An IPv6 address.

    Returns:
        The embedded IPv4 address as a one-item list, or an empty list.
    """
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _MAPPED or ip in _SIIT or ip in _NAT64:
        return [low32]
    if ip in _COMPAT and int(ip) > 1:  # ::a.b.c.d, but not :: or ::1
        return [low32]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return [ip.teredo[1]]  # the client address, already XORed with 0xffffffff
    if ip in _NAT64_LOCAL:  # RFC 8215 local use; the /96 layout is the common one
        return [low32]
    if (int(ip) >> 32) & 0xFDFFFFFF == 0x00005EFE:  # ISATAP interface id ::[02]00:5efe:a.b.c.d
        return [low32]
    return []


def classify(ip: IPAddress) -> str | None:
    """The class of a non-public address, or None for a public one.

    Args:
        ip: The address to judge.

    Returns:
        A short name such as "loopback", "private" or "loopback, embedded
        IPv4 127.0.0.1"; None when the address is public.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%")[0])
        embedded = embedded_ipv4(ip)
        for inner in embedded:
            found = classify(inner)
            if found is not None:
                return f"{found}, embedded IPv4 {inner}"
        if ip in _NAT64_LOCAL:
            return "local-use NAT64"
        if embedded:  # judged by the IPv4 address it routes to, which is public
            return None
        if ip.is_unspecified:
            return "unspecified"
        if ip.is_loopback:
            return "loopback"
        nets: Iterable[tuple[Any, str]] = _V6_NETS
    else:
        nets = _V4_NETS
    for net, name in nets:
        if ip in net:
            return name
    return None if ip.is_global else "special-use"


class AllowList:
    """``[http] allow_hosts``: entries "host" (any port) or "host:port"."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries: list[tuple[str, int | None]] = [_parse_entry(e) for e in entries]

    def allows(self, host: str, port: int) -> bool:
        """Whether ``host`` (an ASCII name or IP literal) on ``port`` is listed."""
        key = normal_host(host)
        return any(h == key and p in (None, port) for h, p in self.entries)


def _parse_entry(entry: str) -> tuple[str, int | None]:
    text = entry.strip()
    try:  # an unregistered scheme keeps even port 80 or 443 explicit
        url = httpx2.URL(f"allow://{text}/")
        host = normal_host(url.raw_host.decode("ascii"))
    except (httpx2.InvalidURL, UnicodeError):
        host = ""
    if not valid_host(host) or url.userinfo or any(c in text for c in "/@?#"):
        raise ConfigError(f"[http] allow_hosts: {entry!r} is not a host or host:port")
    return host, url.port


def valid_host(host: str) -> bool:
    """Whether ``host`` (ASCII, as from ``normal_host``) is a DNS name or an IP literal."""
    return bool(_HOST_RE.fullmatch(host))


def normal_host(host: str) -> str:
    """A host in the form used for comparisons: lower case, no final dot, canonical IP."""
    host = host.strip("[]").lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def host_entry(host: str, port: int) -> str:
    """The ``allow_hosts`` entry that would allow ``host`` on ``port``."""
    host = normal_host(host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HostPolicy:
    """Which (host, port, address) triples may be connected to."""

    def __init__(self, allow_hosts: Iterable[str] = (), allow_private: bool = False) -> None:
        self.allow_list = AllowList(allow_hosts)
        self.allow_private = allow_private

    def check_port(self, host: str, port: int) -> None:
        """Refuse ports other than 80 and 443 unless the host is allow-listed."""
        if port not in (80, 443) and not self.allow_list.allows(host, port):
            raise HttpRefused(f"refused: port {port} is not allowed (only 80 and 443); add "
                              f'"{host_entry(host, port)}" to [http] allow_hosts to allow it')

    def check_address(self, host: str, port: int, ip: IPAddress) -> None:
        """Refuse a non-public ``ip`` that ``host`` resolved to, unless allowed."""
        found = classify(ip)
        if found is None:
            return
        literal = normal_host(host) == str(ip)
        where = f"{ip} is" if literal else f"{host} resolves to {ip},"
        if found.split(",")[0] in NEVER:
            raise HttpRefused(f"refused: {where} a non-public address ({found}), "
                              "which is never allowed")
        if self.allow_private or self.allow_list.allows(host, port):
            return
        raise HttpRefused(f"refused: {where} a non-public address ({found}); add "
                          f'"{host_entry(host, port)}" to [http] allow_hosts to allow it')


# --- URL rules (checked before approval and again on every redirect) ------------------

def parse_url(url: str, params: Mapping[str, str] | None = None) -> httpx2.URL:
    """Parse ``url`` (with ``params`` merged into its query) or raise InvalidArguments."""
    problem = url_problem(url) if isinstance(url, str) else "it is not text"
    if problem:
        raise InvalidArguments(f"invalid URL: {problem}")
    try:
        parsed = httpx2.URL(url)
    except (httpx2.InvalidURL, UnicodeError, TypeError) as exc:
        raise InvalidArguments(_numeric_refusal(url) or
                               f"invalid URL {clip(url)}: {_parse_failure(exc)}") from None
    parsed = parsed.copy_merge_params(dict(params)) if params else parsed
    if len(str(parsed)) > MAX_URL:
        raise InvalidArguments(f"invalid URL: with its parameters it is {len(str(parsed)):,} "
                               f"characters long (the limit is {MAX_URL:,})")
    return parsed


def _parse_failure(exc: Exception) -> str:
    text = str(exc)[:200]
    if "IDNA" in text:
        return f"the host name cannot be written as an internationalized (IDNA) name ({text})"
    return text


def url_problem(url: str) -> str | None:
    """Why ``url`` as written cannot be a URL (too long, a control character or a
    space in it), or None."""
    if len(url) > MAX_URL:
        return f"it is {len(url):,} characters long (the limit is {MAX_URL:,})"
    for position, char in enumerate(url):
        if char.isspace() or unicodedata.category(char) in _INVISIBLE:
            name = unicodedata.name(char, "a control character")
            return (f"it contains U+{ord(char):04X} ({name}) at position {position}; URLs "
                    "cannot hold control characters or spaces (write a space as %20)")
    return None


def host_problem(host: str) -> str | None:
    """Why ``host`` (ASCII, as from ``normal_host``) is not a usable host name, or None.

    IP literals pass; a name must have labels of 1 to 63 letters, digits, ``-``
    or ``_`` not starting or ending with ``-``, at most 253 characters in all,
    and every ``xn--`` label must decode as IDNA.
    """
    if ":" in host or re.fullmatch(r"[0-9.]+", host):
        return None if valid_host(host) else f"{clip(host)} is not a valid IP address"
    if not host:
        return "it has no host name"
    if len(host) > MAX_HOST:
        return f"the host name is {len(host):,} characters long (the limit is {MAX_HOST})"
    for label in host.split("."):
        problem = _label_problem(label)
        if problem:
            return f"the host name {clip(host)} {problem}"
    return None


def _label_problem(label: str) -> str | None:
    if not label:
        return "has an empty label (two dots in a row, or a dot at the start)"
    if len(label) > MAX_LABEL:
        return f"has a label of {len(label)} characters (the limit is {MAX_LABEL})"
    if not _LABEL_RE.fullmatch(label):
        bad = next(c for c in label if not _LABEL_RE.fullmatch(c))
        return f"contains {bad!r}, which host names cannot hold"
    if label.startswith("-") or label.endswith("-"):
        return f"has a label that starts or ends with '-' ({clip(label)})"
    if label.startswith("xn--"):
        try:
            label.encode("ascii").decode("idna")
        except UnicodeError:
            return f"has a label {clip(label)} that is not a valid internationalized (IDNA) name"
    return None


def clip(text: str, limit: int = 100) -> str:
    """``text`` quoted, cut to about ``limit`` characters: a long URL is not repeated whole."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text):,} characters)"


def _numeric_refusal(url: str) -> str:
    """For IPv4 spellings httpx rejects (0177.0.0.1): judge what inet_aton makes of them."""
    try:
        host = urllib.parse.urlsplit(url).hostname or ""
        ip = ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, UnicodeError, ValueError):
        return ""
    found = classify(ip)
    if found is not None:
        return f"refused: {host} means {ip}, a non-public address ({found})"
    return f"invalid URL {url!r}: write the address {host} as {ip}"


def check_target(url: httpx2.URL, policy: HostPolicy, error: type[Exception],
                 raw: str | None = None) -> None:
    """Scheme, userinfo, host and port rules for one URL (the request or a redirect hop).

    Args:
        url: The parsed URL.
        policy: Which hosts may use other ports than 80 and 443.
        error: The exception to raise (InvalidArguments before approval).
        raw: The URL as given, when there is one: "http://@host/" parses
            without its empty userinfo, but is refused all the same.
    """
    if url.scheme not in ("http", "https"):
        raise error(f"refused: {url.scheme or 'scheme-less'} URLs are not allowed; "
                    "use http:// or https://")
    if url.userinfo or "@" in _netloc(raw or str(url)):
        raise error("refused: URLs with a user name or password (user@host) are not allowed")
    if not url.raw_host:
        raise error(f"invalid URL {clip(raw or str(url))}: it has no host")
    problem = host_problem(normal_host(url.raw_host.decode("ascii")))
    if problem:
        raise error(f"invalid URL: {problem}")
    try:
        policy.check_port(url.raw_host.decode("ascii"), url.port or default_port(url))
    except HttpRefused as exc:
        raise error(str(exc)) from None


def _netloc(url: str) -> str:
    try:
        return urllib.parse.urlsplit(url).netloc
    except ValueError:
        return ""


def default_port(url: httpx2.URL) -> int:
    """The port a URL without one uses: 443 for https, 80 for http."""
    return 443 if url.scheme == "https" else 80


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with ``socket.getaddrinfo`` (numeric forms such as 127.1 included)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class Deadline:
    """One wall-clock limit for a whole call: connect, redirects and body."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def clamp(self, timeout: float | None, error: type[Exception]) -> float:
        """``timeout`` cut to the time left; raise ``error`` when none is left."""
        left = self.remaining()
        if left <= 0:
            raise error(f"the overall deadline of {self.seconds:g} s passed")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore2.NetworkStream):
    """A network stream whose every operation ends by the call's deadline."""

    def __init__(self, inner: httpcore2.NetworkStream, deadline: Deadline) -> None:
        self.inner = inner
        self.deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, self.deadline.clamp(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, self.deadline.clamp(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore2.NetworkStream:
        wait = self.deadline.clamp(timeout, httpcore2.ConnectTimeout)
        return _DeadlineStream(self.inner.start_tls(ssl_context, server_hostname, wait),
                               self.deadline)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class GuardedBackend(httpcore2.NetworkBackend):
    """Resolve once, check every address, connect to a checked address."""

    def __init__(self, policy: HostPolicy, deadline: Deadline,
                 resolver: Resolver | None = None) -> None:
        self.policy = policy
        self.deadline = deadline
        self.resolver = resolver or system_resolver
        self.inner = httpcore2.SyncBackend()
        self.connected: list[tuple[str, int]] = []  # (checked IP, port) per connection

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of ``host`` (an IP literal needs no lookup), each checked."""
        try:
            addresses = [ipaddress.ip_address(normal_host(host))]
        except ValueError:
            try:
                found = self._lookup(host, port)
                addresses = [ipaddress.ip_address(a) for a in found]
            except (OSError, UnicodeError) as exc:
                raise HttpFailed(f"could not resolve {host}: {exc}") from None
        if not addresses:
            raise HttpFailed(f"could not resolve {host}: no addresses")
        for ip in addresses:
            self.policy.check_address(host, port, ip)
        return list(dict.fromkeys(addresses))

    def _lookup(self, host: str, port: int) -> list[str]:
        """The resolver's answer within the deadline (getaddrinfo itself has no timeout):
        the lookup runs in a daemon thread that is abandoned when time runs out."""
        future: Future[list[str]] = Future()

        def lookup() -> None:
            try:
                future.set_result(self.resolver(host, port))
            except BaseException as exc:  # delivered to the waiting side
                future.set_exception(exc)
        threading.Thread(target=lookup, name=f"resolve-{host}", daemon=True).start()
        try:
            return future.result(timeout=max(0.0, self.deadline.remaining()))
        except FutureTimeout:
            raise httpcore2.ConnectTimeout(f"looking up {host} took longer than the deadline") from None

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore2.NetworkStream:
        self.policy.check_port(host, port)
        failure: Exception = HttpFailed(f"could not connect to {host}")
        for ip in self.resolve(host, port):
            wait = self.deadline.clamp(timeout, httpcore2.ConnectTimeout)
            try:  # an IP literal: create_connection does no DNS lookup for it
                stream = self.inner.connect_tcp(str(ip), port, wait, local_address,
                                                socket_options)
            except httpcore2.ConnectError as exc:
                failure = exc
                continue
            self.connected.append((str(ip), port))
            return _DeadlineStream(stream, self.deadline)
        raise failure

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore2.NetworkStream:
        raise HttpRefused("refused: unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class GuardedTransport(httpx2.BaseTransport):
    """An httpx2 transport whose connection pool connects through a :class:`GuardedBackend`."""

    def __init__(self, backend: GuardedBackend) -> None:
        self.pool = httpcore2.ConnectionPool(ssl_context=httpx2.create_ssl_context(verify=True),
                                             network_backend=backend, max_connections=4,
                                             retries=0)

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        core = httpcore2.Request(method=request.method, headers=request.headers.raw,
                                 url=httpcore2.URL(scheme=url.raw_scheme, host=url.raw_host,
                                                   port=url.port, target=url.raw_path),
                                 content=request.stream, extensions=request.extensions)
        with _mapped_errors():
            answer = self.pool.handle_request(core)
        return httpx2.Response(status_code=answer.status, headers=answer.headers,
                               stream=_BodyStream(cast(Iterable[bytes], answer.stream)), extensions=answer.extensions)

    def close(self) -> None:
        with _mapped_errors():
            self.pool.close()


class _BodyStream(httpx2.SyncByteStream):
    """The response body from httpcore2, with its errors raised as httpx2 ones."""

    def __init__(self, inner: Iterable[bytes]) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _mapped_errors():
            yield from self.inner

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """httpcore2's exceptions raised as the httpx2 exceptions of the same name (both
    libraries name them alike: ReadTimeout, ConnectError, RemoteProtocolError, ...)."""
    try:
        yield
    except httpcore2.TimeoutException as exc:
        raise getattr(httpx2, type(exc).__name__, httpx2.TimeoutException)(str(exc)) from exc
    except (httpcore2.NetworkError, httpcore2.ProtocolError, httpcore2.UnsupportedProtocol,
            httpcore2.ProxyError) as exc:
        raise getattr(httpx2, type(exc).__name__, httpx2.TransportError)(str(exc)) from exc
