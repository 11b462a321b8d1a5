"""The egress proxy's wire format (standard library only, no I/O but reading a head).

What :mod:`egress` reads from and writes to its peers: request heads (bounded, strictly
parsed), the head forwarded to a server, a TLS ClientHello's server name, the upstream
proxy's URL and the ``NO_UPSTREAM`` list, and the proxy's own answers. Everything here
takes what a sandbox sent as hostile: a malformed input is an :class:`Answer` (400) or a
``"bad"`` status, never an unexpected exception.

Example:
    >>> parse_request(["GET http://Example.COM./a?b HTTP/1.1", "X-A: 1"]).host
    'example.com'
    >>> bypasses("pypi.org", ("example.com", ".pypi.org"))
    True
    >>> Answer(403, "nope", "evil.test").render("GET", "evil.test").split(b"\\r\\n")[0]
    b'HTTP/1.1 403 nope'
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from . import netpolicy

HEAD_LIMIT = 64 * 1024
"""Most bytes of a request head (request line and headers)."""
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
"""The answer to a CONNECT once the tunnel is open."""
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "upgrade", "host"}


class Answer(Exception):
    """An error answer to the client, ending its connection (403 names a rule)."""

    def __init__(self, status: int, reason: str, rule: Optional[str] = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.rule = status, reason, rule

    def render(self, method: str, target: str) -> bytes:
        """The whole answer: status line, headers and a one-line text body."""
        reason = printable(self.reason)
        what = "denied" if self.status == 403 else "failed"
        body = f"e2b-tools egress: {method} {target} {what}: {reason}\n" if method else reason
        head = [f"HTTP/1.1 {self.status} {reason}"]
        if self.status == 403:
            head.append(f"X-E2B-Tools-Denied: {printable(self.rule or 'default')}")
        head += ["Content-Type: text/plain", "Connection: close", f"Content-Length: {len(body)}"]
        return ("\r\n".join(head) + "\r\n\r\n" + body).encode("ascii", "replace")


def printable(text: str, limit: int = 200) -> str:
    """``text`` with anything but printable ASCII as ``?``, cut to ``limit`` characters."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:limit]


