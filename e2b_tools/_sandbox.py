"""The asynchronous sandbox API: lifecycle and code (:mod:`e2b_tools._commands` and
:mod:`e2b_tools._files` hold ``sbx.commands`` and ``sbx.files``; :mod:`e2b_tools._sync`
wraps it all for blocking code)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from typing import Any

from typing_extensions import Unpack

from ._channel import (
    HANDSHAKE_TIMEOUT,
    Channel,
)
from ._code import CodeMethods
from ._commands import AsyncCommands
from ._config import (
    ConnectionOptions,
    Network,
    SandboxConfig,
    check_options,
    lifecycle_settings,
    merge_config,
    resolve_network,
    settings_error,
    split_network,
)
from ._connection import AgentConnection
from ._exceptions import (
    InvalidArgumentError,
    SandboxError,
    SandboxNotFoundError,
)
from ._files import AsyncFiles
from ._models import (
    SandboxQuery,
)
from ._observe import get_logger
from ._paginator import AsyncSandboxPaginator
from ._ports import PortForwards
from ._reach import ReachMethods
from ._state import StateMethods
from ._variant import class_method_variant
from .agent.protocol import Message
from .backends import Backend
from .backends.docker import LABEL_CONFIG, LABEL_METADATA, default_backend

E2B_DEFAULT_TEMPLATES = frozenset({"base", "code-interpreter-v1", "code-interpreter"})
"""E2B's names of its default templates; ``create(template=...)`` takes them as the
default image (E2B code often names them)."""


class AsyncSandbox(CodeMethods, ReachMethods, StateMethods):
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
        self._ports = PortForwards(self._channel, self._loop, config.ingress)

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
        timeout: float | None = None,
        metadata: dict[str, str] | None = None,
        envs: dict[str, str] | None = None,
        *,
        cpu: float | None = 1.0,
        memory: str | int | None = "1g",
        network: Network | dict[str, Any] = "none",
        template: str | None = None,
        allow_internet_access: bool | None = None,
        config: SandboxConfig | None = None,
        backend: Backend | None = None,
        lifecycle: dict[str, Any] | None = None,
        secure: bool = True,
        api_key: str | None = None,
        domain: str | None = None,
        debug: bool | None = None,
        request_timeout: float | None = None,
        proxy: Any = None,
    ) -> AsyncSandbox:
        """Start a new sandbox and wait until its agent answers.

        The first four parameters are E2B's, in E2B's order (``template`` is E2B's name
        for ``image``).

        Args:
            image: Image to run; default ``e2b-tools/sandbox:<version>``. Any image with
                ``python3`` works: the agent is injected when the image lacks it.
            timeout: Lifetime in seconds (default: the config's, else 300); the sandbox
                removes itself at the deadline.
            metadata: Labels returned by :meth:`list`.
            envs: Environment variables for all code and commands.
            cpu: CPU cores (``None``: unlimited).
            memory: Memory limit such as ``"512m"`` (``None``: unlimited).
            network: ``"none"`` (default: no network, for the sandbox's life), a policy
                (:class:`NetworkPolicy`, or E2B's ``{"allow_out": [...], "deny_out":
                [...]}``) that an egress proxy outside the sandbox enforces, or
                ``"full"`` (the public internet through the proxy; host, private and
                metadata addresses stay blocked). See ``docs/network.md``. E2B's
                ingress keys may join the dict: ``allow_public_traffic=False`` (then
                ``get_host`` wants :attr:`traffic_access_token`) and
                ``mask_request_host``; alone they leave the network ``"none"``.
            template: E2B's name for ``image`` (give one of the two, or both the same);
                E2B's default templates (``"base"``, ``"code-interpreter-v1"``) mean the
                default image.
            allow_internet_access: E2B's switch: ``True`` turns the default ``"none"``
                into ``"full"``; ``False`` means no network (with a policy: adds
                :data:`ALL_TRAFFIC` to its ``deny_out``).
            config: Full configuration; the other arguments override its fields (``cpu``,
                ``memory`` and ``network`` only when given a value other than their
                default).
            backend: Docker backend to use (default: the engine of ``DOCKER_HOST``).
            lifecycle: E2B's ``{"on_timeout": "pause" | "kill", "auto_resume": bool}``
                (``on_timeout`` may also be ``{"action": ..., "keep_memory": ...}``):
                ``"pause"`` freezes the sandbox at its deadline instead of removing it,
                until :meth:`connect` (or, with ``auto_resume``, its next use) resumes
                it. Memory is always kept.
            secure, api_key, domain, debug, request_timeout, proxy: E2B's cloud
                connection settings, accepted so E2B code runs unchanged, and unused:
                the sandbox runs on your engine, reached over a private channel no one
                else can open (no API key, no domain, no access token).

        Raises:
            ImageNotFoundError: The image does not exist (the message says how to build).
            EngineUnavailableError: No Docker Engine answers.
        """
        from .images.names import DEFAULT_IMAGE

        if template in E2B_DEFAULT_TEMPLATES:
            template = None  # E2B's own default templates: the default image here
        if template is not None:
            if image is not None and image != template:
                raise InvalidArgumentError(
                    f"image={image!r} and template={template!r} differ; template is E2B's "
                    "name for image: pass one of them"
                )
            image = template
        base = config or SandboxConfig()
        try:
            egress, ingress = split_network(network)
            if egress is None or (egress == "none" and config is not None):
                egress = base.network  # not given: the config's ("none" by default)
            if config is not None:  # the keywords' defaults yield to the config's values
                cpu = base.cpu if cpu == 1.0 else cpu
                memory = base.memory if memory == "1g" else memory
            net = resolve_network(egress, allow_internet_access)
            lifetime = base.timeout if timeout is None else timeout
            cfg = merge_config(base, image, lifetime, envs, cpu, memory, net, metadata, ingress)
            if lifecycle is not None:
                cfg = cfg.model_copy(update=lifecycle_settings(lifecycle))
        except ValueError as exc:
            raise InvalidArgumentError(f"invalid sandbox settings: {settings_error(exc)}") from None
        backend = backend or default_backend()
        image_name = cfg.image or DEFAULT_IMAGE
        sandbox_id = new_sandbox_id()
        started = time.perf_counter()
        container_id = await _created(backend, sandbox_id, cfg, image_name)
        handshake: asyncio.Future[Message] | None = None
        try:
            conn = AgentConnection(await backend.open_transport(container_id), sandbox_id)
            # Send the hello before starting: the agent reads it as soon as it runs.
            handshake = asyncio.ensure_future(conn.handshake(HANDSHAKE_TIMEOUT))
            await asyncio.to_thread(backend.start, container_id, sandbox_id)
            await handshake
        except BaseException:
            if handshake is not None:
                if handshake.done():
                    if not handshake.cancelled():
                        handshake.exception()  # retrieved: the start's failure is raised
                else:
                    handshake.cancel()
            await asyncio.to_thread(backend.kill, container_id)
            raise
        sbx = cls(
            sandbox_id=sandbox_id,
            container_id=container_id,
            image=image_name,
            config=cfg,
            backend=backend,
            connection=conn,
        )
        sbx._channel.log.info(
            "created from %s in %.0f ms (timeout %gs, network %s)",
            image_name,
            (time.perf_counter() - started) * 1000,
            cfg.timeout,
            cfg.network if isinstance(cfg.network, str) else "policy",
        )
        return sbx

    @classmethod
    async def beta_create(
        cls,
        image: str | None = None,
        timeout: float | None = None,
        metadata: dict[str, str] | None = None,
        envs: dict[str, str] | None = None,
        *,
        auto_pause: bool = False,
        cpu: float | None = 1.0,
        memory: str | int | None = "1g",
        network: Network | dict[str, Any] = "none",
        template: str | None = None,
        allow_internet_access: bool | None = None,
        config: SandboxConfig | None = None,
        backend: Backend | None = None,
    ) -> AsyncSandbox:
        """E2B's ``beta_create``: :meth:`create` with ``auto_pause``: at its deadline the
        sandbox freezes, memory and files kept, instead of being removed, until
        :meth:`connect` resumes it (``lifecycle={"on_timeout": "pause"}``)."""
        return await cls.create(
            image,
            timeout,
            metadata,
            envs,
            cpu=cpu,
            memory=memory,
            network=network,
            template=template,
            allow_internet_access=allow_internet_access,
            config=config,
            backend=backend,
            lifecycle={"on_timeout": "pause"} if auto_pause else None,
        )

    @staticmethod
    async def _cls_connect(
        cls: type[AsyncSandbox],
        sandbox_id: str,
        timeout: float | None = None,
        *,
        backend: Backend | None = None,
        **options: Unpack[ConnectionOptions],
    ) -> AsyncSandbox:
        check_options(dict(options))
        backend = backend or default_backend()
        info = await asyncio.to_thread(backend.find, sandbox_id)
        resumed = bool(info["State"].get("Paused"))
        if resumed:
            await asyncio.to_thread(backend.unpause, info["Id"], sandbox_id)
        sbx = await cls._attached(info, sandbox_id, backend)
        resumed = resumed or bool(sbx._channel.conn.hello.get("auto_paused"))
        await sbx._restart_clock(timeout, resumed)
        sbx._channel.log.info("connected%s", " (resumed)" if resumed else "")
        return sbx

    @class_method_variant(_cls_connect)
    async def connect(
        self, timeout: float | None = None, **options: Unpack[ConnectionOptions]
    ) -> AsyncSandbox:
        """Attach to a sandbox by id (from this or another process), resuming it if paused.

        ``AsyncSandbox.connect(sandbox_id, timeout=None)`` returns a new object;
        ``await sbx.connect()`` resumes (or re-attaches) this one and returns it.
        A resumed sandbox's deadline moves by the time it was paused.

        Args:
            sandbox_id: The sandbox's id (class form only).
            timeout: Seconds from now the sandbox may live: a resumed sandbox gets
                exactly this; a running one only if it is later than its deadline
                (as in E2B). ``None``: keep the deadline.
            backend: Docker backend to use (class form only).
            options: E2B's connection settings (``api_key``, ``domain``,
                ``request_timeout``, ...): accepted, unused (:class:`ConnectionOptions`).

        Raises:
            SandboxNotFoundError: No running or paused sandbox has this id.

        Example:
            >>> await sbx.pause()  # doctest: +SKIP
            >>> sbx = await AsyncSandbox.connect(sbx.sandbox_id)  # doctest: +SKIP
        """
        check_options(dict(options))
        info = await asyncio.to_thread(self._backend.inspect, self._container_id)
        if info is None or not info["State"].get("Running"):
            raise SandboxNotFoundError(
                "the sandbox no longer runs (it was killed or reached its timeout)",
                sandbox_id=self._sandbox_id,
            )
        resumed = bool(info["State"].get("Paused"))
        if resumed:
            await asyncio.to_thread(self._backend.unpause, self._container_id, self._sandbox_id)
        else:  # paused by its deadline (auto-pause)?
            resumed = bool((await self._channel.request("info", {}, 30.0)).get("auto_paused"))
        await self._restart_clock(timeout, resumed)
        return self

    async def _restart_clock(self, timeout: float | None, resumed: bool) -> None:
        """After a resume, start the agent's deadline clock again (moved by the time
        paused); with ``timeout``, set the deadline as :meth:`connect` says."""
        if timeout is not None and timeout <= 0:
            raise InvalidArgumentError("timeout must be > 0 seconds or None")
        fields: dict[str, Any] = {"pause": False}
        if timeout is not None:
            deadline = time.time() + timeout
            current = (await self._channel.connection()).hello.get("deadline")
            if resumed or current is None or deadline > float(current):
                fields["deadline"] = deadline
        if resumed or "deadline" in fields:
            await self._channel.request("set_timeout", fields, 30.0)

    @classmethod
    async def _attached(
        cls, info: dict[str, Any], sandbox_id: str, backend: Backend
    ) -> AsyncSandbox:
        """An object for the sandbox of inspect data ``info``, its agent attached."""
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
    def list(
        cls,
        query: SandboxQuery | None = None,
        limit: int | None = None,
        next_token: str | None = None,
        *,
        backend: Backend | None = None,
    ) -> AsyncSandboxPaginator:
        """Sandboxes, running and paused, newest first, in pages (E2B v2's ``list``).

        Args:
            query: Filters: ``SandboxQuery(metadata={...}, state=[SandboxState.PAUSED],
                template=..., started_after=...)``.
            limit: Sandboxes per page (``None``: all in one page).
            next_token: Go on from where an earlier paginator's ``next_token`` was.
            backend: Docker backend to use.

        Example:
            >>> paginator = AsyncSandbox.list(SandboxQuery(metadata={"user": "ada"}))
            >>> infos = await paginator.next_items()  # doctest: +SKIP
        """
        return AsyncSandboxPaginator(query, limit, next_token, backend=backend)

    @staticmethod
    async def _cls_kill(
        cls: type[AsyncSandbox],
        sandbox_id: str,
        *,
        backend: Backend | None = None,
        **options: Unpack[ConnectionOptions],
    ) -> bool:
        check_options(dict(options))
        backend = backend or default_backend()
        try:
            info = await asyncio.to_thread(backend.find, sandbox_id)
        except SandboxNotFoundError:
            return False
        killed = await asyncio.to_thread(backend.kill, info["Id"])
        get_logger("sandbox", sandbox_id).info("killed by id" if killed else "already gone")
        return killed

    @class_method_variant(_cls_kill)
    async def kill(self, **options: Unpack[ConnectionOptions]) -> bool:
        """Stop and remove the sandbox, paused or not; False if it was already gone.

        ``AsyncSandbox.kill(sandbox_id)`` kills a sandbox by id. Idempotent. E2B's
        connection settings (``api_key``, ...) are accepted and unused.
        """
        check_options(dict(options))
        await self._ports.close()
        await self._close_file_urls()
        await self._channel.close()
        killed = await asyncio.to_thread(self._backend.kill, self._container_id)
        self._channel.log.info("killed" if killed else "already gone")
        return killed

    @staticmethod
    async def _cls_pause(
        cls: type[AsyncSandbox],
        sandbox_id: str,
        keep_memory: bool = True,
        *,
        backend: Backend | None = None,
    ) -> bool:
        backend = backend or default_backend()
        info = await asyncio.to_thread(backend.find, sandbox_id)
        if info["State"].get("Paused"):
            return False
        sbx = await cls._attached(info, sandbox_id, backend)
        return await sbx.pause(keep_memory)

    @class_method_variant(_cls_pause)
    async def pause(self, keep_memory: bool = True) -> bool:
        """Freeze the sandbox (``docker pause``): every process stops where it is, memory
        and files are kept, and its timeout clock stops. :meth:`connect` resumes it.

        ``AsyncSandbox.pause(sandbox_id)`` pauses a sandbox by id. Until resumed, calls
        on this object fail. ``keep_memory=False`` (E2B's filesystem-only pause) keeps
        the memory all the same: a paused container always does.

        Returns:
            True if the sandbox got paused, False if it was already paused.

        Example:
            >>> await sbx.pause()  # doctest: +SKIP
            True
            >>> await sbx.connect()  # resumed: variables and processes as they were
        """
        info = await asyncio.to_thread(self._backend.inspect, self._container_id)
        if info is None or not info["State"].get("Running"):
            raise SandboxNotFoundError(
                "the sandbox no longer runs (it was killed or reached its timeout)",
                sandbox_id=self._sandbox_id,
            )
        if info["State"].get("Paused"):
            return False
        # The clock stops first: frozen, the agent's clocks go on, and on waking the
        # agent and its watchdog would find the deadline passed.
        await self._channel.request("set_timeout", {"pause": True}, 30.0)
        await self._channel.conn.close()  # silent while frozen; connect() re-attaches
        try:
            paused = await asyncio.to_thread(
                self._backend.pause, self._container_id, self._sandbox_id
            )
            self._channel.log.info("paused")
            return paused
        except BaseException:
            with contextlib.suppress(SandboxError):
                await self._channel.request("set_timeout", {"pause": False}, 30.0)
            raise

    @class_method_variant(_cls_pause)
    async def beta_pause(self, keep_memory: bool = True) -> bool:
        """E2B's older name of :meth:`pause`."""
        return await self.pause(keep_memory)

    @staticmethod
    async def _cls_set_timeout(
        cls: type[AsyncSandbox],
        sandbox_id: str,
        timeout: float,
        *,
        backend: Backend | None = None,
    ) -> None:
        backend = backend or default_backend()
        info = await asyncio.to_thread(backend.find, sandbox_id)
        if info["State"].get("Paused"):
            raise InvalidArgumentError(
                "the sandbox is paused; connect(sandbox_id, timeout=...) resumes it with "
                "a new timeout",
                sandbox_id=sandbox_id,
            )
        sbx = await cls._attached(info, sandbox_id, backend)
        try:
            await sbx.set_timeout(timeout)
        finally:
            await sbx._channel.conn.close()

    @class_method_variant(_cls_set_timeout)
    async def set_timeout(self, timeout: float) -> None:
        """Move the sandbox's deadline to ``timeout`` seconds from now.

        ``AsyncSandbox.set_timeout(sandbox_id, timeout)`` does it by id.
        """
        if timeout <= 0:
            raise InvalidArgumentError("timeout must be > 0 seconds")
        await self._channel.request("set_timeout", {"deadline": time.time() + timeout}, 30.0)

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.kill()


_CLEANUPS: set[asyncio.Future[bool]] = set()

ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
ID_LENGTH = 20


def new_sandbox_id() -> str:
    """A fresh sandbox id: 20 characters of ``[a-z0-9]`` (103 bits, as long as E2B's and
    valid in a DNS label), so an id is unguessable (``e2b-tools serve`` relies on it
    for the calls E2B's SDKs send without a token)."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


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
