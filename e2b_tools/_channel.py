"""A sandbox's channel: it owns the connection to the agent and folds a call's events.

Every request of the sandbox API goes through one :class:`Channel`: it re-attaches a
dropped stream before a request (never during one: a call in flight is not re-sent),
bounds each call by its timeout, explains a sandbox that went away, and folds the
events of ``run_code`` and ``command`` alike (:meth:`Channel.fold`). Cancelling a fold
always stops the work in the sandbox (``cancel`` op), unless the caller asked it not to
(a background command outlives its waiters).
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import collections
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar, cast, overload

from ._config import SandboxConfig
from ._connection import AgentConnection, Call
from ._exceptions import (
    ProtocolError,
    SandboxError,
    SandboxGoneError,
    SandboxTimeoutError,
    error_from_event,
)
from ._models import ExecutionError, OutputMessage, Result, SavedOutput
from ._observe import call_span, get_logger, mark_failed
from .agent.protocol import DoneValue, ErrorEvent, Message
from .backends import Backend

HANDSHAKE_TIMEOUT = 30.0
_CANCEL_TIMEOUT = 5.0

OutputHandler = Callable[[str], "Awaitable[None] | None"]
"""Streaming callback: receives each chunk of output as it arrives (sync or async)."""
MessageHandler = Callable[[OutputMessage], "Awaitable[None] | None"]
"""Streaming callback of ``run_code`` (E2B's): receives each chunk as an
:class:`OutputMessage`, a ``str`` that also has ``line``, ``timestamp`` and ``error``;
an :data:`OutputHandler` fits too."""
BytesHandler = Callable[[bytes], "Awaitable[None] | None"]
"""Streaming callback of a command run with ``output="bytes"``: receives raw chunks."""
ResultHandler = Callable[[Result], "Awaitable[None] | None"]
ErrorHandler = Callable[[ExecutionError], "Awaitable[None] | None"]


_STREAMS = ("stdout", "stderr")


class _CallTimeout(Exception):
    """Queued into a call when the host stops waiting for it."""


async def maybe_await(value: Awaitable[None] | None) -> None:
    """Await what a sync-or-async callback returned, if it is awaitable."""
    if inspect.isawaitable(value):
        await value


S = TypeVar("S", str, bytes)


class _HeadTail(Generic[S]):
    """Keeps the head and tail of a stream within ``limit`` items; counts the rest."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head: list[S] = []
        self.head_size = 0
        self.tail: collections.deque[S] = collections.deque()
        self.tail_size = 0
        self.dropped = 0

    def add(self, text: S) -> None:
        """Append a chunk."""
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


class BoundedText(_HeadTail[str]):
    """Keeps the head and tail of a stream within ``limit`` characters; counts the rest.

    Example:
        >>> text = BoundedText(10)
        >>> text.add("0123456789abcdef")
        >>> text.dropped, text.text().startswith("01234")
        (6, True)
    """

    def marker(self) -> str:
        """The line that stands for the dropped middle."""
        return f"\n[... {self.dropped} characters omitted by e2b-tools to bound memory ...]\n"

    def chunks(self) -> list[str]:
        """The kept chunks, with the marker between head and tail when something was cut."""
        middle = [self.marker()] if self.dropped else []
        return [*self.head, *middle, *self.tail]

    def text(self) -> str:
        """The kept text."""
        return "".join(self.chunks())


class BoundedBytes(_HeadTail[bytes]):
    """:class:`BoundedText` for raw output (``output="bytes"``): ``limit`` bytes.

    Example:
        >>> data = BoundedBytes(4)
        >>> data.add(b"0123456789")
        >>> data.data(), data.dropped
        (b'0189', 6)
    """

    def data(self) -> bytes:
        """The kept bytes: head then tail, no marker (it would corrupt binary data)."""
        return b"".join([*self.head, *self.tail])

    def text(self) -> str:
        """The kept bytes as UTF-8 (with replacement), a marker where bytes were cut."""
        head = b"".join(self.head).decode("utf-8", "replace")
        tail = b"".join(self.tail).decode("utf-8", "replace")
        if not self.dropped:
            return head + tail
        return (
            f"{head}\n[... {self.dropped} bytes omitted by e2b-tools to bound memory ...]\n{tail}"
        )


class Outcome:
    """What one ``run_code`` or ``command`` call's events folded into."""

    def __init__(self, limit: int, binary: bool = False) -> None:
        self.stdout = BoundedText(limit)
        self.stderr = BoundedText(limit)
        self.raw = (BoundedBytes(limit), BoundedBytes(limit)) if binary else None
        """A binary command's stdout and stderr (``"binary": true``; then ``stdout`` and
        ``stderr`` stay empty and the output handlers receive bytes)."""
        self.results: list[Result] = []
        self.error: ErrorEvent | None = None
        self.done: DoneValue = {}
        self.finished = False
        self.pid: int | None = None

    @property
    def saved_output(self) -> SavedOutput | None:
        """Where the agent saved the whole output, if it did."""
        spilled = self.done.get("spilled")
        if not spilled or "error" in spilled:
            return None
        return SavedOutput(
            path=spilled.get("path", ""),
            chars=spilled.get("chars", 0),
            bytes=spilled.get("bytes", 0),
            lines=spilled.get("lines", 0),
        )


class Observed:
    """What :meth:`Channel.observed` yields: set ``failure`` for a call that failed
    without raising (an error in the code, a non-zero exit)."""

    __slots__ = ("failure",)

    def __init__(self) -> None:
        self.failure: str | None = None


class Channel:
    """The connection to one sandbox's agent, and the calls made over it."""

    def __init__(
        self,
        *,
        backend: Backend,
        container_id: str,
        sandbox_id: str,
        config: SandboxConfig,
        connection: AgentConnection,
    ) -> None:
        self.backend = backend
        self.container_id = container_id
        self.sandbox_id = sandbox_id
        self.config = config
        self.conn = connection
        self.killed = False
        self._reconnect_lock = asyncio.Lock()
        self.log = get_logger("sandbox", sandbox_id)
        """This sandbox's logger: every record carries its ``sandbox_id``."""

    @staticmethod
    async def open(
        backend: Backend,
        container_id: str,
        sandbox_id: str,
        timeout: float = HANDSHAKE_TIMEOUT,
    ) -> AgentConnection:
        """Attach to a running sandbox's agent and shake hands (closed again if it fails)."""
        conn = AgentConnection(await backend.open_transport(container_id), sandbox_id)
        try:
            await conn.handshake(timeout)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        """Mark the sandbox killed and close the stream."""
        self.killed = True
        await self.conn.close()

    async def connection(self) -> AgentConnection:
        """The open connection, re-attached first if the stream dropped but the sandbox runs."""
        if not self.conn.closed:
            return self.conn
        async with self._reconnect_lock:
            if not self.conn.closed:
                return self.conn
            if not self.killed:
                info = await asyncio.to_thread(self.backend.inspect, self.container_id)
                if info is not None and info["State"].get("Paused"):
                    raise SandboxError(
                        "the sandbox is paused; sbx.connect() or Sandbox.connect(sandbox_id) "
                        "resumes it",
                        sandbox_id=self.sandbox_id,
                    )
                if info is not None and info["State"].get("Running"):
                    # Nothing is in flight on a new stream, so re-attaching is safe.
                    self.conn = await self.open(self.backend, self.container_id, self.sandbox_id)
                    return self.conn
            raise SandboxGoneError(await self.gone_reason(), sandbox_id=self.sandbox_id)

    async def alive(self) -> bool:
        """Whether the sandbox can be reached (its stream is open or could be re-opened)."""
        try:
            await self.connection()
        except SandboxError:
            return False
        return True

    async def gone_reason(self) -> str:
        """Why the sandbox cannot be reached, and what to do."""
        if self.killed:
            return "the sandbox was killed; create a new one"
        info = await asyncio.to_thread(self.backend.inspect, self.container_id)
        if any("deadline" in line for line in self.conn.agent_log):
            return (
                f"the sandbox reached its timeout of {self.config.timeout:g}s and removed "
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

    async def send(self, op: str, fields: dict[str, Any]) -> Call:
        """Send one request (after re-attaching if needed)."""
        conn = await self.connection()
        try:
            return await conn.send(op, **fields)
        except SandboxGoneError:
            raise SandboxGoneError(await self.gone_reason(), sandbox_id=self.sandbox_id) from None

    async def events(self, call: Call, timeout: float | None) -> AsyncIterator[Message]:
        """Yield ``call``'s events up to ``done``, bounded by ``timeout`` overall."""
        timer = None
        if timeout is not None:
            timer = asyncio.get_running_loop().call_later(timeout, call.put, _CallTimeout())
        done = False
        try:
            while True:
                item = await call.get()
                if isinstance(item, _CallTimeout):
                    self.conn.forget(call)
                    # Best effort: stop the work the agent may still be doing for it.
                    with contextlib.suppress(SandboxError):
                        await self.conn.send("cancel", target=call.id)
                    raise SandboxTimeoutError(
                        f"the sandbox did not answer within {timeout:g}s",
                        sandbox_id=self.sandbox_id,
                    )
                if isinstance(item, SandboxGoneError):
                    raise SandboxGoneError(
                        await self.gone_reason()
                        + " (the call was in flight and was not retried: it may have run)",
                        sandbox_id=self.sandbox_id,
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
                self.conn.forget(call)

    @contextlib.contextmanager
    def observed(self, op: str) -> Iterator[Observed]:
        """Trace and log one call: a span (with OpenTelemetry) and a ``DEBUG`` record
        with its duration. Set ``failure`` on what it yields for a call that returned
        but failed (an exception escaping the block is recorded by itself)."""
        with call_span(op, self.sandbox_id) as span:
            observed = Observed()
            start = time.perf_counter()
            try:
                yield observed
            except BaseException as exc:
                self._log_call(op, start, type(exc).__name__)
                raise
            if observed.failure is not None:
                mark_failed(span, observed.failure)
            self._log_call(op, start, observed.failure)

    async def request(
        self, op: str, fields: dict[str, Any], timeout: float | None, path: str | None = None
    ) -> dict[str, Any]:
        """A request whose only interesting event is ``done`` (or ``error``, raised)."""
        with self.observed(op):
            return await self._request(op, fields, timeout, path)

    async def _request(
        self, op: str, fields: dict[str, Any], timeout: float | None, path: str | None
    ) -> dict[str, Any]:
        call = await self.send(op, fields)
        error: Message | None = None
        value: dict[str, Any] = {}
        async for event in self.events(call, timeout):
            if event["type"] == "error":
                error = event
            elif event["type"] == "done":
                value = event.get("value") or {}
        if error is not None:
            raise error_from_event(error, self.sandbox_id, path)
        return value

    def _log_call(self, op: str, start: float, failure: str | None) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            ms = (time.perf_counter() - start) * 1000
            self.log.debug("%s %s in %.2f ms", op, failure or "ok", ms)

    async def fold(
        self,
        op: str,
        fields: dict[str, Any],
        timeout: float | None,
        *,
        stop_on_cancel: bool = True,
        on_stdout: MessageHandler | None = None,
        on_stderr: MessageHandler | None = None,
        on_result: ResultHandler | None = None,
        on_error: ErrorHandler | None = None,
        on_started: Callable[[int], None] | None = None,
    ) -> Outcome:
        """Send a ``run_code`` or ``command`` request and fold its events.

        Cancelling the wait (a cancelled task, ``asyncio.timeout``) stops the work in
        the sandbox too, so nothing keeps running unseen; with ``stop_on_cancel=False``
        it goes on (a background command). Output callbacks get each chunk as an
        :class:`OutputMessage` stamped on arrival.
        """
        with self.observed(op) as observed:
            out = await self._fold(
                op,
                fields,
                timeout,
                stop_on_cancel,
                (on_stdout, on_stderr, on_result, on_error, on_started),
            )
            if out.error is not None:
                observed.failure = str(out.error.get("name") or "error")
            elif out.done.get("exit_code"):
                observed.failure = f"exit code {out.done['exit_code']}"
            elif out.done.get("timed_out"):
                observed.failure = f"timed out ({out.done['timed_out']})"
            return out

    def _b64(self, data: str) -> bytes:
        """The bytes of an output event's base64 ``data`` (a broken stream if it is not)."""
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:
            raise ProtocolError(
                "the agent sent output that is not base64", sandbox_id=self.sandbox_id
            ) from None

    async def _fold(
        self,
        op: str,
        fields: dict[str, Any],
        timeout: float | None,
        stop_on_cancel: bool,
        handlers: tuple[
            MessageHandler | None,
            MessageHandler | None,
            ResultHandler | None,
            ErrorHandler | None,
            Callable[[int], None] | None,
        ],
    ) -> Outcome:
        on_stdout, on_stderr, on_result, on_error, on_started = handlers
        out = Outcome(self.config.output_limit, binary=bool(fields.get("binary")))
        # A followed command may send raw ``data`` to a text follower: decoded per stream.
        decoders = {k: codecs.getincrementaldecoder("utf-8")("replace") for k in _STREAMS}
        call = await self.send(op, fields)
        try:
            async for event in self.events(call, timeout):
                kind = event["type"]
                if kind == "stdout" or kind == "stderr":
                    handler = on_stdout if kind == "stdout" else on_stderr
                    raw = event.get("data")
                    if out.raw is not None:
                        if isinstance(raw, str):
                            data = self._b64(raw)
                        else:
                            data = str(event.get("text", "")).encode()
                        out.raw[kind == "stderr"].add(data)
                        if handler and data:
                            await maybe_await(cast(BytesHandler, handler)(data))
                        continue
                    if isinstance(raw, str):
                        text = decoders[kind].decode(self._b64(raw))
                    else:
                        text = event["text"]
                    (out.stdout if kind == "stdout" else out.stderr).add(text)
                    if handler and text:
                        message = OutputMessage(text, time.time_ns(), kind == "stderr")
                        await maybe_await(handler(message))
                elif kind == "result":
                    result = Result.from_mime_bundle(
                        event.get("data") or {}, bool(event.get("is_main_result"))
                    )
                    out.results.append(result)
                    if on_result:
                        await maybe_await(on_result(result))
                elif kind == "error":
                    out.error = cast(ErrorEvent, event)
                    if on_error:
                        await maybe_await(on_error(execution_error(out.error)))
                elif kind == "started":
                    out.pid = int(event["pid"])
                    if on_started:
                        on_started(out.pid)
                elif kind == "done":
                    out.done = cast(DoneValue, event.get("value") or {})
                    out.finished = True
                    for name, decoder in decoders.items():  # a cut character at the end
                        rest = decoder.decode(b"", final=True)
                        if rest:
                            (out.stdout if name == "stdout" else out.stderr).add(rest)
        except asyncio.CancelledError:
            if stop_on_cancel and not out.finished:
                with contextlib.suppress(SandboxError, asyncio.TimeoutError):
                    await asyncio.wait_for(
                        self.request("cancel", {"target": call.id}, _CANCEL_TIMEOUT),
                        _CANCEL_TIMEOUT,
                    )
            raise
        return out


@overload
def execution_error(event: ErrorEvent) -> ExecutionError: ...


@overload
def execution_error(event: None) -> None: ...


def execution_error(event: ErrorEvent | None) -> ExecutionError | None:
    """The :class:`ExecutionError` of an ``error`` event, if there was one."""
    if event is None:
        return None
    return ExecutionError(
        name=str(event.get("name", "Error")),
        value=str(event.get("value", "")),
        traceback=str(event.get("traceback", "")),
    )
