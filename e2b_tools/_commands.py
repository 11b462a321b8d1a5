"""``sandbox.commands``: shell commands, in the foreground or the background."""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
from collections.abc import Callable
from signal import Signals
from typing import TYPE_CHECKING, Any, Literal, cast, overload

from ._channel import (
    BoundedBytes,
    BoundedText,
    BytesHandler,
    Channel,
    Outcome,
    OutputHandler,
    maybe_await,
)
from ._command_handle import AsyncCommandHandle, _Output
from ._config import DEFAULT_COMMAND_TIMEOUT
from ._exceptions import (
    CommandExitError,
    InvalidArgumentError,
    ProtocolError,
    ResourceNotFoundError,
    SandboxError,
    SandboxTimeoutError,
    error_from_event,
)
from ._models import CommandResult, ProcessInfo, SaveOutput
from .agent.protocol import KILL_SIGNALS, SIGNAL_WORDS, SignalName

if TYPE_CHECKING:
    from ._sandbox import AsyncSandbox

Username = Literal["user", "root"]
"""E2B's ``user=`` values (see :meth:`AsyncCommands.run`)."""

OutputMode = Literal["text", "bytes"]
"""How :meth:`AsyncCommands.run` keeps a command's output: decoded text (the default)
or raw bytes (``result.stdout_bytes``; callbacks receive ``bytes``)."""


HOST_GRACE = 15.0
"""Extra seconds the host waits past a call's own timeout before it gives up on the agent."""

