"""``sandbox.commands``: shell commands, in the foreground or the background."""

from __future__ import annotations

import asyncio
import builtins
from typing import TYPE_CHECKING, Any, Literal, overload

from ._channel import Channel, Outcome, OutputHandler
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
    ) -> CommandResult | AsyncCommandHandle:
        """Run ``cmd`` with bash (``sh`` if the image has no bash) and wait for it.

        The command runs in its own process group with stdin closed (``stdin=True``
        gives it a pipe to feed with :meth:`send_stdin`); at ``timeout`` it and every
        process it started are killed (``None``: no limit). Cancelling the wait kills
        them too.

        With ``background=True`` it returns at once with a handle (``pid``,
        ``wait()``, ``kill()``, ``send_stdin()``); the process keeps running across
        other calls, and cancelling ``wait()`` leaves it running. Pass
        ``timeout=None`` for servers that should run until killed. ``save_output``
        saves the whole output in the sandbox once it is long
        (``result.saved_output`` says where).

        Raises:
            CommandExitError: The command exited non-zero. As in E2B, the exception
                carries the whole result: ``.stdout``, ``.stderr``, ``.exit_code``.
            SandboxTimeoutError: It ran past ``timeout``; ``.result`` holds its output.
        """
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

        async def follow() -> CommandResult:
            outcome = await self._channel.fold(
                "command",
                fields,
                host_timeout,
                stop_on_cancel=False,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
                on_started=on_started,
            )
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
        return AsyncCommandHandle(self, started.result(), task)

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

    async def send_stdin(self, pid: int, data: str) -> None:
        """Write to the stdin of a command started with ``stdin=True``."""
        await self._channel.request("send_stdin", {"pid": pid, "data": data}, 30.0)

    async def close_stdin(self, pid: int) -> None:
        """Close the stdin of a command started with ``stdin=True`` (it sees EOF)."""
        await self._channel.request("close_stdin", {"pid": pid}, 30.0)


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


class AsyncCommandHandle:
    """A command started with ``background=True``."""

    def __init__(
        self, commands: AsyncCommands, pid: int, task: asyncio.Future[CommandResult]
    ) -> None:
        self._commands = commands
        self._pid = pid
        self._task = task

    @property
    def pid(self) -> int:
        """Process id inside the sandbox."""
        return self._pid

    async def wait(self) -> CommandResult:
        """Wait for the command to finish; raises :class:`CommandExitError` on non-zero."""
        result = await asyncio.shield(self._task)
        if result.exit_code != 0:
            raise CommandExitError(result, sandbox_id=self._commands._sbx.sandbox_id)
        return result

    async def kill(self) -> bool:
        """Kill the command and every process it started."""
        return await self._commands.kill(self._pid)

    async def send_stdin(self, data: str) -> None:
        """Write to the command's stdin (it must run with ``stdin=True``)."""
        await self._commands.send_stdin(self._pid, data)

    async def close_stdin(self) -> None:
        """Close the command's stdin."""
        await self._commands.close_stdin(self._pid)
