"""The asynchronous sandbox API; :mod:`e2b_tools._sync` wraps it for blocking code."""

from __future__ import annotations

import asyncio
import builtins
import collections
import contextlib
import datetime as dt
import inspect
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, overload

from ._config import (
    DEFAULT_CODE_TIMEOUT,
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_TIMEOUT,
    NetworkMode,
    SandboxConfig,
)
from ._connection import AgentConnection, Call
from ._exceptions import (
    CommandExitError,
    InvalidArgumentError,
    ProtocolError,
    SandboxError,
    SandboxGoneError,
    SandboxTimeoutError,
    error_from_event,
)
from ._files import AsyncFiles
from ._models import (
    CommandResult,
    Context,
    Execution,
    ExecutionError,
    ProcessInfo,
    Result,
    SandboxInfo,
)
from .agent import languages as _languages
from .agent.languages import aliases as language_aliases
from .agent.protocol import Message
from .backends.docker import DockerBackend, default_backend

OutputHandler = Callable[[str], "Awaitable[None] | None"]
"""Streaming callback: receives each chunk of output as it arrives (sync or async)."""
ResultHandler = Callable[[Result], "Awaitable[None] | None"]
ErrorHandler = Callable[[ExecutionError], "Awaitable[None] | None"]

_HANDSHAKE_TIMEOUT = 30.0
# Extra seconds the host waits past a call's own timeout before it gives up on the agent.
_HOST_GRACE = 15.0
_LANGUAGE_ALIASES = language_aliases()


class _CallTimeout(Exception):
    """Queued into a call when the host stops waiting for it."""


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if inspect.isawaitable(value):
        await value