CONNECT_REQUEST_TIMEOUT = 30.0
"""Seconds :meth:`AsyncCommands.connect` waits for the sandbox to answer, by default."""


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
        on_stdout: OutputHandler | BytesHandler | None = None,
        on_stderr: OutputHandler | BytesHandler | None = None,
        *,
        background: Literal[False] = False,
        stdin: bool = False,
        save_output: SaveOutput | None = None,
        user: Username | None = None,
        output: OutputMode = "text",
    ) -> CommandResult: ...

    @overload
    async def run(
        self,
        cmd: str,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        on_stdout: OutputHandler | BytesHandler | None = None,
        on_stderr: OutputHandler | BytesHandler | None = None,
        *,
        background: Literal[True],
        stdin: bool = False,
        save_output: SaveOutput | None = None,
        user: Username | None = None,
        output: OutputMode = "text",
    ) -> AsyncCommandHandle: ...

    async def run(
        self,
        cmd: str,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        on_stdout: OutputHandler | BytesHandler | None = None,
        on_stderr: OutputHandler | BytesHandler | None = None,
        *,
        background: bool = False,
        stdin: bool = False,
        save_output: SaveOutput | None = None,
        user: Username | None = None,
        output: OutputMode = "text",
    ) -> CommandResult | AsyncCommandHandle:
        """Run ``cmd`` with bash (``sh`` if the image has no bash) and wait for it.

        The command runs in its own process group with stdin closed (``stdin=True``
        gives it a pipe to feed with :meth:`send_stdin`); at ``timeout`` it and every
        process it started are killed (``None`` or ``0``, as in E2B: no limit).
        Cancelling the wait kills them too.

        With ``background=True`` it returns at once with a handle (``pid``,
        ``wait()``, ``kill()``, ``send_stdin()``, iteration over its output); the
        process keeps running across other calls, and cancelling ``wait()`` (or
        ``disconnect()``) leaves it running; :meth:`connect` follows it again. Pass
        ``timeout=None`` for servers that should run until killed. ``save_output``
        saves the whole output in the sandbox once it is long (``result.saved_output``
        says where).

        ``output="bytes"`` keeps the output as raw bytes instead of decoding it as
        UTF-8 (with replacement): ``result.stdout_bytes`` / ``result.stderr_bytes``
        hold them (bounded by ``output_limit`` bytes, head and tail, as text is),
        ``on_stdout`` / ``on_stderr`` receive ``bytes``, ``save_output`` saves the
        raw bytes; ``result.stdout`` / ``stderr`` still give them decoded.

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
        if output not in ("text", "bytes"):
            raise InvalidArgumentError(f"output must be 'text' or 'bytes', not {output!r}")
        if output == "bytes":
            fields["binary"] = True
        # The fold hands bytes to the handlers of a binary command (see Outcome).
        text_out = cast("OutputHandler | None", on_stdout)
        text_err = cast("OutputHandler | None", on_stderr)
        host_timeout = None if timeout is None else timeout + HOST_GRACE
        if not background:
            outcome = await self._channel.fold(
                "command", fields, host_timeout, on_stdout=text_out, on_stderr=text_err
            )
            return self._result(outcome, cwd, timeout, check=True)
        return await self._follow(
            "command",
            fields,
            lambda outcome: self._result(outcome, cwd, timeout, check=False),
            host_timeout=host_timeout,
            on_stdout=text_out,
            on_stderr=text_err,
            binary=output == "bytes",
        )

    async def connect(
        self,
        pid: int,
        timeout: float | None = 60,
        request_timeout: float | None = None,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
    ) -> AsyncCommandHandle:
        """Follow a command that is already running (E2B's ``commands.connect``).

        The command may have been started with ``background=True`` by this sandbox
        object or another one (``Sandbox.connect(sandbox_id)`` in another process).
        The handle is the one ``run(background=True)`` returns: iterating it, or
        ``wait()``, gives the command's output from now on (earlier output is not
        replayed) and its result; ``kill()`` kills it. Several handles may follow one
        command at once. Following never stops the command: ``disconnect()``, a
        cancelled ``wait()`` or the connection's ``timeout`` only stop the following.

        Args:
            pid: The command's pid (``handle.pid``, or from :meth:`list`).
            timeout: Seconds the connection stays open, as in E2B; past it, iterating
                and ``wait()`` raise :class:`SandboxTimeoutError` (E2B's
                ``TimeoutException``) and the command runs on. ``0`` or ``None``: no limit.
            request_timeout: Seconds to wait for the sandbox to answer the connect
                (default 30).
            on_stdout: Called with each piece of stdout from now on.
            on_stderr: Called with each piece of stderr from now on.

        Raises:
            ResourceNotFoundError: No command with that pid runs (it ended, or never
                ran): E2B's ``NotFoundException``.

        Example:
            >>> server = await sbx.commands.run("./serve", background=True)  # doctest: +SKIP
            >>> handle = await sbx.commands.connect(server.pid, timeout=None)  # doctest: +SKIP
            >>> async for stdout, stderr, _ in handle:  # doctest: +SKIP
            ...     print(stdout or stderr, end="")
        """
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise InvalidArgumentError(f"pid must be a positive int, not {pid!r}")
        if timeout is not None and timeout < 0:
            raise InvalidArgumentError("timeout must be >= 0 seconds (0 or None: no limit)")
        if request_timeout is not None and request_timeout <= 0:
            raise InvalidArgumentError("request_timeout must be > 0 seconds or None")
        return await self._follow(
            "command_attach",
            {"pid": pid},
            lambda outcome: self._attached_result(outcome, pid),
            host_timeout=None,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            follower=True,
            limit=timeout or None,
            answer_within=request_timeout or CONNECT_REQUEST_TIMEOUT,
        )

    async def _follow(
        self,
        op: str,
        fields: dict[str, Any],
        finish: Callable[[Outcome], CommandResult],
        *,
        host_timeout: float | None,
        on_stdout: OutputHandler | None,
        on_stderr: OutputHandler | None,
        follower: bool = False,
        limit: float | None = None,
        answer_within: float | None = None,
        binary: bool = False,
    ) -> AsyncCommandHandle:
        """Send a ``command`` (or ``command_attach``) request and return a handle that
        follows its events once the agent says the command runs.

        A ``follower`` (``command_attach``) only follows: cancelling it (``disconnect()``,
        its ``limit`` passing) sends ``cancel``, which stops the following, never the
        command. ``answer_within`` bounds the wait for the ``started`` event.
        """
        sandbox_id = self._sbx.sandbox_id
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_started(pid: int) -> None:
            if not started.done():
                started.set_result(pid)

        output = _Output(self._sbx.config.output_limit, binary)
        # What a follower saw, for the error of its limit (the fold's own is lost then).
        seen = (BoundedText(output.limit), BoundedText(output.limit)) if limit else None

        # ``text`` is bytes for a binary command (the fold hands its handlers bytes).
        async def out(text: str) -> None:
            output.add((text, None, None))
            if seen is not None:
                seen[0].add(text)
            if on_stdout is not None:
                await maybe_await(on_stdout(text))

        async def err(text: str) -> None:
            output.add((None, text, None))
            if seen is not None:
                seen[1].add(text)
            if on_stderr is not None:
                await maybe_await(on_stderr(text))

        async def follow() -> CommandResult:
            fold = self._channel.fold(
                op,
                fields,
                host_timeout,
                stop_on_cancel=follower,
                on_stdout=out,
                on_stderr=err,
                on_started=on_started,
            )
            try:
                outcome = await asyncio.wait_for(fold, limit)
            except asyncio.TimeoutError as exc:
                if isinstance(exc, SandboxError) or limit is None or seen is None:
                    raise  # not the limit: an error of the call itself
                raise _connection_expired(fields["pid"], limit, seen, sandbox_id) from None
            finally:
                output.close()
            return finish(outcome)

        task = asyncio.ensure_future(follow())
        waiting: set[asyncio.Future[Any]] = {started, task}
        try:
            await asyncio.wait(waiting, timeout=answer_within, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.add_done_callback(_retrieve)
            if follower:
                task.cancel()  # a follower nobody will hold: stop following
            raise
        if not started.done():
            if not task.done():  # only with answer_within: the sandbox did not answer
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, SandboxError):
                    await task
                raise SandboxTimeoutError(
                    f"the sandbox did not answer commands.connect() within {answer_within:g}s "
                    "(pass request_timeout=)",
                    sandbox_id=sandbox_id,
                )
            await task  # it ended before it started: raises what went wrong
            raise ProtocolError("the command ended without starting", sandbox_id=sandbox_id)
        # Nobody may ever wait() for it: retrieve its outcome so that a sandbox killed
        # under it does not print "Task exception was never retrieved".
        task.add_done_callback(_retrieve)
        return AsyncCommandHandle(self, started.result(), task, output)

    def _attached_result(self, outcome: Outcome, pid: int) -> CommandResult:
        """The result of a command followed by :meth:`connect`."""
        error = outcome.error
        if error is not None and "exit_code" not in outcome.done:
            if error.get("name") == "ProcessLookupError":
                raise ResourceNotFoundError(
                    f"no command with pid {pid} runs in the sandbox (it ended, or never "
                    "ran); commands.list() shows those that do",
                    sandbox_id=self._sbx.sandbox_id,
                )
            raise error_from_event(error, self._sbx.sandbox_id)
        return self._result(outcome, None, None, check=False)

    def _result(
        self, outcome: Outcome, cwd: str | None, timeout: float | None, check: bool
    ) -> CommandResult:
        """A command's result; ``timeout`` is its own (None: not known, a followed one)."""
        sandbox_id = self._sbx.sandbox_id
        done = outcome.done
        if outcome.error is not None and "exit_code" not in done:
            if outcome.error.get("name") in ("FileNotFoundError", "NotADirectoryError"):
                raise InvalidArgumentError(
                    f"cannot run the command: cwd {cwd!r} is not a directory in the sandbox",
                    sandbox_id=sandbox_id,
                )
            raise error_from_event(outcome.error, sandbox_id)
        signal = done.get("signal")
        streams: tuple[BoundedText | BoundedBytes, ...] = outcome.raw or (
            outcome.stdout,
            outcome.stderr,
        )
        result = CommandResult(
            stdout=streams[0].text(),
            stderr=streams[1].text(),
            exit_code=int(done.get("exit_code", -1)),
            signal=signal if isinstance(signal, str) and signal else None,
            pid=done.get("pid"),
            stdout_truncated=streams[0].dropped,
            stderr_truncated=streams[1].dropped,
            saved_output=outcome.saved_output,
        )
        if outcome.raw is not None:
            result.stdout_bytes = outcome.raw[0].data()
            result.stderr_bytes = outcome.raw[1].data()
        if done.get("timed_out"):
            limit = "its timeout" if timeout is None else f"timeout={timeout:g}s"
            result.error = f"killed after {limit}"
            raise SandboxTimeoutError(
                f"command exceeded {limit} and it was killed with every process "
                "it started; pass timeout= to commands.run() (None for no limit)",
                sandbox_id=sandbox_id,
                result=result,
            )
        if result.signal is not None or result.exit_code != 0:
            result.error = f"exit code {result.exit_code}"
            if result.signal is not None:
                # E2B's envd reports what Go says of the process: "signal: killed".
                result.error = f"signal: {SIGNAL_WORDS.get(result.signal, result.signal)}"
            if check:
                raise CommandExitError(result, sandbox_id=sandbox_id)
        return result

    async def list(self) -> builtins.list[ProcessInfo]:
        """Commands running in the sandbox (started by any client)."""
        value = await self._channel.request("list_processes", {}, 30.0)
        return [ProcessInfo(**p) for p in value.get("processes", [])]

    async def kill(self, pid: int, signal: SignalName | Signals = "SIGKILL") -> bool:
        """Send a signal to a command; False if no such command runs.

        With SIGKILL (the default) the command and every process it started are
        killed, wherever they moved, and this returns once they are gone. Any other
        signal of :data:`KILL_SIGNALS` goes to the command's process group (as a
        terminal's Ctrl-C does) and this returns once it is sent (True), as E2B's
        ``SendSignal`` does: a command that traps or ignores it runs on, so
        ``wait()`` for it, or kill it with SIGKILL.

        Args:
            pid: The command's pid.
            signal: ``"SIGTERM"``, ``signal.SIGTERM``, ... (default ``"SIGKILL"``).

        Raises:
            InvalidArgumentError: Not one of :data:`KILL_SIGNALS` (nothing is sent).

        Example:
            >>> await sbx.commands.kill(server.pid, signal="SIGTERM")  # doctest: +SKIP
            True
        """
        name = _signal_name(signal)
        fields: dict[str, Any] = {"pid": pid}
        if name != "SIGKILL":
            fields["signal"] = name
        value = await self._channel.request("kill_process", fields, 30.0)
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


