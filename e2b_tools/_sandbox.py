"""The asynchronous sandbox API: lifecycle and code (:mod:`e2b_tools._commands` and
:mod:`e2b_tools._files` hold ``sbx.commands`` and ``sbx.files``; :mod:`e2b_tools._sync`
wraps it all for blocking code)."""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
import json
import secrets
import time
from typing import Any

import pydantic

from ._channel import (
    HANDSHAKE_TIMEOUT,
    Channel,
    ErrorHandler,
    OutputHandler,
    ResultHandler,
    execution_error,
)
from ._commands import HOST_GRACE, AsyncCommands
from ._config import (
    DEFAULT_CODE_TIMEOUT,
    DEFAULT_TIMEOUT,
    Network,
    NetworkPolicy,
    SandboxConfig,
    proxied_policy,
    resolve_network,
)
from ._connection import AgentConnection
from ._exceptions import (
    InvalidArgumentError,
    ProtocolError,
    SandboxError,
    SandboxGoneError,
    SandboxTimeoutError,
)
from ._files import AsyncFiles
from ._models import Context, Execution, NetworkDecision, SandboxInfo, SaveOutput
from .agent import languages as _languages
from .agent.protocol import Message
from .backends import Backend
from .backends.docker import LABEL_CONFIG, LABEL_METADATA, default_backend


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
        backend: Backend,
        connection: AgentConnection,
    ) -> None:
        self._sandbox_id = sandbox_id
        self._container_id = container_id
        self._image = image
        self._config = config
        self._backend = backend
        self._channel = Channel(
            backend=backend,
            container_id=container_id,
            sandbox_id=sandbox_id,
            config=config,
            connection=connection,
        )
        self._loop = asyncio.get_running_loop()
        self.commands = AsyncCommands(self, self._channel)
        """Shell commands: ``await sbx.commands.run("ls")``."""
        self.files = AsyncFiles(self, self._channel)
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
        network: Network | dict[str, builtins.list[str]] = "none",
        metadata: dict[str, str] | None = None,
        *,
        allow_internet_access: bool | None = None,
        config: SandboxConfig | None = None,
        backend: Backend | None = None,
    ) -> AsyncSandbox:
        """Start a new sandbox and wait until its agent answers.

        Args:
            image: Image to run; default ``e2b-tools/sandbox:<version>``. Any image with
                ``python3`` works: the agent is injected when the image lacks it.
            timeout: Lifetime in seconds; the sandbox removes itself at the deadline.
            envs: Environment variables for all code and commands.
            cpu: CPU cores (``None``: unlimited).
            memory: Memory limit such as ``"512m"`` (``None``: unlimited).
            network: ``"none"`` (default: no network, for the sandbox's life), a policy
                (:class:`NetworkPolicy`, or E2B's ``{"allow_out": [...], "deny_out":
                [...]}``) that an egress proxy outside the sandbox enforces, or
                ``"full"`` (the public internet through the proxy; host, private and
                metadata addresses stay blocked). See ``docs/network.md``.
            metadata: Labels returned by :meth:`list`.
            allow_internet_access: E2B's switch: ``True`` turns the default ``"none"``
                into ``"full"``; ``False`` means no network (with a policy: adds
                :data:`ALL_TRAFFIC` to its ``deny_out``).
            config: Full configuration; the other arguments override its fields.
            backend: Docker backend to use (default: the engine of ``DOCKER_HOST``).

        Raises:
            ImageNotFoundError: The image does not exist (the message says how to build).
            EngineUnavailableError: No Docker Engine answers.
        """
        from .images.names import DEFAULT_IMAGE

        base = config or SandboxConfig()
        try:
            if network == "none" and config is not None:
                network = config.network
            net = resolve_network(network, allow_internet_access)
            cfg = _merge_config(base, image, timeout, envs, cpu, memory, net, metadata)
        except ValueError as exc:
            raise InvalidArgumentError(f"invalid sandbox settings: {_one_line(exc)}") from None
        backend = backend or default_backend()
        image_name = cfg.image or DEFAULT_IMAGE
        sandbox_id = secrets.token_hex(6)
        container_id = await _created(backend, sandbox_id, cfg, image_name)
        handshake: asyncio.Future[Message] | None = None
        try:
            conn = AgentConnection(await backend.open_transport(container_id), sandbox_id)
            # Send the hello before starting: the agent reads it as soon as it runs.
            handshake = asyncio.ensure_future(conn.handshake(HANDSHAKE_TIMEOUT))
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
    async def connect(cls, sandbox_id: str, *, backend: Backend | None = None) -> AsyncSandbox:
        """Attach to a running sandbox by id (from this or another process).

        Raises:
            SandboxNotFoundError: No running sandbox has this id.
        """
        backend = backend or default_backend()
        info = await asyncio.to_thread(backend.find, sandbox_id)
        conn = await Channel.open(backend, info["Id"], sandbox_id)
        labels = info["Config"].get("Labels") or {}
        try:
            cfg = SandboxConfig.model_validate_json(labels.get(LABEL_CONFIG) or "")
        except ValueError:  # made by an older version: what the labels still say
            cfg = SandboxConfig(
                image=info["Config"].get("Image"),
                metadata=json.loads(labels.get(LABEL_METADATA) or "{}"),
            )
        return cls(
            sandbox_id=sandbox_id,
            container_id=info["Id"],
            image=str(info["Config"].get("Image")),
            config=cfg,
            backend=backend,
            connection=conn,
        )

    @classmethod
    async def list(
        cls,
        metadata: dict[str, str] | None = None,
        *,
        backend: Backend | None = None,
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
        await self._channel.close()
        return await asyncio.to_thread(self._backend.kill, self._container_id)

    async def is_alive(self) -> bool:
        """Whether the sandbox can be reached: its stream is open, or re-attached now."""
        return await self._channel.alive()

    async def is_running(self) -> bool:
        """Whether the container still runs (asks the engine)."""
        info = await asyncio.to_thread(self._backend.inspect, self._container_id)
        return bool(info and info["State"].get("Running"))

    async def set_timeout(self, timeout: float) -> None:
        """Move the sandbox's deadline to ``timeout`` seconds from now."""
        if timeout <= 0:
            raise InvalidArgumentError("timeout must be > 0 seconds")
        await self._channel.request("set_timeout", {"deadline": time.time() + timeout}, 30.0)

    async def update_network(self, network: Network | dict[str, builtins.list[str]]) -> None:
        """Replace the sandbox's network policy, from its next connection on.

        Works for sandboxes created with a policy or ``"full"``; ``"none"`` is fixed for
        the sandbox's life (it has no network to change). Connections already open
        stay open.

        Example:
            >>> await sbx.update_network({"allow_out": ["pypi.example"]})  # doctest: +SKIP
        """
        try:
            net = resolve_network(network)
        except ValueError as exc:
            raise InvalidArgumentError(f"invalid network policy: {_one_line(exc)}") from None
        policy = proxied_policy(net) or NetworkPolicy()
        await asyncio.to_thread(
            self._backend.set_network, self._container_id, self._sandbox_id, policy
        )
        self._config = self._config.model_copy(update={"network": net})

    async def network_log(self, limit: int = 100) -> builtins.list[NetworkDecision]:
        """The egress proxy's last ``limit`` decisions on this sandbox's requests, oldest
        first: what was allowed or denied, and by which rule."""
        entries = await asyncio.to_thread(
            self._backend.network_log, self._container_id, self._sandbox_id, limit
        )
        return [NetworkDecision.model_validate(entry) for entry in entries]

    async def agent_log(self, limit: int | None = 100) -> builtins.list[str]:
        """The agent's own latest log lines, oldest first (``None``: all it keeps, 1000).

        The agent logs its start, each host that connects, deadline changes, context
        restarts and its own failures; the container keeps no other log.

        Example:
            >>> await sbx.agent_log(5)  # doctest: +SKIP
            ['2025-01-01T12:00:00.000Z started: pid 7, python 3.11.2, ...', ...]
        """
        if limit is not None and limit < 0:
            raise InvalidArgumentError("limit must be >= 0 or None")
        try:
            value = await self._channel.request("agent_log", {"limit": limit}, 30.0)
        except ProtocolError as exc:
            if "unknown op 'agent_log'" not in exc.message:
                raise
            raise ProtocolError(
                "this sandbox's agent is older than agent_log and keeps no log; rebuild "
                "the image (`e2b-tools image build`) for new sandboxes to have it",
                sandbox_id=self._sandbox_id,
            ) from None
        return [str(line) for line in value.get("lines", [])]

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

    @property
    def languages(self) -> builtins.list[str]:
        """Languages this sandbox's image runs (table names; see ``docs/languages.md``)."""
        return list(self._channel.conn.hello.get("languages") or ["python"])

    # -- code --------------------------------------------------------------------
    async def create_code_context(
        self, language: str = "python", cwd: str | None = None
    ) -> Context:
        """Start a new code context: its own process, variables and working directory.

        Two contexts never see each other's variables. Pass the result as
        ``run_code(..., context=ctx)``.
        """
        lang = _languages.resolve(language)
        fields: dict[str, Any] = {"language": lang}
        if cwd is not None:
            fields["cwd"] = cwd
        try:
            value = await self._channel.request("create_context", fields, 60.0, cwd)
        except SandboxError as exc:
            raise InvalidArgumentError(exc.message, sandbox_id=self._sandbox_id) from None
        return Context(**value)

    async def list_code_contexts(self) -> builtins.list[Context]:
        """The sandbox's code contexts, default ones included once they have started."""
        value = await self._channel.request("list_contexts", {}, 30.0)
        return [Context(**c) for c in value.get("contexts", [])]

    async def restart_code_context(self, context: Context) -> Context:
        """Kill and restart a context: its state is lost; running calls on it fail."""
        value = await self._channel.request("restart_context", {"context_id": context.id}, 60.0)
        return Context(**value)

    async def remove_code_context(self, context: Context) -> None:
        """Kill a context and forget it."""
        await self._channel.request("remove_context", {"context_id": context.id}, 60.0)

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
        save_output: SaveOutput | None = None,
    ) -> Execution:
        """Run code in the sandbox's context for ``language``.

        For stateful languages (Python, JavaScript, TypeScript, bash) variables,
        imports and the working directory persist across calls, and a trailing
        expression's value comes back as the main result (``execution.text``).
        Stateless languages (C, C++; Java, Go, Rust, Ruby, R in the full image) write,
        build and run a fresh program per call. An exception in the code, a failed
        compile or a non-zero exit does not raise here: it is in ``execution.error``.
        Cancelling the call (a cancelled task) interrupts the code in the sandbox too.

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
            on_stdout / on_stderr: Called with each chunk of output as it arrives
                (pass one function to both for the output interleaved as printed).
            on_result / on_error: Called with each result / the error as it arrives.
            save_output: Save the whole output (stdout and stderr interleaved) to a
                file in the sandbox once it passes a threshold;
                ``execution.saved_output`` then says where.

        Raises:
            SandboxTimeoutError: The code ran past ``timeout``; ``.execution`` holds the
                output so far and ``.state_kept`` whether the context's state survived.
            SandboxGoneError: The sandbox died.
        """
        if not isinstance(code, str):
            raise InvalidArgumentError("code must be a string")
        lang = context.language if context is not None else _languages.resolve(language)
        if lang not in self.languages:
            raise InvalidArgumentError(
                _languages.unavailable(language, self.languages), sandbox_id=self._sandbox_id
            )
        if timeout is not None and timeout <= 0:
            raise InvalidArgumentError("timeout must be > 0 seconds or None")
        fields: dict[str, Any] = {"code": code, "language": lang, "timeout": timeout}
        if context is not None:
            fields["context_id"] = context.id
        if envs:
            fields["envs"] = {str(k): str(v) for k, v in envs.items()}
        if save_output is not None:
            fields["spill"] = save_output.model_dump()
        started = time.monotonic()
        host_timeout = (
            None if timeout is None else timeout + self._config.interrupt_grace + HOST_GRACE
        )
        outcome = await self._channel.fold(
            "run_code",
            fields,
            host_timeout,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
            on_result=on_result,
            on_error=on_error,
        )
        done = outcome.done
        execution = Execution(
            results=outcome.results,
            error=execution_error(outcome.error),
            execution_count=done.get("execution_count"),
            execution_time=time.monotonic() - started,
            context_restarted=bool(done.get("context_restarted")),
            saved_output=outcome.saved_output,
        )
        execution.logs.stdout = outcome.stdout.chunks()
        execution.logs.stderr = outcome.stderr.chunks()
        if execution.error is not None and execution.error.name == "ContextNotFound":
            raise InvalidArgumentError(execution.error.value, sandbox_id=self._sandbox_id)
        timed_out = done.get("timed_out")
        if timed_out:
            raise SandboxTimeoutError(
                _TIMEOUT_MESSAGES.get(str(timed_out), _TIMEOUT_MESSAGES["killed"]).format(
                    timeout=timeout, language=lang
                ),
                sandbox_id=self._sandbox_id,
                execution=execution,
                state_kept={"interrupted": True, "restarted": False}.get(str(timed_out)),
            )
        return execution


