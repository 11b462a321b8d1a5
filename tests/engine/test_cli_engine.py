"""The ``e2b-tools`` command line against the real engine: every command once, the
interactive shell through a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import secrets
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import docker
import pytest

from e2b_tools import Sandbox, SandboxConfig
from e2b_tools.backends.docker import default_backend

CLI = [sys.executable, "-m", "e2b_tools.cli"]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@pytest.fixture
def tagged(image: str) -> Iterator[tuple[Sandbox, str]]:
    """A sandbox with a metadata tag no other test (or engineer) uses."""
    tag = secrets.token_hex(4)
    sbx = Sandbox.create(timeout=300, metadata={"cli-test": tag})
    try:
        yield sbx, tag
    finally:
        sbx.kill()


def test_ls_shows_id_ttl_metadata_and_owner(tagged: tuple[Sandbox, str]) -> None:
    sbx, tag = tagged
    table = cli("ls", "-m", f"cli-test={tag}")
    assert table.returncode == 0, table
    assert sbx.sandbox_id in table.stdout and f"cli-test={tag}" in table.stdout
    listed = cli("ls", "--mine", "--json", "-m", f"cli-test={tag}")
    (row,) = json.loads(listed.stdout)
    assert row["sandbox_id"] == sbx.sandbox_id and row["state"] == "running"
    assert row["owner"] == f"{socket.gethostname()}:{os.getpid()}"
    assert 250 < row["ttl_seconds"] <= 300 and row["image"] == sbx.image


def test_exec_streams_output_and_exit_status(tagged: tuple[Sandbox, str]) -> None:
    sbx, _ = tagged
    done = cli("exec", sbx.sandbox_id, "--", "echo out; echo err >&2; id -u; exit 7")
    assert (done.returncode, done.stdout, done.stderr) == (7, "out\n1000\n", "err\n")
    done = cli("exec", sbx.sandbox_id, "--", "python3", "-c", "print(6 * 7)")
    assert (done.returncode, done.stdout) == (0, "42\n")


def test_run_new_and_existing_sandbox(tagged: tuple[Sandbox, str]) -> None:
    sbx, _ = tagged
    before = {s["Id"] for s in default_backend().list_containers(True)}
    fresh = cli("run", "import os; print(os.getuid()); 40 + 2")
    assert (fresh.returncode, fresh.stdout) == (0, "1000\n42\n"), fresh
    assert not {s["Id"] for s in default_backend().list_containers(True)} - before
    assert cli("run", "-s", sbx.sandbox_id, "y = 'kept'").returncode == 0
    assert sbx.run_code("y").text == "kept"
    failed = cli("run", "-s", sbx.sandbox_id, "-l", "js", "throw new Error('boom')")
    assert failed.returncode == 1 and "boom" in failed.stderr


def test_logs_show_the_agent_log(tagged: tuple[Sandbox, str]) -> None:
    sbx, _ = tagged
    sbx.set_timeout(200)
    done = cli("logs", sbx.sandbox_id, "--json")
    lines = json.loads(done.stdout)["lines"]
    assert " started: pid " in lines[0] and "languages python" in lines[0]
    assert any("deadline moved to" in line for line in lines)
    (last,) = sbx.agent_log(1)
    assert "hello from a host" in last  # the CLI connected after the test did


def test_kill_by_id_and_all_mine(image: str) -> None:
    tag = secrets.token_hex(4)
    first, second = (Sandbox.create(timeout=120, metadata={"cli-test": tag}) for _ in range(2))
    try:
        done = cli("kill", first.sandbox_id)
        assert (done.returncode, done.stdout) == (0, f"killed {first.sandbox_id}\n")
        # Narrowed to this test's tag: other tests' sandboxes on this host live on.
        done = cli("kill", "--all-mine", "-m", f"cli-test={tag}")
        assert (done.returncode, done.stdout) == (0, f"killed {second.sandbox_id}\n")
        assert not first.is_running() and not second.is_running()
        missing = cli("kill", first.sandbox_id)
        assert missing.returncode == 1 and "no sandbox has this id" in missing.stderr
    finally:
        first.kill()
        second.kill()


def test_gc_dry_run_lists_and_gc_removes_an_orphan(
    image: str, docker_client: docker.DockerClient
) -> None:
    orphan = f"clig{secrets.token_hex(4)}"
    container = default_backend().create(orphan, SandboxConfig(), image)  # never started
    try:
        dry = cli("gc", "--dry-run", "--json")
        assert dry.returncode == 0 and orphan in json.loads(dry.stdout)["removed"]
        assert docker_client.api.containers(all=True, filters={"id": container})
        real = cli("gc")
        assert real.returncode == 0 and f"removed {orphan}\n" in real.stdout
        assert docker_client.api.containers(all=True, filters={"id": container}) == []
    finally:
        default_backend().kill(container)


def test_gc_all_asks_first(image: str) -> None:
    done = cli("gc", "--all")
    assert done.returncode == 1 and "add --yes to confirm" in done.stderr
    assert done.stderr.count("\n") == 1


def test_doctor_passes_here(image: str) -> None:
    done = cli("doctor", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["ok"], report
    names = [c["name"] for c in report["checks"]]
    assert names == ["engine", "runtime", "image", "limits", "egress image", "networks"]
    text = cli("doctor")
    assert text.returncode == 0 and "✓ limits" in text.stdout


def test_doctor_fails_without_an_engine() -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    done = subprocess.run([*CLI, "doctor"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1
    assert done.stdout.startswith("✗ engine") and "fix: start the engine" in done.stdout


def test_image_build_is_skipped_when_up_to_date(image: str) -> None:
    done = cli("image", "build")
    assert done.returncode == 0 and f"{image} is already built" in done.stdout


def test_bench_prints_figures(image: str) -> None:
    done = cli("bench", "--rounds", "1", "--calls", "3", "--json", timeout=180)
    rows = json.loads(done.stdout)["rows"]
    assert done.returncode == 0 and [r["n"] for r in rows] == [1, 1, 3]
    text = cli("bench", "--rounds", "1", "--calls", "2", timeout=180)
    assert "make bench" in text.stdout


def test_mcp_help(image: str) -> None:
    done = cli("mcp", "--help")
    assert done.returncode == 0 and "--http HOST:PORT" in done.stdout


def test_shell_on_a_pseudo_terminal(tagged: tuple[Sandbox, str]) -> None:
    sbx, _ = tagged
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on the pty's terminal side
        os.execv(sys.executable, [*CLI, "shell", sbx.sandbox_id])
    seen = b""

    def read_until(token: bytes, limit: float = 30) -> bool:
        nonlocal seen
        deadline = time.monotonic() + limit
        while token not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    seen += os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
        return token in seen

    status = None
    try:
        assert read_until(b"$ "), seen  # the prompt
        os.write(fd, b"echo $((6*7))\n")
        assert read_until(b"42\r\n"), seen
        os.write(fd, b"exit\n")
        read_until(b"never", limit=5)
        _, status = os.waitpid(pid, 0)
    finally:
        if status is None:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert sbx.is_running()  # leaving the shell leaves the sandbox
