"""``sandbox.commands``: shell commands, in the foreground or the background."""

from __future__ import annotations

import asyncio
import base64
import builtins
import collections
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal, overload

from ._channel import Channel, Outcome, OutputHandler, maybe_await
from ._config import DEFAULT_COMMAND_TIMEOUT
from ._exceptions import (
    CommandExitError,
    InvalidArgumentError,
    ProtocolError,
    SandboxTimeoutError,
    error_from_event,
)
from ._models import CommandResult, ProcessInfo, SaveOutput

if TYPE_CHECKING:
    from ._sandbox import AsyncSandbox

Username = Literal["user", "root"]
"""E2B's ``user=`` values (see :meth:`AsyncCommands.run`)."""

HOST_GRACE = 15.0
"""Extra seconds the host waits past a call's own timeout before it gives up on the agent."""


class AsyncCommands:
    """Shell commands in a sandbox (``sandbox.commands``)."""

    def __init__(self, sandbox: AsyncSandbox, channel: Channel) -> None:
        self._sbx = sandbox
        self._channel = channel

    @overload
    async def run(
        self,
        cmd: str,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
        *,
        background: Literal[False] = False,
        stdin: bool = False,
        save_output: SaveOutput | None = None,
        user: Username | None = None,
    ) -> CommandResult: ...

    @overload
    async def run(
        self,
        cmd: str,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
        *,
        background: Literal[True],
        stdin: bool = False,
        save_output: SaveOutput | None = None,
        user: Username | None = None,
    ) -> AsyncCommandHandle: ...

    async def run(
        self,
        cmd: str,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
        *,
        background: bool = False,
        stdin: bool = False,
        save_output: SaveOutput | None = None,
        user: Username | None = None,
    ) -> CommandResult | AsyncCommandHandle:
        """Run ``cmd`` with bash (``sh`` if the image has no bash) and wait for it.

        The command runs in its own process group with stdin closed (``stdin=True``
        gives it a pipe to feed with :meth:`send_stdin`); at ``timeout`` it and every
        process it started are killed (``None`` or ``0``, as in E2B: no limit).
        Cancelling the wait kills them too.

        With ``background=True`` it returns at once with a handle (``pid``,
        ``wait()``, ``kill()``, ``send_stdin()``, iteration over its output); the
        process keeps running across other calls, and cancelling ``wait()`` leaves it
        running. Pass ``timeout=None`` for servers that should run until killed.
        ``save_output`` saves the whole output in the sandbox once it is long
        (``result.saved_output`` says where).

        ``user`` is E2B's: ``"user"`` (or ``None``) runs as the sandbox's user
        (``SandboxConfig.user``). ``"root"`` is accepted only when that user is root
        already (``user="0:0"``): the agent keeps uid 0 out of user code's reach
        (``docs/security.md``), so a call may not ask for it.

        Raises:
            CommandExitError: The command exited non-zero. As in E2B, the exception
                carries the whole result: ``.stdout``, ``.stderr``, ``.exit_code``.
            SandboxTimeoutError: It ran past ``timeout``; ``.result`` holds its output.
        """
        timeout = timeout or None
        _check_user(user, self._sbx.config.user)
        fields = _fields(cmd, cwd, envs, timeout, stdin, save_output)
        host_timeout = None if timeout is None else timeout + HOST_GRACE
        if not background:
            outcome = await self._channel.fold(
                "command", fields, host_timeout, on_stdout=on_stdout, on_stderr=on_stderr
            )
            return self._result(outcome, cmd, cwd, timeout, check=True)
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_started(pid: int) -> None:
            if not started.done():
                started.set_result(pid)

        output = _Output(self._sbx.config.output_limit)

        async def out(text: str) -> None:
            output.add((text, None, None))
            if on_stdout is not None:
                await maybe_await(on_stdout(text))

        async def err(text: str) -> None:
            output.add((None, text, None))
            if on_stderr is not None:
                await maybe_await(on_stderr(text))

        async def follow() -> CommandResult:
            try:
                outcome = await self._channel.fold(
                    "command",
                    fields,
                    host_timeout,
                    stop_on_cancel=False,
                    on_stdout=out,
                    on_stderr=err,
                    on_started=on_started,
                )
            finally:
                output.close()
            return self._result(outcome, cmd, cwd, timeout, check=False)

        task = asyncio.ensure_future(follow())
        waiting: set[asyncio.Future[Any]] = {started, task}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not started.done():
            await task  # it ended before it started: raises what went wrong
            raise ProtocolError(
                "the command ended without starting", sandbox_id=self._sbx.sandbox_id
            )
        # Nobody may ever wait() for it: retrieve its outcome so that a sandbox killed
        # under it does not print "Task exception was never retrieved".
        task.add_done_callback(_retrieve)
        return AsyncCommandHandle(self, started.result(), task, output)

    def _result(
        self, outcome: Outcome, cmd: str, cwd: str | None, timeout: float | None, check: bool
    ) -> CommandResult:
        sandbox_id = self._sbx.sandbox_id
        done = outcome.done
        if outcome.error is not None and "exit_code" not in done:
            if outcome.error.get("name") in ("FileNotFoundError", "NotADirectoryError"):
                raise InvalidArgumentError(
                    f"cannot run the command: cwd {cwd!r} is not a directory in the sandbox",
                    sandbox_id=sandbox_id,
                )
            raise error_from_event(outcome.error, sandbox_id)
        result = CommandResult(
            stdout=outcome.stdout.text(),
            stderr=outcome.stderr.text(),
            exit_code=int(done.get("exit_code", -1)),
            pid=done.get("pid"),
            stdout_truncated=outcome.stdout.dropped,
            stderr_truncated=outcome.stderr.dropped,
            saved_output=outcome.saved_output,
        )
        if done.get("timed_out"):
            result.error = f"killed after timeout={timeout:g}s"
            raise SandboxTimeoutError(
                f"command exceeded timeout={timeout:g}s and it was killed with every process "
                "it started; pass timeout= to commands.run() (None for no limit)",
                sandbox_id=sandbox_id,
                result=result,
            )
        if result.exit_code != 0:
            result.error = f"exit code {result.exit_code}"
            if check:
                raise CommandExitError(result, sandbox_id=sandbox_id)
        return result

    async def list(self) -> builtins.list[ProcessInfo]:
        """Commands running in the sandbox (started by any client)."""
        value = await self._channel.request("list_processes", {}, 30.0)
        return [ProcessInfo(**p) for p in value.get("processes", [])]

    async def kill(self, pid: int) -> bool:
        """Kill a command and every process it started; False if no such command runs.

        Returns once the processes are gone, not merely signalled.
        """
        value = await self._channel.request("kill_process", {"pid": pid}, 30.0)
        return bool(value.get("killed"))

    async def send_stdin(self, pid: int, data: str | bytes) -> None:
        """Write text (as UTF-8) or bytes to a command's stdin (run with ``stdin=True``)."""
        fields: dict[str, Any] = {"pid": pid}
        if isinstance(data, str):
            fields["data"] = data
        elif isinstance(data, (bytes, bytearray, memoryview)):
            fields["data"] = base64.b64encode(data).decode("ascii")
            fields["base64"] = True
        else:
            raise InvalidArgumentError("data must be str or bytes")
        await self._channel.request("send_stdin", fields, 30.0)

    async def close_stdin(self, pid: int) -> None:
        """Close the stdin of a command started with ``stdin=True`` (it sees EOF)."""
        await self._channel.request("close_stdin", {"pid": pid}, 30.0)


