"""``get_host(port)`` on the engine: a server in a sandbox with the network off, reached
from this machine's loopback over the sandbox's channel, gone with the sandbox."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from e2b_tools import Sandbox


def _fetch(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return bytes(reply.read())


def test_a_server_in_an_offline_sandbox_answers_on_the_hosts_loopback(image: str) -> None:
    with Sandbox.create(image=image, timeout=120) as sbx:
        assert sbx.config.network == "none"
        sbx.files.write("site/index.html", "<h1>from the sandbox</h1>")
        sbx.files.write("site/big.bin", bytes(range(256)) * 16384)  # 4 MiB
        sbx.commands.run("cd site && python3 -m http.server 8000 --bind 127.0.0.1", background=True)
        host = sbx.get_host(8000)
        assert host.startswith("127.0.0.1:")
        deadline = time.monotonic() + 20
        while True:
            try:
                page = _fetch(f"http://{host}/")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        assert page == b"<h1>from the sandbox</h1>"
        assert _fetch(f"http://{host}/big.bin") == bytes(range(256)) * 16384
        # The sandbox still has no network interface but its loopback.
        links = sbx.commands.run("ls /sys/class/net").stdout.split()
        assert links == ["lo"]
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        _fetch(f"http://{host}/", timeout=5)  # killed with the sandbox
