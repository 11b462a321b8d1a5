"""The egress proxy (``e2b_tools/agent/egress.py``) as a process, against local servers.

No engine: the proxy runs as a subprocess on 127.0.0.1 with a temporary state directory,
and the client is this process, so its policy is the one of source ``127.0.0.1`` (or
``127.0.0.2`` where a test needs a source of its own). Loopback is hard-protected, so
the tests that need to be served allow it with an explicit IP rule.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import select
import selectors
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from e2b_tools.agent.egress_config import Config
from e2b_tools.agent.egress_wire import Upstream, bypasses, client_hello_sni, parse_upstream

ROOT = Path(__file__).resolve().parents[2]
ENTRY = "import sys; sys.path.insert(0, {root!r}); from {package}.egress import {name}"
RUN = ENTRY + "; main()"
CTL = ENTRY + "; sys.exit(ctl(sys.argv[1:]))"
HEAD_TIMEOUT = 1.5


# -- local servers ---------------------------------------------------------------------


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with what it saw, as JSON."""

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        data = json.dumps(
            {"path": self.path, "headers": list(self.headers.items()), "body": body}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _echo

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Recorder(socketserver.BaseRequestHandler):
    """Puts all a connection brought on the server's queue when it closes."""

    def handle(self) -> None:
        self.request.settimeout(3)
        data = b""
        try:
            while chunk := self.request.recv(65536):
                data += chunk
        except OSError:
            pass
        self.server.received.put(data)  # type: ignore[attr-defined]


ServerT = TypeVar("ServerT", bound=socketserver.BaseServer)


def _serving(server: ServerT) -> Iterator[ServerT]:
    """Serve ``server`` from a thread until the generator is closed."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(scope="module")
def web() -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    server.seen = []  # type: ignore[attr-defined]
    yield from _serving(server)


@pytest.fixture(scope="module")
def recorder() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    server.received = queue.Queue()  # type: ignore[attr-defined]
    yield from _serving(server)


def port_of(server: socketserver.BaseServer) -> int:
    return int(server.server_address[1])  # type: ignore[index]


# -- the proxy as a process ---------------------------------------------------------------


class Proxy:
    """An egress proxy subprocess with its own state directory."""

    def __init__(self, where: Path, package: str, settings: dict[str, str] | None = None) -> None:
        self.state = where / "state"
        # The layout inside a container (what ctl always uses: it starts faster without
        # the rest of e2b_tools).
        self.opt = where / "opt"
        os.makedirs(self.opt)
        os.symlink(ROOT / "e2b_tools" / "agent", self.opt / "e2b_tools_agent")
        root = self.opt if package == "e2b_tools_agent" else ROOT
        self.env = {
            **os.environ,
            "E2B_TOOLS_EGRESS_STATE": str(self.state),
            "E2B_TOOLS_EGRESS_PORT": "0",
            "E2B_TOOLS_EGRESS_BIND": "127.0.0.1",
            "E2B_TOOLS_EGRESS_HEAD_TIMEOUT": str(HEAD_TIMEOUT),
            "E2B_TOOLS_EGRESS_HELLO_TIMEOUT": "1",
            **{f"E2B_TOOLS_EGRESS_{k}": v for k, v in (settings or {}).items()},
        }
        self.stderr = open(where / "stderr", "w+b")  # noqa: SIM115 (closed in stop)
        code = RUN.format(root=str(root), package=package, name="main")
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", code],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=self.env,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("egress ready 127.0.0.1:"):
            self.stop()
            pytest.fail(f"the proxy did not start: {line!r} {self.errors()!r}")
        self.port = int(line.rsplit(":", 1)[1])

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        code = self.proc.returncode
        self.stderr.close()
        return code

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        code = CTL.format(root=str(self.opt), package="e2b_tools_agent", name="ctl")
        return subprocess.run(
            [sys.executable, "-I", "-c", code, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=30,
        )

    def policy(self, allow: list[str] = [], deny: list[str] = [], ip: str = "127.0.0.1") -> None:  # noqa: B006
        document = {"sandbox_id": "test", "allow_out": allow, "deny_out": deny}
        done = self.ctl("set", ip, json.dumps(document))
        assert done.returncode == 0, done.stderr

    def log(self, limit: int = 100, ip: str = "127.0.0.1") -> list[dict[str, object]]:
        done = self.ctl("log", ip, str(limit))
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()]

    def rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            line = next(x for x in f if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024


def _stopped_cleanly(proxy: Proxy) -> None:
    errors = proxy.errors()
    code = proxy.stop()
    assert code == 0, f"the proxy exited with {code} on SIGTERM"
    assert "Traceback" not in errors, errors


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """The proxy imported as part of ``e2b_tools`` (the source tree)."""
    p = Proxy(tmp_path_factory.mktemp("egress"), "e2b_tools.agent")
    try:
        yield p
    finally:
        _stopped_cleanly(p)


@pytest.fixture(scope="module")
def chained(proxy: Proxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """A second proxy, laid out as in a container, whose upstream is ``proxy``."""
    upstream = f"http://127.0.0.1:{proxy.port}"
    p = Proxy(tmp_path_factory.mktemp("chained"), "e2b_tools_agent", {"UPSTREAM": upstream})
    try:
        yield p
    finally:
        _stopped_cleanly(p)


# -- clients --------------------------------------------------------------------------------


def connect(proxy: Proxy, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", proxy.port))
    return sock


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


class Answer:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split(" ")[1]) if lines[0].startswith("HTTP/") else 0
        self.headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)

    def json(self) -> dict[str, object]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


def ask(proxy: Proxy, request: bytes, source: str = "127.0.0.1") -> Answer:
    with connect(proxy, source) as sock:
        sock.sendall(request)
        return Answer(read_all(sock))


def get(proxy: Proxy, url: str, extra: str = "") -> Answer:
    return ask(proxy, f"GET {url} HTTP/1.1\r\nHost: ignored.test\r\n{extra}\r\n".encode())


def tunnel(proxy: Proxy, target: str) -> tuple[socket.socket, Answer]:
    sock = connect(proxy)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    raw = read_head(sock)
    head = Answer(raw)
    if head.status != 200:
        head = Answer(raw + read_all(sock))
    return sock, head


def client_hello(server_name: str) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    out = ssl.MemoryBIO()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return out.read()


# -- tests -----------------------------------------------------------------------------------


def test_allowed_get_is_served_with_a_clean_head(proxy: Proxy, web: http.server.HTTPServer) -> None:
    proxy.policy(["127.0.0.1"])
    url = f"http://127.0.0.1:{port_of(web)}/hello?x=1"
    extra = (
        "Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\n"
        "Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nX-Keep: 2\r\n"
    )
    answer = get(proxy, url, extra)
    assert answer.status == 200, answer.status_line
    seen = answer.json()
    headers = {k.lower(): v for k, v in seen["headers"]}  # type: ignore[attr-defined]
    assert seen["path"] == "/hello?x=1"
    assert headers["host"] == f"127.0.0.1:{port_of(web)}"  # from the URL, not the client
    assert headers["connection"] == "close" and headers["x-keep"] == "2"
    assert not {"proxy-authorization", "proxy-connection", "x-drop"} & set(headers)
    [entry] = proxy.log()
    assert entry["method"] == "GET" and entry["host"] == "127.0.0.1"
    assert entry["port"] == port_of(web) and entry["address"] == "127.0.0.1"
    assert entry["allowed"] is True and entry["rule"] == "127.0.0.1"


def test_body_and_origin_form(proxy: Proxy, web: http.server.HTTPServer) -> None:
    proxy.policy(["127.0.0.1"])
    where = f"127.0.0.1:{port_of(web)}"
    post = f"POST http://{where}/p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    answer = ask(proxy, post.encode())
    assert answer.status == 200 and answer.json()["body"] == "hello"
    answer = ask(proxy, f"GET /origin HTTP/1.1\r\nHost: {where}\r\n\r\n".encode())
    assert answer.status == 200 and answer.json()["path"] == "/origin"


def test_denied_get_names_the_rule(proxy: Proxy, web: http.server.HTTPServer) -> None:
    proxy.policy([], ["127.0.0.1"])
    before = len(web.seen)  # type: ignore[attr-defined]
    answer = get(proxy, f"http://127.0.0.1:{port_of(web)}/")
    assert answer.status_line == "HTTP/1.1 403 denied by deny_out rule '127.0.0.1'"
    assert answer.headers["X-E2B-Tools-Denied"] == "127.0.0.1"
    assert answer.headers["Content-Type"] == "text/plain"
    assert (
        answer.body
        == (
            f"e2b-tools egress: GET 127.0.0.1:{port_of(web)} denied: "
            "denied by deny_out rule '127.0.0.1'\n"
        ).encode()
    )
    assert len(web.seen) == before  # type: ignore[attr-defined]
    # a domain rule does not open loopback
    proxy.policy(["localhost"])
    answer = get(proxy, f"http://localhost:{port_of(web)}/")
    assert answer.status == 403 and answer.headers["X-E2B-Tools-Denied"] == "default"
    assert "is a loopback address; only an allow_out IP/CIDR rule" in answer.status_line
    assert [e["allowed"] for e in proxy.log()] == [False]


def test_no_policy_is_denied(proxy: Proxy, web: http.server.HTTPServer) -> None:
    proxy.policy(["127.0.0.1"])
    assert proxy.ctl("remove", "127.0.0.1").returncode == 0
    answer = get(proxy, f"http://127.0.0.1:{port_of(web)}/")
    assert answer.status_line == "HTTP/1.1 403 no network policy for 127.0.0.1"


def test_connect_tunnel(proxy: Proxy, web: http.server.HTTPServer) -> None:
    proxy.policy(["127.0.0.1"])
    sock, head = tunnel(proxy, f"127.0.0.1:{port_of(web)}")
    with sock:
        assert head.status_line == "HTTP/1.1 200 Connection established"
        sock.sendall(b"GET /through HTTP/1.0\r\n\r\n")
        answer = Answer(read_all(sock))
    assert answer.status == 200 and answer.json()["path"] == "/through"
    assert proxy.log()[-1]["method"] == "CONNECT"


def test_connect_denied(proxy: Proxy, web: http.server.HTTPServer) -> None:
    proxy.policy(["example.test"], ["127.0.0.0/8"])
    sock, head = tunnel(proxy, f"127.0.0.1:{port_of(web)}")
    sock.close()
    assert head.status_line == "HTTP/1.1 403 denied by deny_out rule '127.0.0.0/8'"
    assert head.body.startswith(b"e2b-tools egress: CONNECT 127.0.0.1:")


def test_port_specific_rule(
    proxy: Proxy, web: http.server.HTTPServer, recorder: socketserver.TCPServer
) -> None:
    proxy.policy([f"127.0.0.1:{port_of(web)}"])
    assert get(proxy, f"http://127.0.0.1:{port_of(web)}/").status == 200
    sock, head = tunnel(proxy, f"127.0.0.1:{port_of(recorder)}")
    sock.close()
    assert head.status_line == (
        f"HTTP/1.1 403 '127.0.0.1:{port_of(recorder)}' matches no allow_out rule"
    )


def _received(recorder: socketserver.TCPServer) -> bytes:
    """What the recorder's next connection brought, once closed."""
    return recorder.received.get(timeout=5)  # type: ignore[attr-defined, no-any-return]


def test_client_hello_reaches_the_server(proxy: Proxy, recorder: socketserver.TCPServer) -> None:
    proxy.policy(["127.0.0.1"])  # an IP rule opens the address whatever the name
    hello = client_hello("anything.test")
    sock, head = tunnel(proxy, f"127.0.0.1:{port_of(recorder)}")
    with sock:
        assert head.status == 200
        sock.sendall(hello[:7])  # in pieces: the proxy waits for the whole ClientHello
        time.sleep(0.05)
        sock.sendall(hello[7:])
    assert _received(recorder) == hello


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x16\x03\x01\x00\x08\x02" + bytes(7), "malformed"),  # not a ClientHello
        (b"\x16\x03\x01\x02\x00\x01", "incomplete"),  # 512 bytes announced, 1 sent
    ],
)
def test_bad_client_hello_closes_the_tunnel(
    proxy: Proxy, recorder: socketserver.TCPServer, data: bytes, kind: str
) -> None:
    proxy.policy(["127.0.0.1"])
    sock, head = tunnel(proxy, f"127.0.0.1:{port_of(recorder)}")
    with sock:
        assert head.status == 200
        sock.sendall(data)
        assert read_all(sock) == b""  # closed (after HELLO_TIMEOUT when incomplete)
    entry = proxy.log()[-1]
    assert entry["allowed"] is False and f"{kind} TLS ClientHello" in str(entry["reason"])
    assert _received(recorder) == b""  # the server never saw the bytes


