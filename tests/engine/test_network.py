"""Egress policy against a real engine.

The upstream is ``examples/local_index.py``, in a container the tests start on a network
it creates (``allowed.test``, ``denied.test`` and ``pypi.test`` are its aliases there);
the egress proxy is joined to that network so it can reach it. Nothing here targets an
address outside the engine.
"""

from __future__ import annotations

import contextlib
import http.server
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest

# The upstream server is shared with the examples and the benchmark.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from local_index import LocalIndex, serve_local_index

from e2b_tools import CommandExitError, InvalidArgumentError, NetworkPolicy, Sandbox
from e2b_tools.backends.docker import DockerBackend, default_backend
from e2b_tools.backends.egress import (
    LABEL_NET_OF,
    NET_PREFIX,
    OUT_NETWORK,
    PROXY_NAME,
    PROXY_USER,
)

ALIASES = ["allowed.test", "denied.test", "pypi.test", "sub.allowed.test"]


def sh(sbx: Sandbox, command: str, timeout: float = 60) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of a shell command in the sandbox."""
    try:
        result = sbx.commands.run(command, timeout=timeout)
    except CommandExitError as exc:
        return exc.exit_code, exc.stdout, exc.stderr
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def upstream_net(docker_client: docker.DockerClient, image: str) -> Iterator[LocalIndex]:
    with serve_local_index(docker_client, image, aliases=ALIASES) as index:
        yield index


@pytest.fixture
def upstream(
    upstream_net: LocalIndex, docker_client: docker.DockerClient, image: str
) -> LocalIndex:
    # Every test: an earlier one may have removed the proxy (a new one starts unjoined).
    default_backend().egress.join(upstream_net.network, image)
    return upstream_net


@contextlib.contextmanager
def policy_sandbox(network: object, **kwargs: object) -> Iterator[Sandbox]:
    sbx = Sandbox.create(network=network, timeout=300, **kwargs)  # type: ignore[arg-type]
    try:
        yield sbx
    finally:
        sbx.kill()


@dataclass
class Reply:
    exit_code: int
    body: str
    status: str
    stderr: str


def curl(sbx: Sandbox, url: str, *flags: str) -> Reply:
    """curl in the sandbox: exit code, body, HTTP status ("000": none) and stderr."""
    code, out, err = sh(sbx, f"curl -sS -m 10 {' '.join(flags)} -w '##%{{http_code}}' {url}")
    body, _, status = out.rpartition("##")
    return Reply(code, body, status, err)


# -- allowed, denied, blocked ----------------------------------------------------------


def test_allowed_name_is_served_and_others_get_a_403_naming_the_rule(upstream: LocalIndex) -> None:
    with policy_sandbox({"allow_out": ["allowed.test"]}) as sbx:
        reply = curl(sbx, "http://allowed.test:8080/hello")
        assert reply.exit_code == 0, reply
        assert (reply.body, reply.status) == ("hello from allowed.test:8080 /hello\n", "200")
        # HTTPS and every other protocol go through CONNECT: -p forces a tunnel.
        reply = curl(sbx, "http://allowed.test:8080/tunnel", "-p")
        assert reply.body == "hello from allowed.test:8080 /tunnel\n", reply

        reply = curl(sbx, "http://denied.test:8080/")
        assert reply.status == "403"
        assert "denied.test" in reply.body and "allow_out" in reply.body
        reply = curl(sbx, "http://denied.test:8080/", "-p")
        assert reply.exit_code != 0 and "403" in reply.stderr
        # A wildcard was not given, so a subdomain is not allowed either.
        assert curl(sbx, "http://sub.allowed.test:8080/").status == "403"
        # Python's own HTTP stack uses the proxy variables unchanged.
        run = sbx.run_code(
            "import requests\n"
            "ok = requests.get('http://allowed.test:8080/py', timeout=10)\n"
            "no = requests.get('http://denied.test:8080/py', timeout=10)\n"
            "(ok.status_code, ok.text.strip(), no.status_code, no.reason)"
        )
        assert run.error is None, run.error
        status, text, denied_status, reason = eval(run.text or "")
        assert (status, text, denied_status) == (200, "hello from allowed.test:8080 /py", 403)
        assert "allow_out" in reason


def test_raw_ip_udp_and_dns_are_blocked(upstream: LocalIndex) -> None:
    with policy_sandbox({"allow_out": ["allowed.test"]}) as sbx:
        probe = sbx.run_code(
            "import socket\n"
            "out = {}\n"
            "try:\n"
            f"    socket.create_connection(({upstream.ip!r}, 8080), timeout=3).close()\n"
            "    out['tcp'] = 'connected'\n"
            "except OSError as exc:\n"
            "    out['tcp'] = type(exc).__name__\n"
            "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "u.settimeout(2)\n"
            "try:\n"
            f"    u.sendto(b'ping', ({upstream.ip!r}, 5353))\n"
            "    out['udp'] = u.recvfrom(100)[0].decode()\n"
            "except OSError as exc:\n"
            "    out['udp'] = type(exc).__name__\n"
            "for name in ('allowed.test', 'pypi.test'):\n"
            "    try:\n"
            "        out[name] = socket.getaddrinfo(name, 80)[0][4][0]\n"
            "    except OSError as exc:\n"
            "        out[name] = type(exc).__name__\n"
            "out"
        )
        assert probe.error is None, probe.error
        result = eval(probe.text or "")
        assert result["tcp"] != "connected"
        assert result["udp"] != "ping"
        assert result["allowed.test"] == result["pypi.test"] == "gaierror"
        # Through the proxy, asking by address is not asking by the allowed name.
        reply = curl(sbx, f"http://{upstream.ip}:8080/")
        assert reply.status == "403" and "matches no allow_out rule" in reply.body


def test_policies_with_ports_wildcards_and_deny_lists(upstream: LocalIndex) -> None:
    with policy_sandbox({"allow_out": ["*.allowed.test:8080", "pypi.test:443"]}) as sbx:
        assert curl(sbx, "http://sub.allowed.test:8080/").status == "200"
        assert curl(sbx, "http://allowed.test:8080/").status == "403"  # apex
        assert curl(sbx, "http://pypi.test:8080/").status == "403"  # port
    # Only deny rules: the rest is allowed as far as the name opens it.
    with policy_sandbox({"allow_out": ["*.test"], "deny_out": ["denied.test"]}) as sbx:
        assert curl(sbx, "http://allowed.test:8080/").status == "200"
        # allow_out wins over deny_out, as in E2B.
        assert curl(sbx, "http://denied.test:8080/").status == "200"
    with policy_sandbox({"allow_out": ["allowed.test", "pypi.test"]}) as sbx:
        sbx.update_network({"allow_out": ["allowed.test"], "deny_out": ["pypi.test"]})
        reply = curl(sbx, "http://pypi.test:8080/")
        assert reply.status == "403" and "pypi.test" in reply.body


def test_update_network_changes_a_running_sandbox_and_decisions_are_logged(
    upstream: LocalIndex,
) -> None:
    with policy_sandbox(NetworkPolicy(allow_out=["allowed.test"])) as sbx:
        assert curl(sbx, "http://allowed.test:8080/").status == "200"
        assert curl(sbx, "http://denied.test:8080/").status == "403"
        log = sbx.network_log()
        assert [(d.host, d.allowed) for d in log] == [
            ("allowed.test", True),
            ("denied.test", False),
        ]
        assert log[0].rule == "allowed.test" and log[0].address == upstream.ip
        assert log[1].rule is None and "allow_out" in log[1].reason

        sbx.update_network({"allow_out": ["denied.test"]})
        assert sbx.config.network == NetworkPolicy(allow_out=["denied.test"])
        assert curl(sbx, "http://denied.test:8080/").status == "200"
        assert curl(sbx, "http://allowed.test:8080/").status == "403"
        # An empty policy shuts everything, and the sandbox can be opened again later.
        sbx.update_network({"allow_out": []})
        assert curl(sbx, "http://denied.test:8080/").status == "403"
        assert [d.allowed for d in sbx.network_log()] == [False]
        assert sbx.network_log(limit=0) == []

        with pytest.raises(InvalidArgumentError, match="invalid network policy"):
            sbx.update_network({"allow_out": ["http://x.test/path"]})


def test_none_stays_none_and_says_how_to_get_a_changeable_network(image: str) -> None:
    with policy_sandbox("none") as sbx:
        with pytest.raises(InvalidArgumentError, match="network='none'"):
            sbx.update_network({"allow_out": ["allowed.test"]})
        probe = sbx.run_code("import os; sorted(k for k in os.environ if 'PROXY' in k.upper())")
        assert probe.text == "[]"
    with policy_sandbox("none", allow_internet_access=False) as sbx:
        assert sbx.config.network == "none"


def test_package_install_from_a_local_index_through_the_policy(upstream: LocalIndex) -> None:
    envs = {"PIP_INDEX_URL": "http://pypi.test:8080/simple/", "PIP_TRUSTED_HOST": "pypi.test"}
    with policy_sandbox({"allow_out": ["pypi.test"]}, envs=envs) as sbx:
        code, out, err = sh(sbx, "pip install tinypkg", timeout=120)
        assert code == 0, out + err
        assert sbx.run_code("import tinypkg; tinypkg.VALUE").text == "42"
        assert all(d.allowed for d in sbx.network_log())
    with policy_sandbox({"allow_out": ["allowed.test"]}, envs=envs) as sbx:
        code, out, err = sh(sbx, "pip install --retries 0 --timeout 5 tinypkg", timeout=120)
        # pip reports a refused index page as "no matching distribution"; the
        # decision log says why.
        assert code != 0 and "No matching distribution" in err
        denied = [d for d in sbx.network_log() if not d.allowed]
        assert denied and denied[0].host == "pypi.test" and "allow_out" in denied[0].reason


# -- what stays out of reach ----------------------------------------------------------


@pytest.fixture
def host_server() -> Iterator[int]:
    """An HTTP server on the host, on every address (loopback included)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host secret\n")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_full_reaches_neither_the_host_nor_another_sandbox(
    host_server: int, docker_client: docker.DockerClient, image: str
) -> None:
    out_gateway = docker_client.api.inspect_network(OUT_NETWORK)["IPAM"]["Config"][0]["Gateway"]
    bridge_gateway = docker_client.api.inspect_network("bridge")["IPAM"]["Config"][0]["Gateway"]
    with policy_sandbox("full") as a, policy_sandbox("full") as b:
        b.commands.run("python3 -m http.server 8000 --bind 0.0.0.0", background=True)
        b_ip = docker_client.api.inspect_container(b.container_id)["NetworkSettings"]["Networks"][
            NET_PREFIX + b.sandbox_id
        ]["IPAddress"]
        for target in (
            f"127.0.0.1:{host_server}",
            f"localhost:{host_server}",
            f"{out_gateway}:{host_server}",
            f"{bridge_gateway}:{host_server}",
            "169.254.169.254:80",
            f"{b_ip}:8000",
            f"{PROXY_NAME}:3128",
        ):
            reply = curl(a, f"http://{target}/", "--noproxy ''")
            assert reply.status == "403", (target, reply)
            assert "host secret" not in reply.body
        # Directly, without the proxy, there is no route at all.
        probe = a.run_code(
            "import socket\n"
            "reached = []\n"
            f"for addr in [({out_gateway!r}, {host_server}), ({bridge_gateway!r}, "
            f"{host_server}), ({b_ip!r}, 8000)]:\n"
            "    try:\n"
            "        socket.create_connection(addr, timeout=2).close()\n"
            "        reached.append(addr)\n"
            "    except OSError:\n"
            "        pass\n"
            "reached"
        )
        assert probe.text == "[]"
        # Naming the host service by address opens it: the explicit way to allow it.
        a.update_network({"allow_out": [f"{out_gateway}:{host_server}"]})
        reply = curl(a, f"http://{out_gateway}:{host_server}/")
        assert (reply.body, reply.status) == ("host secret\n", "200")


