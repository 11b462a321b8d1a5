"""A warm pool of sandboxes: created, started and warmed before anyone asks for one.

:class:`AsyncSandboxPool` keeps ``size`` sandboxes ready (agent answered, Python kernel
started by a first ``run_code``) so that :meth:`~AsyncSandboxPool.acquire` costs one
round trip instead of a container start. :class:`SandboxPool` is its blocking twin, on
the library's background loop, usable from any thread (:mod:`e2b_tools._pool_sync`).
See ``docs/pool.md``.

Lifetimes: a pooled sandbox runs with a deadline of ``pooled_ttl`` seconds (10 minutes)
that the pool moves forward while it waits, so a process that crashes leaks nothing for
longer than that; one handed out gets the config's ``timeout`` (``set_timeout`` on
acquire) and belongs to the caller, who kills it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from ._bridge import LoopBridge
from ._config import SandboxConfig
from ._exceptions import InvalidArgumentError, SandboxError, SandboxGoneError, SandboxTimeoutError
from ._observe import get_logger
from ._sandbox import AsyncSandbox
from .backends import Backend

T = TypeVar("T")

POOL_LABEL = "e2b-tools.pool"
"""Metadata key every pooled sandbox carries, with its pool's id as the value."""
DEFAULT_POOLED_TTL = 600.0
"""Deadline, in seconds, of a sandbox waiting in a pool (moved forward while it waits)."""
REFILL_DELAY = 0.2
"""Seconds between handing a sandbox out and starting the one that replaces it."""

_MIN_LEFT = 5.0  # a pooled sandbox this close to its deadline (or ttl/4) is not handed out
_WARM_TIMEOUT = 60.0
_BACKOFF_START = 0.5

log = get_logger("pool")


class PoolStats(BaseModel):
    """What a pool holds and has done, from :meth:`AsyncSandboxPool.stats`."""

    pool_id: str
    """The pool's id (the value of the ``e2b-tools.pool`` metadata key)."""
    size: int
    """How many ready sandboxes the pool keeps."""
    ready: int
    """Sandboxes ready to hand out now."""
    creating: int
    """Sandboxes being created and warmed for the pool."""
    handed_out: int
    """Warm sandboxes ``acquire`` returned from the pool."""
    cold_fallbacks: int
    """``acquire`` calls that found the pool empty and created a sandbox cold."""
    discarded: int
    """Pooled sandboxes found dead (or too close to their deadline) and killed."""
    refreshed: int
    """Deadline moves of sandboxes waiting in the pool."""
    refill_failures: int
    """Failed attempts to create a sandbox for the pool (retried with backoff)."""
    last_error: str | None
    """The last refill failure, if any (cleared by the next success)."""
    closed: bool
    """Whether :meth:`~AsyncSandboxPool.aclose` was called."""


@dataclass(eq=False)
class _Entry:
    sbx: AsyncSandbox
    deadline: float  # wall-clock time at which the agent ends the sandbox