def test_server_name_must_be_allowed_too(
    proxy: Proxy, chained: Proxy, recorder: socketserver.TCPServer
) -> None:
    # Through an upstream proxy, names are decided by name alone, so a name rule decides
    # (an IP rule would open the address for any server name).
    chained.policy(["localhost"])
    proxy.policy(["127.0.0.1"])
    target = f"localhost:{port_of(recorder)}"
    sock, head = tunnel(chained, target)
    with sock:
        assert head.status == 200, head.status_line
        sock.sendall(client_hello("evil.test"))
        assert read_all(sock) == b""
    entry = chained.log()[-1]
    assert entry["host"] == "evil.test" and entry["allowed"] is False
    assert str(entry["reason"]).startswith(f"TLS server name 'evil.test' in a tunnel to {target}")
    assert _received(recorder) == b""
    hello = client_hello("localhost")
    sock, head = tunnel(chained, target)
    with sock:
        sock.sendall(hello)
    assert _received(recorder) == hello
    assert proxy.log()[-1]["host"] == "localhost"  # it went through the upstream proxy


@pytest.mark.parametrize(
    "request_",
    [
        b"HELLO\r\n\r\n",
        b"GET ftp://example.test/ HTTP/1.1\r\n\r\n",
        b"GET https://example.test/ HTTP/1.1\r\n\r\n",
        b"CONNECT example.test HTTP/1.1\r\n\r\n",
        b"CONNECT example.test:99999 HTTP/1.1\r\n\r\n",
        b"CONNECT exa$mple.test:443 HTTP/1.1\r\n\r\n",
        b"GET http://example.test/ HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET http://example.test/ HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
        b"GET http://example.test/ HTTP/1.1\r\nno colon\r\n\r\n",
        b"\x00\xff\x16\x03 garbage\r\n\r\n",
    ],
)
def test_malformed_requests_get_400(proxy: Proxy, request_: bytes) -> None:
    proxy.policy(["*"])
    answer = ask(proxy, request_)
    assert answer.status == 400, answer.status_line
    assert answer.headers["Connection"] == "close"


