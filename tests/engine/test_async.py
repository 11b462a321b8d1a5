"""The async API: same behaviour, async callbacks, calls in flight together."""

from __future__ import annotations

import asyncio

import pytest

from e2b_tools import AsyncSandbox, CommandExitError


@pytest.mark.asyncio
async def test_async_run_code_commands_files(async_sandbox: AsyncSandbox) -> None:
    await async_sandbox.run_code("n = 20")
    assert (await async_sandbox.run_code("n + 1")).text == "21"
    await async_sandbox.files.write("a.txt", "async")
    assert await async_sandbox.files.read("a.txt") == "async"
    result = await async_sandbox.commands.run("cat a.txt")
    assert result.stdout == "async"
    with pytest.raises(CommandExitError):
        await async_sandbox.commands.run("false")


@pytest.mark.asyncio
async def test_async_callbacks(async_sandbox: AsyncSandbox) -> None:
    chunks: list[str] = []

    async def on_stdout(chunk: str) -> None:
        await asyncio.sleep(0)
        chunks.append(chunk)

    await async_sandbox.run_code("print('x')\nprint('y')", on_stdout=on_stdout)
    await async_sandbox.commands.run("echo z", on_stdout=on_stdout)
    assert "".join(chunks) == "x\ny\nz\n"


@pytest.mark.asyncio
async def test_calls_run_concurrently(async_sandbox: AsyncSandbox) -> None:
    # The waiter only finishes if the writer runs while it waits.
    waiter = async_sandbox.commands.run(
        "for i in $(seq 100); do [ -f flag ] && echo seen && exit 0; sleep 0.1; done; exit 1"
    )
    writer = async_sandbox.commands.run("sleep 0.3; touch flag")
    code = async_sandbox.run_code("21 * 2")
    seen, _, execution = await asyncio.gather(waiter, writer, code)
    assert seen.stdout == "seen\n"
    assert execution.text == "42"


@pytest.mark.asyncio
async def test_many_sandboxes_at_once(image: str) -> None:
    sandboxes = await asyncio.gather(*(AsyncSandbox.create() for _ in range(4)))
    try:
        outs = await asyncio.gather(*(s.run_code(f"{i} * 10") for i, s in enumerate(sandboxes)))
        assert [o.text for o in outs] == ["0", "10", "20", "30"]
    finally:
        await asyncio.gather(*(s.kill() for s in sandboxes))
