"""The one bridge between blocking callers (or other event loops) and a sandbox's loop.

A sandbox's connection belongs to the event loop it was opened on. The blocking API,
the tool layer and the framework backends all reach it through a :class:`LoopBridge`:
``run`` blocks until a coroutine finished on that loop, ``arun`` awaits it from any
loop. The blocking API's own loop runs on a daemon thread started on first use
(:func:`background_loop`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopBridge:
    """Runs coroutines on one event loop, from sync code or from any other loop.

    Args:
        loop: The loop, or a function returning it (called on first use, so a bridge
            to the background loop does not start its thread until it is needed).

    Example:
        >>> bridge = LoopBridge(background_loop)
        >>> async def answer() -> int:
        ...     return 42
        >>> bridge.run(answer())
        42
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop | Callable[[], asyncio.AbstractEventLoop]
    ) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the coroutines run on."""
        if isinstance(self._loop, asyncio.AbstractEventLoop):
            return self._loop
        return self._loop()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and block until it is done.

        Raises:
            RuntimeError: Called from the loop itself, which would wait on itself forever.
        """
        loop = self.loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop or threading.current_thread() is _background_thread(loop):
            coro.close()
            raise RuntimeError(
                "a blocking e2b-tools call was made from the event loop its sandbox lives "
                "on (for example from a streaming callback); use the async API there"
            )
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result()
        except (KeyboardInterrupt, SystemExit):
            future.cancel()
            raise
        except concurrent.futures.CancelledError:
            raise

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the loop, from whichever loop is running."""
        loop = self.loop
        if asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))


class _Background:
    """An event loop on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="e2b-tools-loop", daemon=True
        )
        self.thread.start()


_background: _Background | None = None
_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The event loop the blocking API runs on (started on first use; one per process)."""
    global _background
    with _lock:
        if _background is None or _background.pid != os.getpid():
            _background = _Background()
        return _background.loop


def _background_thread(loop: asyncio.AbstractEventLoop) -> threading.Thread | None:
    background = _background
    return background.thread if background is not None and background.loop is loop else None


blocking = LoopBridge(background_loop)
"""The bridge of the blocking API: ``blocking.run(coro)``."""