def test_oversized_head_is_refused_without_buffering_it(proxy: Proxy) -> None:
    proxy.policy(["*"])
    before = proxy.rss()
    line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    floods = [line * 70, b"X-Long: " + b"a" * (100 << 10) + b"\r\n", line * (32 << 10)]
    for filler in floods:  # many lines, one long line, and 32 MiB of lines
        with connect(proxy) as sock:
            flood = b"GET http://example.test/ HTTP/1.1\r\n" + filler

            def send(sock: socket.socket = sock, flood: bytes = flood) -> None:
                try:
                    sock.sendall(flood)
                except OSError:
                    pass  # the proxy stops reading and closes: expected

            sender = threading.Thread(target=send)
            sender.start()
            try:
                head = read_head(sock)
            finally:
                sender.join(10)
            assert head.startswith(b"HTTP/1.1 431 request head over 65536 bytes"), head
    assert proxy.rss() - before < 16 << 20  # not the 32 MiB the client sent


def test_silent_client_is_closed_after_the_head_timeout(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"GET http://example.test/ HTTP/1.1\r\n")
        answer = Answer(read_all(sock))  # the socket's 5 s timeout would fail this
    assert answer.status_line == f"HTTP/1.1 408 no request head within {HEAD_TIMEOUT:g} s"