# -- the proxy itself, and what is left behind ------------------------------------------


def test_the_proxy_is_hardened_like_a_sandbox(
    upstream: LocalIndex, docker_client: docker.DockerClient
) -> None:
    info = docker_client.api.inspect_container(PROXY_NAME)
    host = info["HostConfig"]
    assert info["Config"]["User"] == PROXY_USER
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] == 1 << 30 and host["PidsLimit"]
    env = dict(e.split("=", 1) for e in info["Config"]["Env"])
    assert env["E2B_TOOLS_EGRESS_MAX_CLIENT"] == "64"
    assert not info["Mounts"] or all("docker.sock" not in m["Source"] for m in info["Mounts"])
    assert not host["Privileged"]


def test_killed_and_expired_sandboxes_leave_no_network(
    image: str, docker_client: docker.DockerClient
) -> None:
    api = docker_client.api
    sbx = Sandbox.create(network={"allow_out": []}, timeout=300)
    network = NET_PREFIX + sbx.sandbox_id
    assert api.networks(names=[network])
    sbx.kill()
    assert not api.networks(names=[network])
    # A sandbox that ends at its deadline is removed by the engine; its network goes at
    # the next clean-up (gc, or the next sandbox with a policy after a while).
    short = Sandbox.create(network="full", timeout=2)
    network = NET_PREFIX + short.sandbox_id
    deadline = time.monotonic() + 30
    while short.is_running():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert api.networks(names=[network])
    backend = default_backend()
    assert isinstance(backend, DockerBackend)
    backend.cleanup(min_age=0)
    assert not api.networks(names=[network])
    assert not api.networks(filters={"label": LABEL_NET_OF})


