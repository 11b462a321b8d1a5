"""``files.watch_dir``: changes in a sandbox directory, as they happen (E2B's API).

The agent watches with inotify and streams each change as an event
(``agent/watch.py``). Here one task per watch moves the events, as they arrive, into a
buffer of at most :data:`PENDING_LIMIT` events; past it the oldest are dropped, counted
in the handle's ``dropped`` and logged once (logger ``e2b_tools.files``). So a flood of
changes costs bounded host memory, and a slow consumer never holds up the sandbox's
other calls (the connection stops reading only for a call that leaves 32 MiB unread).

:class:`AsyncWatchHandle` (E2B's async API) hands the events to ``on_event`` in order;
:class:`WatchHandle` (E2B's blocking API) keeps them until ``get_new_events()``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._bridge import blocking
from ._channel import maybe_await
from ._exceptions import (
    InvalidArgumentError,
    ProtocolError,
    SandboxError,
    SandboxTimeoutError,
    error_from_event,
)
from ._models import EntryInfo, FilesystemEvent, FilesystemEventType
from ._observe import get_logger

if TYPE_CHECKING:
    from ._channel import Channel
    from ._connection import Call
    from .agent.protocol import Message

PENDING_LIMIT = 10_000
"""Events one watch holds on the host, not yet handed on; past it the oldest are dropped."""
DEFAULT_WATCH_TIMEOUT = 60.0
"""E2B's default ``timeout`` of the async ``watch_dir``: the watch ends after a minute."""
REQUEST_TIMEOUT = 30.0
"""Seconds a watch's requests (start, ``get_new_events``, stop) wait for the sandbox."""
_CANCEL_TIMEOUT = 5.0

log = get_logger("files")

EventHandler = Callable[[FilesystemEvent], "Awaitable[None] | None"]
"""``on_event`` of ``watch_dir``: gets each change (sync or async function)."""
ExitHandler = Callable[[Exception | None], "Awaitable[None] | None"]
EntryOf = Callable[[dict[str, Any]], EntryInfo]
"""``on_exit`` of ``watch_dir``: gets ``None`` when the watch was stopped or ended, or
the error that ended it (a timeout, the sandbox gone, an exception of ``on_event``)."""


