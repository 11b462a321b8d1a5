"""``commands.connect(pid)``: following a command that already runs, against the real
agent on the local backend (one pipe pair, so every follower here shares the Sandbox
object that started the command; tests/engine/test_commands_connect_engine.py follows
from a second connection)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from e2b_tools import (
    AsyncSandbox,
    CommandExitError,
    CommandHandle,
    InvalidArgumentError,
    NotFoundException,
    ResourceNotFoundError,
    Sandbox,
    SandboxError,
    SandboxNotFoundError,
    SandboxTimeoutError,
    TimeoutException,
)
from e2b_tools._bridge import blocking
from e2b_tools.agent.commands import MAX_FOLLOWERS

T = TypeVar("T")

ECHO = 'while IFS= read -r line; do echo "got $line"; echo "err $line" >&2; done; exit "${CODE:-0}"'
"""Answers each stdin line on stdout and stderr; exits with $CODE once stdin closes."""


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine of the async API on the loop the blocking sandbox lives on."""
    return blocking.run(coro)


def _echo(sbx: Sandbox, code: int = 0) -> CommandHandle:
    return sbx.commands.run(ECHO, background=True, stdin=True, timeout=60, envs={"CODE": str(code)})


def _stdout(handle: CommandHandle, until: str, stderr_until: str = "") -> str:
    """Iterate ``handle`` until its stdout so far ends with ``until`` (and its stderr
    with ``stderr_until``); returns the stdout."""
    out = err = ""
    for stdout, stderr, _ in handle:
        out += stdout or ""
        err += stderr or ""
        if out.endswith(until) and err.endswith(stderr_until):
            return out
    raise AssertionError(f"the command ended before {until!r}; stdout: {out!r}")


