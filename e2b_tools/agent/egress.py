"""The egress proxy: the one way out of sandbox networks (standard library only).

One proxy serves every sandbox of an engine. It knows a sandbox by the source address
of the connection (unique, and not something a sandbox can change) and applies that
sandbox's policy (:mod:`netpolicy`): plain HTTP is decided by the request's target
host, anything else goes through ``CONNECT host:port`` (no TLS interception, but the
server name of a TLS ClientHello must be allowed too). What a sandbox sends is hostile:
heads are bounded in size and time, relays use bounded buffers and an idle timeout,
each source has a connection cap, and an error closes only its own connection.

State lives under ``E2B_TOOLS_EGRESS_STATE`` (default ``/run/egress``):
``policy/<ip>.json`` (``{"sandbox_id", "allow_out", "deny_out"}``, re-read when it
changes) and ``log/<ip>.jsonl`` (one JSON line per decision; past 256 KiB it becomes
``.jsonl.1``). The host manages both with :func:`ctl`, through ``docker exec``.

Settings, all ``E2B_TOOLS_EGRESS_*``: ``PORT`` (3128), ``BIND`` (0.0.0.0), ``STATE``,
``UPSTREAM`` (``http://[user:pass@]host:port``, a proxy for everything), ``NO_UPSTREAM``
(NO_PROXY-style: names, ``.suffix``, CIDRs or ``*`` that bypass it), ``PROTECTED`` (CIDRs
only an IP rule opens, next to the proxy's own addresses and gateways), ``IDLE`` (600 s),
``HEAD_TIMEOUT`` (10 s), ``CONNECT_TIMEOUT`` (10 s), ``HELLO_TIMEOUT`` (5 s) and
``MAX_CLIENT`` (256 connections per source).

Example (what a container runs; ``ROOT`` is the directory holding ``e2b_tools_agent/``)::

    python3 -I -c "import sys; sys.path.insert(0, ROOT); \\
        from e2b_tools_agent.egress import main; main()"
    python3 -I -c "import sys; sys.path.insert(0, ROOT); \\
        from e2b_tools_agent.egress import ctl; sys.exit(ctl(sys.argv[1:]))" \\
        set 10.213.0.2 '{"allow_out": ["pypi.org"]}'
"""

from __future__ import annotations

import asyncio
import base64
import collections
import ipaddress
import json
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Dict, Iterator, List, Mapping, Optional, Set, Tuple

from . import netpolicy

HEAD_LIMIT = 64 * 1024
"""Most bytes of a request head (request line and headers)."""
CHUNK = 64 * 1024
"""Largest read of a relay."""
HELLO_LIMIT = 16 * 1024
"""Most bytes of a TLS ClientHello the proxy waits for to read its server name."""
LOG_LIMIT = 256 * 1024
"""Size past which a decision log becomes ``.jsonl.1`` (replacing the older one)."""
LINGER = (1 << 20, 1.0)  # bytes and seconds read after an error answer before closing
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HOP_BY_HOP = {"connection", "keep-alive", "te", "trailer", "upgrade", "host"}


@dataclass(frozen=True)
class Upstream:
    """A proxy the egress proxy sends everything through (a corporate network's)."""

    host: str
    port: int
    auth: Optional[str] = None
    """``Proxy-Authorization`` value, from the URL's user and password."""


_NUMBERS = {  # field: (variable, default)
    "port": ("PORT", 3128),
    "idle_timeout": ("IDLE", 600.0),
    "head_timeout": ("HEAD_TIMEOUT", 10.0),
    "connect_timeout": ("CONNECT_TIMEOUT", 10.0),
    "hello_timeout": ("HELLO_TIMEOUT", 5.0),
    "max_per_client": ("MAX_CLIENT", 256),
}