class WatchStream:
    """One watch's events on the host, shared by both handles (internal)."""

    def __init__(
        self,
        channel: Channel,
        call: Call,
        path: str,
        timeout: float | None,
        entry_of: EntryOf,
    ) -> None:
        self._channel = channel
        self._call = call
        self._path = path
        self._timeout = timeout
        self._entry_of = entry_of
        self._events = channel.events(call, None)
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._cleanup: asyncio.Future[None] | None = None
        self._finished = False  # the agent ended the watch (its done arrived)
        self._warned = False
        self.pending: collections.deque[FilesystemEvent] = collections.deque()
        self.received = 0
        """``fs_event`` messages received (the agent's ``sent``)."""
        self.dropped = 0
        self.ended = False
        self.closed = False
        self.error: SandboxError | None = None

    @property
    def sandbox_id(self) -> str:
        return self._channel.sandbox_id

    async def start(self) -> None:
        """Wait for the agent's ``started``; raise what stopped the watch from starting."""
        error: Message | None = None
        async for event in self._events:
            kind = event["type"]
            if kind == "started":
                self._task = asyncio.ensure_future(self._pump())
                return
            if kind == "error":
                error = event
            elif kind == "done":
                self._finished = True
        if error is not None:
            raise error_from_event(error, self.sandbox_id, self._path)
        raise ProtocolError("the watch ended before it started", sandbox_id=self.sandbox_id)

    async def _pump(self) -> None:
        try:
            await asyncio.wait_for(self._read(), self._timeout)
        except asyncio.TimeoutError:
            self.error = SandboxTimeoutError(
                f"the watch of {self._path} reached its timeout={self._timeout:g}s and "
                "stopped; pass timeout= to watch_dir() (0 for no limit)",
                sandbox_id=self.sandbox_id,
            )
        except SandboxError as exc:
            self.error = exc
        finally:
            self.ended = True
            self._changed.set()
        await asyncio.shield(self._cleanup_task())

    async def _read(self) -> None:
        async for event in self._events:
            kind = event["type"]
            if kind == "fs_event":
                self._add(event)
            elif kind == "error":
                self.error = error_from_event(event, self.sandbox_id, self._path)
            elif kind == "done":
                self._finished = True

    def _add(self, event: Message) -> None:
        self.received += 1
        kind = event.get("kind")
        if kind == "overflow":
            dropped = event.get("dropped")
            self._lose(dropped if isinstance(dropped, int) and dropped > 0 else 1, "sandbox")
        else:
            try:
                event_type = FilesystemEventType(kind)
            except ValueError:
                return  # a kind this version does not know
            if len(self.pending) >= PENDING_LIMIT:
                self.pending.popleft()
                self._lose(1, "host")
            self.pending.append(
                FilesystemEvent(
                    name=str(event.get("name", "")), type=event_type, entry=self._entry(event)
                )
            )
        self._changed.set()

    def _entry(self, event: Message) -> EntryInfo | None:
        value = event.get("entry")
        if not isinstance(value, dict):
            return None
        try:
            return self._entry_of(value)
        except (ValueError, TypeError):
            return None  # not an entry this version can read: left out, not fatal

    def _lose(self, count: int, where: str) -> None:
        self.dropped += count
        if not self._warned:
            self._warned = True
            log.warning(
                "watch of %s in sandbox %s: events were dropped (in the %s) to bound memory; "
                "handle events faster, or watch less (handle.dropped counts them)",
                self._path,
                self.sandbox_id,
                where,
                extra={"sandbox_id": self.sandbox_id},
            )

    async def next(self) -> FilesystemEvent | None:
        """The next event, waiting for it; None once the watch ended."""
        while not self.pending:
            if self.ended:
                return None
            self._changed.clear()
            await self._changed.wait()
        return self.pending.popleft()

    async def take(self, request_timeout: float | None) -> list[FilesystemEvent]:
        """Every event up to now not taken yet (E2B's ``get_new_events``)."""
        if self.closed:
            raise SandboxError("The watcher is already stopped", sandbox_id=self.sandbox_id)
        if not self.ended:
            timeout = request_timeout or REQUEST_TIMEOUT
            try:
                await asyncio.wait_for(self._catch_up(timeout), timeout)
            except asyncio.TimeoutError:
                raise SandboxTimeoutError(
                    f"the sandbox did not answer within {timeout:g}s (pass request_timeout=)",
                    sandbox_id=self.sandbox_id,
                ) from None
        events = list(self.pending)
        self.pending.clear()
        if not events and self.error is not None:
            raise self.error
        return events

    async def _catch_up(self, timeout: float) -> None:
        """Have the agent send what the kernel holds now, and wait until it arrived."""
        fields = {"target": self._call.id}
        value = await self._channel.request("watch_flush", fields, timeout, self._path)
        sent = value.get("sent") if value.get("found") else None
        while not self.ended and (not isinstance(sent, int) or self.received < sent):
            self._changed.clear()
            await self._changed.wait()

    async def close(self) -> None:
        """Stop watching (safe to call twice): the agent closes its inotify instance."""
        self.closed = True
        if self._task is not None and not self.ended:
            self._task.cancel()
            await asyncio.wait({self._task})
        self.ended = True
        self._changed.set()
        # Shielded: a caller cancelled meanwhile must not leave the watch running.
        await asyncio.shield(self._cleanup_task())

    def _cleanup_task(self) -> asyncio.Future[None]:
        if self._cleanup is None:
            self._cleanup = asyncio.ensure_future(self._end_in_agent())
        return self._cleanup

    async def _end_in_agent(self) -> None:
        if not self._finished:
            with contextlib.suppress(SandboxError, asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._channel.request("cancel", {"target": self._call.id}, _CANCEL_TIMEOUT),
                    _CANCEL_TIMEOUT,
                )
        close = getattr(self._events, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


async def start_watch(
    channel: Channel,
    path: str,
    *,
    recursive: bool,
    include_entry: bool,
    request_timeout: float | None,
    timeout: float | None,
    entry_of: EntryOf,
) -> WatchStream:
    """Ask the agent to watch ``path``; returns once it does (raises if it cannot).

    ``entry_of`` turns the agent's description of a path into an :class:`EntryInfo`.
    """
    if not isinstance(path, str) or not path:
        raise InvalidArgumentError("path must be a non-empty string")
    if request_timeout is not None and request_timeout <= 0:
        raise InvalidArgumentError("request_timeout must be > 0 seconds or None")
    if timeout is not None and timeout < 0:
        raise InvalidArgumentError("timeout must be >= 0 seconds (0 or None: no limit)")
    wait = request_timeout or REQUEST_TIMEOUT
    fields = {"path": path, "recursive": bool(recursive), "include_entry": bool(include_entry)}
    call = await channel.send("watch_dir", fields)
    stream = WatchStream(channel, call, path, timeout or None, entry_of)
    try:
        await asyncio.wait_for(stream.start(), wait)
    except asyncio.TimeoutError:
        await stream.close()
        raise SandboxTimeoutError(
            f"the sandbox did not start watching {path} within {wait:g}s (pass request_timeout=)",
            sandbox_id=channel.sandbox_id,
        ) from None
    except BaseException:
        # A cancelled caller (or a failed start) leaves no watch behind in the sandbox.
        await stream.close()
        raise
    return stream


class AsyncWatchHandle:
    """A directory being watched (E2B's ``AsyncWatchHandle``), from
    :meth:`AsyncFiles.watch_dir`: ``on_event`` gets each change, in order, until
    :meth:`stop`, the watch's ``timeout``, or the sandbox's end; then ``on_exit``.

    Example:
        >>> handle = await sbx.files.watch_dir("data", on_event=print)  # doctest: +SKIP
        >>> await handle.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        stream: WatchStream,
        on_event: EventHandler,
        on_exit: ExitHandler | None = None,
    ) -> None:
        self._stream = stream
        self._on_event = on_event
        self._on_exit = on_exit
        self._task = asyncio.ensure_future(self._run())
        self._task.add_done_callback(_retrieve)

    async def _run(self) -> None:
        error: Exception | None = None
        try:
            while True:
                event = await self._stream.next()
                if event is None:
                    break
                await maybe_await(self._on_event(event))
            error = self._stream.error
        except asyncio.CancelledError:
            pass  # stop(): a clean end
        except Exception as exc:
            error = exc  # on_event raised: the watch ends with it, as in E2B
        await self._stream.close()
        if self._on_exit is not None:
            await maybe_await(self._on_exit(error))

    @property
    def dropped(self) -> int:
        """At least this many events were lost to bound memory (0: none), in the sandbox
        or on the host (more than ``PENDING_LIMIT`` waiting for ``on_event``)."""
        return self._stream.dropped

    async def stop(self) -> None:
        """Stop watching the directory; waits for ``on_exit`` and re-raises what it
        raised, as E2B does. Safe to call twice."""
        self._task.cancel()
        try:
            await asyncio.shield(self._task)
        except asyncio.CancelledError:
            if not self._task.cancelled():
                raise  # our caller was cancelled, not the watch
        finally:
            await asyncio.shield(self._stream.close())


class WatchHandle:
    """A directory being watched (E2B's blocking ``WatchHandle``), from
    :meth:`Files.watch_dir`: the changes since the last :meth:`get_new_events`, until
    :meth:`stop`. Changes not yet taken are kept on the host, at most
    ``PENDING_LIMIT`` of them (the oldest are dropped first: see :attr:`dropped`).

    Example:
        >>> handle = sbx.files.watch_dir("data")  # doctest: +SKIP
        >>> sbx.files.write("data/a.txt", "hi")  # doctest: +SKIP
        >>> [(e.type.value, e.name) for e in handle.get_new_events()]  # doctest: +SKIP
        [('create', 'a.txt'), ('chmod', 'a.txt'), ('write', 'a.txt')]
        >>> handle.stop()  # doctest: +SKIP
    """

    def __init__(self, stream: WatchStream) -> None:
        self._stream = stream

    @property
    def dropped(self) -> int:
        """At least this many events were lost to bound memory (0: none), in the sandbox
        or on the host (more than ``PENDING_LIMIT`` between two ``get_new_events``)."""
        return self._stream.dropped

    def get_new_events(self, request_timeout: float | None = None) -> list[FilesystemEvent]:
        """The changes since the last call (or since the watch started), up to now.

        Raises:
            SandboxError: The watch was stopped; or the error that ended it (the
                sandbox gone, ...), once the events before it were taken.
        """
        return blocking.run(self._stream.take(request_timeout))

    def stop(self, request_timeout: float | None = None) -> None:
        """Stop watching the directory; :meth:`get_new_events` raises afterwards.

        ``request_timeout`` is accepted for E2B's signature; stopping waits at most 5 s
        for the sandbox.
        """
        blocking.run(self._stream.close())


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
