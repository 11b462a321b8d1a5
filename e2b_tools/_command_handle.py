"""A background command's handle (``background=True`` or ``commands.connect``) and its
bounded buffer of output not yet taken."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from signal import Signals
from typing import TYPE_CHECKING

from ._channel import OutputHandler, maybe_await
from ._exceptions import CommandExitError, InvalidArgumentError, SandboxError
from ._models import CommandResult
from .agent.protocol import SignalName

if TYPE_CHECKING:
    from ._commands import AsyncCommands


OutputChunk = tuple[str | None, str | None, None]
"""One piece of a background command's output as E2B yields it: ``(stdout, None,
None)`` or ``(None, stderr, None)`` (the third place is E2B's pty output, never set)."""


class _Output:
    """A background command's output not yet taken by an iterator, bounded.

    A handle nobody iterates keeps at most ``limit`` characters (the oldest are dropped
    first and counted in ``dropped``), so a long-running server costs bounded memory.
    """

    def __init__(self, limit: int, binary: bool = False) -> None:
        self.limit = limit
        self.binary = binary
        """Chunks are ``bytes`` (a command run with ``output="bytes"``)."""
        self.chunks: collections.deque[OutputChunk] = collections.deque()
        self.size = 0
        self.dropped = 0
        self.closed = False
        self.changed = asyncio.Event()

    def add(self, chunk: OutputChunk) -> None:
        self.chunks.append(chunk)
        self.size += len(chunk[0] or chunk[1] or "")
        while self.size > self.limit and len(self.chunks) > 1:
            old = self.chunks.popleft()
            self.size -= len(old[0] or old[1] or "")
            self.dropped += len(old[0] or old[1] or "")
        self.changed.set()

    def close(self) -> None:
        self.closed = True
        self.changed.set()

    async def __aiter__(self) -> AsyncIterator[OutputChunk]:
        while True:
            while self.chunks:
                chunk = self.chunks.popleft()
                self.size -= len(chunk[0] or chunk[1] or "")
                yield chunk
            if self.closed:
                return
            self.changed.clear()
            await self.changed.wait()


class AsyncCommandHandle:
    """A command started with ``background=True``, or followed with
    :meth:`AsyncCommands.connect`."""

    def __init__(
        self,
        commands: AsyncCommands,
        pid: int,
        task: asyncio.Future[CommandResult],
        output: _Output | None = None,
    ) -> None:
        self._commands = commands
        self._pid = pid
        self._task = task
        self._output = output

    def __aiter__(self) -> AsyncIterator[OutputChunk]:
        """The command's output as ``(stdout, stderr, pty)`` tuples, as E2B yields them,
        until it ends (output that came before iterating is yielded first). A command
        that ran out of time, or whose sandbox ended, raises then, as in E2B
        (:class:`TimeoutException`); a non-zero exit does not (:meth:`wait` raises it).
        """
        if self._output is None:
            raise InvalidArgumentError("this handle has no output to iterate")
        if self._output.binary:
            raise InvalidArgumentError(
                "a command run with output='bytes' is not iterated: pass on_stdout= / "
                "on_stderr= (they receive bytes) and read result.stdout_bytes of wait()"
            )
        return self._iterate(self._output)

    async def _iterate(self, output: _Output) -> AsyncIterator[OutputChunk]:
        async for chunk in output:
            yield chunk
        if not self._task.cancelled():  # disconnect() ends the iteration quietly
            await self._outcome()  # its error, if it ended in one

    async def _outcome(self) -> CommandResult:
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise  # the caller was cancelled, not the following
            raise SandboxError(
                f"this handle was disconnected from command {self._pid}, which runs on; "
                "commands.connect(pid) follows it again",
                sandbox_id=self._commands._sbx.sandbox_id,
            ) from None

    @property
    def pid(self) -> int:
        """Process id inside the sandbox."""
        return self._pid

    async def wait(
        self,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
    ) -> CommandResult:
        """Wait for the command to finish; raises :class:`CommandExitError` on non-zero.

        ``on_stdout`` / ``on_stderr`` receive the output not yet iterated, as E2B's
        blocking ``CommandHandle.wait`` does.
        """
        if (on_stdout is not None or on_stderr is not None) and self._output is not None:
            async for stdout, stderr, _ in self._output:
                if stdout is not None and on_stdout is not None:
                    await maybe_await(on_stdout(stdout))
                elif stderr is not None and on_stderr is not None:
                    await maybe_await(on_stderr(stderr))
        result = await self._outcome()
        if result.exit_code != 0:
            raise CommandExitError(result, sandbox_id=self._commands._sbx.sandbox_id)
        return result

    async def disconnect(self) -> None:
        """Stop following the command, which runs on (E2B's ``disconnect``).

        Iterating the handle then ends, and ``wait()`` raises :class:`SandboxError`;
        ``commands.connect(pid)`` follows the command again. ``kill()`` still works.
        """
        if not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})

    async def kill(self, signal: SignalName | Signals = "SIGKILL") -> bool:
        """Send ``signal`` to the command (see :meth:`AsyncCommands.kill`).

        The default, SIGKILL, kills it and every process it started.
        """
        return await self._commands.kill(self._pid, signal)

    async def send_stdin(self, data: str | bytes) -> None:
        """Write to the command's stdin (it must run with ``stdin=True``)."""
        await self._commands.send_stdin(self._pid, data)

    async def close_stdin(self) -> None:
        """Close the command's stdin."""
        await self._commands.close_stdin(self._pid)