def _check_user(user: str | None, sandbox_user: str) -> None:
    """Refuse a ``user=`` the sandbox cannot honour without breaking its threat model."""
    if user is None or user == "user":
        return
    if user != "root":
        raise InvalidArgumentError(f"user must be 'user' or 'root', not {user!r}")
    if sandbox_user.partition(":")[0] not in ("0", "root"):
        raise InvalidArgumentError(
            "user='root' is refused: this sandbox runs code as "
            f"{sandbox_user!r}, and the agent keeps root out of its reach (a command "
            "may not ask for it). Drop user=, or create the sandbox with "
            "SandboxConfig(user='0:0') to run everything as root"
        )


def _fields(
    cmd: str,
    cwd: str | None,
    envs: dict[str, str] | None,
    timeout: float | None,
    stdin: bool,
    save_output: SaveOutput | None,
) -> dict[str, Any]:
    if not isinstance(cmd, str) or not cmd.strip():
        raise InvalidArgumentError("cmd must be a non-empty string")
    if timeout is not None and timeout <= 0:
        raise InvalidArgumentError("timeout must be > 0 seconds or None")
    fields: dict[str, Any] = {"cmd": cmd, "timeout": timeout}
    if cwd is not None:
        fields["cwd"] = cwd
    if envs:
        fields["envs"] = {str(k): str(v) for k, v in envs.items()}
    if save_output is not None:
        fields["spill"] = save_output.model_dump()
    if stdin:
        fields["stdin"] = True
    return fields


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


OutputChunk = tuple[str | None, str | None, None]
"""One piece of a background command's output as E2B yields it: ``(stdout, None,
None)`` or ``(None, stderr, None)`` (the third place is E2B's pty output, never set)."""


class _Output:
    """A background command's output not yet taken by an iterator, bounded.

    A handle nobody iterates keeps at most ``limit`` characters (the oldest are dropped
    first and counted in ``dropped``), so a long-running server costs bounded memory.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
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
    """A command started with ``background=True``."""

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
        until it ends (output that came before iterating is yielded first)."""
        if self._output is None:
            raise InvalidArgumentError("this handle has no output to iterate")
        return self._output.__aiter__()

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
        result = await asyncio.shield(self._task)
        if result.exit_code != 0:
            raise CommandExitError(result, sandbox_id=self._commands._sbx.sandbox_id)
        return result

    async def kill(self) -> bool:
        """Kill the command and every process it started."""
        return await self._commands.kill(self._pid)

    async def send_stdin(self, data: str | bytes) -> None:
        """Write to the command's stdin (it must run with ``stdin=True``)."""
        await self._commands.send_stdin(self._pid, data)

    async def close_stdin(self) -> None:
        """Close the command's stdin."""
        await self._commands.close_stdin(self._pid)