class _Handoff:
    """One acquire crossing event loops: whichever side comes second (the pool with a
    sandbox, or the caller giving up) kills the sandbox, so a cancelled acquire leaks
    nothing."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sbx: AsyncSandbox | None = None
        self.abandoned = False


class AsyncSandboxPool:
    """Keeps ``size`` sandboxes of one configuration warm for fast :meth:`acquire`.

    The pool lives on the event loop it is started on (``async with``, :meth:`start`
    or the first :meth:`acquire`); its sandboxes' connections belong to that loop.
    ``acquire`` never waits for a refill: with the pool empty it creates a sandbox cold
    (counted in :meth:`stats`). Refill failures are logged, counted and retried with
    backoff, never raised into ``acquire``. A pool has one configuration; make one
    pool per configuration.

    Args:
        size: Ready sandboxes to keep.
        config: Settings of every sandbox; a handed-out one gets ``config.timeout``
            seconds from the moment it is acquired.
        backend: Where the sandboxes run (default: the Docker Engine).
        refill_concurrency: Sandboxes created at once while refilling.
        pooled_ttl: Deadline of a waiting sandbox, moved forward while it waits; a
            process that dies without closing the pool leaks nothing for longer.
        warm_code: Python run once in each new sandbox so its kernel is up (``None``:
            skip).
        max_backoff: Longest wait, in seconds, between refill attempts that fail.

    Example:
        >>> async with AsyncSandboxPool(size=2) as pool:  # doctest: +SKIP
        ...     async with pool.sandbox() as sbx:
        ...         (await sbx.run_code("1 + 1")).text
        '2'
    """

    def __init__(
        self,
        size: int = 8,
        config: SandboxConfig | None = None,
        *,
        backend: Backend | None = None,
        refill_concurrency: int = 2,
        pooled_ttl: float = DEFAULT_POOLED_TTL,
        warm_code: str | None = "1",
        max_backoff: float = 30.0,
    ) -> None:
        if size < 0:
            raise InvalidArgumentError("size must be >= 0")
        if refill_concurrency < 1:
            raise InvalidArgumentError("refill_concurrency must be >= 1")
        if pooled_ttl < 2:
            raise InvalidArgumentError("pooled_ttl must be >= 2 seconds")
        if max_backoff <= 0:
            raise InvalidArgumentError("max_backoff must be > 0 seconds")
        self._pool_id = secrets.token_hex(4)
        base = config or SandboxConfig()
        labelled = {**base.metadata, POOL_LABEL: self._pool_id}
        self._config = base.model_copy(update={"metadata": labelled})
        self._pooled_config = self._config.model_copy(update={"timeout": pooled_ttl})
        self._size = size
        self._backend = backend
        self._concurrency = refill_concurrency
        self._ttl = pooled_ttl
        self._min_left = min(_MIN_LEFT, pooled_ttl / 4)
        self._warm_code = warm_code
        self._max_backoff = max_backoff
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: collections.deque[_Entry] = collections.deque()
        self._creating: set[asyncio.Task[None]] = set()
        self._refreshing: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._acquiring: set[asyncio.Task[Any]] = set()
        self._orphans: set[asyncio.Task[AsyncSandbox]] = set()
        self._maintainer: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False
        self._retry_at = 0.0
        self._consecutive_failures = 0
        self._counts = collections.Counter[str]()
        self._last_error: str | None = None

    # -- identity ----------------------------------------------------------------
    @property
    def pool_id(self) -> str:
        """The pool's id: its sandboxes' ``e2b-tools.pool`` metadata value."""
        return self._pool_id

    @property
    def config(self) -> SandboxConfig:
        """The configuration a handed-out sandbox has (its metadata names the pool)."""
        return self._config

    @property
    def size(self) -> int:
        """How many ready sandboxes the pool keeps."""
        return self._size

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the pool (and its sandboxes) live on; None until it is started."""
        return self._loop

    def __repr__(self) -> str:
        return f"<AsyncSandboxPool {self._pool_id} size={self._size} ready={len(self._ready)}>"

    def stats(self) -> PoolStats:
        """A snapshot of what the pool holds and has done."""
        return PoolStats(
            pool_id=self._pool_id,
            size=self._size,
            ready=len(self._ready),
            creating=len(self._creating),
            handed_out=self._counts["handed_out"],
            cold_fallbacks=self._counts["cold"],
            discarded=self._counts["discarded"],
            refreshed=self._counts["refreshed"],
            refill_failures=self._counts["failures"],
            last_error=self._last_error,
            closed=self._closed,
        )

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> AsyncSandboxPool:
        """Start filling the pool in the background; returns at once."""
        loop = self._bind()
        if asyncio.get_running_loop() is not loop:
            await LoopBridge(loop).arun(self.start())
            return self
        if self._maintainer is None and not self._closed:
            self._wake = asyncio.Event()
            self._maintainer = loop.create_task(self._maintain())
        return self

    async def acquire(self, timeout: float | None = None) -> AsyncSandbox:
        """A ready sandbox, now yours (kill it when done); refills the pool behind it.

        Never waits for a refill: with the pool empty it creates one cold, and raises
        that creation's error if it fails (``EngineUnavailableError``, ...).

        Args:
            timeout: The sandbox's lifetime from now, in seconds (default: the
                config's ``timeout``).

        Raises:
            SandboxError: The pool was closed.
        """
        loop = self._bind()
        if asyncio.get_running_loop() is loop:
            return await self._acquire(timeout)
        handoff = _Handoff()
        try:
            return await LoopBridge(loop).arun(self._acquire_for(timeout, handoff))
        except BaseException:
            self._abandon(handoff)
            raise

    @contextlib.asynccontextmanager
    async def sandbox(self, timeout: float | None = None) -> AsyncIterator[AsyncSandbox]:
        """``async with pool.sandbox() as sbx``: :meth:`acquire`, killed on exit."""
        sbx = await self.acquire(timeout)
        try:
            yield sbx
        finally:
            await LoopBridge(sbx.loop).arun(_quiet_kill(sbx))

    async def wait_ready(self, count: int | None = None, timeout: float | None = 120.0) -> None:
        """Wait until ``count`` (default: ``size``) sandboxes are ready.

        Raises:
            SandboxTimeoutError: Not ready within ``timeout`` seconds (the message
                carries the last refill failure).
        """
        await self.start()
        want = self._size if count is None else min(count, self._size)
        end = None if timeout is None else time.monotonic() + timeout
        while len(self._ready) < want:
            if self._closed:
                raise SandboxError("this pool was closed; create a new one")
            if end is not None and time.monotonic() > end:
                raise SandboxTimeoutError(
                    f"the pool had {len(self._ready)} of {want} sandboxes ready after "
                    f"{timeout:g}s (last refill failure: {self._last_error or 'none'})"
                )
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        """Kill the sandboxes waiting in the pool (not those handed out). Idempotent."""
        loop = self._loop
        if loop is None:
            self._closed = True
            return
        if asyncio.get_running_loop() is not loop:
            await LoopBridge(loop).arun(self.aclose())
            return
        self._closed = True
        mine = [t for t in (self._maintainer, *self._creating, *self._refreshing) if t]
        for task in mine:
            task.cancel()
        # Cancelled creations kill what they made; acquires in flight end on their own.
        await asyncio.gather(*mine, return_exceptions=True)
        current = asyncio.current_task()
        others = [t for t in self._acquiring if t is not current]
        if others:  # asyncio.wait, not gather: cancelling aclose must not cancel them
            await asyncio.wait(others)
        ready, self._ready = list(self._ready), collections.deque()
        await asyncio.gather(*(_quiet_kill(e.sbx) for e in ready))
        while self._orphans or self._background:
            await asyncio.wait({*self._orphans, *self._background})

    async def __aenter__(self) -> AsyncSandboxPool:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- on the pool's loop ------------------------------------------------------
    def _bind(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def _acquire(self, timeout: float | None) -> AsyncSandbox:
        if self._closed:
            raise SandboxError("this pool was closed; create a new one")
        lifetime = self._config.timeout if timeout is None else timeout
        if lifetime <= 0:
            raise InvalidArgumentError("timeout must be > 0 seconds")
        task = asyncio.current_task()
        if task is not None:
            self._acquiring.add(task)
        try:
            await self.start()
            while self._ready:
                entry = self._ready.popleft()
                if await self._take(entry, lifetime):
                    self._counts["handed_out"] += 1
                    # The replacement waits a moment: starting a container takes the
                    # engine and the cores for a while, and the caller's first calls
                    # come now.
                    asyncio.get_running_loop().call_later(REFILL_DELAY, self._poke)
                    return entry.sbx
                self._poke()
            self._counts["cold"] += 1
            return await self._create(self._config.model_copy(update={"timeout": lifetime}))
        finally:
            if task is not None:
                self._acquiring.discard(task)

    async def _take(self, entry: _Entry, lifetime: float) -> bool:
        """Make ``entry`` the caller's: alive, with ``lifetime`` left; else discard it."""
        sbx = entry.sbx
        ok = entry.deadline - time.time() >= self._min_left
        try:
            # is_alive costs nothing on an open stream (the pool's refreshes show that the
            # agent answers). The new deadline goes out without waiting for its answer:
            # the caller's first call follows it on the same stream.
            ok = ok and await sbx.is_alive()
        except SandboxError:
            ok = False
        except BaseException:
            self._kill_later(sbx)  # cancelled half-way: neither pooled nor handed out
            raise
        if not ok:
            self._counts["discarded"] += 1
            self._kill_later(sbx)
            return False
        self._in_background(
            _move_deadline(sbx, lifetime), f"moving the deadline of {sbx.sandbox_id}"
        )
        # What the caller sees is what the sandbox now has: the config's lifetime.
        sbx._config = sbx.config.model_copy(update={"timeout": lifetime})
        return True

    async def _acquire_for(self, timeout: float | None, handoff: _Handoff) -> AsyncSandbox:
        sbx = await self._acquire(timeout)
        with handoff.lock:
            if not handoff.abandoned:
                handoff.sbx = sbx
                return sbx
        self._kill_later(sbx)
        raise asyncio.CancelledError

    def _abandon(self, handoff: _Handoff) -> None:
        """The caller gave up on an acquire (cancelled, interrupted, or it failed)."""
        with handoff.lock:
            handoff.abandoned = True
            sbx, handoff.sbx = handoff.sbx, None
        if sbx is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._kill_later, sbx)

    async def _create(self, config: SandboxConfig) -> AsyncSandbox:
        """Create a sandbox. A cancelled caller does not stop the creation (cancelled
        inside a backend call it could leave a container nobody knows of): it runs to
        its end, and what it made is killed."""
        task = asyncio.get_running_loop().create_task(
            AsyncSandbox.create(
                config.image,
                config.timeout,
                cpu=config.cpu,
                memory=config.memory,
                network=config.network,
                config=config,
                backend=self._backend,
            )
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            self._orphans.add(task)
            task.add_done_callback(self._reap)
            raise

    def _reap(self, task: asyncio.Task[AsyncSandbox]) -> None:
        self._orphans.discard(task)
        if not task.cancelled() and task.exception() is None:
            self._kill_later(task.result())

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _kill_later(self, sbx: AsyncSandbox) -> None:
        self._in_background(_quiet_kill(sbx), f"killing {sbx.sandbox_id}", sbx.sandbox_id)

    def _in_background(
        self, coro: Coroutine[Any, Any, None], what: str, sandbox_id: str | None = None
    ) -> None:
        """Run ``coro`` as a task :meth:`aclose` waits for; its failure is logged."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._background.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.warning(
                    "%s failed: %s", what, task.exception(), extra={"sandbox_id": sandbox_id}
                )

        task.add_done_callback(done)

    async def _maintain(self) -> None:
        """Refill and refresh until closed: one loop, woken by acquires and results."""
        assert self._wake is not None
        while not self._closed:
            self._wake.clear()
            self._refill()
            now = time.time()
            for entry in [e for e in self._ready if e.deadline - now <= self._ttl / 2]:
                self._ready.remove(entry)
                self._track(self._refreshing, self._refresh(entry))
            waits = [e.deadline - self._ttl / 2 - now for e in self._ready]
            if self._deficit() > 0 and self._retry_at > time.monotonic():
                waits.append(self._retry_at - time.monotonic())
            delay = min([60.0, *waits])
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(delay, 0.01))

    def _deficit(self) -> int:
        held = len(self._ready) + len(self._creating) + len(self._refreshing)
        return self._size - held

    def _refill(self) -> None:
        if self._closed or time.monotonic() < self._retry_at:
            return
        while self._deficit() > 0 and len(self._creating) < self._concurrency:
            self._track(self._creating, self._create_one())

    def _track(self, tasks: set[asyncio.Task[None]], coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            self._poke()

        task.add_done_callback(done)

    async def _create_one(self) -> None:
        sbx: AsyncSandbox | None = None
        born = time.time()  # before the container exists: its deadline is a bit later
        try:
            sbx = await self._create(self._pooled_config)
            if self._warm_code is not None:
                await sbx.run_code(self._warm_code, timeout=_WARM_TIMEOUT)
        except asyncio.CancelledError:
            if sbx is not None:
                await _quiet_kill(sbx)
            raise
        except Exception as exc:
            if sbx is not None:
                await _quiet_kill(sbx)
            self._failed(exc)
            return
        if self._closed:
            await _quiet_kill(sbx)
            return
        assert sbx is not None
        self._consecutive_failures = 0
        self._last_error = None
        self._ready.append(_Entry(sbx, born + self._ttl))

    def _failed(self, exc: Exception) -> None:
        self._counts["failures"] += 1
        self._consecutive_failures += 1
        delay = min(self._max_backoff, _BACKOFF_START * 2 ** (self._consecutive_failures - 1))
        self._retry_at = time.monotonic() + delay
        self._last_error = f"{type(exc).__name__}: {exc}"
        log.warning(
            "sandbox pool %s: creating a sandbox failed (%s); retrying in %.1fs",
            self._pool_id,
            self._last_error,
            delay,
        )

    async def _refresh(self, entry: _Entry) -> None:
        """Move a waiting sandbox's deadline forward (out of the queue meanwhile, so no
        acquire can take it half-way); one that does not answer is replaced."""
        started = time.time()
        try:
            ok = await entry.sbx.is_alive()
            if ok:
                await entry.sbx.set_timeout(self._ttl)
        except SandboxError:
            ok = False
        except BaseException:
            await _quiet_kill(entry.sbx)
            raise
        if not ok:
            self._counts["discarded"] += 1
        elif not self._closed:
            entry.deadline = started + self._ttl
            self._counts["refreshed"] += 1
            self._ready.append(entry)
            return
        await _quiet_kill(entry.sbx)


async def _quiet_kill(sbx: AsyncSandbox) -> None:
    try:
        await sbx.kill()
    except SandboxError:
        pass


async def _move_deadline(sbx: AsyncSandbox, lifetime: float) -> None:
    """A handed-out sandbox's new deadline. Its new owner may kill it before the answer
    comes (acquire, one call, kill): a sandbox gone by then is no news."""
    with contextlib.suppress(SandboxGoneError):
        await sbx.set_timeout(lifetime)
