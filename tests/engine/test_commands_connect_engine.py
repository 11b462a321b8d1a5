"""``commands.connect(pid)`` on the engine: a second connection to the sandbox
(``Sandbox.connect(sandbox_id)``, as another process would open) follows a command the
first one started, and leaving it alone never stops the command."""

from __future__ import annotations

import pytest

from e2b_tools import (
    CommandExitError,
    CommandHandle,
    NotFoundException,
    Sandbox,
    SandboxError,
    SandboxTimeoutError,
)
from e2b_tools._bridge import blocking

ECHO = 'while IFS= read -r line; do echo "got $line"; done; exit "${CODE:-0}"'
"""Answers each stdin line; exits with $CODE once stdin closes."""


def _until(handle: CommandHandle, text: str) -> str:
    seen = ""
    for stdout, _, _ in handle:
        seen += stdout or ""
        if seen.endswith(text):
            return seen
    raise AssertionError(f"ended before {text!r}: {seen!r}")


def test_a_second_connection_follows_kills_and_times_out(sandbox: Sandbox) -> None:
    first = sandbox.commands.run(
        ECHO, background=True, stdin=True, timeout=None, envs={"CODE": "7"}
    )
    first.send_stdin("before\n")
    assert _until(first, "got before\n") == "got before\n"
    other = Sandbox.connect(sandbox.sandbox_id)
    with pytest.raises(NotFoundException):
        other.commands.connect(999_999)

    # Two followers on the second connection: one leaves by timeout, one stays.
    brief = other.commands.connect(first.pid, timeout=1)
    handle = other.commands.connect(first.pid, timeout=60)
    other.commands.send_stdin(first.pid, "after\n")
    with pytest.raises(SandboxTimeoutError) as info:
        _until(brief, "never")
    assert info.value.result is not None and info.value.result.stdout == "got after\n"
    assert first.pid in {p.pid for p in other.commands.list()}

    # A follower whose connection goes away (its process died, say) stops nothing.
    gone = Sandbox.connect(sandbox.sandbox_id)
    dropped = gone.commands.connect(first.pid, timeout=None)
    blocking.run(gone.async_sandbox._channel.conn.close())
    with pytest.raises(SandboxError):
        dropped.wait()
    assert first.pid in {p.pid for p in sandbox.commands.list()}

    sandbox.commands.send_stdin(first.pid, "last\n")
    assert _until(handle, "got last\n") == "got after\ngot last\n"
    first.close_stdin()
    for each in (handle, first):
        with pytest.raises(CommandExitError) as exited:
            each.wait()
        assert exited.value.exit_code == 7
    assert exited.value.stdout == "got before\ngot after\ngot last\n"
    with pytest.raises(NotFoundException):  # it ended: nothing to follow
        other.commands.connect(first.pid)

    # The second connection kills what the first started, through its handle.
    server = sandbox.commands.run("sleep 300", background=True, timeout=None)
    follower = other.commands.connect(server.pid, timeout=None)
    assert follower.kill() is True
    for each in (follower, server):
        with pytest.raises(CommandExitError) as killed:
            each.wait()
        assert killed.value.exit_code == 137
    assert server.pid not in {p.pid for p in sandbox.commands.list()}