def split_hostport(text: str, default: Optional[int]) -> Tuple[str, int]:
    """``host[:port]`` or ``[v6][:port]``, validated and normalized (Answer 400 if bad)."""
    port_text = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise Answer(400, f"malformed address {text[:100]!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text
    host = host.lower()[:-1] if host.endswith(".") else host.lower()
    if port_text is None and default is None:
        raise Answer(400, f"no port in {text[:100]!r}")
    port = default or 0
    if port_text is not None:
        port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else 0
    literal = netpolicy.is_ip_literal(host) and "%" not in host
    if not 0 < port < 65536 or not (literal or (len(host) <= 253 and _NAME.match(host))):
        raise Answer(400, f"malformed address {text[:100]!r}")
    return host, port


def hostport(host: str, port: int, default: int = 0) -> str:
    """``host:port`` (``[v6]:port``), without the port when it is ``default``."""
    name = f"[{host}]" if ":" in host else host
    return name if port == default else f"{name}:{port}"


# -- the upstream proxy ---------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """A proxy the egress proxy sends everything through (a corporate network's)."""

    host: str
    port: int
    auth: Optional[str] = None
    """``Proxy-Authorization`` value, from the URL's user and password."""


def parse_upstream(url: str) -> Upstream:
    """``http://[user:pass@]host[:port]`` as an :class:`Upstream` (port 80 by default)."""
    scheme, _, rest = (url if "://" in url else "http://" + url).partition("://")
    userinfo, _, authority = rest.split("/", 1)[0].rpartition("@")
    try:
        host, port = split_hostport(authority, 80)
    except Answer:
        host, port = "", 0
    if scheme.lower() != "http" or not host:
        raise ValueError(f"upstream proxy {url!r}: expected http://host:port")
    auth = "Basic " + base64.b64encode(userinfo.encode()).decode() if userinfo else None
    return Upstream(host, port, auth)


def bypasses(host: str, no_upstream: Sequence[str]) -> bool:
    """Whether ``host`` (normalized) skips the upstream proxy: ``no_upstream`` holds
    NO_PROXY-style entries, lower case: ``*``, CIDRs or addresses (for IP literals), and
    names that match themselves and their subdomains (a leading ``.`` or ``*.`` and a
    port are ignored)."""
    literal = netpolicy.is_ip_literal(host)
    for entry in no_upstream:
        if entry == "*":
            return True
        try:
            if literal and ipaddress.ip_address(host) in ipaddress.ip_network(entry, False):
                return True
        except ValueError:
            pass
        name = entry.lstrip("*").lstrip(".")
        name = name.rsplit(":", 1)[0] if name.count(":") == 1 else name
        if name and not literal and (host == name or host.endswith("." + name)):
            return True
    return False


def connect_head(host: str, port: int, upstream: Upstream) -> bytes:
    """The CONNECT request that opens a tunnel through the upstream proxy."""
    target = hostport(host, port)
    head = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if upstream.auth:
        head.append(f"Proxy-Authorization: {upstream.auth}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")


# -- requests ----------------------------------------------------------------------------


@dataclass
class Request:
    """A client's request head: where to, and the headers as sent (in order)."""

    method: str
    version: str
    host: str
    port: int
    path: str
    headers: List[Tuple[str, str]]


async def read_head(reader: asyncio.StreamReader) -> Optional[List[str]]:
    """The head's lines (without line ends; empty lines before it are skipped); None if
    the peer closed before a byte. Answer 431 past :data:`HEAD_LIMIT` bytes, without
    buffering more than the reader's limit (pass ``limit=HEAD_LIMIT``)."""
    lines: List[str] = []
    total = 0
    while True:
        try:
            raw = await reader.readline()
        except ValueError:  # a line longer than the reader's limit
            raw = b"x" * (HEAD_LIMIT + 1)
        total += len(raw)
        if total > HEAD_LIMIT:
            raise Answer(431, f"request head over {HEAD_LIMIT} bytes")
        if not raw.endswith(b"\n"):
            if total == 0:
                return None
            raise Answer(400, "connection closed inside the request head")
        line = raw.decode("latin-1").rstrip("\n")
        line = line[:-1] if line.endswith("\r") else line
        if line:
            lines.append(line)
        elif lines:
            return lines


def parse_request(lines: List[str]) -> Request:
    """The request of a head's lines: CONNECT ``host:port``, or an ``http://`` URL or
    an origin-form target with one Host header (Answer 400 for anything else)."""
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise Answer(400, f"malformed request line {printable(lines[0], 80)!r}")
    method, target, version = parts
    headers: List[Tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name) or _BAD_VALUE.search(value):
            raise Answer(400, f"malformed header line {printable(line, 80)!r}")
        headers.append((name, value.strip(" \t")))
    if method == "CONNECT":
        return Request(method, version, *split_hostport(target, None), "", headers)
    if target[:7].lower() == "http://":
        authority, _, path = target[7:].partition("/")
        authority = authority.split("?", 1)[0].rpartition("@")[2]
        return Request(method, version, *split_hostport(authority, 80), "/" + path, headers)
    if target.startswith("/") or target == "*":
        hosts = [v for n, v in headers if n.lower() == "host"]
        if len(hosts) != 1:
            raise Answer(400, "an origin-form request needs exactly one Host header")
        return Request(method, version, *split_hostport(hosts[0], 80), target, headers)
    if "://" in target:
        raise Answer(400, "only http:// URLs are proxied; use CONNECT for https")
    raise Answer(400, f"malformed request target {printable(target, 80)!r}")


def forward_head(request: Request, upstream: Optional[Upstream]) -> bytes:
    """The head for the server: origin-form (absolute-form to ``upstream``, when going
    through it), the URL's Host, no hop-by-hop or ``Proxy-*`` headers, and
    ``Connection: close``."""
    authority = hostport(request.host, request.port, 80)
    named = {
        token.strip().lower()
        for name, value in request.headers
        if name.lower() == "connection"
        for token in value.split(",")
    } - {"content-length", "transfer-encoding"}
    target = f"http://{authority}{request.path}" if upstream is not None else request.path
    lines = [f"{request.method} {target} {request.version}", f"Host: {authority}"]
    for name, value in request.headers:
        low = name.lower()
        if not (low in _HOP_BY_HOP or low in named or low.startswith("proxy-")):
            lines.append(f"{name}: {value}")
    if upstream is not None and upstream.auth:
        lines.append(f"Proxy-Authorization: {upstream.auth}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# -- TLS -------------------------------------------------------------------------------------


def client_hello_sni(data: bytes) -> Tuple[str, Optional[str]]:
    """Read a TLS ClientHello: ``("not-tls", None)``, ``("more", None)`` if incomplete,
    ``("bad", None)`` if malformed, else ``("ok", its server name or None)``.

    Example:
        >>> client_hello_sni(b"GET / HTTP/1.1")
        ('not-tls', None)
    """
    if not data or data[0] != 0x16 or (len(data) > 1 and data[1] != 0x03):
        return "not-tls", None
    handshake, pos = b"", 0
    while True:  # the handshake message may span several records
        if len(data) < pos + 5:
            return "more", None
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if data[pos] != 0x16 or data[pos + 1] != 0x03 or not 0 < length <= 16384:
            return "bad", None
        if len(data) < pos + 5 + length:
            return "more", None
        handshake += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(handshake) >= 4 and handshake[0] != 1:
            return "bad", None
        if len(handshake) >= 4 and len(handshake) >= 4 + int.from_bytes(handshake[1:4], "big"):
            try:
                return "ok", _server_name(handshake[4 : 4 + int.from_bytes(handshake[1:4], "big")])
            except (ValueError, IndexError):
                return "bad", None


def _server_name(body: bytes) -> Optional[str]:
    def u16(at: int) -> int:
        if at + 2 > len(body):
            raise ValueError("short")
        return int.from_bytes(body[at : at + 2], "big")

    pos = 34  # version and random
    pos += 1 + body[pos]  # session id
    pos += 2 + u16(pos)  # cipher suites
    pos += 1 + body[pos]  # compression methods
    if pos == len(body):
        return None
    end = pos + 2 + u16(pos)
    pos += 2
    if end > len(body):
        raise ValueError("short")
    while pos + 4 <= end:
        kind, size = u16(pos), u16(pos + 2)
        pos += 4
        if pos + size > end:
            raise ValueError("short")
        if kind == 0:  # server_name: a list of (type, name); type 0 is a host name
            at, stop = pos + 2, min(pos + 2 + u16(pos), pos + size)
            while at + 3 <= stop:
                if body[at] == 0:
                    name = body[at + 3 : at + 3 + u16(at + 1)].decode("ascii").lower()
                    name = name[:-1] if name.endswith(".") else name
                    if len(name) > 253 or not _NAME.match(name):
                        raise ValueError("bad name")
                    return name
                at += 3 + u16(at + 1)
            return None
        pos += size
    return None
