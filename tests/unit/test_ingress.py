"""E2B's ingress settings on ``get_host``: ``allow_public_traffic=False`` (a traffic
access token per sandbox) and ``mask_request_host`` (engine-free: the real agent as a
subprocess; ingress alone leaves the network ``"none"``, which the local backend needs)."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import start_in_sandbox
from local_backend import LocalBackend

from e2b_tools import InvalidArgumentError, Sandbox, SandboxConfig
from e2b_tools._config import resolve_network
from e2b_tools._ingress import (
    CHUNKED,
    HEAD_LIMIT,
    ClientStream,
    body_length,
    masked,
    masked_requests,
)
from e2b_tools.backends.docker import LABEL_CONFIG

TOKEN_HEADER = "e2b-traffic-access-token"

# Two servers in the sandbox. HTTP/1.1 with keep-alive: GET answers what the request
# carried (Host, token, Connection) and how many requests its connection made; POST
# (Content-Length or chunked) answers the Host, the count and the body's sha256. Raw
# TCP: greets first ("hello"), then echoes lines. Their ports go to ./ports as JSON.
_SERVERS = r"""
import hashlib, http.server, json, os, socket, socketserver, threading
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup(); self.count = 0
    def answer(self, body):
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        self.count += 1
        self.answer(json.dumps({
            "host": self.headers.get_all("Host"), "connection": self.headers.get("Connection"),
            "token": self.headers.get("e2b-traffic-access-token"), "count": self.count,
        }).encode())
    def do_POST(self):
        self.count += 1
        if self.headers.get("Transfer-Encoding") == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size); self.rfile.readline()
            while self.rfile.readline().strip():
                pass
        else:
            body = self.rfile.read(int(self.headers["Content-Length"]))
        self.answer(json.dumps({
            "host": self.headers.get_all("Host"), "count": self.count,
            "sha256": hashlib.sha256(body).hexdigest(),
        }).encode())
    def log_message(self, *args): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
s = S(("127.0.0.1", 0), H)
raw = socket.create_server(("127.0.0.1", 0))
def greet(conn):
    with conn:
        conn.sendall(b"hello\n")
        for line in conn.makefile("rb"):
            conn.sendall(b"echo " + line)
