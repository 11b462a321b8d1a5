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


@pytest.mark.asyncio
async def test_cancelling_run_code_stops_the_code(async_sandbox: AsyncSandbox) -> None:
    await async_sandbox.run_code("kept = 'still here'")
    busy = asyncio.ensure_future(
        async_sandbox.run_code("import time\nwhile True:\n    time.sleep(0.05)", timeout=None)
    )
    await asyncio.sleep(1.0)
    busy.cancel()
    with pytest.raises(asyncio.CancelledError):
        await busy
    # Without the cancel reaching the sandbox, this call would queue behind the loop.
    answer = await asyncio.wait_for(async_sandbox.run_code("kept"), 1.0)
    assert answer.text == "still here"


@pytest.mark.asyncio
async def test_saved_output_is_on_the_results(async_sandbox: AsyncSandbox) -> None:
    from e2b_tools import SaveOutput

    execution = await async_sandbox.run_code(
        "print('x' * 5000)", save_output=SaveOutput(path="out/code.log", threshold=1000)
    )
    assert execution.saved_output is not None
    assert execution.saved_output.path == "/home/user/out/code.log"
    assert execution.saved_output.chars == 5001
    result = await async_sandbox.commands.run(
        "seq 1 3000", save_output=SaveOutput(path="out/cmd.log", threshold=100)
    )
    assert result.saved_output is not None and result.saved_output.lines == 3000
    assert (await async_sandbox.files.read("out/cmd.log")).endswith("2999\n3000\n")
    quiet = await async_sandbox.commands.run(
        "echo hi", save_output=SaveOutput(path="out/none.log", threshold=100)
    )
    assert quiet.saved_output is None
    assert await async_sandbox.is_alive()
