"""What the operator reads when the Docker Engine cannot be used (engine-free)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = """
import e2b_tools
try:
    e2b_tools.Sandbox.create()
except e2b_tools.EngineUnavailableError as exc:
    print(exc)
"""


@pytest.fixture
def closed_socket(tmp_path: Path) -> Iterator[Path]:
    """A listening unix socket no one but its owner's capabilities may open (mode 000)."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    path.chmod(0)
    try:
        yield path
    finally:
        server.close()


def _create(docker_host: str, *prefix: str) -> str:
    env = {**os.environ, "DOCKER_HOST": docker_host}
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to drop the capability that bypasses file modes",
)
def test_permission_denied_on_the_socket_says_so(closed_socket: Path) -> None:
    # Root without CAP_DAC_OVERRIDE is refused by the socket's mode, as a user outside
    # the docker group is.
    drop = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")
    message = _create(f"unix://{closed_socket}", *drop)
    assert "may not use the Docker Engine at unix://" in message, message
    assert "docker` group" in message and "rootless" in message, message
    assert "did not answer" not in message, message


def test_no_engine_names_the_address_and_the_fix(tmp_path: Path) -> None:
    message = _create(f"unix://{tmp_path}/nothing.sock")
    assert f"the Docker Engine at unix://{tmp_path}/nothing.sock did not answer" in message
    assert "systemctl start docker" in message and "DOCKER_HOST" in message, message
