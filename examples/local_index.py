"""A local package index (and echo server) for examples, tests and the benchmark.

Two halves in one file:

* The server (standard library only, so it runs on any ``python3``, for instance in a
  container started from the sandbox image): HTTP on port 8080, where ``/simple/`` is a
  package index (PEP 503) with one package, ``tinypkg`` 1.0 (``tinypkg.VALUE == 42``),
  whose wheel is built at start, and any other path answers
  ``hello from <Host header> <path>``; UDP echo on port 5353. Run it with
  ``python3 local_index.py``; it prints ``upstream ready`` once it listens.
* :func:`serve_local_index`, for the host (needs the Docker SDK and e2b-tools): runs the
  server in a hardened container on an ``internal`` network of its own, under the names
  you give, and joins the egress proxy to that network, so sandboxes whose policy allows
  one of those names reach it. Nothing leaves the machine.

Example:
    >>> import docker  # doctest: +SKIP
    >>> with serve_local_index(docker.from_env(), "e2b-tools/sandbox:0.1.0") as index:
    ...     sbx = Sandbox.create(
    ...         network={"allow_out": [index.host]},
    ...         envs={"PIP_INDEX_URL": index.index_url, "PIP_TRUSTED_HOST": index.host},
    ...     )
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import io
import secrets
import socket
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker

HTTP_PORT = 8080
UDP_PORT = 5353
READY = "upstream ready"
"""What the server prints once it listens."""
NAME_PREFIX = "e2b-tools-local-index-"
"""Prefix of the network and container names :func:`serve_local_index` makes."""
LABEL = "e2b-tools.local-index"
"""On the network and container :func:`serve_local_index` makes."""
DEFAULT_ALIASES = ("pypi.test",)

# -- the server (stdlib only: it runs in a container) ----------------------------------

WHEEL = "tinypkg-1.0-py3-none-any.whl"


def _wheel() -> bytes:
    files = {
        "tinypkg/__init__.py": b"VALUE = 42\n",
        "tinypkg-1.0.dist-info/METADATA": (
            b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\nSummary: test package\n"
        ),
        "tinypkg-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: e2b-tools-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(data)}")
    record.append("tinypkg-1.0.dist-info/RECORD,,")
    files["tinypkg-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


class Handler(http.server.BaseHTTPRequestHandler):
    wheel = b""
    wheel_sha = ""

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/simple":
            body = b'<html><body><a href="/simple/tinypkg/">tinypkg</a></body></html>'
            kind = "text/html"
        elif self.path.rstrip("/") == "/simple/tinypkg":
            link = f"/packages/{WHEEL}#sha256={self.wheel_sha}"
            body = f'<html><body><a href="{link}">{WHEEL}</a></body></html>'.encode()
            kind = "text/html"
        elif self.path == f"/packages/{WHEEL}":
            body, kind = self.wheel, "application/octet-stream"
        else:
            body = f"hello from {self.headers.get('Host')} {self.path}\n".encode()
            kind = "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _udp_echo() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", UDP_PORT))
    while True:
        data, peer = sock.recvfrom(2048)
        sock.sendto(data, peer)


def serve() -> None:
    """Run the index and the UDP echo until killed."""
    Handler.wheel = _wheel()
    Handler.wheel_sha = hashlib.sha256(Handler.wheel).hexdigest()
    threading.Thread(target=_udp_echo, daemon=True).start()
    server = http.server.ThreadingHTTPServer(("0.0.0.0", HTTP_PORT), Handler)
    print(READY, flush=True)
    server.serve_forever()


# -- the host side (Docker SDK, e2b-tools) -------------------------------------------


@dataclass(frozen=True)
class LocalIndex:
    """A running local index, as :func:`serve_local_index` yields it."""

    network: str
    """The Docker network it is on (internal; the egress proxy is joined to it)."""
    ip: str
    """Its address on that network."""
    host: str
    """The name :attr:`index_url` uses (the first alias)."""
    aliases: tuple[str, ...]
    """Every name it answers to on that network."""
    container: str
    """Its container's id."""

    @property
    def index_url(self) -> str:
        """The index for ``PIP_INDEX_URL`` (plain HTTP: pass ``PIP_TRUSTED_HOST`` too)."""
        return f"http://{self.host}:{HTTP_PORT}/simple/"

    def url(self, path: str = "/", host: str | None = None) -> str:
        """An address on the server, by ``host`` (default :attr:`host`)."""
        return f"http://{host or self.host}:{HTTP_PORT}{path}"


@contextlib.contextmanager
def serve_local_index(
    client: docker.DockerClient,
    image: str,
    aliases: Sequence[str] = DEFAULT_ALIASES,
    *,
    ready_timeout: float = 20.0,
) -> Iterator[LocalIndex]:
    """Run the server in a container on a network of its own, reachable by the proxy.

    The network is ``internal`` (no route out); the container is read-only, has no
    capabilities, runs as user 1000 and gets 256 MiB. The egress proxy (started if
    needed) is joined to the network; on exit it is disconnected and the container and
    the network are removed.

    Args:
        client: The Docker client of the engine the sandboxes run on.
        image: An image with ``python3`` (the sandbox image will do).
        aliases: The names the server answers to on its network (the first is
            :attr:`LocalIndex.host`).
        ready_timeout: Seconds to wait for the server to listen.
    """
    from e2b_tools.backends.docker import default_backend
    from e2b_tools.backends.egress import PROXY_NAME

    if not aliases:
        raise ValueError("serve_local_index needs at least one alias")
    api = client.api
    name = NAME_PREFIX + secrets.token_hex(3)
    labels = {LABEL: "1"}
    script = Path(__file__).read_text(encoding="utf-8")
    api.create_network(name, driver="bridge", internal=True, labels=labels)
    container = None
    try:
        spec = api.create_container_config(
            image=image,
            command=["python3", "-I", "-c", script],
            user="1000:1000",
            labels=labels,
            host_config=api.create_host_config(
                network_mode=name,
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit="256m",
                pids_limit=256,
            ),
            networking_config=api.create_networking_config(
                {name: api.create_endpoint_config(aliases=list(aliases))}
            ),
        )
        container = str(api.create_container_from_config(spec, name=name)["Id"])
        api.start(container)
        deadline = time.monotonic() + ready_timeout
        while READY.encode() not in api.logs(container):
            state = api.inspect_container(container)["State"]
            if not state.get("Running") or time.monotonic() > deadline:
                tail = api.logs(container, tail=10).decode("utf-8", "replace").strip()
                raise RuntimeError(f"the local index did not start: {tail or 'no output'}")
            time.sleep(0.05)
        info = api.inspect_container(container)
        ip = info["NetworkSettings"]["Networks"][name]["IPAddress"]
        default_backend().egress.join(name, image)
        yield LocalIndex(name, ip, aliases[0], tuple(aliases), container)
    finally:
        with contextlib.suppress(Exception):
            api.disconnect_container_from_network(PROXY_NAME, name, force=True)
        if container is not None:
            with contextlib.suppress(Exception):
                api.remove_container(container, force=True)
        api.remove_network(name)


if __name__ == "__main__":
    serve()
