"""The egress proxy: the one way out of sandbox networks (standard library only).

One proxy serves every sandbox of an engine. It knows a sandbox by the source address
of the connection (unique, and not something a sandbox can change) and applies that
sandbox's policy (:mod:`netpolicy`): plain HTTP is decided by the request's target
host, anything else goes through ``CONNECT host:port`` (no TLS interception, but the
server name of a TLS ClientHello must be allowed too). What a sandbox sends is hostile:
heads are bounded in size and time, relays use bounded buffers and an idle timeout,
and an error closes only its own connection. Several sandboxes share the proxy's memory
(256 MiB in its container), so connections are capped: past ``MAX_CLIENT`` from one
source a new one is answered 429, past ``MAX_TOTAL`` in all 503, and closed.

State lives under ``E2B_TOOLS_EGRESS_STATE`` (default ``/run/egress``):
``policy/<ip>.json`` (``{"sandbox_id", "allow_out", "deny_out"}``, re-read when it
changes) and ``log/<ip>.jsonl`` (one JSON line per decision; past 128 KiB it becomes
``.jsonl.1``, replacing the older one, so a sandbox's log takes at most about 256 KiB).
The host manages both with :func:`ctl`, through ``docker exec``.

Settings, all ``E2B_TOOLS_EGRESS_*``: ``PORT`` (3128), ``BIND`` (0.0.0.0), ``STATE``,
``UPSTREAM`` (``http://[user:pass@]host:port``, a proxy for everything), ``NO_UPSTREAM``
(NO_PROXY-style: names, ``.suffix``, CIDRs or ``*`` that bypass it), ``PROTECTED`` (CIDRs
only an IP rule opens, next to the proxy's own addresses and gateways), ``IDLE`` (600 s),
``HEAD_TIMEOUT`` (10 s), ``CONNECT_TIMEOUT`` (10 s), ``HELLO_TIMEOUT`` (5 s),
``MAX_CLIENT`` (128 connections per source) and ``MAX_TOTAL`` (2048 connections in all).
The settings are read by :mod:`egress_config`; requests are parsed and answers built by
:mod:`egress_wire`.

Example (what a container runs; ``ROOT`` is the directory holding ``e2b_tools_agent/``)::

    python3 -I -c "import sys; sys.path.insert(0, ROOT); \\
        from e2b_tools_agent.egress import main; main()"
    python3 -I -c "import sys; sys.path.insert(0, ROOT); \\
        from e2b_tools_agent.egress import ctl; sys.exit(ctl(sys.argv[1:]))" \\
        set 10.213.0.2 '{"allow_out": ["pypi.org"]}'
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Dict, List, Optional, Set, Tuple

from . import netpolicy
from .egress_config import Config, local_networks
from .egress_wire import (
    ESTABLISHED,
    HEAD_LIMIT,
    Answer,
    Request,
    bypasses,
    client_hello_sni,
    connect_head,
    forward_head,
    hostport,
    parse_request,
    printable,
    read_head,
)

CHUNK = 64 * 1024
"""Largest read of a relay."""
HELLO_LIMIT = 16 * 1024
"""Most bytes of a TLS ClientHello the proxy waits for to read its server name."""
LOG_LIMIT = 128 * 1024
"""Size past which a decision log becomes ``.jsonl.1`` (replacing the older one), so
that a sandbox's log takes at most about twice this."""
LINGER = (1 << 20, 1.0)  # bytes and seconds read after an error answer before closing


