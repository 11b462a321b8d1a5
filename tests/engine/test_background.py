"""Background commands and stdin, against real sandboxes."""

from __future__ import annotations

import asyncio

import pytest
from helpers import PROCS

from e2b_tools import AsyncSandbox, CommandExitError, Sandbox

"""Command lines of the sandbox's processes, read from /proc (works in images without ps)."""


def test_background_server_keeps_running_across_calls(sandbox: Sandbox) -> None:
    server = sandbox.commands.run(
        "python3 -m http.server 8000 --bind 127.0.0.1", background=True, timeout=None
    )
    assert server.pid > 0
    fetch = (
        "import time, urllib.request\n"
        "for _ in range(50):\n"
        "    try:\n"
        "        body = urllib.request.urlopen('http://127.0.0.1:8000/').read()\n"
        "        break\n"
        "    except OSError:\n"
        "        time.sleep(0.1)\n"
        "b'Directory listing' in body"
    )
    assert sandbox.run_code(fetch).text == "True"  # loopback inside the sandbox only
    assert sandbox.commands.run("echo other call").stdout == "other call\n"
    listed = {p.pid: p for p in sandbox.commands.list()}
    assert server.pid in listed and "http.server" in listed[server.pid].cmd
    assert server.kill() is True
    with pytest.raises(CommandExitError) as info:
        server.wait()
    assert info.value.exit_code == 137
    assert server.pid not in {p.pid for p in sandbox.commands.list()}


def test_killing_the_handle_kills_the_whole_group(sandbox: Sandbox) -> None:
    handle = sandbox.commands.run("sleep 300 & sleep 301 & wait", background=True, timeout=None)
    assert "sleep 300" in sandbox.commands.run(PROCS).stdout
    handle.kill()
    with pytest.raises(CommandExitError):
        handle.wait()
    out = sandbox.commands.run(PROCS).stdout
    assert "sleep 300" not in out and "sleep 301" not in out
    assert sandbox.commands.kill(handle.pid) is False


def test_send_stdin_feeds_an_interactive_program(sandbox: Sandbox) -> None:
    handle = sandbox.commands.run(
        "python3 -c 'print(input()[::-1]); print(input().upper())'", background=True, stdin=True
    )
    handle.send_stdin("olleh\n")
    handle.send_stdin("world\n")
    result = handle.wait()
    assert result.stdout == "hello\nWORLD\n"


def test_stdin_closed_unless_asked(sandbox: Sandbox) -> None:
    assert sandbox.commands.run("cat; echo eof").stdout == "eof\n"  # no hang on read
    handle = sandbox.commands.run("wc -c", background=True, stdin=True)
    handle.send_stdin("12345")
    handle.close_stdin()
    assert handle.wait().stdout.strip() == "5"
    plain = sandbox.commands.run("sleep 5", background=True)
    with pytest.raises(Exception, match="stdin"):
        plain.send_stdin("x")
    plain.kill()


def test_background_output_is_streamed(sandbox: Sandbox) -> None:
    chunks: list[str] = []
    handle = sandbox.commands.run(
        "for i in 1 2 3; do echo $i; sleep 0.2; done", background=True, on_stdout=chunks.append
    )
    assert handle.wait().stdout == "1\n2\n3\n"
    assert "".join(chunks) == "1\n2\n3\n"


@pytest.mark.asyncio
async def test_async_background_handle(async_sandbox: AsyncSandbox) -> None:
    handle = await async_sandbox.commands.run("read x; echo got:$x", background=True, stdin=True)
    await handle.send_stdin("42\n")
    result = await handle.wait()
    assert result.stdout == "got:42\n"


@pytest.mark.asyncio
async def test_cancelling_a_foreground_run_kills_the_command(async_sandbox: AsyncSandbox) -> None:
    marker = "sleep 55.5"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(async_sandbox.commands.run(f"{marker}; echo done"), 1.0)
    procs = await async_sandbox.commands.run(PROCS)
    assert marker not in procs.stdout
    # A background command is not the caller's wait: cancelling that leaves it running.
    handle = await async_sandbox.commands.run(marker, background=True, timeout=None)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(handle.wait(), 0.5)
    assert marker in (await async_sandbox.commands.run(PROCS)).stdout
    assert await handle.kill()
