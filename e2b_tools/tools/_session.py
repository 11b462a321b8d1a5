"""One sandbox shared by a toolkit's tools: created lazily (or taken from a pool),
replaced if it dies."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import tenacity

from .. import (
    AsyncSandbox,
    AsyncSandboxPool,
    EngineUnavailableError,
    InvalidArgumentError,
    LoopBridge,
    Sandbox,
    SandboxConfig,
    SandboxError,
    SandboxGoneError,
    SandboxPool,
    background_loop,
)

if TYPE_CHECKING:
    from ..backends import Backend

T = TypeVar("T")

DEFAULT_IDLE_TIMEOUT = 900.0
"""Seconds without a tool call after which a toolkit's own sandbox goes away."""


class SandboxSession:
    """Hands the toolkit's tools one live sandbox.

    The sandbox is created on first use (or given), reused by every call so state
    persists, and replaced by a fresh one if it died; the next tool output then starts
    with a notice that says why and that earlier state was lost. Closing the session
    kills a sandbox it created (never one it was given). With ``pool=`` the sandbox,
    and any replacement, comes from :meth:`AsyncSandboxPool.acquire` instead of a cold
    create; it is the session's like one it created.

    A sandbox the session created lives while it is used: each call moves its deadline
    to ``idle_timeout`` seconds ahead (``None``: the config's fixed ``timeout``), never
    past ``max_lifetime`` seconds after its creation (``None``: no cap). A sandbox you
    give keeps the lifetime you gave it.

    A sandbox's connection belongs to one event loop. The session runs every call on
    that loop (the library's background loop for sandboxes it creates, the given
    sandbox's loop otherwise), so its tools work from sync code and from any event
    loop alike.
    """

    def __init__(
        self,
        sandbox: Sandbox | AsyncSandbox | None = None,
        *,
        config: SandboxConfig | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_lifetime: float | None = None,
        backend: Backend | None = None,
        pool: SandboxPool | AsyncSandboxPool | None = None,
    ) -> None:
        if pool is not None:
            given = {"sandbox": sandbox, "config": config, "backend": backend}
            clash = [arg for arg, value in given.items() if value is not None]
            if clash:
                raise InvalidArgumentError(
                    f"pass {clash[0]}= or pool=, not both: the pool's sandboxes run with the "
                    "pool's config and backend (give those to SandboxPool instead)"
                )
            if isinstance(pool, SandboxPool):
                pool = pool.async_pool
        for name, value in (("idle_timeout", idle_timeout), ("max_lifetime", max_lifetime)):
            if value is not None and value <= 0:
                raise InvalidArgumentError(f"{name} must be > 0 seconds or None")
        if isinstance(sandbox, Sandbox):
            sandbox = sandbox.async_sandbox
        self._sandbox: AsyncSandbox | None = sandbox
        self._owned = sandbox is None
        self._pool = pool
        self._config = pool.config if pool is not None else config or SandboxConfig()
        # The background loop starts on first use, not when a toolkit is merely built.
        self._bridge = LoopBridge(
            sandbox.loop
            if sandbox is not None
            else _pool_loop(pool)
            if pool is not None
            else background_loop
        )
        self._lock: asyncio.Lock | None = None
        self._notice: str | None = None
        self._closed = False
        self._output_prefix = secrets.token_hex(3)
        self._output_ids = itertools.count(1)
        self._idle_timeout = idle_timeout
        self._max_lifetime = max_lifetime
        self._backend = backend
        self._born = 0.0
        self._deadline = float("inf")

    @property
    def sandbox(self) -> AsyncSandbox | None:
        """The current sandbox, if one was created or given."""
        return self._sandbox

    @property
    def config(self) -> SandboxConfig:
        """The configuration of the session's sandbox (the one it would create)."""
        return self._sandbox.config if self._sandbox else self._config

    @property
    def workspace(self) -> str:
        """The sandbox's workspace directory."""
        return (self._sandbox.config if self._sandbox else self._config).workdir

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the sandbox's loop, from whichever loop is running."""
        return await self._bridge.arun(coro)

    def call_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the sandbox's loop and wait for it (not from that loop)."""
        return self._bridge.run(coro)

    async def get(self) -> AsyncSandbox:
        """The live sandbox, created or replaced as needed."""
        if self._closed:
            raise SandboxError("this toolkit was closed; create a new one")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            sbx = self._sandbox
            if sbx is not None and not await sbx.is_alive():
                self._notice = (
                    f"Note: {self._why_gone()}, so a new sandbox was started. Everything "
                    "from before (variables, imports, files) is gone; redo what you need."
                )
                if self._owned:
                    await self._quiet_kill(sbx)
                sbx = None
                self._owned = True
            if sbx is None:
                self._born = time.time()
                self._deadline = self._target(self._born)
                sbx = await self._create(self._deadline - self._born)
                self._sandbox = sbx
            elif self._owned:
                await self._keep_alive(sbx)
            return sbx

    def _target(self, now: float) -> float:
        """The deadline a call at ``now`` gives an owned sandbox."""
        if self._idle_timeout is None:
            return self._born + self._config.timeout
        target = now + self._idle_timeout
        if self._max_lifetime is not None:
            target = min(target, self._born + self._max_lifetime)
        return target

    async def _keep_alive(self, sbx: AsyncSandbox) -> None:
        # Only when half the idle time is used up: most calls cost no extra round trip.
        now = time.time()
        if self._idle_timeout is None or self._deadline - now > self._idle_timeout / 2:
            return
        target = self._target(now)
        if target > self._deadline:
            await sbx.set_timeout(max(target - now, 0.001))
            self._deadline = target

    def _why_gone(self) -> str:
        now = time.time()
        if not self._owned or now < self._deadline - 1:
            return "the sandbox stopped (it was killed, or ran out of memory)"
        if self._max_lifetime is not None and self._deadline >= self._born + self._max_lifetime:
            return f"the sandbox reached its maximum lifetime of {self._max_lifetime:g}s"
        if self._idle_timeout is not None:
            return f"the sandbox was idle for more than {self._idle_timeout:g}s and was removed"
        return f"the sandbox reached its timeout of {self._config.timeout:g}s"

    def next_output_id(self) -> str:
        """A name for a saved output, unique across sessions sharing a sandbox."""
        return f"{self._output_prefix}-{next(self._output_ids)}"

    def take_notice(self) -> str | None:
        """A one-time notice for the model (state lost), if there is one."""
        notice, self._notice = self._notice, None
        return notice

    @tenacity.retry(
        retry=tenacity.retry_if_exception_type((EngineUnavailableError, SandboxGoneError)),
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential(multiplier=0.2, max=2),
        reraise=True,
    )
    async def _create(self, lifetime: float) -> AsyncSandbox:
        # Creating a sandbox is safe to repeat: a failed attempt leaves nothing behind.
        if self._pool is not None:
            return await self._pool.acquire(timeout=lifetime)
        return await AsyncSandbox.create(
            self._config.image,
            lifetime,
            config=self._config,
            cpu=self._config.cpu,
            memory=self._config.memory,
            network=self._config.network,
            backend=self._backend,
        )

    @staticmethod
    async def _quiet_kill(sbx: AsyncSandbox) -> None:
        try:
            await sbx.kill()
        except SandboxError:
            pass

    async def aclose(self) -> None:
        """Kill the sandbox if this session created it. Idempotent."""
        self._closed = True
        sbx, self._sandbox = self._sandbox, None
        if sbx is not None and self._owned:
            await self._quiet_kill(sbx)

    def close(self) -> None:
        """Blocking :meth:`aclose`."""
        self.call_sync(self.aclose())


def _pool_loop(pool: AsyncSandboxPool) -> Callable[[], asyncio.AbstractEventLoop]:
    """The loop of ``pool``'s sandboxes: its own once started, else the loop that uses
    it first (an async pool binds to the loop it is started on)."""

    def loop() -> asyncio.AbstractEventLoop:
        if pool.loop is not None:
            return pool.loop
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            raise InvalidArgumentError(
                "this AsyncSandboxPool has not been started; start it on its event loop "
                "first (async with / await pool.start()), or use SandboxPool from sync code"
            ) from None

    return loop