def _warn(message: str) -> None:
    try:
        sys.stderr.write("egress: " + printable(message, 1000) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


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
    request: Optional[Request] = None
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
        """Connections being served, by source (those refused at once not counted)."""
        self._total = 0
        """Their sum."""
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
                writer.write(Answer(429, reason).render("", ""))
                return
            if self._total >= self.config.max_total:
                reason = f"more than {self.config.max_total} connections in all"
                writer.write(Answer(503, reason).render("", ""))
                return
            self._active[conn.client] = self._active.get(conn.client, 0) + 1
            self._total += 1
            counted = True
            await self._serve(conn)
        except Exception as exc:
            _warn(f"connection from {conn.client}: {type(exc).__name__}: {exc}")
        finally:
            if counted:
                self._total -= 1
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
                lines = await asyncio.wait_for(read_head(conn.reader), self.config.head_timeout)
            except asyncio.TimeoutError:
                raise Answer(
                    408, f"no request head within {self.config.head_timeout:g} s"
                ) from None
            if lines is None:
                return
            conn.request = request = parse_request(lines)
            conn.policy = self._policy(conn.client)
            up_reader, up_writer, decision, upstream = await self._open(conn, request)
            conn.opened.append(up_writer)
            check = None
            if request.method == "CONNECT":
                await self._connect(conn, upstream, up_reader, up_writer)
                check = self._sni_check(conn, decision)
            else:
                up_writer.write(forward_head(request, self.config.upstream if upstream else None))
            await self._relay(conn, up_reader, up_writer, check)
        except Answer as answer:
            r = conn.request
            method, target = (r.method, hostport(r.host, r.port)) if r else ("", "")
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
            raise Answer(403, f"no network policy for {client}{why}") from None
        self._policies[client] = (key, policy)
        return policy

    def _decided(self, conn: _Conn, d: netpolicy.Decision) -> None:
        conn.record(d, self.log_dir)
        if not d.allowed:
            raise Answer(403, d.reason, d.rule)

    async def _open(
        self, conn: _Conn, request: Request
    ) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter, netpolicy.Decision, bool]:
        """Decide, then connect to the destination or to the upstream proxy."""
        host, port, policy = request.host, request.port, conn.policy
        literal = netpolicy.is_ip_literal(host)
        addresses = [ipaddress.ip_address(host)] if literal else []
        upstream = self.config.upstream
        if upstream is not None and not bypasses(host, self.config.no_upstream):
            d = netpolicy.decide(policy, host, port, addresses, self.protected)
            if not literal and any(r.kind == "network" for r in policy.allow + policy.deny):
                note = " (IP rules not applied: the upstream proxy resolves names)"
                d = netpolicy.Decision(d.allowed, d.address, d.rule, d.reason + note)
            self._decided(conn, d)
            where = f"upstream proxy {hostport(upstream.host, upstream.port)}"
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
            except Answer as exc:
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
            raise Answer(504, f"resolving {host} timed out") from None
        except OSError as exc:
            raise Answer(502, f"cannot resolve {host}: {exc.strerror or exc}") from None
        found: Dict[netpolicy.Address, None] = {}
        for info in infos:
            try:
                found[ipaddress.ip_address(str(info[4][0]).split("%")[0])] = None
            except ValueError:
                continue
        if not found:
            raise Answer(502, f"cannot resolve {host}: no address")
        return list(found)

    async def _dial(
        self, host: str, port: int, where: Optional[str], timeout: Optional[float] = None
    ) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        where = where or hostport(host, port)
        try:
            connecting = asyncio.open_connection(host, port)
            return await asyncio.wait_for(connecting, timeout or self.config.connect_timeout)
        except asyncio.TimeoutError:
            raise Answer(504, f"connecting to {where} timed out") from None
        except ConnectionRefusedError:
            raise Answer(502, f"connection to {where} refused") from None
        except OSError as exc:
            raise Answer(502, f"cannot connect to {where}: {exc.strerror or exc}") from None

    async def _connect(
        self, conn: _Conn, upstream: bool, up_reader: asyncio.StreamReader, up: asyncio.StreamWriter
    ) -> None:
        """Finish a CONNECT: through the upstream proxy if there is one, then answer 200."""
        assert conn.request is not None
        if upstream and self.config.upstream is not None:
            up.write(connect_head(conn.request.host, conn.request.port, self.config.upstream))
            try:
                lines = await asyncio.wait_for(read_head(up_reader), self.config.connect_timeout)
            except (asyncio.TimeoutError, OSError, Answer):
                lines = None
            if not lines:
                raise Answer(502, "the upstream proxy did not answer the CONNECT")
            if lines[0].split(" ")[1:2] != ["200"]:
                raise Answer(502, f"the upstream proxy answered {lines[0]!r}")
        conn.writer.write(ESTABLISHED)
        await conn.writer.drain()

    def _sni_check(self, conn: _Conn, decision: netpolicy.Decision) -> Inspect:
        """The check of a tunnel's first bytes: the server name of a TLS ClientHello must
        be allowed too, for the same port and address."""
        request = conn.request
        assert request is not None
        addresses = [] if decision.address is None else [decision.address]
        target = hostport(request.host, request.port)

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