def test_too_many_connections_from_one_source(proxy: Proxy, web: http.server.HTTPServer) -> None:
    source = "127.0.0.2"  # a source of its own, so the count is exact
    socks = [connect(proxy, source) for _ in range(160)]
    answers: dict[socket.socket, bytes] = {}
    with selectors.DefaultSelector() as waiting:
        for sock in socks:
            waiting.register(sock, selectors.EVENT_READ)
        try:
            deadline = time.monotonic() + HEAD_TIMEOUT + 5
            while len(answers) < len(socks) and time.monotonic() < deadline:
                for key, _ in waiting.select(0.5):
                    sock = key.fileobj  # type: ignore[assignment]
                    answers[sock] = sock.recv(4096)
                    waiting.unregister(sock)
        finally:
            for sock in socks:
                sock.close()
    codes = [answers.get(s, b"")[:12] for s in socks]
    assert codes.count(b"HTTP/1.1 429") == 32
    assert codes.count(b"HTTP/1.1 408") == 128  # the others waited for their head
    proxy.policy(["127.0.0.1"], ip=source)
    request = f"GET http://127.0.0.1:{port_of(web)}/after HTTP/1.1\r\n\r\n".encode()
    for _ in range(50):  # until the proxy has seen the closes
        answer = ask(proxy, request, source)
        if answer.status != 429:
            break
        time.sleep(0.05)
    assert answer.status == 200 and answer.json()["path"] == "/after"


