"""Hardened defaults and resource limits, against real sandboxes."""

from __future__ import annotations

import resource
import threading
import time

import docker
import pytest

from e2b_tools import Sandbox, SandboxConfig, SandboxGoneError, SandboxTimeoutError


def _status(sbx: Sandbox) -> dict[str, str]:
    text = sbx.files.read("/proc/self/status")
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_hardened_defaults(sandbox: Sandbox) -> None:
    assert sandbox.commands.run("id -u; id -g").stdout == "1000\n1000\n"
    with pytest.raises(Exception, match="Read-only file system"):
        sandbox.commands.run("touch /usr/evil")
    # Writable: the workspace and /tmp.
    sandbox.commands.run("touch /home/user/ok /tmp/ok")
    # No capabilities, no privilege gain, no network but loopback.
    status = _status(sandbox)
    assert status["CapEff"].strip() == "0000000000000000"
    assert status["NoNewPrivs"].strip() == "1"
    assert sandbox.files.list("/sys/class/net")[0].name == "lo"
    assert [e.name for e in sandbox.files.list("/sys/class/net")] == ["lo"]
    # The docker socket is nowhere to be found.
    assert not sandbox.files.exists("/var/run/docker.sock")


def test_limits_are_set_on_the_container(
    sandbox: Sandbox, docker_client: docker.DockerClient
) -> None:
    hc = docker_client.api.inspect_container(sandbox.container_id)["HostConfig"]
    assert hc["Memory"] == 1024**3
    assert hc["MemorySwap"] == 1024**3
    assert hc["PidsLimit"] == 256
    assert hc["NanoCpus"] == 1_000_000_000
    assert hc["NetworkMode"] == "none"
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"]
    assert hc["Init"] is True
    labels = docker_client.api.inspect_container(sandbox.container_id)["Config"]["Labels"]
    assert labels["e2b-tools.sandbox"] == sandbox.sandbox_id


def test_hardening_is_overridable(image: str, docker_client: docker.DockerClient) -> None:
    config = SandboxConfig(read_only=False, pids_limit=512, memory="512m", cpu=None)
    with Sandbox.create(config=config, memory="512m", cpu=None) as sbx:
        hc = docker_client.api.inspect_container(sbx.container_id)["HostConfig"]
        assert hc["PidsLimit"] == 512
        assert hc["Memory"] == 512 * 1024**2
        assert hc["ReadonlyRootfs"] is False
        assert hc["NanoCpus"] == 0


def test_fork_bomb_hits_the_pids_limit(sandbox: Sandbox) -> None:
    answers: list[str | None] = []

    def probe() -> None:
        time.sleep(2)  # while the bomb is going off
        answers.append(sandbox.run_code("6 * 7").text)

    prober = threading.Thread(target=probe)
    prober.start()
    with pytest.raises(SandboxTimeoutError) as info:
        sandbox.commands.run("bomb() { bomb | bomb; }; bomb", timeout=6)
    prober.join()
    assert info.value.result is not None
    assert "fork" in info.value.result.stderr  # bash: fork: retry: Resource temporarily unavailable
    assert answers == ["42"]
    # The group was killed: processes can be started again.
    assert sandbox.commands.run("echo alive").stdout == "alive\n"


def test_memory_hog_is_killed_and_the_sandbox_lives(image: str) -> None:
    with Sandbox.create(memory="256m") as sbx:
        sbx.run_code("keep = 1")
        execution = sbx.run_code(
            "hog = bytearray(1024 * 1024 * 1024)\nhog[::4096] = b'x' * len(hog[::4096])"
        )
        assert execution.error is not None
        # Either Python sees the allocation fail, or the kernel OOM-kills the context.
        assert execution.error.name in ("MemoryError", "ContextDied")
        if execution.error.name == "ContextDied":
            assert "memory limit" in execution.error.value
        assert sbx.run_code("2 + 2").text == "4"
        assert sbx.commands.run("echo ok").stdout == "ok\n"


def test_100mb_of_output_keeps_host_memory_bounded(sandbox: Sandbox) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    seen = 0

    def count(chunk: str) -> None:
        nonlocal seen
        seen += len(chunk)

    result = sandbox.commands.run(
        "head -c 100000000 /dev/zero | tr '\\0' 'x'", on_stdout=count, timeout=120
    )
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert seen == 100_000_000  # the callback saw every byte
    assert result.stdout_truncated == 100_000_000 - sandbox.config.output_limit
    assert len(result.stdout) < sandbox.config.output_limit + 200
    # Bound: 2x the kept output (8 MiB of str) plus transient buffers.
    assert grown_mib < 64, f"host RSS grew by {grown_mib:.0f} MiB"


def test_run_code_output_flood_is_bounded(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        "import sys\nfor _ in range(2000):\n    sys.stdout.write('y' * 10000)", timeout=120
    )
    text = "".join(execution.logs.stdout)
    assert "characters omitted" in text
    assert len(text) < sandbox.config.output_limit + 200


def test_killed_container_gives_a_clear_error(
    image: str, docker_client: docker.DockerClient
) -> None:
    sbx = Sandbox.create()
    try:
        docker_client.api.kill(sbx.container_id)
        with pytest.raises(SandboxGoneError, match="create a new one"):
            sbx.run_code("1")
    finally:
        sbx.kill()


def test_kill_during_a_call_fails_that_call(image: str, docker_client: docker.DockerClient) -> None:
    sbx = Sandbox.create()
    try:
        errors: list[BaseException] = []

        def run() -> None:
            try:
                sbx.run_code("import time\ntime.sleep(60)")
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)
        docker_client.api.kill(sbx.container_id)
        thread.join(timeout=20)
        assert not thread.is_alive()
        assert len(errors) == 1
        assert isinstance(errors[0], SandboxGoneError)
        assert "not retried" in str(errors[0])
    finally:
        sbx.kill()