@dataclass(frozen=True)
class Config:
    """The proxy's settings (see the module docstring for the environment)."""

    port: int = 3128
    bind: str = "0.0.0.0"
    state: str = "/run/egress"
    upstream: Optional[Upstream] = None
    no_upstream: Tuple[str, ...] = ()
    protected: Tuple[netpolicy.Network, ...] = ()
    idle_timeout: float = 600.0
    head_timeout: float = 10.0
    connect_timeout: float = 10.0
    hello_timeout: float = 5.0
    max_per_client: int = 256

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Settings from the ``E2B_TOOLS_EGRESS_*`` variables (ValueError if one is wrong)."""

        def get(name: str) -> str:
            return env.get("E2B_TOOLS_EGRESS_" + name, "").strip()

        numbers: Dict[str, float] = {}
        for key, (name, default) in _NUMBERS.items():
            try:
                numbers[key] = float(get(name) or default)
            except ValueError:
                numbers[key] = -1
            low, high = (0, 65535) if key == "port" else (1e-3, 1e7)
            if not low <= numbers[key] <= high:
                what = "a port number" if key == "port" else "a positive number"
                raise ValueError(f"E2B_TOOLS_EGRESS_{name}={get(name)!r} is not {what}")
        cidrs = [p.strip() for p in get("PROTECTED").split(",") if p.strip()]
        try:
            protected = tuple(ipaddress.ip_network(p, strict=False) for p in cidrs)
        except ValueError as exc:
            raise ValueError(f"E2B_TOOLS_EGRESS_PROTECTED: {exc}") from None
        return cls(
            port=int(numbers.pop("port")),
            max_per_client=int(numbers.pop("max_per_client")),
            bind=get("BIND") or "0.0.0.0",
            state=get("STATE") or "/run/egress",
            upstream=parse_upstream(get("UPSTREAM")) if get("UPSTREAM") else None,
            no_upstream=tuple(
                e.strip().lower() for e in get("NO_UPSTREAM").split(",") if e.strip()
            ),
            protected=protected,
            **numbers,
        )


def parse_upstream(url: str) -> Upstream:
    """``http://[user:pass@]host[:port]`` as an :class:`Upstream` (port 80 by default)."""
    scheme, _, rest = (url if "://" in url else "http://" + url).partition("://")
    userinfo, _, hostport = rest.split("/", 1)[0].rpartition("@")
    try:
        host, port = _split_hostport(hostport, 80)
    except _Answer:
        host, port = "", 0
    if scheme.lower() != "http" or not host:
        raise ValueError(f"upstream proxy {url!r}: expected http://host:port")
    auth = "Basic " + base64.b64encode(userinfo.encode()).decode() if userinfo else None
    return Upstream(host, port, auth)


class _Answer(Exception):
    """An error answer to the client, ending its connection (403 names a rule)."""

    def __init__(self, status: int, reason: str, rule: Optional[str] = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.rule = status, reason, rule

    def render(self, method: str, target: str) -> bytes:
        reason = _printable(self.reason)
        what = "denied" if self.status == 403 else "failed"
        body = f"e2b-tools egress: {method} {target} {what}: {reason}\n" if method else reason
        head = [f"HTTP/1.1 {self.status} {reason}"]
        if self.status == 403:
            head.append(f"X-E2B-Tools-Denied: {_printable(self.rule or 'default')}")
        head += ["Content-Type: text/plain", "Connection: close", f"Content-Length: {len(body)}"]
        return ("\r\n".join(head) + "\r\n\r\n" + body).encode("ascii", "replace")


def _printable(text: str, limit: int = 200) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:limit]


