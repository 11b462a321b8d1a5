"""Keepalive messages for streaming responses that may stay silent for long.

envd's process service sends ``{"event": {"keepalive": {}}}`` on a stream with no
output for a while, so that clients and proxies with an idle-body timeout (undici's
default is 300 s) keep it open. :func:`with_keepalive` adds that to any async source.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_KEEPALIVE_SECONDS = 90.0
_MAX_SECONDS = 10**9  # far beyond any stream; keeps asyncio's timeout arithmetic finite


def keepalive_interval(value: str | None) -> float:
    """Seconds between keepalives from a ``Keepalive-Ping-Interval`` header value
    (1 to 10**9 whole seconds; anything else gives envd's default of 90 s)."""
    if value is not None and value.isascii() and value.isdigit() and len(value) <= 10:
        seconds = int(value)
        if 0 < seconds <= _MAX_SECONDS:
            return float(seconds)
    return DEFAULT_KEEPALIVE_SECONDS


async def with_keepalive(
    source: AsyncIterator[T], interval: float, keepalive: Callable[[], T]
) -> AsyncIterator[T]:
    """Yield ``source``'s items, plus ``keepalive()`` after every ``interval`` seconds
    in which ``source`` produced nothing (so proxies and clients with idle-body timeouts
    keep the stream open; envd's process service does this every 50 s by default).

    The pending read of ``source`` survives keepalives (nothing is lost or reordered).
    When the consumer stops early, the pending read is cancelled.
    """
    iterator = source.__aiter__()

    async def _next() -> T:
        return await iterator.__anext__()

    pending: asyncio.Task[T] | None = None
    try:
        while True:
            pending = asyncio.ensure_future(_next())
            while not (await asyncio.wait({pending}, timeout=interval))[0]:
                yield keepalive()
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