def test_too_many_connections_in_all(tmp_path: Path, web: http.server.HTTPServer) -> None:
    p = Proxy(
        tmp_path, "e2b_tools_agent", {"MAX_TOTAL": "6", "MAX_CLIENT": "4", "HEAD_TIMEOUT": "30"}
    )
    held: list[socket.socket] = []
    try:
        p.policy(["127.0.0.1"], ip="127.0.0.2")
        held += [connect(p) for _ in range(4)] + [connect(p, "127.0.0.2") for _ in range(2)]
        with connect(p, "127.0.0.2") as sock:  # under its own cap, but 6 in all
            answer = Answer(read_all(sock))
        assert answer.status_line == "HTTP/1.1 503 more than 6 connections in all"
        assert answer.headers["Connection"] == "close"
        with connect(p) as sock:  # a source at its own cap hears about that first
            assert Answer(read_all(sock)).status == 429
        assert select.select(held, [], [], 0)[0] == []  # the held ones still wait
        held.pop().close()
        request = f"GET http://127.0.0.1:{port_of(web)}/room HTTP/1.1\r\n\r\n".encode()
        for _ in range(50):  # until the proxy has seen the close
            answer = ask(p, request, "127.0.0.2")
            if answer.status != 503:
                break
            time.sleep(0.05)
        assert answer.status == 200 and answer.json()["path"] == "/room"
    finally:
        for sock in held:
            sock.close()
        _stopped_cleanly(p)