class BoundedText:
    """Keeps the head and tail of a stream within ``limit`` characters; counts the rest."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head: list[str] = []
        self.head_size = 0
        self.tail: collections.deque[str] = collections.deque()
        self.tail_size = 0
        self.dropped = 0

    def add(self, text: str) -> None:
        room = self.head_limit - self.head_size
        if room > 0:
            part = text[:room]
            self.head.append(part)
            self.head_size += len(part)
            text = text[room:]
            if not text:
                return
        self.tail.append(text)
        self.tail_size += len(text)
        while self.tail_size > self.tail_limit:
            excess = self.tail_size - self.tail_limit
            first = self.tail[0]
            if len(first) <= excess:
                self.tail.popleft()
                self.tail_size -= len(first)
                self.dropped += len(first)
            else:
                self.tail[0] = first[excess:]
                self.tail_size -= excess
                self.dropped += excess

    def marker(self) -> str:
        return f"\n[... {self.dropped} characters omitted by e2b-tools to bound memory ...]\n"

    def chunks(self) -> list[str]:
        middle = [self.marker()] if self.dropped else []
        return [*self.head, *middle, *self.tail]

    def text(self) -> str:
        return "".join(self.chunks())


class AsyncSandbox:
    """A running sandbox: an isolated container with a long-lived agent inside.

    Create one with :meth:`create` (or re-attach with :meth:`connect`), use it, and
    kill it (``async with`` does that for you).

    Example:
        >>> async with await AsyncSandbox.create() as sbx:  # doctest: +SKIP
        ...     execution = await sbx.run_code("1 + 1")
        ...     execution.text
        '2'
    """

    def __init__(
        self,
        *,
        sandbox_id: str,
        container_id: str,
        image: str,
        config: SandboxConfig,
        backend: DockerBackend,
        connection: AgentConnection,
    ) -> None:
        self._sandbox_id = sandbox_id
        self._container_id = container_id
        self._image = image
        self._config = config
        self._backend = backend
        self._conn = connection
        self._killed = False
        self._loop = asyncio.get_running_loop()
        self._reconnect_lock = asyncio.Lock()
        self.commands = AsyncCommands(self)
        """Shell commands: ``await sbx.commands.run("ls")``."""
        self.files = AsyncFiles(self)
        """Files: ``await sbx.files.write(path, data)``, ``read``, ``list``, ..."""

    # -- identity ----------------------------------------------------------------
    @property
    def sandbox_id(self) -> str:
        """This sandbox's id (pass it to :meth:`connect`)."""
        return self._sandbox_id

    @property
    def container_id(self) -> str:
        """The Docker container's id."""
        return self._container_id

    @property
    def image(self) -> str:
        """The image the sandbox runs."""
        return self._image

    @property
    def config(self) -> SandboxConfig:
        """The configuration the sandbox was created with."""
        return self._config

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this sandbox's connection lives on; use it only from there."""
        return self._loop

    def __repr__(self) -> str:
        return f"<AsyncSandbox {self._sandbox_id} image={self._image!r}>"

    # -- lifecycle ---------------------------------------------------------------
    @classmethod
    async def create(
        cls,
        image: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        envs: dict[str, str] | None = None,
        cpu: float | None = 1.0,
        memory: str | int | None = "1g",
        network: NetworkMode = "none",
        metadata: dict[str, str] | None = None,
        *,
        config: SandboxConfig | None = None,
        backend: DockerBackend | None = None,
    ) -> AsyncSandbox:
        """Start a new sandbox and wait until its agent answers.

        Args:
            image: Image to run; default ``e2b-tools/sandbox:<version>``. Any image with
                ``python3`` works: the agent is injected when the image lacks it.
            timeout: Lifetime in seconds; the sandbox removes itself at the deadline.
            envs: Environment variables for all code and commands.
            cpu: CPU cores (``None``: unlimited).
            memory: Memory limit such as ``"512m"`` (``None``: unlimited).
            network: ``"none"`` (default) or ``"full"``.
            metadata: Labels returned by :meth:`list`.
            config: Full configuration; the other arguments override its fields.
            backend: Docker backend to use (default: the engine of ``DOCKER_HOST``).

        Raises:
            ImageNotFoundError: The image does not exist (the message says how to build).
            EngineUnavailableError: No Docker Engine answers.
        """
        from .images import DEFAULT_IMAGE

        base = config or SandboxConfig()
        try:
            cfg = _merge_config(base, image, timeout, envs, cpu, memory, network, metadata)
        except ValueError as exc:
            raise InvalidArgumentError(f"invalid sandbox settings: {exc}") from exc
        backend = backend or default_backend()
        image_name = cfg.image or DEFAULT_IMAGE
        sandbox_id = secrets.token_hex(6)
        container_id = await asyncio.to_thread(backend.create, sandbox_id, cfg, image_name)
        handshake: asyncio.Future[Message] | None = None
        try:
            sock = await asyncio.to_thread(backend.attach, container_id)
            conn = await AgentConnection.open(sock, sandbox_id)
            # Send the hello before starting: the agent reads it as soon as it runs.
            handshake = asyncio.ensure_future(conn.handshake(_HANDSHAKE_TIMEOUT))
            await asyncio.to_thread(backend.start, container_id, sandbox_id)
            await handshake
        except BaseException:
            if handshake is not None and not handshake.done():
                handshake.cancel()
            await asyncio.to_thread(backend.kill, container_id)
            raise
        return cls(
            sandbox_id=sandbox_id,
            container_id=container_id,
            image=image_name,
            config=cfg,
            backend=backend,
            connection=conn,
        )

    @classmethod
    async def connect(
        cls, sandbox_id: str, *, backend: DockerBackend | None = None
    ) -> AsyncSandbox:
        """Attach to a running sandbox by id (from this or another process).

        Raises:
            SandboxNotFoundError: No running sandbox has this id.
        """
        backend = backend or default_backend()
        info = await asyncio.to_thread(backend.find, sandbox_id)
        conn = await cls._open_connection(backend, info["Id"], sandbox_id)
        labels = info["Config"].get("Labels") or {}
        import json

        cfg = SandboxConfig(
            image=info["Config"].get("Image"),
            metadata=json.loads(labels.get("e2b-tools.metadata") or "{}"),
        )
        return cls(
            sandbox_id=sandbox_id,
            container_id=info["Id"],
            image=str(info["Config"].get("Image")),
            config=cfg,
            backend=backend,
            connection=conn,
        )

    @staticmethod
    async def _open_connection(
        backend: DockerBackend, container_id: str, sandbox_id: str
    ) -> AgentConnection:
        sock = await asyncio.to_thread(backend.attach, container_id)
        conn = await AgentConnection.open(sock, sandbox_id)
        await conn.handshake(_HANDSHAKE_TIMEOUT)
        return conn

    @classmethod
    async def list(
        cls,
        metadata: dict[str, str] | None = None,
        *,
        backend: DockerBackend | None = None,
    ) -> list[SandboxInfo]:
        """Running sandboxes, optionally only those whose metadata contains ``metadata``."""
        backend = backend or default_backend()
        summaries = await asyncio.to_thread(backend.list_containers)
        infos = [backend.info_from_summary(s) for s in summaries]
        if metadata:
            infos = [i for i in infos if all(i.metadata.get(k) == v for k, v in metadata.items())]
        return infos

    async def kill(self) -> bool:
        """Stop and remove the sandbox; False if it was already gone. Idempotent."""
        self._killed = True
        await self._conn.close()
        return await asyncio.to_thread(self._backend.kill, self._container_id)

    async def is_running(self) -> bool:
        """Whether the container still runs."""
        info = await asyncio.to_thread(self._backend.inspect, self._container_id)
        return bool(info and info["State"].get("Running"))

    async def set_timeout(self, timeout: float) -> None:
        """Move the sandbox's deadline to ``timeout`` seconds from now."""
        if timeout <= 0:
            raise InvalidArgumentError("timeout must be > 0 seconds")
        await self._request("set_timeout", {"deadline": time.time() + timeout}, 30.0)

    async def get_info(self) -> SandboxInfo:
        """What the engine knows of this sandbox."""
        info = await asyncio.to_thread(self._backend.inspect, self._container_id)
        if info is None:
            raise SandboxGoneError("the sandbox no longer exists", sandbox_id=self.sandbox_id)
        summary = {
            "Id": info["Id"],
            "Image": info["Config"].get("Image"),
            "Labels": info["Config"].get("Labels"),
            "State": info["State"].get("Status"),
        }
        result = self._backend.info_from_summary(summary)
        started = info["State"].get("StartedAt")
        if started:
            result.started_at = dt.datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00")
        return result

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.kill()

    # -- requests ----------------------------------------------------------------
    async def _connection(self) -> AgentConnection:
        if not self._conn.closed:
            return self._conn
        async with self._reconnect_lock:
            if not self._conn.closed:
                return self._conn
            if not self._killed:
                info = await asyncio.to_thread(self._backend.inspect, self._container_id)
                if info is not None and info["State"].get("Running"):
                    # The stream dropped but the sandbox lives: nothing was in flight
                    # on the new stream, so re-attaching is safe.
                    self._conn = await self._open_connection(
                        self._backend, self._container_id, self._sandbox_id
                    )
                    return self._conn
            raise SandboxGoneError(await self._gone_reason(), sandbox_id=self._sandbox_id)

    async def _gone_reason(self) -> str:
        if self._killed:
            return "the sandbox was killed; create a new one"
        info = await asyncio.to_thread(self._backend.inspect, self._container_id)
        log = self._conn.agent_log
        if any("deadline" in line for line in log):
            return (
                f"the sandbox reached its timeout of {self._config.timeout:g}s and removed "
                "itself; create a new one (pass timeout= or call set_timeout())"
            )
        if info is None:
            return "the sandbox's container no longer exists (killed or removed); create a new one"
        state = info["State"]
        why = "killed for running out of memory" if state.get("OOMKilled") else "stopped"
        return (
            f"the sandbox's container {why} (status {state.get('Status')}, exit code "
            f"{state.get('ExitCode')}); create a new one"
        )

    async def _send(self, op: str, fields: dict[str, Any]) -> Call:
        conn = await self._connection()
        try:
            return await conn.send(op, **fields)
        except SandboxGoneError:
            raise SandboxGoneError(await self._gone_reason(), sandbox_id=self._sandbox_id) from None

    async def _events(self, call: Call, timeout: float | None) -> AsyncIterator[Message]:
        """Yield ``call``'s events up to ``done``, bounded by ``timeout`` overall."""
        timer = None
        if timeout is not None:
            timer = asyncio.get_running_loop().call_later(timeout, call.put, _CallTimeout())
        done = False
        try:
            while True:
                item = await call.get()
                if isinstance(item, _CallTimeout):
                    self._conn.forget(call)
                    # Best effort: stop the work the agent may still be doing for it.
                    with contextlib.suppress(SandboxError):
                        await self._conn.send("cancel", target=call.id)
                    raise SandboxTimeoutError(
                        f"the sandbox did not answer within {timeout:g}s",
                        sandbox_id=self._sandbox_id,
                    )
                if isinstance(item, SandboxGoneError):
                    raise SandboxGoneError(
                        await self._gone_reason()
                        + " (the call was in flight and was not retried: it may have run)",
                        sandbox_id=self._sandbox_id,
                    ) from None
                if isinstance(item, BaseException):
                    raise item
                done = item.get("type") == "done"
                yield item
                if done:
                    return
        finally:
            if timer is not None:
                timer.cancel()
            if not done:
                # The caller stopped listening: drop whatever else arrives for the call.
                self._conn.forget(call)

    async def _request(
        self, op: str, fields: dict[str, Any], timeout: float | None, path: str | None = None
    ) -> dict[str, Any]:
        """A request whose only interesting event is ``done`` (or ``error``)."""
        call = await self._send(op, fields)
        error: Message | None = None
        value: dict[str, Any] = {}
        async for event in self._events(call, timeout):
            if event["type"] == "error":
                error = event
            elif event["type"] == "done":
                value = event.get("value") or {}
        if error is not None:
            raise error_from_event(error, self._sandbox_id, path)
        return value

    # -- code --------------------------------------------------------------------
    async def create_code_context(
        self, language: str = "python", cwd: str | None = None
    ) -> Context:
        """Start a new code context: its own process, variables and working directory.

        Two contexts never see each other's variables. Pass the result as
        ``run_code(..., context=ctx)``.
        """
        lang = _LANGUAGE_ALIASES.get(language.lower(), language.lower())
        fields: dict[str, Any] = {"language": lang}
        if cwd is not None:
            fields["cwd"] = cwd
        try:
            value = await self._request("create_context", fields, 60.0, cwd)
        except SandboxError as exc:
            raise InvalidArgumentError(exc.message, sandbox_id=self._sandbox_id) from None
        return Context(**value)

    async def list_code_contexts(self) -> builtins.list[Context]:
        """The sandbox's code contexts, default ones included once they have started."""
        value = await self._request("list_contexts", {}, 30.0)
        return [Context(**c) for c in value.get("contexts", [])]

    async def restart_code_context(self, context: Context) -> Context:
        """Kill and restart a context: its state is lost; running calls on it fail."""
        value = await self._request("restart_context", {"context_id": context.id}, 60.0)
        return Context(**value)

    async def remove_code_context(self, context: Context) -> None:
        """Kill a context and forget it."""
        await self._request("remove_context", {"context_id": context.id}, 60.0)

    async def run_code(
        self,
        code: str,
        language: str = "python",
        *,
        context: Context | None = None,
        timeout: float | None = DEFAULT_CODE_TIMEOUT,
        envs: dict[str, str] | None = None,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
        on_result: ResultHandler | None = None,
        on_error: ErrorHandler | None = None,
    ) -> Execution:
        """Run code in the sandbox's context for ``language``.

        For stateful languages (Python, JavaScript, TypeScript, bash) variables,
        imports and the working directory persist across calls, and a trailing
        expression's value comes back as the main result (``execution.text``).
        Stateless languages (C, C++; Java, Go, Rust, Ruby, R in the full image) write,
        build and run a fresh program per call. An exception in the code, a failed
        compile or a non-zero exit does not raise here: it is in ``execution.error``.

        Args:
            code: Source to run.
            language: A language or alias from ``docs/languages.md`` (``"python"``,
                ``"js"``, ``"ts"``, ``"bash"``, ``"c"``, ``"go"``, ...). One the image
                lacks raises an error listing the ones it has.
            context: A context from :meth:`create_code_context`; default: the
                sandbox's default context for ``language``.
            timeout: Seconds before the code is interrupted (KeyboardInterrupt, then a
                context restart if it does not stop). ``None``: no limit.
            envs: Environment variables for this call only.
            on_stdout / on_stderr: Called with each chunk of output as it arrives.
            on_result / on_error: Called with each result / the error as it arrives.

        Raises:
            SandboxTimeoutError: The code ran past ``timeout``; ``.execution`` holds the
                output so far and the message says whether the context's state was kept.
            SandboxGoneError: The sandbox died.
        """
        execution, _ = await self._run_code(
            code,
            language,
            context=context,
            timeout=timeout,
            envs=envs,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            on_result=on_result,
            on_error=on_error,
        )
        return execution

    async def _run_code(
        self,
        code: str,
        language: str = "python",
        *,
        context: Context | None = None,
        timeout: float | None = DEFAULT_CODE_TIMEOUT,
        envs: dict[str, str] | None = None,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
        on_result: ResultHandler | None = None,
        on_error: ErrorHandler | None = None,
        spill: dict[str, Any] | None = None,
    ) -> tuple[Execution, dict[str, Any]]:
        """:meth:`run_code`, plus the ``done`` value (``spill`` as in the protocol)."""
        if not isinstance(code, str):
            raise InvalidArgumentError("code must be a string")
        lang = _LANGUAGE_ALIASES.get(language.lower(), language.lower())
        if context is not None:
            lang = context.language
        available = self._conn.hello.get("languages") or ["python"]
        if lang not in available:
            raise InvalidArgumentError(
                _languages.unavailable(language, available), sandbox_id=self._sandbox_id
            )
        if timeout is not None and timeout <= 0:
            raise InvalidArgumentError("timeout must be > 0 seconds or None")
        fields: dict[str, Any] = {"code": code, "language": lang, "timeout": timeout}
        if context is not None:
            fields["context_id"] = context.id
        if envs:
            fields["envs"] = {str(k): str(v) for k, v in envs.items()}
        if spill:
            fields["spill"] = spill
        started = time.monotonic()
        stdout = BoundedText(self._config.output_limit)
        stderr = BoundedText(self._config.output_limit)
        execution = Execution()
        done: dict[str, Any] = {}
        host_timeout = (
            None if timeout is None else timeout + self._config.interrupt_grace + _HOST_GRACE
        )
        call = await self._send("run_code", fields)
        try:
            async for event in self._events(call, host_timeout):
                kind = event["type"]
                if kind == "stdout":
                    stdout.add(event["text"])
                    if on_stdout:
                        await _maybe_await(on_stdout(event["text"]))
                elif kind == "stderr":
                    stderr.add(event["text"])
                    if on_stderr:
                        await _maybe_await(on_stderr(event["text"]))
                elif kind == "result":
                    result = Result.from_mime_bundle(
                        event.get("data") or {}, bool(event.get("is_main_result"))
                    )
                    execution.results.append(result)
                    if on_result:
                        await _maybe_await(on_result(result))
                elif kind == "error":
                    execution.error = ExecutionError(
                        name=str(event.get("name", "Error")),
                        value=str(event.get("value", "")),
                        traceback=str(event.get("traceback", "")),
                    )
                    if on_error:
                        await _maybe_await(on_error(execution.error))
                elif kind == "done":
                    done = event.get("value") or {}
        finally:
            execution.logs.stdout = stdout.chunks()
            execution.logs.stderr = stderr.chunks()
            execution.execution_time = time.monotonic() - started
        if execution.error is not None and execution.error.name == "ContextNotFound":
            raise InvalidArgumentError(execution.error.value, sandbox_id=self._sandbox_id)
        execution.execution_count = done.get("execution_count")
        execution.context_restarted = bool(done.get("context_restarted"))
        timed_out = done.get("timed_out")
        if timed_out == "interrupted":
            raise SandboxTimeoutError(
                f"run_code exceeded timeout={timeout:g}s and was interrupted with "
                "KeyboardInterrupt (SIGINT); the context's variables were kept. Pass a larger "
                "timeout= to run_code() if the code needs more time",
                sandbox_id=self._sandbox_id,
                execution=execution,
            )
        if timed_out == "restarted":
            raise SandboxTimeoutError(
                f"run_code exceeded timeout={timeout:g}s and did not stop on "
                "KeyboardInterrupt, so its context was killed and restarted: variables "
                "and imports were lost. Pass a larger timeout= to run_code() if the code "
                "needs more time",
                sandbox_id=self._sandbox_id,
                execution=execution,
            )
        if timed_out == "killed":
            raise SandboxTimeoutError(
                f"run_code exceeded timeout={timeout:g}s and the {lang} program was killed. "
                "Pass a larger timeout= to run_code() if it needs more time",
                sandbox_id=self._sandbox_id,
                execution=execution,
            )
        return execution, done


