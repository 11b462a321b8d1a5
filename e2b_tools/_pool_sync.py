"""The blocking sandbox pool: :class:`AsyncSandboxPool` on the background loop."""

from __future__ import annotations

import atexit
import contextlib
import weakref
from collections.abc import Iterator

from ._bridge import blocking
from ._config import SandboxConfig
from ._pool import DEFAULT_POOLED_TTL, AsyncSandboxPool, PoolStats, _Handoff, _quiet_kill
from ._sync import Sandbox
from .backends import Backend

_open_pools: weakref.WeakSet[SandboxPool] = weakref.WeakSet()


class SandboxPool:
    """A warm pool of sandboxes for blocking code (usable from any thread).

    Same arguments as :class:`AsyncSandboxPool`; it runs on the library's background
    loop, starts filling when created, and kills its idle sandboxes on :meth:`close`
    (or the context manager; at interpreter exit for a pool left open).

    Example:
        >>> with SandboxPool(size=2) as pool:  # doctest: +SKIP
        ...     with pool.sandbox() as sbx:
        ...         sbx.run_code("1 + 1").text
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
        self._inner = AsyncSandboxPool(
            size,
            config,
            backend=backend,
            refill_concurrency=refill_concurrency,
            pooled_ttl=pooled_ttl,
            warm_code=warm_code,
            max_backoff=max_backoff,
        )
        blocking.run(self._inner.start())
        _open_pools.add(self)

    @property
    def async_pool(self) -> AsyncSandboxPool:
        """The async twin (same pool, on the background loop)."""
        return self._inner

    @property
    def pool_id(self) -> str:
        """The pool's id: its sandboxes' ``e2b-tools.pool`` metadata value."""
        return self._inner.pool_id

    @property
    def config(self) -> SandboxConfig:
        """The configuration a handed-out sandbox has."""
        return self._inner.config

    @property
    def size(self) -> int:
        """How many ready sandboxes the pool keeps."""
        return self._inner.size

    def __repr__(self) -> str:
        return f"<SandboxPool {self.pool_id} size={self.size} ready={self.stats().ready}>"

    def stats(self) -> PoolStats:
        """A snapshot of what the pool holds and has done."""
        return self._inner.stats()

    def acquire(self, timeout: float | None = None) -> Sandbox:
        """Blocking :meth:`AsyncSandboxPool.acquire`."""
        inner = self._inner
        handoff = _Handoff()
        try:
            return Sandbox(blocking.run(inner._acquire_for(timeout, handoff)))
        except BaseException:
            inner._abandon(handoff)
            raise

    @contextlib.contextmanager
    def sandbox(self, timeout: float | None = None) -> Iterator[Sandbox]:
        """``with pool.sandbox() as sbx``: :meth:`acquire`, killed on exit."""
        sbx = self.acquire(timeout)
        try:
            yield sbx
        finally:
            blocking.run(_quiet_kill(sbx.async_sandbox))

    def wait_ready(self, count: int | None = None, timeout: float | None = 120.0) -> None:
        """Blocking :meth:`AsyncSandboxPool.wait_ready`."""
        blocking.run(self._inner.wait_ready(count, timeout))

    def close(self) -> None:
        """Kill the sandboxes waiting in the pool (not those handed out). Idempotent."""
        _open_pools.discard(self)
        blocking.run(self._inner.aclose())

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@atexit.register
def _close_open_pools() -> None:
    # The background loop is a daemon thread, still running while atexit handlers run.
    for pool in list(_open_pools):
        try:
            pool.close()
        except Exception:
            pass
