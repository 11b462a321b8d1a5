"""One sandbox shared by a toolkit's tools: created lazily, replaced if it dies."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Coroutine
from typing import Any, TypeVar

import tenacity

from .. import (
    AsyncSandbox,
    EngineUnavailableError,
    LoopBridge,
    Sandbox,
    SandboxConfig,
    SandboxError,
    SandboxGoneError,
    background_loop,
)

T = TypeVar("T")


class SandboxSession:
    """Hands the toolkit's tools one live sandbox.

    The sandbox is created on first use (or given), reused by every call so state
    persists, and replaced by a fresh one if it died; the next tool output then starts
    with a notice that earlier state was lost. Closing the session kills a sandbox it
    created (never one it was given).

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
    ) -> None:
        if isinstance(sandbox, Sandbox):
            sandbox = sandbox.async_sandbox
        self._sandbox: AsyncSandbox | None = sandbox
        self._owned = sandbox is None
        self._config = config or SandboxConfig()
        # The background loop starts on first use, not when a toolkit is merely built.
        self._bridge = LoopBridge(sandbox.loop if sandbox is not None else background_loop)
        self._lock: asyncio.Lock | None = None
        self._notice: str | None = None
        self._closed = False
        self._output_prefix = secrets.token_hex(3)
        self._output_ids = itertools.count(1)

    @property
    def sandbox(self) -> AsyncSandbox | None:
        """The current sandbox, if one was created or given."""
        return self._sandbox

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
                    "Note: the sandbox had stopped, so a new one was started. Everything "
                    "from before (variables, imports, files) is gone; redo what you need."
                )
                if self._owned:
                    await self._quiet_kill(sbx)
                sbx = None
                self._owned = True
            if sbx is None:
                sbx = await self._create()
                self._sandbox = sbx
            return sbx

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
    async def _create(self) -> AsyncSandbox:
        # Creating a sandbox is safe to repeat: a failed attempt leaves nothing behind.
        return await AsyncSandbox.create(
            self._config.image,
            self._config.timeout,
            config=self._config,
            cpu=self._config.cpu,
            memory=self._config.memory,
            network=self._config.network,
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
