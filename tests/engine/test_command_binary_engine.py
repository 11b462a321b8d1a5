"""Binary output and stdin, and the choice of kill signal, in a real container: the
agent there keeps root's real uid while commands run as the sandbox user, and output
crosses the engine's attach stream."""

from __future__ import annotations

import time

import pytest

from e2b_tools import AsyncSandbox, CommandExitError, InvalidArgumentError, Sandbox, SandboxError
from e2b_tools._bridge import blocking
from e2b_tools.agent.plumbing import READ_CHUNK

ALL_BYTES = bytes(range(256))


def test_every_byte_value_round_trips_in_a_container(sandbox: Sandbox) -> None:
    cmd = "python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 16)'"
    assert sandbox.commands.run(cmd, output="bytes").stdout_bytes == ALL_BYTES * 16
    handle = sandbox.commands.run("cat", background=True, stdin=True, output="bytes")
    for _ in range(64):
        handle.send_stdin(ALL_BYTES)
    handle.close_stdin()
    assert handle.wait().stdout_bytes == ALL_BYTES * 64


@pytest.mark.asyncio
async def test_100_mb_of_random_stdout_stays_bounded(async_sandbox: AsyncSandbox) -> None:
    total = 100_000_000
    limit = async_sandbox.config.output_limit
    seen = [0, 0]

    def count(chunk: bytes) -> None:
        seen[0] += len(chunk)
        seen[1] = max(seen[1], len(chunk))

    result = await async_sandbox.commands.run(
        f"head -c {total} /dev/urandom", output="bytes", on_stdout=count, timeout=300
    )
    assert seen == [total, READ_CHUNK]
    assert result.stdout_bytes is not None and len(result.stdout_bytes) == limit
    assert result.stdout_truncated == total - limit


def test_signals_as_the_sandbox_user(sandbox: Sandbox) -> None:
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1"):
        handle = sandbox.commands.run("sleep 300", background=True)
        assert handle.kill(signal=name) is True
        with pytest.raises(CommandExitError) as caught:
            handle.wait()
        assert caught.value.result.signal == name
    # A trap survives SIGTERM; SIGKILL still ends it.
    stubborn = sandbox.commands.run(
        "trap '' TERM; echo ready; while :; do sleep 0.05; done", background=True
    )
    for stdout, _, _ in stubborn:
        if stdout and "ready" in stdout:
            break
    assert stubborn.kill(signal="SIGTERM") is True
    time.sleep(0.3)
    assert any(p.pid == stubborn.pid for p in sandbox.commands.list())
    assert stubborn.kill() is True
    with pytest.raises(CommandExitError) as caught:
        stubborn.wait()
    assert (caught.value.result.signal, caught.value.result.error) == ("SIGKILL", "signal: killed")


def test_hostile_signals_are_refused_in_a_container(sandbox: Sandbox) -> None:
    handle = sandbox.commands.run("sleep 300", background=True)
    try:
        with pytest.raises(InvalidArgumentError):
            handle.kill(signal="SIGSTOP")  # type: ignore[arg-type]
        channel = sandbox.async_sandbox._channel
        for bad in ("SIGSTOP", 19, "SIGCONT"):
            request = channel.request("kill_process", {"pid": handle.pid, "signal": bad}, 10.0)
            with pytest.raises(SandboxError, match="signal"):
                blocking.run(request)
        for pid in (1, -1, 0):  # docker-init, every process, the agent's group: refused
            request = channel.request("kill_process", {"pid": pid, "signal": "SIGTERM"}, 10.0)
            assert blocking.run(request) == {"killed": False}
        assert any(p.pid == handle.pid for p in sandbox.commands.list())
        assert sandbox.commands.run("echo alive").stdout == "alive\n"
    finally:
        handle.kill()