def test_settings_and_wire_format_in_process() -> None:
    assert (Config().max_per_client, Config().max_total) == (128, 2048)
    env = {"E2B_TOOLS_EGRESS_MAX_CLIENT": "7", "E2B_TOOLS_EGRESS_MAX_TOTAL": "9"}
    config = Config.from_env(env)
    assert (config.max_per_client, config.max_total) == (7, 9)
    assert Config.from_env({}) == Config()
    for bad in ("0", "0.5", "many"):
        with pytest.raises(ValueError, match="E2B_TOOLS_EGRESS_MAX_TOTAL"):
            Config.from_env({"E2B_TOOLS_EGRESS_MAX_TOTAL": bad})
    assert parse_upstream("u:p@Proxy.test.:8080") == Upstream("proxy.test", 8080, "Basic dTpw")
    no_upstream = ("example.test", "*.corp.test", "10.0.0.0/8")
    assert all(bypasses(h, no_upstream) for h in ("a.example.test", "corp.test", "10.1.2.3"))
    assert not any(bypasses(h, no_upstream) for h in ("xexample.test", "11.0.0.1", "10.test"))
    hello = client_hello("name.test")
    assert client_hello_sni(hello) == ("ok", "name.test")
    assert client_hello_sni(hello[:-1]) == ("more", None)
    body = hello[5:]  # the same handshake message in two records
    records = [b"\x16\x03\x01" + struct.pack(">H", len(b)) + b for b in (body[:9], body[9:])]
    assert client_hello_sni(b"".join(records)) == ("ok", "name.test")


def test_policy_change_applies_to_the_next_request(
    proxy: Proxy, web: http.server.HTTPServer
) -> None:
    url = f"http://127.0.0.1:{port_of(web)}/"
    proxy.policy(["127.0.0.1"])
    assert get(proxy, url).status == 200
    proxy.policy(["127.0.0.2"])
    assert get(proxy, url).status == 403
    proxy.policy(["127.0.0.1"])
    assert get(proxy, url).status == 200


def test_decision_log_and_rotation(proxy: Proxy, web: http.server.HTTPServer) -> None:
    url = f"http://127.0.0.1:{port_of(web)}/"
    proxy.policy([f"127.0.0.1:{port_of(web)}"])  # no IP rule for port 80: no lookups
    assert proxy.log() == []  # a fresh log for a new policy
    get(proxy, url)
    get(proxy, "http://denied.test/")
    first, second = proxy.log()
    assert set(first) == {"time", "method", "host", "port", "address", "allowed", "rule", "reason"}
    assert isinstance(first["time"], float) and first["allowed"] is True
    assert second["host"] == "denied.test" and second["address"] is None
    assert second["reason"] == "'denied.test:80' matches no allow_out rule"
    assert proxy.log(1) == [second]
    # past 128 KiB the log becomes .jsonl.1, and ctl log reads both, older first
    path = proxy.state / "log" / "127.0.0.1.jsonl"
    old = path.with_name(path.name + ".1")

    def fill(size: int) -> None:  # one line that brings the log to `size` bytes
        with open(path, "a") as f:
            f.write(json.dumps({"filler": "x" * (size - path.stat().st_size - 15)}) + "\n")
        assert path.stat().st_size == size

    fill(128 * 1024 - 400)  # a decision takes less than 400 bytes
    get(proxy, "http://third.test/")
    assert not old.exists() and path.stat().st_size <= 128 * 1024
    fill(128 * 1024)
    get(proxy, "http://fourth.test/")
    assert old.exists() and not path.exists()
    get(proxy, "http://fifth.test/")
    assert path.read_text().count("\n") == 1
    assert old.stat().st_size + path.stat().st_size < 128 * 1024 + 1000  # at most ~256 KiB
    assert [e.get("host") for e in proxy.log(3)] == [None, "fourth.test", "fifth.test"]


def test_ctl_commands_and_errors(proxy: Proxy) -> None:
    proxy.policy(["Example.COM:443", "*"], ["evil.test"], ip="::ffff:10.0.0.9")
    done = proxy.ctl("get", "10.0.0.9")
    assert json.loads(done.stdout) == {
        "sandbox_id": "test",
        "allow_out": ["example.com:443", "0.0.0.0/0"],
        "deny_out": ["evil.test"],
    }
    assert proxy.ctl("remove", "10.0.0.9").returncode == 0
    assert proxy.ctl("remove", "10.0.0.9").returncode == 0  # idempotent
    bad = [
        (["get", "10.0.0.9"], "no network policy for 10.0.0.9"),
        (["set", "10.0.0.9", '{"allow_out": ["bad rule"]}'], "invalid network rule 'bad rule'"),
        (["set", "10.0.0.9", "{not json"], "Expecting property name"),
        (["set", "../etc", "{}"], "'../etc' is not an IP address"),
        (["log", "10.0.0.9", "many"], "limit 'many' is not a whole number"),
        (["frob"], "usage: set <ip> <policy-json>"),
        ([], "usage:"),
    ]
    for args, message in bad:
        done = proxy.ctl(*args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)