_TIMEOUT_MESSAGES = {
    "interrupted": (
        "run_code exceeded timeout={timeout:g}s and was interrupted with KeyboardInterrupt "
        "(SIGINT); the context's variables were kept. Pass a larger timeout= to run_code() "
        "if the code needs more time"
    ),
    "restarted": (
        "run_code exceeded timeout={timeout:g}s and did not stop on KeyboardInterrupt, so "
        "its context was killed and restarted: variables and imports were lost. Pass a "
        "larger timeout= to run_code() if the code needs more time"
    ),
    "killed": (
        "run_code exceeded timeout={timeout:g}s and the {language} program was killed. "
        "Pass a larger timeout= to run_code() if it needs more time"
    ),
}


_CLEANUPS: set[asyncio.Future[bool]] = set()


async def _created(backend: Backend, sandbox_id: str, cfg: SandboxConfig, image: str) -> str:
    """``backend.create`` in a thread; cancelled meanwhile, what it makes is removed
    (the thread cannot be stopped, so the container would otherwise be left behind)."""
    creating = asyncio.ensure_future(asyncio.to_thread(backend.create, sandbox_id, cfg, image))
    try:
        return await asyncio.shield(creating)
    except asyncio.CancelledError:

        def remove(task: asyncio.Future[str]) -> None:
            if not task.cancelled() and task.exception() is None:
                cleanup = asyncio.ensure_future(asyncio.to_thread(backend.kill, task.result()))
                _CLEANUPS.add(cleanup)  # the loop keeps only weak references to tasks
                cleanup.add_done_callback(_CLEANUPS.discard)

        creating.add_done_callback(remove)
        raise


def _one_line(exc: ValueError) -> str:
    """A validation error as short text: pydantic's field paths and messages only."""
    if not isinstance(exc, pydantic.ValidationError):
        return str(exc)
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _merge_config(
    base: SandboxConfig,
    image: str | None,
    timeout: float,
    envs: dict[str, str] | None,
    cpu: float | None,
    memory: str | int | None,
    network: Network,
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
