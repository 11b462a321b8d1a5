"""E2B snippets for ``AsyncSandbox``: the same API awaited, as E2B's async test trees
use it. Each test makes its own sandbox (a sandbox belongs to one event loop)."""

# The snippets call E2B's API as documented, parts this package lacks included: running
# them, not the type checker, says what works.
# mypy: disable-error-code="attr-defined, call-arg, arg-type, call-overload, dict-item"

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from e2b_tools import AsyncSandbox, OutputMessage

CI = "e2b-dev/code-interpreter:python/tests/async"
SDK = "e2b-dev/E2B:packages/python-sdk/tests/async/sandbox_async"


@pytest.mark.asyncio
@pytest.mark.e2b(
    feature="async: run_code text",
    call='await async_sandbox.run_code("x =1; x")',
    source=f"{CI}/test_async_basic.py",
)
async def test_async_basic() -> None:
    async with await AsyncSandbox.create() as async_sandbox:
        result = await async_sandbox.run_code("x =1; x")
        assert result.text == "1"


@pytest.mark.asyncio
@pytest.mark.e2b(
    feature="async: streaming stdout",
    call="await async_sandbox.run_code('print(1)', on_stdout=test)",
    source=f"{CI}/test_async_streaming.py",
)
async def test_async_streaming_output() -> None:
    async with await AsyncSandbox.create() as async_sandbox:
        out: list[OutputMessage] = []

        def test(line: OutputMessage) -> None:
            out.append(line)

        await async_sandbox.run_code("print(1)", on_stdout=test)
        assert len(out) == 1
        assert out[0].line == "1\n"


@pytest.mark.asyncio
@pytest.mark.e2b(
    feature="async: remove a context by id",
    call="await async_sandbox.remove_code_context(context.id)",
    source=f"{CI}/test_async_contexts.py",
)
async def test_async_remove_context() -> None:
    async with await AsyncSandbox.create() as async_sandbox:
        context = await async_sandbox.create_code_context()
        await async_sandbox.remove_code_context(context.id)
        contexts = await async_sandbox.list_code_contexts()
        assert context.id not in [ctx.id for ctx in contexts]


@pytest.mark.asyncio
@pytest.mark.e2b(
    feature="async: commands.run",
    call="await async_sandbox.commands.run(f'echo \"{text}\"')",
    source=f"{SDK}/commands/test_run.py",
)
async def test_async_command_run() -> None:
    async with await AsyncSandbox.create() as async_sandbox:
        text = "Hello, World!"
        cmd = await async_sandbox.commands.run(f'echo "{text}"')
        assert cmd.exit_code == 0
        assert cmd.stdout == f"{text}\n"


@pytest.mark.asyncio
@pytest.mark.e2b(
    feature="async: pause and resume",
    call="await async_sandbox.pause(); await async_sandbox.connect()",
    source=f"{SDK}/test_snapshot.py",
)
async def test_async_snapshot() -> None:
    async with await AsyncSandbox.create() as async_sandbox:
        assert await async_sandbox.is_running()
        await async_sandbox.pause()
        assert not await async_sandbox.is_running()
        resumed_sandbox = await async_sandbox.connect()
        assert await async_sandbox.is_running()
        assert await resumed_sandbox.is_running()
        assert resumed_sandbox.sandbox_id == async_sandbox.sandbox_id


@pytest.mark.asyncio
@pytest.mark.e2b(
    feature="async: watch_dir with an on_event callback",
    call="await async_sandbox.files.watch_dir(dirname, on_event=handle_event)",
    source=f"{SDK}/files/test_watch.py",
)
async def test_async_watch_directory_changes() -> None:
    from e2b_tools import FilesystemEventType

    async with await AsyncSandbox.create() as async_sandbox:
        dirname = "test_watch_dir"
        filename = "test_watch.txt"
        await async_sandbox.files.make_dir(dirname)
        await async_sandbox.files.write(f"{dirname}/{filename}", "This file will be watched.")
        event_triggered = asyncio.Event()

        def handle_event(e: Any) -> None:  # E2B's FilesystemEvent
            if e.type == FilesystemEventType.WRITE and e.name == filename:
                event_triggered.set()

        handle = await async_sandbox.files.watch_dir(dirname, on_event=handle_event)
        try:
            await async_sandbox.files.write(f"{dirname}/{filename}", "This file has been modified.")
            await asyncio.wait_for(event_triggered.wait(), timeout=10)
        finally:
            await handle.stop()


@pytest.mark.asyncio
@pytest.mark.e2b(
    feature="async: read a stream",
    call='await async_sandbox.files.read(filename, format="stream")',
    source=f"{SDK}/files/test_read.py",
)
async def test_async_read_file_as_stream() -> None:
    async with await AsyncSandbox.create() as async_sandbox:
        filename = "test_read_stream.txt"
        content = "Streamed read content. " * 10_000
        await async_sandbox.files.write(filename, content)
        stream = await async_sandbox.files.read(filename, format="stream")
        chunks = [chunk async for chunk in stream]
        assert b"".join(chunks).decode("utf-8") == content