def _warn(message: str) -> None:
    try:
        sys.stderr.write("egress: " + _printable(message, 1000) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _split_hostport(text: str, default: Optional[int]) -> Tuple[str, int]:
    """``host[:port]`` or ``[v6][:port]``, validated and normalized (_Answer 400 if bad)."""
    port_text = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise _Answer(400, f"malformed address {text[:100]!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text
    host = host.lower()[:-1] if host.endswith(".") else host.lower()
    if port_text is None and default is None:
        raise _Answer(400, f"no port in {text[:100]!r}")
    port = default or 0
    if port_text is not None:
        port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else 0
    literal = netpolicy.is_ip_literal(host) and "%" not in host
    if not 0 < port < 65536 or not (literal or (len(host) <= 253 and _NAME.match(host))):
        raise _Answer(400, f"malformed address {text[:100]!r}")
    return host, port


def _hostport(host: str, port: int, default: int = 0) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == default else f"{name}:{port}"


@dataclass
class _Request:
    method: str
    version: str
    host: str
    port: int
    path: str
    headers: List[Tuple[str, str]]


async def _read_head(reader: asyncio.StreamReader) -> Optional[List[str]]:
    """The head's lines (without line ends); None if the peer closed before a byte."""
    lines: List[str] = []
    total = 0
    while True:
        try:
            raw = await reader.readline()
        except ValueError:  # a line longer than the reader's limit
            raw = b"x" * (HEAD_LIMIT + 1)
        total += len(raw)
        if total > HEAD_LIMIT:
            raise _Answer(431, f"request head over {HEAD_LIMIT} bytes")
        if not raw.endswith(b"\n"):
            if total == 0:
                return None
            raise _Answer(400, "connection closed inside the request head")
        line = raw.decode("latin-1").rstrip("\n").removesuffix("\r")
        if line:
            lines.append(line)
        elif lines:
            return lines


def _parse(lines: List[str]) -> _Request:
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise _Answer(400, f"malformed request line {_printable(lines[0], 80)!r}")
    method, target, version = parts
    headers: List[Tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name) or _BAD_VALUE.search(value):
            raise _Answer(400, f"malformed header line {_printable(line, 80)!r}")
        headers.append((name, value.strip(" \t")))
    if method == "CONNECT":
        return _Request(method, version, *_split_hostport(target, None), "", headers)
    if target[:7].lower() == "http://":
        authority, _, path = target[7:].partition("/")
        authority = authority.split("?", 1)[0].rpartition("@")[2]
        return _Request(method, version, *_split_hostport(authority, 80), "/" + path, headers)
    if target.startswith("/") or target == "*":
        hosts = [v for n, v in headers if n.lower() == "host"]
        if len(hosts) != 1:
            raise _Answer(400, "an origin-form request needs exactly one Host header")
        return _Request(method, version, *_split_hostport(hosts[0], 80), target, headers)
    if "://" in target:
        raise _Answer(400, "only http:// URLs are proxied; use CONNECT for https")
    raise _Answer(400, f"malformed request target {_printable(target, 80)!r}")


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


def _close(writer: asyncio.StreamWriter) -> None:
    if writer.transport.get_write_buffer_size():
        writer.transport.abort()  # a peer that does not read must not keep the socket
    else:
        writer.transport.close()


Inspect = Callable[[bytes, asyncio.StreamReader], Awaitable[Optional[bytes]]]


async def _pump(
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter,
    seen: List[float],
    inspect: Optional[Inspect],
) -> bool:
    """Copy ``src`` to ``dst`` with backpressure, stamping ``seen[0]`` on each read;
    False if ``inspect`` refused the first bytes."""
    data = await src.read(CHUNK)
    if data and inspect is not None:
        seen[0] = time.monotonic()
        checked = await inspect(data, src)
        if checked is None:
            return False
        data = checked
    while data:
        seen[0] = time.monotonic()
        dst.write(data)
        await dst.drain()
        data = await src.read(CHUNK)
    if dst.can_write_eof() and not dst.is_closing():
        dst.write_eof()
    return True


@dataclass
class _Conn:
    """One client connection, what it asked and what it opened."""

    client: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    opened: List[asyncio.StreamWriter] = field(default_factory=list)
    request: Optional[_Request] = None
    policy: netpolicy.Policy = field(default_factory=netpolicy.Policy)

    def record(self, d: netpolicy.Decision, log_dir: str, host: str = "") -> None:
        """Append the decision to the client's log (never raises)."""
        assert self.request is not None
        entry = {
            "time": time.time(),
            "method": self.request.method,
            "host": host or self.request.host,
            "port": self.request.port,
            "address": None if d.address is None else str(d.address),
            "allowed": d.allowed,
            "rule": d.rule,
            "reason": d.reason,
        }
        path = os.path.join(log_dir, self.client + ".jsonl")
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
                size = f.tell()
            if size > LOG_LIMIT:
                os.replace(path, path + ".1")
        except Exception as exc:
            _warn(f"cannot write the decision log {path}: {exc}")


class Proxy:
    """The connection handler: policies by source address, decisions, relays."""

    def __init__(self, config: Config, protected: Tuple[netpolicy.Network, ...] = ()) -> None:
        self.config = config
        self.protected = tuple(config.protected) + tuple(protected)
        self.policy_dir = os.path.join(config.state, "policy")
        self.log_dir = os.path.join(config.state, "log")
        self.tasks: Set[asyncio.Task[None]] = set()
        """The connections being served (cancelled at shutdown)."""
        self._active: Dict[str, int] = {}
        self._policies: Dict[str, Tuple[Tuple[int, int, int], netpolicy.Policy]] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection; nothing it does escapes this call."""
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        conn = _Conn("unknown", reader, writer, [writer])
        counted = False
        try:
            address = ipaddress.ip_address(writer.get_extra_info("peername")[0])
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            conn.client = str(address)
            if self._active.get(conn.client, 0) >= self.config.max_per_client:
                reason = f"more than {self.config.max_per_client} connections from {conn.client}"
                writer.write(_Answer(429, reason).render("", ""))
                return
            self._active[conn.client] = self._active.get(conn.client, 0) + 1
            counted = True
            await self._serve(conn)
        except Exception as exc:
            _warn(f"connection from {conn.client}: {type(exc).__name__}: {exc}")
        finally:
            if counted:
                self._active[conn.client] -= 1
                if not self._active[conn.client]:
                    del self._active[conn.client]
            for w in conn.opened:
                _close(w)
            if task is not None:
                self.tasks.discard(task)

    async def _serve(self, conn: _Conn) -> None:
        try:
            try:
                lines = await asyncio.wait_for(_read_head(conn.reader), self.config.head_timeout)
            except asyncio.TimeoutError:
                raise _Answer(
                    408, f"no request head within {self.config.head_timeout:g} s"
                ) from None
            if lines is None:
                return
            conn.request = request = _parse(lines)
            conn.policy = self._policy(conn.client)
            up_reader, up_writer, decision, upstream = await self._open(conn, request)
            conn.opened.append(up_writer)
            check = None
            if request.method == "CONNECT":
                await self._connect(conn, upstream, up_reader, up_writer)
                check = self._sni_check(conn, decision)
            else:
                up_writer.write(self._forward_head(request, upstream))
            await self._relay(conn, up_reader, up_writer, check)
        except _Answer as answer:
            r = conn.request
            method, target = (r.method, _hostport(r.host, r.port)) if r else ("", "")
            await self._answer(conn, answer.render(method, target))

    @staticmethod
    async def _answer(conn: _Conn, data: bytes) -> None:
        """Answer, then read what the client still sends for a while, so that closing
        does not reset the connection before the client has read the answer."""
        conn.writer.write(data)
        loop = asyncio.get_running_loop()
        deadline, got = loop.time() + LINGER[1], 0
        try:
            await asyncio.wait_for(conn.writer.drain(), LINGER[1])
            if conn.writer.can_write_eof():
                conn.writer.write_eof()
            while got < LINGER[0] and loop.time() < deadline:
                chunk = await asyncio.wait_for(conn.reader.read(CHUNK), deadline - loop.time())
                if not chunk:
                    break
                got += len(chunk)
        except (asyncio.TimeoutError, OSError):
            pass

    def _policy(self, client: str) -> netpolicy.Policy:
        path = os.path.join(self.policy_dir, client + ".json")
        try:
            st = os.stat(path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            cached = self._policies.get(client)
            if cached is not None and cached[0] == key:
                return cached[1]
            with open(path, "rb") as f:
                policy = netpolicy.Policy.from_dict(json.loads(f.read(8 << 20)))
        except (OSError, ValueError) as exc:
            self._policies.pop(client, None)
            why = "" if isinstance(exc, FileNotFoundError) else f" ({exc})"
            raise _Answer(403, f"no network policy for {client}{why}") from None
        self._policies[client] = (key, policy)
        return policy

    def _decided(self, conn: _Conn, d: netpolicy.Decision) -> None:
        conn.record(d, self.log_dir)
        if not d.allowed:
            raise _Answer(403, d.reason, d.rule)

    def _bypasses(self, host: str) -> bool:
        literal = netpolicy.is_ip_literal(host)
        for entry in self.config.no_upstream:
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

    async def _open(
        self, conn: _Conn, request: _Request
    ) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter, netpolicy.Decision, bool]:
        """Decide, then connect to the destination or to the upstream proxy."""
        host, port, policy = request.host, request.port, conn.policy
        literal = netpolicy.is_ip_literal(host)
        addresses = [ipaddress.ip_address(host)] if literal else []
        upstream = self.config.upstream
        if upstream is not None and not self._bypasses(host):
            d = netpolicy.decide(policy, host, port, addresses, self.protected)
            if not literal and any(r.kind == "network" for r in policy.allow + policy.deny):
                note = " (IP rules not applied: the upstream proxy resolves names)"
                d = netpolicy.Decision(d.allowed, d.address, d.rule, d.reason + note)
            self._decided(conn, d)
            where = f"upstream proxy {_hostport(upstream.host, upstream.port)}"
            reader, writer = await self._dial(upstream.host, upstream.port, where)
            return reader, writer, d, True
        if not literal:
            early = netpolicy.decide_name(policy, host, port)  # no lookup of a refused name
            if early is not None:
                self._decided(conn, early)
            addresses = await self._resolve(host, port)
        # Try the allowed addresses in turn (say an AAAA record on a network without IPv6).
        deadline = time.monotonic() + self.config.connect_timeout
        first, failure = None, None
        while addresses:
            d = netpolicy.decide(policy, host, port, addresses, self.protected)
            if first is None and not d.allowed:
                self._decided(conn, d)
            if not d.allowed or d.address is None:
                break
            first = first or d
            try:
                left = max(0.1, deadline - time.monotonic())
                reader, writer = await self._dial(str(d.address), port, None, left)
            except _Answer as exc:
                failure = failure or exc
                addresses = addresses[addresses.index(d.address) + 1 :]
                continue
            self._decided(conn, d)
            return reader, writer, d, False
        assert first is not None and failure is not None
        conn.record(first, self.log_dir)
        raise failure

    async def _resolve(self, host: str, port: int) -> List[netpolicy.Address]:
        loop = asyncio.get_running_loop()
        lookup = loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        try:
            infos = await asyncio.wait_for(lookup, self.config.connect_timeout)
        except asyncio.TimeoutError:
            raise _Answer(504, f"resolving {host} timed out") from None
        except OSError as exc:
            raise _Answer(502, f"cannot resolve {host}: {exc.strerror or exc}") from None
        found: Dict[netpolicy.Address, None] = {}
        for info in infos:
            try:
                found[ipaddress.ip_address(str(info[4][0]).split("%")[0])] = None
            except ValueError:
                continue
        if not found:
            raise _Answer(502, f"cannot resolve {host}: no address")
        return list(found)

    async def _dial(
        self, host: str, port: int, where: Optional[str], timeout: Optional[float] = None
    ) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        where = where or _hostport(host, port)
        try:
            connecting = asyncio.open_connection(host, port)
            return await asyncio.wait_for(connecting, timeout or self.config.connect_timeout)
        except asyncio.TimeoutError:
            raise _Answer(504, f"connecting to {where} timed out") from None
        except ConnectionRefusedError:
            raise _Answer(502, f"connection to {where} refused") from None
        except OSError as exc:
            raise _Answer(502, f"cannot connect to {where}: {exc.strerror or exc}") from None

    async def _connect(
        self, conn: _Conn, upstream: bool, up_reader: asyncio.StreamReader, up: asyncio.StreamWriter
    ) -> None:
        """Finish a CONNECT: through the upstream proxy if there is one, then answer 200."""
        assert conn.request is not None
        if upstream and self.config.upstream is not None:
            target = _hostport(conn.request.host, conn.request.port)
            head = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
            if self.config.upstream.auth:
                head.append(f"Proxy-Authorization: {self.config.upstream.auth}")
            up.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            try:
                lines = await asyncio.wait_for(_read_head(up_reader), self.config.connect_timeout)
            except (asyncio.TimeoutError, OSError, _Answer):
                lines = None
            if not lines:
                raise _Answer(502, "the upstream proxy did not answer the CONNECT")
            if lines[0].split(" ")[1:2] != ["200"]:
                raise _Answer(502, f"the upstream proxy answered {lines[0]!r}")
        conn.writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await conn.writer.drain()

    def _forward_head(self, request: _Request, upstream: bool) -> bytes:
        """The head for the server: origin-form (absolute-form to an upstream proxy), the
        URL's Host, no hop-by-hop or ``Proxy-*`` headers, and ``Connection: close``."""
        authority = _hostport(request.host, request.port, 80)
        named = {
            token.strip().lower()
            for name, value in request.headers
            if name.lower() == "connection"
            for token in value.split(",")
        } - {"content-length", "transfer-encoding"}
        target = f"http://{authority}{request.path}" if upstream else request.path
        lines = [f"{request.method} {target} {request.version}", f"Host: {authority}"]
        for name, value in request.headers:
            low = name.lower()
            if not (low in _HOP_BY_HOP or low in named or low.startswith("proxy-")):
                lines.append(f"{name}: {value}")
        if upstream and self.config.upstream is not None and self.config.upstream.auth:
            lines.append(f"Proxy-Authorization: {self.config.upstream.auth}")
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _sni_check(self, conn: _Conn, decision: netpolicy.Decision) -> Inspect:
        """The check of a tunnel's first bytes: the server name of a TLS ClientHello must
        be allowed too, for the same port and address."""
        request = conn.request
        assert request is not None
        addresses = [] if decision.address is None else [decision.address]
        target = _hostport(request.host, request.port)

        async def inspect(data: bytes, reader: asyncio.StreamReader) -> Optional[bytes]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.config.hello_timeout
            status, name = client_hello_sni(data)
            while status == "more" and len(data) < HELLO_LIMIT:
                reading = reader.read(HELLO_LIMIT - len(data))
                try:
                    more = await asyncio.wait_for(reading, max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    break
                if not more:
                    break
                data += more
                status, name = client_hello_sni(data)
            if status == "not-tls" or (status == "ok" and name in (None, request.host)):
                return data
            if status == "ok" and name is not None:
                d = netpolicy.decide(conn.policy, name, request.port, addresses, self.protected)
                if d.allowed:
                    return data
                reason = f"TLS server name {name!r} in a tunnel to {target}: {d.reason}"
                conn.record(
                    netpolicy.Decision(False, d.address, d.rule, reason), self.log_dir, name
                )
                return None
            kind = "incomplete" if status == "more" else "malformed"
            reason = f"{kind} TLS ClientHello in a tunnel to {target}"
            conn.record(netpolicy.Decision(False, decision.address, None, reason), self.log_dir)
            return None

        return inspect

    async def _relay(
        self,
        conn: _Conn,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
        inspect: Optional[Inspect],
    ) -> None:
        """Copy both ways until the server's side ends (a client's half-close is passed
        on), a check refuses, either side fails, or nothing moves for the idle timeout."""
        seen = [time.monotonic()]
        down = asyncio.ensure_future(_pump(up_reader, conn.writer, seen, None))
        up = asyncio.ensure_future(_pump(conn.reader, up_writer, seen, inspect))
        idle = asyncio.ensure_future(self._idle(seen))
        tasks = {down, up, idle}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if done == {up} and up.exception() is None and up.result():
                await asyncio.wait({down, idle}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, Exception) and not isinstance(result, OSError):
                    _warn(f"relay for {conn.client}: {type(result).__name__}: {result}")

    async def _idle(self, seen: List[float]) -> None:
        while True:
            left = seen[0] + self.config.idle_timeout - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(left)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(1 << 20)
    except OSError:
        return ""


def _proc_addresses() -> Iterator[object]:
    last = ""
    for line in _read_text("/proc/net/fib_trie").splitlines():  # "|-- a.b.c.d", "/32 host LOCAL"
        text = line.strip()
        if text.startswith(("|--", "+--")):
            last = (text[3:].split() or [""])[0]
        elif text.startswith("/32 host LOCAL"):
            yield last
    for path, column in (("route", 2), ("if_inet6", 0), ("ipv6_route", 4)):
        for line in _read_text("/proc/net/" + path).splitlines():
            fields = line.split()
            try:
                if path != "route":
                    yield bytes.fromhex(fields[column])  # an address, or a route's next hop
                elif int(fields[3], 16) & 0x2:  # RTF_GATEWAY (a little-endian address)
                    yield int(fields[column], 16).to_bytes(4, "little")
            except (ValueError, IndexError, OverflowError):
                continue


def local_networks() -> List[netpolicy.Network]:
    """This machine's own addresses and gateways as /32 and /128 networks (from Linux's
    ``/proc/net``; missing files or odd lines give nothing)."""
    found: Dict[netpolicy.Network, None] = {}
    for raw in _proc_addresses():
        try:
            network = ipaddress.ip_network(raw)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            continue
        if not network.network_address.is_unspecified:
            found[network] = None
    return list(found)


async def serve(config: Config, stop: Optional[asyncio.Event] = None) -> None:
    """Run the proxy until ``stop`` is set (or SIGTERM/SIGINT when it is None)."""
    for sub in ("policy", "log"):
        os.makedirs(os.path.join(config.state, sub), exist_ok=True)
    proxy = Proxy(config, tuple(local_networks()))
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: _warn(f"event loop: {ctx.get('message')}"))
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(
        proxy.handle, config.bind, config.port, limit=HEAD_LIMIT, backlog=1024
    )
    print(f"egress ready {config.bind}:{server.sockets[0].getsockname()[1]}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        for task in list(proxy.tasks):
            task.cancel()
        await asyncio.gather(*proxy.tasks, return_exceptions=True)


def main() -> None:
    """Run the proxy with the settings of the environment (the container's command)."""
    try:
        config = Config.from_env(os.environ)
    except ValueError as exc:
        _warn(str(exc))
        raise SystemExit(2) from None
    asyncio.run(serve(config))


USAGE = "usage: set <ip> <policy-json> | get <ip> | remove <ip> | log <ip> <limit>"


def _unlink(*paths: str) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def ctl(argv: List[str]) -> int:
    """The host's control command (run through ``docker exec``): 0 on success, else 2
    with a message on stderr.

    ``set <ip> <policy-json>`` validates and installs a policy and starts a fresh log,
    ``get <ip>`` prints it, ``remove <ip>`` forgets the policy and its logs, and
    ``log <ip> <limit>`` prints the last ``limit`` decisions, oldest first.
    """
    state = os.environ.get("E2B_TOOLS_EGRESS_STATE", "").strip() or "/run/egress"
    try:
        command, args = (argv[0], argv[1:]) if argv else ("", [])
        if {"set": 2, "get": 1, "remove": 1, "log": 2}.get(command) != len(args):
            raise ValueError(USAGE)
        try:
            address = ipaddress.ip_address(args[0])
        except ValueError:
            raise ValueError(f"{args[0]!r} is not an IP address") from None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        policy_path = os.path.join(state, "policy", f"{address}.json")
        log_path = os.path.join(state, "log", f"{address}.jsonl")
        if command == "set":
            data = json.loads(args[1])
            policy = netpolicy.Policy.from_dict(data)
            sandbox_id = data.get("sandbox_id", "")
            if not isinstance(sandbox_id, str):
                raise ValueError("sandbox_id must be a string")
            for sub in ("policy", "log"):
                os.makedirs(os.path.join(state, sub), exist_ok=True)
            _unlink(log_path, log_path + ".1")
            temp = os.path.join(state, "policy", f".{address}.{os.getpid()}.tmp")
            with open(temp, "w", encoding="utf-8") as f:
                json.dump({"sandbox_id": sandbox_id, **policy.to_dict()}, f)
            os.replace(temp, policy_path)  # the proxy never sees half a file
        elif command == "get":
            if not os.path.exists(policy_path):
                raise ValueError(f"no network policy for {address}")
            with open(policy_path, encoding="utf-8") as f:
                print(f.read().strip())
        elif command == "remove":
            _unlink(policy_path, log_path, log_path + ".1")
        else:
            if not args[1].isdigit():
                raise ValueError(f"limit {args[1]!r} is not a whole number")
            lines: collections.deque[str] = collections.deque(maxlen=int(args[1]))
            for path in (log_path + ".1", log_path):
                if os.path.exists(path):
                    with open(path, encoding="utf-8", errors="replace") as f:
                        lines.extend(line.rstrip("\n") for line in f if line.strip())
            if lines:
                print("\n".join(lines))
    except (ValueError, OSError) as exc:
        print(f"egress ctl: {exc}", file=sys.stderr)
        return 2
    return 0