def test_a_sandbox_cannot_use_the_proxy_with_another_sandboxs_policy(upstream: LocalIndex) -> None:
    with (
        policy_sandbox({"allow_out": ["allowed.test"]}) as open_,
        policy_sandbox({"allow_out": []}) as closed,
    ):
        assert curl(open_, "http://allowed.test:8080/").status == "200"
        # The closed sandbox can only reach its own proxy address, and the proxy knows
        # it by its address: its policy applies, whatever it claims.
        reply = curl(closed, "http://allowed.test:8080/", "-H", "'X-Forwarded-For: 10.0.0.1'")
        assert reply.status == "403"
        other_proxy = open_.run_code("import os; os.environ['HTTP_PROXY']").text
        assert other_proxy is not None
        reply = curl(closed, "http://allowed.test:8080/", "-x", other_proxy.strip("'"))
        assert reply.status != "200", reply


def test_a_sandbox_hogging_the_proxy_is_capped_and_others_are_still_served(
    upstream: LocalIndex,
) -> None:
    with (
        policy_sandbox({"allow_out": ["allowed.test"]}) as hog,
        policy_sandbox({"allow_out": ["allowed.test"]}) as other,
    ):
        probe = hog.run_code(
            "import os, socket, urllib.parse\n"
            "proxy = urllib.parse.urlsplit(os.environ['HTTP_PROXY'])\n"
            "held, codes = [], []\n"
            "for _ in range(80):\n"
            "    s = socket.create_connection((proxy.hostname, proxy.port), timeout=10)\n"
            "    s.sendall(b'CONNECT allowed.test:8080 HTTP/1.1\\r\\n\\r\\n')\n"
            "    codes.append(s.recv(64).split()[1].decode())\n"
            "    held.append(s)  # tunnels kept open, never used\n"
            "(codes.count('200'), codes.count('429'))"
        )
        assert probe.error is None, probe.error
        assert probe.text == "(64, 16)"
        assert curl(other, "http://allowed.test:8080/").status == "200"