def accept():
    while True:
        threading.Thread(target=greet, args=(raw.accept()[0],), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
ports = {"http": s.server_address[1], "raw": raw.getsockname()[1]}
open("ports.tmp", "w").write(json.dumps(ports)); os.rename("ports.tmp", "ports")
s.serve_forever()
"""


def _serve(sbx: Sandbox) -> dict[str, int]:
    ports: dict[str, int] = json.loads(start_in_sandbox(sbx, _SERVERS, "ports"))
    return ports


@pytest.fixture
def guarded(backend: LocalBackend) -> Iterator[tuple[Sandbox, dict[str, int]]]:
    """A sandbox with ``allow_public_traffic=False``, its servers running."""
    sbx = Sandbox.create(backend=backend, timeout=120, network={"allow_public_traffic": False})
    try:
        yield sbx, _serve(sbx)
    finally:
        sbx.kill()


@pytest.fixture
def masking(backend: LocalBackend) -> Iterator[tuple[Sandbox, dict[str, int]]]:
    """A sandbox with ``mask_request_host="localhost:${PORT}"``, its servers running."""
    sbx = Sandbox.create(
        backend=backend, timeout=120, network={"mask_request_host": "localhost:${PORT}"}
    )
    try:
        yield sbx, _serve(sbx)
    finally:
        sbx.kill()


def _connection(host: str) -> http.client.HTTPConnection:
    name, port = host.split(":")
    return http.client.HTTPConnection(name, int(port), timeout=30)


def _get(
    conn: http.client.HTTPConnection, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    conn.request("GET", "/", headers=headers or {})
    reply = conn.getresponse()
    body = reply.read()
    return reply.status, json.loads(body) if reply.status == 200 else body.decode()


def _once(host: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One GET on a connection of its own."""
    conn = _connection(host)
    try:
        return _get(conn, headers)
    finally:
        conn.close()


def _raw(host: str, data: bytes, shut: bool = False) -> bytes:
    """Send ``data`` on a new connection; everything it gets back until closed."""
    name, port = host.split(":")
    with socket.create_connection((name, int(port)), timeout=30) as client:
        client.sendall(data)
        if shut:
            client.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := client.recv(65536):
            got += chunk
    return got


# -- allow_public_traffic=False ------------------------------------------------------


def test_the_token_is_required_and_kept(guarded: tuple[Sandbox, dict[str, int]]) -> None:
    sbx, ports = guarded
    token = sbx.traffic_access_token
    assert isinstance(token, str) and len(token) >= 32
    assert sbx.config.network == "none" and not sbx.config.ingress.allow_public_traffic
    host = sbx.get_host(ports["http"])

    conn = _connection(host)
    status, text = _get(conn)
    assert status == 403 and f"the {TOKEN_HEADER} header is missing" in text
    conn.close()
    conn = _connection(host)
    status, text = _get(conn, {TOKEN_HEADER: token + "x"})
    assert status == 403 and "does not match" in text
    conn.close()

    conn = _connection(host)
    status, seen = _get(conn, {TOKEN_HEADER: token})
    assert status == 200 and seen["token"] == token  # kept, as E2B's proxy does
    assert seen["host"] == [host] and seen["count"] == 1
    # The first request authenticates the connection: its next requests follow it.
    status, seen = _get(conn)
    assert status == 200 and seen["count"] == 2
    conn.close()


def test_refused_connections_get_a_reply_and_the_end(
    guarded: tuple[Sandbox, dict[str, int]],
) -> None:
    sbx, ports = guarded
    token = sbx.traffic_access_token
    assert token is not None
    host = sbx.get_host(ports["http"])
    # Not HTTP at all (a TLS hello): refused before the sandbox's port is opened.
    got = _raw(host, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert got.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    # A server that speaks first is not heard by a client without the token.
    got = _raw(sbx.get_host(ports["raw"]), b"ping\n")
    assert got.startswith(b"HTTP/1.1 403 ") and b"hello" not in got
    # A head cut short by the client's end.
    got = _raw(host, f"GET / HTTP/1.1\r\n{TOKEN_HEADER}: {token}\r\n".encode(), shut=True)
    assert got.startswith(b"HTTP/1.1 403 ")
    # A head over the bound, token and all: 431, and the connection closes.
    big = b"GET / HTTP/1.1\r\n%s: %s\r\nX-Big: %s\r\n\r\n" % (
        TOKEN_HEADER.encode(),
        token.encode(),
        b"a" * HEAD_LIMIT,
    )
    got = _raw(host, big)
    assert got.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert got.endswith(b"bytes\n")  # the whole short body, then the end
    # A head just under the bound passes.
    fill = HEAD_LIMIT - 200
    conn = _connection(host)
    status, seen = _get(conn, {TOKEN_HEADER: token, "X-Fill": "a" * fill})
    assert status == 200 and seen["token"] == token
    conn.close()
    assert sbx.run_code("1 + 1").text == "2"


def test_the_token_survives_in_the_config_label_and_each_sandbox_has_its_own(
    backend: LocalBackend, guarded: tuple[Sandbox, dict[str, int]]
) -> None:
    sbx, _ = guarded
    # What connect() reads (the local backend's pipes take one connection only).
    info = backend.inspect(sbx.container_id)
    assert info is not None
    label = SandboxConfig.model_validate_json(info["Config"]["Labels"][LABEL_CONFIG])
    assert label.ingress == sbx.config.ingress
    assert label.ingress.traffic_access_token == sbx.traffic_access_token
    # A config that asks for it gives every sandbox a fresh token.
    config = SandboxConfig(network={"allow_public_traffic": False})
    assert config.network == "none" and config.ingress.traffic_access_token is None
    other = Sandbox.create(backend=backend, timeout=60, config=config)
    try:
        assert other.traffic_access_token not in (None, sbx.traffic_access_token)
    finally:
        other.kill()


# -- mask_request_host -----------------------------------------------------------------


def _post(conn: http.client.HTTPConnection, body: Any, chunked: bool = False) -> Any:
    conn.request("POST", "/", body=body, encode_chunked=chunked)
    reply = conn.getresponse()
    assert reply.status == 200
    return json.loads(reply.read())


def test_every_request_of_a_connection_is_masked_and_bodies_pass_untouched(
    masking: tuple[Sandbox, dict[str, int]],
) -> None:
    sbx, ports = masking
    assert sbx.traffic_access_token is None and sbx.config.network == "none"
    want = [f"localhost:{ports['http']}"]
    conn = _connection(sbx.get_host(ports["http"]))
    # Bodies that look like requests must not be rewritten, nor end a request early.
    body = (b"Host: evil\r\n\r\nGET / HTTP/1.1\r\nHost: evil\r\n\r\n" * 4096) + bytes(
        range(256)
    ) * 8192
    parts = [body[at : at + 70_001] for at in range(0, len(body), 70_001)]
    for count in range(1, 7, 3):  # one connection (keep-alive) for all of them
        status, seen = _get(conn, {"Host": "example.test:1"})
        assert status == 200 and seen["host"] == want and seen["count"] == count
        seen = _post(conn, body)
        assert seen == {"host": want, "count": count + 1, "sha256": _sha(body)}
        seen = _post(conn, iter(parts), chunked=True)
        assert seen == {"host": want, "count": count + 2, "sha256": _sha(body)}
    conn.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_pipelined_requests_and_blank_lines_between_them(
    masking: tuple[Sandbox, dict[str, int]],
) -> None:
    sbx, ports = masking
    one = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    two = b"POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 4\r\n\r\nHost\r\n"
    three = b"GET / HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n"
    got = _raw(sbx.get_host(ports["http"]), one + two + three)
    assert got.count(f'"host": ["localhost:{ports["http"]}"]'.encode()) == 3
    assert b'"count": 3' in got


def test_upgrades_keep_their_connection_and_other_protocols_pass(
    masking: tuple[Sandbox, dict[str, int]],
) -> None:
    sbx, ports = masking
    conn = _connection(sbx.get_host(ports["http"]))
    status, seen = _get(conn, {"Connection": "Upgrade", "Upgrade": "websocket"})
    assert status == 200 and seen["connection"] == "Upgrade"
    assert seen["host"] == [f"localhost:{ports['http']}"]
    conn.close()
    # A server that speaks first is heard at once; non-HTTP bytes pass as they are.
    name, number = sbx.get_host(ports["raw"]).split(":")
    with socket.create_connection((name, int(number)), timeout=30) as client:
        replies = client.makefile("rb")
        assert replies.readline() == b"hello\n"
        client.sendall(b"Host: x\n\n")
        assert replies.readline() == b"echo Host: x\n"
    # A head over the bound cannot be masked: 431.
    got = _raw(
        sbx.get_host(ports["http"]), b"GET / HTTP/1.1\r\nX: %s\r\n\r\n" % (b"a" * HEAD_LIMIT)
    )
    assert got.startswith(b"HTTP/1.1 431 ")


def test_token_and_mask_together(backend: LocalBackend) -> None:
    network = {"allow_public_traffic": False, "mask_request_host": "app-${PORT}.internal"}
    sbx = Sandbox.create(backend=backend, timeout=60, network=network)
    try:
        ports = _serve(sbx)
        host = sbx.get_host(ports["http"])
        assert _once(host, {"Host": "x"})[0] == 403
        status, seen = _once(host, {TOKEN_HEADER: str(sbx.traffic_access_token)})
        assert status == 200 and seen["host"] == [f"app-{ports['http']}.internal"]
    finally:
        sbx.kill()


# -- settings ---------------------------------------------------------------------------


def test_ingress_keys_leave_egress_alone() -> None:
    assert resolve_network({"allow_public_traffic": False}) == "none"
    assert resolve_network({"mask_request_host": "h"}, True) == "full"
    config = SandboxConfig(network={"allow_out": ["a.test"], "allow_public_traffic": False})
    assert config.network.allow_out == ["a.test"]  # type: ignore[union-attr]
    assert not config.ingress.allow_public_traffic
    assert SandboxConfig().ingress.allow_public_traffic
    assert SandboxConfig().ingress.host_for(80) is None
    assert SandboxConfig(network={"mask_request_host": "h"}).ingress.host_for(80) == "h"
    restored = SandboxConfig.model_validate_json(config.model_dump_json())
    assert restored == config
    assert "traffic_access_token" not in repr(config.ingress)


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ({"allow_public_traffic": "no"}, "valid boolean"),
        ({"mask_request_host": 8080}, "valid string"),
        ({"mask_request_host": "${PORT}-${PORT}.test"}, r"\$\{PORT\} once"),
        ({"mask_request_host": "a.test\r\nX-Injected: 1"}, "printable ASCII"),
        ({"mask_request_host": ""}, "printable ASCII"),
    ],
)
def test_bad_ingress_settings(backend: LocalBackend, network: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Sandbox.create(backend=backend, timeout=60, network=network)


def test_update_network_keeps_ingress(local_sandbox: Sandbox) -> None:
    with pytest.raises(InvalidArgumentError, match="fixed at create"):
        local_sandbox.update_network({"allow_public_traffic": False})
    assert local_sandbox.config.ingress.allow_public_traffic


@pytest.mark.parametrize(
    ("head", "length"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0),
        (b"POST / HTTP/1.1\r\ncontent-length: 12\r\n\r\n", 12),
        (b"POST / HTTP/1.1\r\nContent-Length: 12, 12\r\n\r\n", 12),
        (b"POST / HTTP/1.1\r\nContent-Length: 12\r\nContent-Length: 13\r\n\r\n", None),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", None),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", CHUNKED),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", None),
        (b"CONNECT a:443 HTTP/1.1\r\n\r\n", None),
        (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n", None),
    ],
)
def test_how_a_request_body_is_framed(head: bytes, length: int | None) -> None:
    assert body_length(head) == length


def test_masking_touches_the_host_fields_only() -> None:
    head = b"GET /x HTTP/1.1\nX-A: 1\n  folded\nHOST: one\nhost: two\n two-folded\nX-B: 2\n\n"
    assert masked(head, "h:1") == b"GET /x HTTP/1.1\nHost: h:1\nX-A: 1\n  folded\nX-B: 2\n\n"


@pytest.mark.asyncio
async def test_a_chunked_body_that_does_not_parse_passes_unchanged() -> None:
    reader = asyncio.StreamReader()
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    after = b"4;ext=1\r\nbody\r\nzz\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
    reader.feed_data(after)
    reader.feed_eof()
    out = b"".join([part async for part in masked_requests(ClientStream(reader), head, "m")])
    assert out == masked(head, "m") + after  # the rest as sent, not parsed further