def _signal_name(sig: object) -> str:
    """The name of a signal :meth:`AsyncCommands.kill` may send, or InvalidArgumentError."""
    name = sig.name if isinstance(sig, Signals) else sig
    if not isinstance(name, str) or name not in KILL_SIGNALS:
        raise InvalidArgumentError(
            f"signal must be one of {', '.join(KILL_SIGNALS)} (a name or signal.Signals), "
            f"not {sig!r}"
        )
    return name


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


def _connection_expired(
    pid: int, limit: float, seen: tuple[BoundedText, BoundedText], sandbox_id: str
) -> SandboxTimeoutError:
    """The error of a :meth:`AsyncCommands.connect` whose ``timeout`` passed."""
    result = CommandResult(
        stdout=seen[0].text(),
        stderr=seen[1].text(),
        exit_code=-1,
        error=f"stopped following after timeout={limit:g}s; the command runs on",
        pid=pid,
        stdout_truncated=seen[0].dropped,
        stderr_truncated=seen[1].dropped,
    )
    return SandboxTimeoutError(
        f"stopped following command {pid} after the connection's timeout={limit:g}s; the "
        "command runs on (commands.connect() follows it again; pass timeout=None for no "
        "limit)",
        sandbox_id=sandbox_id,
        result=result,
    )