def _merge_config(
    base: SandboxConfig,
    image: str | None,
    timeout: float,
    envs: dict[str, str] | None,
    cpu: float | None,
    memory: str | int | None,
    network: NetworkMode,
    metadata: dict[str, str] | None,
) -> SandboxConfig:
    return SandboxConfig.model_validate(
        {
            **base.model_dump(),
            "image": image if image is not None else base.image,
            "timeout": timeout,
            "envs": {**base.envs, **(envs or {})},
            "cpu": cpu,
            "memory": memory,
            "network": network,
            "metadata": {**base.metadata, **(metadata or {})},
        }
    )


class AsyncCommands:
    """Shell commands in a sandbox (``sandbox.commands``)."""

    def __init__(self, sandbox: AsyncSandbox) -> None:
        self._sbx = sandbox

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
    ) -> CommandResult | AsyncCommandHandle:
        """Run ``cmd`` with bash (``sh`` if the image has no bash) and wait for it.

        The command runs in its own process group with stdin closed (``stdin=True``
        gives it a pipe to feed with :meth:`send_stdin`); at ``timeout`` the whole
        group is killed (``None``: no limit).

        With ``background=True`` it returns at once with a handle (``pid``,
        ``wait()``, ``kill()``, ``send_stdin()``); the process keeps running across
        other calls. Pass ``timeout=None`` for servers that should run until killed.

        Raises:
            CommandExitError: The command exited non-zero. As in E2B, the exception
                carries the whole result: ``.stdout``, ``.stderr``, ``.exit_code``.
            SandboxTimeoutError: It ran past ``timeout``; ``.result`` holds its output.
        """
        if background:
            started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            task = asyncio.ensure_future(
                self._run(
                    cmd, cwd, envs, timeout, on_stdout, on_stderr, stdin=stdin, started=started
                )
            )
            pending: set[asyncio.Future[Any]] = {started, task}
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if not started.done():
                await task  # it ended before it started: raises what went wrong
                raise ProtocolError(
                    "the command ended without starting", sandbox_id=self._sbx.sandbox_id
                )
            # Nobody may ever wait() for it: retrieve its outcome so that a sandbox killed
            # under it does not print "Task exception was never retrieved".
            task.add_done_callback(_retrieve)
            return AsyncCommandHandle(self, started.result(), task)
        result, _ = await self._run(
            cmd, cwd, envs, timeout, on_stdout, on_stderr, stdin=stdin, kill_on_cancel=True
        )
        if result.exit_code != 0:
            raise CommandExitError(result, sandbox_id=self._sbx.sandbox_id)
        return result

    async def list(self) -> builtins.list[ProcessInfo]:
        """Commands running in the sandbox (started by any client)."""
        value = await self._sbx._request("list_processes", {}, 30.0)
        return [ProcessInfo(**p) for p in value.get("processes", [])]

    async def kill(self, pid: int) -> bool:
        """Kill a command's whole process group; False if no such command runs."""
        value = await self._sbx._request("kill_process", {"pid": pid}, 30.0)
        return bool(value.get("killed"))

    async def send_stdin(self, pid: int, data: str) -> None:
        """Write to the stdin of a command started with ``stdin=True``."""
        await self._sbx._request("send_stdin", {"pid": pid, "data": data}, 30.0)

    async def close_stdin(self, pid: int) -> None:
        """Close the stdin of a command started with ``stdin=True`` (it sees EOF)."""
        await self._sbx._request("close_stdin", {"pid": pid}, 30.0)

    async def _run(
        self,
        cmd: str,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
        spill: dict[str, Any] | None = None,
        stdin: bool = False,
        started: asyncio.Future[int] | None = None,
        kill_on_cancel: bool = False,
    ) -> tuple[CommandResult, dict[str, Any]]:
        """:meth:`run` without raising on a non-zero exit, plus the ``done`` value.

        With ``kill_on_cancel``, cancelling the wait (``asyncio.timeout``, a cancelled
        task) kills the command's process group too, so nothing keeps running unseen.
        """
        if not isinstance(cmd, str) or not cmd.strip():
            raise InvalidArgumentError("cmd must be a non-empty string")
        if timeout is not None and timeout <= 0:
            raise InvalidArgumentError("timeout must be > 0 seconds or None")
        sbx = self._sbx
        fields: dict[str, Any] = {"cmd": cmd, "timeout": timeout}
        if cwd is not None:
            fields["cwd"] = cwd
        if envs:
            fields["envs"] = {str(k): str(v) for k, v in envs.items()}
        if spill:
            fields["spill"] = spill
        if stdin:
            fields["stdin"] = True
        stdout = BoundedText(sbx.config.output_limit)
        stderr = BoundedText(sbx.config.output_limit)
        error: Message | None = None
        done: dict[str, Any] = {}
        host_timeout = None if timeout is None else timeout + _HOST_GRACE
        pid: int | None = None
        call = await sbx._send("command", fields)
        try:
            async for event in sbx._events(call, host_timeout):
                kind = event["type"]
                if kind == "stdout":
                    stdout.add(event["text"])
                    if on_stdout:
                        await _maybe_await(on_stdout(event["text"]))
                elif kind == "stderr":
                    stderr.add(event["text"])
                    if on_stderr:
                        await _maybe_await(on_stderr(event["text"]))
                elif kind == "started":
                    pid = int(event["pid"])
                    if started is not None and not started.done():
                        started.set_result(pid)
                elif kind == "error":
                    error = event
                elif kind == "done":
                    done = event.get("value") or {}
        except asyncio.CancelledError:
            if kill_on_cancel and pid is not None and not done:
                with contextlib.suppress(SandboxError, asyncio.TimeoutError):
                    await asyncio.wait_for(self.kill(pid), _CANCEL_KILL_TIMEOUT)
            raise
        if error is not None and "exit_code" not in done:
            if error.get("name") in ("FileNotFoundError", "NotADirectoryError"):
                raise InvalidArgumentError(
                    f"cannot run the command: cwd {cwd!r} is not a directory in the sandbox",
                    sandbox_id=sbx.sandbox_id,
                )
            raise error_from_event(error, sbx.sandbox_id)
        result = CommandResult(
            stdout=stdout.text(),
            stderr=stderr.text(),
            exit_code=int(done.get("exit_code", -1)),
            pid=done.get("pid"),
            stdout_truncated=stdout.dropped,
            stderr_truncated=stderr.dropped,
        )
        if done.get("timed_out"):
            result.error = f"killed after timeout={timeout:g}s"
            raise SandboxTimeoutError(
                f"command exceeded timeout={timeout:g}s and its process group was killed; "
                "pass timeout= to commands.run() (None for no limit)",
                sandbox_id=sbx.sandbox_id,
                result=result,
            )
        if result.exit_code != 0:
            result.error = f"exit code {result.exit_code}"
        return result, done


_CANCEL_KILL_TIMEOUT = 5.0


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


class AsyncCommandHandle:
    """A command started with ``background=True``."""

    def __init__(
        self,
        commands: AsyncCommands,
        pid: int,
        task: asyncio.Future[tuple[CommandResult, dict[str, Any]]],
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
        result, _ = await asyncio.shield(self._task)
        if result.exit_code != 0:
            raise CommandExitError(result, sandbox_id=self._commands._sbx.sandbox_id)
        return result

    async def kill(self) -> bool:
        """Kill the command's whole process group."""
        return await self._commands.kill(self._pid)

    async def send_stdin(self, data: str) -> None:
        """Write to the command's stdin (it must run with ``stdin=True``)."""
        await self._commands.send_stdin(self._pid, data)

    async def close_stdin(self) -> None:
        """Close the command's stdin."""
        await self._commands.close_stdin(self._pid)
