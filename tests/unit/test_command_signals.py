"""Signals: which one ended a command (``CommandResult.signal``), and a choice of the
signal ``commands.kill`` sends. Engine-free: the real agent as a subprocess."""

from __future__ import annotations

import signal
import time

import pytest

from e2b_tools import (
    CommandExitError,
    CommandHandle,
    InvalidArgumentError,
    Sandbox,
    SandboxError,
)
from e2b_tools._bridge import blocking
from e2b_tools.agent import protocol
from e2b_tools.agent.protocol import KILL_SIGNALS

# What Go (so E2B's envd) calls each signal: E2B's ``error`` is "signal: <word>".
WORDS = {
    "SIGKILL": "killed",
    "SIGTERM": "terminated",
    "SIGINT": "interrupt",
    "SIGHUP": "hangup",
    "SIGQUIT": "quit",
    "SIGUSR1": "user defined signal 1",
    "SIGUSR2": "user defined signal 2",
}


def _running(sbx: Sandbox, pid: int) -> bool:
    return any(p.pid == pid for p in sbx.commands.list())


def test_a_normal_exit_has_no_signal(local_sandbox: Sandbox) -> None:
    assert local_sandbox.commands.run("true").signal is None
    with pytest.raises(CommandExitError) as caught:
        local_sandbox.commands.run("exit 137")  # 137 by itself is not a signal
    assert caught.value.result.signal is None and caught.value.signal is None
    assert caught.value.error == "exit code 137"
    assert str(caught.value).startswith("command exited with code 137")


@pytest.mark.parametrize("name", KILL_SIGNALS)
def test_a_command_killed_by_each_signal_reports_its_name(
    local_sandbox: Sandbox, name: str
) -> None:
    number = int(getattr(signal, name))
    # In the foreground: the process signals itself (bash would ignore SIGQUIT).
    with pytest.raises(CommandExitError) as caught:
        local_sandbox.commands.run(
            f"exec python3 -c 'import os, signal; os.kill(os.getpid(), signal.{name})'"
        )
    result = caught.value.result
    assert (result.signal, result.exit_code) == (name, 128 + number)
    assert result.error == f"signal: {WORDS[name]}"
    assert caught.value.signal == name
    assert str(caught.value).startswith(f"command was killed by {name} (exit code {128 + number})")
    # In the background, by commands.kill(signal=...).
    handle = local_sandbox.commands.run("sleep 30", background=True)
    assert handle.kill(signal=name) is True
    with pytest.raises(CommandExitError) as caught:
        handle.wait()
    result = caught.value.result
    assert (result.signal, result.exit_code, result.pid) == (name, 128 + number, handle.pid)
    assert not _running(local_sandbox, handle.pid)


def test_signals_enum_is_accepted(local_sandbox: Sandbox) -> None:
    handle = local_sandbox.commands.run("sleep 30", background=True)
    assert local_sandbox.commands.kill(handle.pid, signal=signal.SIGTERM) is True
    with pytest.raises(CommandExitError) as caught:
        handle.wait()
    assert caught.value.result.signal == "SIGTERM"


def test_sigterm_to_a_command_that_traps_it(local_sandbox: Sandbox) -> None:
    handle = local_sandbox.commands.run(
        "trap 'echo cleaning up; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
        background=True,
    )
    _wait_ready(handle)
    assert handle.kill(signal="SIGTERM") is True
    with pytest.raises(CommandExitError) as caught:
        handle.wait()
    result = caught.value.result
    # The trap ran and chose the exit: no signal ended the command itself.
    assert (result.exit_code, result.signal, result.error) == (7, None, "exit code 7")
    assert "cleaning up" in result.stdout


def test_a_command_that_ignores_sigterm_runs_on_until_sigkill(local_sandbox: Sandbox) -> None:
    handle = local_sandbox.commands.run(
        "trap '' TERM; echo ready; while :; do sleep 0.05; done", background=True
    )
    _wait_ready(handle)
    # Sent, as E2B's SendSignal answers: True does not mean it ended.
    assert local_sandbox.commands.kill(handle.pid, signal="SIGTERM") is True
    time.sleep(0.3)
    assert _running(local_sandbox, handle.pid)
    assert handle.kill() is True  # SIGKILL, the default: returns once it is gone
    with pytest.raises(CommandExitError) as caught:
        handle.wait()
    assert not _running(local_sandbox, handle.pid)
    assert caught.value.result.signal == "SIGKILL"
    assert caught.value.result.error == "signal: killed"


def test_kill_of_an_unknown_pid_is_false_for_every_signal(local_sandbox: Sandbox) -> None:
    for name in KILL_SIGNALS:
        assert local_sandbox.commands.kill(999_999, signal=name) is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        "SIGSTOP",
        "SIGCHLD",
        "sigterm",
        "TERM",
        "",
        "SIGKILL ",
        9,
        15,
        0,
        -1,
        True,
        None,
        1.5,
        signal.SIGSTOP,
        signal.SIGCONT,
    ],
)
def test_invalid_signals_are_refused_and_signal_nothing(
    local_sandbox: Sandbox, bad: object
) -> None:
    handle = local_sandbox.commands.run("sleep 30", background=True)
    try:
        with pytest.raises(InvalidArgumentError, match="signal must be one of SIGKILL"):
            local_sandbox.commands.kill(handle.pid, signal=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="signal must be one of"):
            handle.kill(signal=bad)  # type: ignore[arg-type]
        assert _running(local_sandbox, handle.pid)
    finally:
        handle.kill()


@pytest.mark.parametrize("bad", ["SIGSTOP", "SIGCHLD", "9", 9, -9, None, ["SIGTERM"]])
def test_the_agent_refuses_invalid_signals_too(local_sandbox: Sandbox, bad: object) -> None:
    # Past the host's check, as a buggy or hostile host would send it.
    handle = local_sandbox.commands.run("sleep 30", background=True)
    try:
        channel = local_sandbox.async_sandbox._channel
        request = channel.request("kill_process", {"pid": handle.pid, "signal": bad}, 10.0)
        with pytest.raises(SandboxError, match="signal"):
            blocking.run(request)
        assert _running(local_sandbox, handle.pid)
        # The agent's own pid, or a pid no command has, is never signalled.
        for pid in (1, 0, -1, 999_999):
            request = channel.request("kill_process", {"pid": pid, "signal": "SIGTERM"}, 10.0)
            assert blocking.run(request) == {"killed": False}
        assert local_sandbox.commands.run("echo alive").stdout == "alive\n"
    finally:
        handle.kill()


def test_protocol_table_checks_the_signal() -> None:
    line = b'{"id":"1","op":"kill_process","pid":5,"signal":"SIGTERM"}'
    assert protocol.decode_request(line)["signal"] == "SIGTERM"
    with pytest.raises(protocol.MalformedMessage, match="must be one of SIGKILL"):
        protocol.decode_request(b'{"id":"1","op":"kill_process","pid":5,"signal":"SIGSEGV"}')
    with pytest.raises(protocol.MalformedMessage, match="wrong type"):
        protocol.decode_request(b'{"id":"1","op":"kill_process","pid":5,"signal":15}')


def _wait_ready(handle: CommandHandle) -> None:
    """Wait until a traps-first command printed ``ready`` (its trap is set)."""
    for stdout, _, _ in handle:
        if stdout and "ready" in stdout:
            return