def test_upstream_proxy_chaining(proxy: Proxy, chained: Proxy, web: http.server.HTTPServer) -> None:
    where = f"127.0.0.1:{port_of(web)}"
    chained.policy(["127.0.0.1", "name.test"])
    proxy.policy([where])  # port-specific: the upstream refuses name.test without a lookup
    answer = get(chained, f"http://{where}/chained")
    assert answer.status == 200 and answer.json()["path"] == "/chained"
    [entry] = proxy.log()
    assert (entry["method"], entry["host"], entry["allowed"]) == ("GET", "127.0.0.1", True)
    # a name goes to the upstream unresolved; its answer comes back as it is
    answer = get(chained, "http://name.test/x")
    assert answer.status_line == "HTTP/1.1 403 'name.test:80' matches no allow_out rule"
    mine = chained.log()[-1]
    assert mine["allowed"] is True and mine["address"] is None
    assert "IP rules not applied" in str(mine["reason"])
    assert proxy.log()[-1]["host"] == "name.test"
    sock, head = tunnel(chained, where)
    with sock:
        assert head.status == 200
        sock.sendall(b"GET /tunnelled HTTP/1.0\r\n\r\n")
        assert Answer(read_all(sock)).json()["path"] == "/tunnelled"
    sock, head = tunnel(chained, "name.test:443")
    sock.close()
    assert head.status_line == (
        "HTTP/1.1 502 the upstream proxy answered "
        "\"HTTP/1.1 403 'name.test:443' matches no allow_out rule\""
    )
    # IP literals are still checked against the protected classes
    chained.policy(["*"])
    answer = get(chained, f"http://{where}/")
    assert answer.status == 403 and "loopback" in answer.status_line


def test_no_upstream_bypass_dead_upstream_and_idle_tunnels(
    tmp_path: Path, web: http.server.HTTPServer, recorder: socketserver.TCPServer
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    settings = {
        "UPSTREAM": f"http://127.0.0.1:{dead}",
        "NO_UPSTREAM": "example.test, localhost",
        "IDLE": "0.5",
    }
    p = Proxy(tmp_path, "e2b_tools_agent", settings)
    try:
        p.policy(["127.0.0.1"])
        assert get(p, f"http://localhost:{port_of(web)}/direct").status == 200
        answer = get(p, f"http://127.0.0.1:{port_of(web)}/")
        refused = f"HTTP/1.1 502 connection to upstream proxy 127.0.0.1:{dead} refused"
        assert answer.status_line == refused
        sock, head = tunnel(p, f"localhost:{port_of(recorder)}")
        with sock:
            assert head.status == 200
            sock.settimeout(2)  # shorter than the recorder's own 3 s
            assert read_all(sock) == b""  # nothing moved for 0.5 s: closed
    finally:
        _stopped_cleanly(p)


def test_proxy_survives_garbage_and_aborted_tunnels(
    proxy: Proxy, web: http.server.HTTPServer, recorder: socketserver.TCPServer
) -> None:
    proxy.policy(["127.0.0.1"])
    for _ in range(3):
        sock, head = tunnel(proxy, f"127.0.0.1:{port_of(recorder)}")
        assert head.status == 200
        sock.sendall(os.urandom(100_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, mid-tunnel
        with connect(proxy) as sock:
            sock.sendall(os.urandom(2000))  # no line end, then gone
        with connect(proxy) as sock:
            sock.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port_of(recorder))
    while not recorder.received.empty():  # type: ignore[attr-defined]
        recorder.received.get()  # type: ignore[attr-defined]
    answer = get(proxy, f"http://127.0.0.1:{port_of(web)}/still")
    assert answer.status == 200 and answer.json()["path"] == "/still"