def _running(sbx: Sandbox, pid: int) -> bool:
    return pid in {p.pid for p in sbx.commands.list()}


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def _spy_cancels(sbx: Sandbox, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The answers to the ``cancel`` requests the sandbox's channel sends from now on."""
    channel = sbx.async_sandbox._channel
    request = channel.request
    answers: list[dict[str, Any]] = []

    async def spy(op: str, fields: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        value = await request(op, fields, *args, **kwargs)
        if op == "cancel":
            answers.append(value)
        return value

    monkeypatch.setattr(channel, "request", spy)
    return answers


@pytest.fixture
def sbx(local_sandbox: Sandbox) -> Sandbox:
    return local_sandbox


# -- following ------------------------------------------------------------------------


def test_connect_gives_the_output_from_now_on_and_the_exit_code(sbx: Sandbox) -> None:
    first = _echo(sbx)
    first.send_stdin("before\n")
    assert _stdout(first, "got before\n", "err before\n") == "got before\n"

    handle = sbx.commands.connect(first.pid)
    assert isinstance(handle, CommandHandle) and handle.pid == first.pid
    sbx.commands.send_stdin(first.pid, "after\n")
    sbx.commands.close_stdin(first.pid)
    result = handle.wait()
    assert (result.stdout, result.stderr) == ("got after\n", "err after\n")
    assert result.exit_code == 0 and result.pid == first.pid
    # The starter's handle is untouched by the follower: it saw everything.
    assert first.wait().stdout == "got before\ngot after\n"


def test_iterating_a_connected_handle_yields_e2b_tuples(sbx: Sandbox) -> None:
    first = _echo(sbx)
    handle = sbx.commands.connect(first.pid)
    first.send_stdin("one\n")
    first.close_stdin()
    chunks = list(handle)
    assert all(len(c) == 3 and c[2] is None for c in chunks)
    assert "".join(c[0] or "" for c in chunks) == "got one\n"
    assert "".join(c[1] or "" for c in chunks) == "err one\n"
    assert handle.wait().exit_code == 0


def test_connect_callbacks_get_the_output(sbx: Sandbox) -> None:
    first = _echo(sbx)
    out: list[str] = []
    err: list[str] = []
    handle = sbx.commands.connect(first.pid, on_stdout=out.append, on_stderr=err.append)
    first.send_stdin("cb\n")
    first.close_stdin()
    handle.wait()
    assert ("".join(out), "".join(err)) == ("got cb\n", "err cb\n")


def test_a_non_zero_exit_raises_command_exit_error_from_wait(sbx: Sandbox) -> None:
    first = _echo(sbx, code=3)
    handle = sbx.commands.connect(first.pid)
    first.send_stdin("last words\n")
    first.close_stdin()
    with pytest.raises(CommandExitError) as info:
        handle.wait()
    assert info.value.exit_code == 3
    assert info.value.stdout == "got last words\n"
    # Iterating does not raise for a non-zero exit (as in E2B); wait() does.
    four = _echo(sbx, code=4)
    handle = sbx.commands.connect(four.pid)
    four.close_stdin()
    assert list(handle) == []
    with pytest.raises(CommandExitError):
        handle.wait()


def test_two_followers_at_once_each_get_everything(sbx: Sandbox) -> None:
    first = _echo(sbx, code=5)
    one = sbx.commands.connect(first.pid)
    two = sbx.commands.connect(first.pid, timeout=None)
    first.send_stdin("a\nb\n")
    first.close_stdin()
    for handle in (one, two, first):
        with pytest.raises(CommandExitError) as info:
            handle.wait()
        assert (info.value.stdout, info.value.exit_code) == ("got a\ngot b\n", 5)


def test_kill_through_a_connected_handle(sbx: Sandbox) -> None:
    first = _echo(sbx)
    handle = sbx.commands.connect(first.pid)
    assert handle.kill() is True
    for each in (handle, first):
        with pytest.raises(CommandExitError) as info:
            each.wait()
        assert info.value.exit_code == 137
    assert not _running(sbx, first.pid)
    assert handle.kill() is False


def test_a_followed_command_that_runs_past_its_own_timeout(sbx: Sandbox) -> None:
    first = sbx.commands.run("echo up; sleep 30", background=True, timeout=1)
    assert _stdout(first, "up\n") == "up\n"
    handle = sbx.commands.connect(first.pid)
    with pytest.raises(SandboxTimeoutError) as info:
        handle.wait()
    assert "its timeout" in str(info.value) and info.value.result is not None
    assert info.value.result.exit_code == 137


# -- what connect refuses -------------------------------------------------------------


def test_connect_to_a_pid_that_is_not_a_command_raises_not_found(sbx: Sandbox) -> None:
    with pytest.raises(NotFoundException) as info:
        sbx.commands.connect(999_999)
    assert type(info.value) is ResourceNotFoundError
    assert not isinstance(info.value, (SandboxNotFoundError, FileNotFoundError))
    assert "999999" in str(info.value) and "commands.list()" in str(info.value)


def test_connect_to_a_finished_command_raises_not_found(sbx: Sandbox) -> None:
    done = sbx.commands.run("echo done")
    assert done.pid is not None
    with pytest.raises(ResourceNotFoundError):
        sbx.commands.connect(done.pid)
    background = sbx.commands.run("true", background=True)
    background.wait()
    with pytest.raises(ResourceNotFoundError):
        sbx.commands.connect(background.pid)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pid": 0},
        {"pid": -4},
        {"pid": True},
        {"pid": "12"},
        {"pid": 1, "timeout": -1},
        {"pid": 1, "request_timeout": 0},
    ],
)
def test_connect_checks_its_arguments(sbx: Sandbox, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        sbx.commands.connect(**kwargs)


# -- following stops, the command runs on ---------------------------------------------


def test_disconnect_stops_following_and_the_command_runs_on(
    sbx: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _echo(sbx)
    handle = sbx.commands.connect(first.pid)
    other = sbx.commands.connect(first.pid)
    cancels = _spy_cancels(sbx, monkeypatch)
    handle.disconnect()
    handle.disconnect()  # twice is harmless
    assert cancels == [{"found": True}]  # the agent let the follower go
    assert list(handle) == []  # iteration ends quietly
    with pytest.raises(SandboxError, match="disconnected") as info:
        handle.wait()
    assert not isinstance(info.value, CommandExitError)
    assert _running(sbx, first.pid)
    first.send_stdin("still here\n")
    assert _stdout(first, "got still here\n") == "got still here\n"
    # Reconnecting follows it again; the other follower never noticed.
    again = sbx.commands.connect(first.pid)
    first.send_stdin("again\n")
    first.close_stdin()
    assert again.wait().stdout == "got again\n"
    assert other.wait().stdout == "got still here\ngot again\n"


def test_the_connection_timeout_raises_timeout_and_the_command_runs_on(
    sbx: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _echo(sbx)
    cancels = _spy_cancels(sbx, monkeypatch)
    handle = sbx.commands.connect(first.pid, timeout=1.0)
    first.send_stdin("early\n")
    started = time.monotonic()
    seen = ""
    with pytest.raises(TimeoutException) as info:
        for stdout, _, _ in handle:
            seen += stdout or ""
    assert time.monotonic() - started < 10
    assert isinstance(info.value, SandboxTimeoutError)
    assert seen == "got early\n"
    assert "runs on" in str(info.value) and "timeout=1s" in str(info.value)
    with pytest.raises(SandboxTimeoutError) as waited:
        handle.wait()
    assert waited.value.result is not None and waited.value.result.stdout == "got early\n"
    assert cancels == [{"found": True}]  # the agent let the follower go
    assert _running(sbx, first.pid)
    first.send_stdin("later\n")
    first.close_stdin()
    assert first.wait().stdout == "got early\ngot later\n"


def test_timeout_zero_or_none_never_expires(sbx: Sandbox) -> None:
    first = sbx.commands.run("sleep 1.5; echo late", background=True)
    handles = [sbx.commands.connect(first.pid, timeout=t) for t in (0, None)]
    assert [h.wait().stdout for h in handles] == ["late\n", "late\n"]


# -- the async API --------------------------------------------------------------------


def test_async_connect_iterates_and_a_cancelled_wait_leaves_it_running(sbx: Sandbox) -> None:
    async def test(sandbox: AsyncSandbox) -> None:
        first = await sandbox.commands.run(ECHO, background=True, stdin=True, timeout=60)
        got: list[str] = []

        async def on_stdout(text: str) -> None:
            await asyncio.sleep(0)
            got.append(text)

        handle = await sandbox.commands.connect(first.pid, on_stdout=on_stdout)
        waiting = asyncio.ensure_future(handle.wait())
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert first.pid in {p.pid for p in await sandbox.commands.list()}
        await handle.send_stdin("x\n")
        await handle.close_stdin()
        chunks = [chunk async for chunk in handle]
        assert "".join(c[0] or "" for c in chunks) == "got x\n"
        result = await handle.wait()
        assert result.stdout == "got x\n" and "".join(got) == "got x\n"

    _run(test(sbx.async_sandbox))


def test_async_connect_cancelled_before_it_answers_leaves_no_follower(sbx: Sandbox) -> None:
    async def test(sandbox: AsyncSandbox) -> None:
        first = await sandbox.commands.run(ECHO, background=True, stdin=True, timeout=60)
        connecting = asyncio.ensure_future(sandbox.commands.connect(first.pid))
        await asyncio.sleep(0)
        connecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await connecting
        await first.send_stdin("on\n")
        await first.close_stdin()
        assert (await first.wait()).stdout == "got on\n"

    _run(test(sbx.async_sandbox))


# -- the protocol ---------------------------------------------------------------------


async def _events(call: Any, until: str) -> list[dict[str, Any]]:
    """A raw call's events up to the first of type ``until`` (the call stays routed)."""
    events = []
    while not events or events[-1]["type"] != until:
        event = await asyncio.wait_for(call.get(), 10.0)
        assert isinstance(event, dict), event
        events.append(event)
    return events


def test_cancel_of_an_attach_only_stops_the_following(sbx: Sandbox) -> None:
    async def test(sandbox: AsyncSandbox) -> None:
        first = await sandbox.commands.run(ECHO, background=True, stdin=True, timeout=60)
        channel = sandbox._channel
        call = await channel.send("command_attach", {"pid": first.pid})
        started = await _events(call, "started")
        assert started[-1]["pid"] == first.pid
        cancelled = await channel.request("cancel", {"target": call.id}, 10.0)
        assert cancelled == {"found": True}
        done = await _events(call, "done")
        assert done[-1]["value"] == {"detached": True, "pid": first.pid}
        # Nothing follows it any more; the command itself runs on.
        assert await channel.request("cancel", {"target": call.id}, 10.0) == {"found": False}
        await first.send_stdin("alive\n")
        await first.close_stdin()
        assert (await first.wait()).stdout == "got alive\n"

    _run(test(sbx.async_sandbox))


def test_followers_are_bounded_the_oldest_is_let_go(sbx: Sandbox) -> None:
    async def test(sandbox: AsyncSandbox) -> None:
        first = await sandbox.commands.run(ECHO, background=True, stdin=True, timeout=60)
        channel = sandbox._channel
        # Followers whose host went away without cancelling: nobody reads them.
        calls = []
        for _ in range(MAX_FOLLOWERS + 1):
            call = await channel.send("command_attach", {"pid": first.pid})
            calls.append(call)
        oldest = await _events(calls[0], "done")
        assert [e["type"] for e in oldest] == ["started", "error", "done"]
        assert oldest[1]["name"] == "Detached"
        for call in calls[1:]:
            channel.conn.forget(call)
        await first.send_stdin("bounded\n")
        await first.close_stdin()
        assert (await first.wait()).stdout == "got bounded\n"

    _run(test(sbx.async_sandbox))
