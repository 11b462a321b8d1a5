"""``get_host(port)``: servers inside the sandbox reached from this machine's loopback,
over the sandbox's own channel (engine-free: the real agent as a subprocess)."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import start_in_sandbox
from local_backend import LocalBackend

from e2b_tools import AsyncSandbox, InvalidArgumentError, Sandbox, SandboxGoneError

# A server in the sandbox: GET /<n> answers n bytes, GET /forever never ends, POST
# answers the body's sha256;
# it binds a free port and writes it to ./port.
_SERVER = r"""
import hashlib, http.server, os, socketserver
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        block = bytes(range(256)) * 256
        if self.path == "/forever":
            self.send_response(200); self.end_headers()
            while True:
                self.wfile.write(block)
        n = int(self.path.strip("/") or 0)
        self.send_response(200); self.send_header("Content-Length", str(n)); self.end_headers()
        while n:
            part = block[: min(n, len(block))]; self.wfile.write(part); n -= len(part)
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        out = hashlib.sha256(body).hexdigest().encode()
        self.send_response(200); self.send_header("Content-Length", str(len(out)))
        self.end_headers(); self.wfile.write(out)
    def log_message(self, *args): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
s = S(("127.0.0.1", 0), H)
open("port.tmp", "w").write(str(s.server_address[1])); os.rename("port.tmp", "port")
s.serve_forever()
"""


def _expected(n: int) -> bytes:
    block = bytes(range(256)) * 256
    return (block * (n // len(block) + 1))[:n]


@pytest.fixture
def served(backend: LocalBackend) -> Iterator[tuple[Sandbox, int]]:
    sbx = Sandbox.create(backend=backend, timeout=120)
    try:
        yield sbx, int(start_in_sandbox(sbx, _SERVER, "port"))
    finally:
        sbx.kill()


def _get(host: str, path: str) -> bytes:
    name, port = host.split(":")
    conn = http.client.HTTPConnection(name, int(port), timeout=30)
    try:
        conn.request("GET", path)
        reply = conn.getresponse()
        assert reply.status == 200
        return reply.read()
    finally:
        conn.close()


def test_a_server_in_the_sandbox_answers_through_its_host(served: tuple[Sandbox, int]) -> None:
    sbx, port = served
    host = sbx.get_host(port)
    assert host.startswith("127.0.0.1:") and sbx.get_host(port) == host  # one listener
    assert _get(host, "/10") == _expected(10)
    big = 6 << 20  # many data events, and the client's reads pace the agent's
    assert hashlib.sha256(_get(host, f"/{big}")).digest() == hashlib.sha256(_expected(big)).digest()
    body = bytes(reversed(_expected(3 << 20)))  # many port_sends, each waits its turn
    name, number = host.split(":")
    conn = http.client.HTTPConnection(name, int(number), timeout=30)
    conn.request("POST", "/", body=body)
    assert conn.getresponse().read().decode() == hashlib.sha256(body).hexdigest()
    conn.close()


def test_connections_run_side_by_side(served: tuple[Sandbox, int]) -> None:
    sbx, port = served
    host = sbx.get_host(port)

    async def many() -> list[bytes]:
        return await asyncio.gather(
            *(asyncio.to_thread(_get, host, f"/{n}") for n in range(1000, 1020))
        )

    assert asyncio.run(many()) == [_expected(n) for n in range(1000, 1020)]
    # Meanwhile the sandbox's other calls go on.
    assert sbx.run_code("6 * 7").text == "42"


def test_nothing_listening_closes_the_client_at_once(served: tuple[Sandbox, int]) -> None:
    sbx, _ = served
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]  # nothing listens there once the probe closes
    name, number = sbx.get_host(free).split(":")
    started = time.monotonic()
    with socket.create_connection((name, int(number)), timeout=10) as client:
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert client.recv(100) == b""  # closed, not left hanging
    assert time.monotonic() - started < 5
    assert sbx.run_code("1 + 1").text == "2"


def _agent_sockets(backend: LocalBackend, sbx: Sandbox) -> int:
    process = backend._sandboxes[sbx.container_id].process
    assert process is not None
    fds = Path(f"/proc/{process.pid}/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except FileNotFoundError:
            pass  # closed meanwhile
    return count


def test_a_client_that_goes_away_mid_reply_frees_the_connection(
    backend: LocalBackend, served: tuple[Sandbox, int]
) -> None:
    sbx, port = served
    name, number = sbx.get_host(port).split(":")
    before = _agent_sockets(backend, sbx)
    for _ in range(5):
        with socket.create_connection((name, int(number)), timeout=10) as client:
            client.sendall(b"GET /forever HTTP/1.0\r\n\r\n")
            assert client.recv(1000)  # the reply started; hang up in the middle of it
    deadline = time.monotonic() + 10
    while _agent_sockets(backend, sbx) > before:  # the agent closes what the host gave up
        assert time.monotonic() < deadline, "the agent kept the abandoned connections"
        time.sleep(0.1)
    assert _get(sbx.get_host(port), "/5") == _expected(5)


def test_bad_ports_and_a_killed_sandbox(backend: LocalBackend) -> None:
    sbx = Sandbox.create(backend=backend, timeout=60)
    for bad in (0, 65536, -1, True, "80"):
        with pytest.raises(InvalidArgumentError, match="port"):
            sbx.get_host(bad)  # type: ignore[arg-type]
    name, number = sbx.get_host(8000).split(":")
    sbx.kill()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((name, int(number)), timeout=5).close()
    with pytest.raises(SandboxGoneError):
        sbx.get_host(8000)


@pytest.mark.asyncio
async def test_the_async_api_gives_a_host_without_awaiting(backend: LocalBackend) -> None:
    sbx = await AsyncSandbox.create(backend=backend, timeout=60)
    try:
        await sbx.files.write("server.py", _SERVER)
        await sbx.commands.run("python3 server.py", background=True)
        for _ in range(200):
            if await sbx.files.exists("port"):
                break
            await asyncio.sleep(0.05)
        host = sbx.get_host(int(await sbx.files.read("port")))  # E2B: a plain call
        assert await asyncio.to_thread(_get, host, "/300") == _expected(300)
    finally:
        await sbx.kill()


def test_killing_with_a_connection_open_reports_no_error(
    backend: LocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """kill() cancels the connections under way; the loop reports nothing about it."""
    sbx = Sandbox.create(backend=backend, timeout=120)
    try:
        name, number = sbx.get_host(int(start_in_sandbox(sbx, _SERVER, "port"))).split(":")
        with socket.create_connection((name, int(number)), timeout=10) as client:
            client.sendall(b"GET /forever HTTP/1.0\r\n\r\n")
            assert client.recv(1024).startswith(b"HTTP/1.0 200")
            caplog.set_level("ERROR", logger="asyncio")
            sbx.kill()
            time.sleep(0.2)  # the cancelled connection's callbacks run on the loop
    finally:
        sbx.kill()
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text
