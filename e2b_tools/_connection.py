"""The host end of the agent protocol (asyncio), over a backend's :class:`Transport`.

A transport hands over the agent's output in frames tagged with their stream: stdout
carries the protocol, stderr the agent's own log lines, of which the last few are kept
to explain a sandbox that went away. (Docker's 8-byte frame headers stay inside the
Docker backend.)

Everything from the sandbox is untrusted input: a line longer than
:data:`protocol.MAX_LINE` or one that does not parse fails every call in flight with
:class:`ProtocolError` and closes the stream (the next call re-attaches), and a stream
that goes quiet while calls wait is probed, so no call waits on an answer that can no
longer come.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import secrets
import time
from typing import Any, Protocol

from ._exceptions import ProtocolError, SandboxGoneError
from .agent import protocol
from .agent.protocol import Message

# Reader tasks live until their stream ends, even when the sandbox object that opened
# them is dropped without kill(): the loop itself only keeps weak references.
_READERS: set[asyncio.Task[None]] = set()

STDOUT = 1
STDERR = 2
# A stream with calls in flight that stays silent this long is probed; an agent that
# does not answer the probe in time is treated as gone.
LIVENESS_INTERVAL = 20.0
PROBE_TIMEOUT = 10.0


# Bytes of events one call may have waiting for its consumer before the reader stops
# reading the stream (and so the agent stops sending) until it catches up.
CALL_BACKLOG = 32 << 20


class Call:
    """One request in flight: its events arrive through :meth:`get` until ``done``."""

    def __init__(self, request_id: str) -> None:
        self.id = request_id
        self.queue: asyncio.Queue[tuple[Message | BaseException, int]] = asyncio.Queue()
        self.backlog = 0
        self.drained = asyncio.Event()

    def put(self, item: Message | BaseException, size: int = 0) -> None:
        self.backlog += size
        self.queue.put_nowait((item, size))

    async def get(self) -> Message | BaseException:
        """The next event (or the error that ended the call)."""
        item, size = await self.queue.get()
        self.backlog -= size
        if self.backlog <= CALL_BACKLOG // 2:
            self.drained.set()
        return item


class Transport(Protocol):
    """A byte stream to one agent, as a backend opens it."""

    async def read_frame(self) -> tuple[int, bytes]:
        """The next chunk of output and its stream (:data:`STDOUT` or :data:`STDERR`);
        raises ``asyncio.IncompleteReadError`` at the end of the stream."""
        ...

    def write(self, data: bytes) -> None:
        """Queue bytes for the agent's stdin."""
        ...

    async def drain(self) -> None:
        """Wait until written bytes were handed over."""
        ...

    def close(self) -> None:
        """Close the stream (the sandbox itself lives on)."""
        ...


class AgentConnection:
    """A multiplexed request/event stream to one sandbox's agent."""

    def __init__(self, transport: Transport, sandbox_id: str) -> None:
        self._transport = transport
        self.sandbox_id = sandbox_id
        self._calls: dict[str, Call] = {}
        self._prefix = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._agent_log: collections.deque[str] = collections.deque(maxlen=20)
        self.closed_reason: str | None = None
        self.hello: Message = {}
        self._write_lock = asyncio.Lock()
        self._last_heard = time.monotonic()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._read_loop())
        _READERS.add(self._task)
        self._task.add_done_callback(_READERS.discard)
        self._probe = loop.create_task(self._liveness_loop())

    @property
    def closed(self) -> bool:
        return self.closed_reason is not None

    @property
    def agent_log(self) -> list[str]:
        """The agent's last log lines (its stderr)."""
        return list(self._agent_log)

    async def _read_loop(self) -> None:
        lines = protocol.LineBuffer()
        reason = "the sandbox closed the connection (the container exited)"
        try:
            while True:
                stream, payload = await self._transport.read_frame()
                self._last_heard = time.monotonic()
                if stream == STDERR:
                    for text in payload[:4096].decode("utf-8", "replace").splitlines():
                        if text.strip():
                            self._agent_log.append(text)
                    continue
                if stream != STDOUT:
                    continue
                for line in lines.feed(payload):
                    self._dispatch(line)
                if lines.dropped:
                    self._broken(f"a line longer than {protocol.MAX_LINE} bytes")
                if self.closed_reason is not None:
                    return
                await self._wait_for_consumers()
        except asyncio.IncompleteReadError:
            pass
        except (OSError, asyncio.CancelledError) as exc:
            reason = f"the connection to the sandbox broke ({type(exc).__name__}: {exc})"
        finally:
            self._close(reason)

    async def _wait_for_consumers(self) -> None:
        """Backpressure: hold the stream while a call has too much waiting for its reader."""
        for call in list(self._calls.values()):
            while call.backlog > CALL_BACKLOG and self._calls.get(call.id) is call:
                # The stream is not silent: this client chose not to read it for now.
                self._last_heard = time.monotonic()
                call.drained.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(call.drained.wait(), 1.0)

    def _broken(self, what: str) -> None:
        """The stream cannot be trusted any more: fail every call in flight and close."""
        error = ProtocolError(
            f"the sandbox sent {what}; the calls in flight were failed and the connection "
            "closed (the next call reconnects)",
            sandbox_id=self.sandbox_id,
        )
        self._agent_log.append(f"protocol stream broken: {what}")
        self._close(str(error.message), error)

    def _dispatch(self, line: bytes) -> None:
        if self.closed_reason is not None:
            return
        try:
            event = protocol.decode_event(line)
        except protocol.MalformedMessage as exc:
            self._broken(f"an unreadable line ({exc}: {line[:80]!r})")
            return
        call = self._calls.get(event["id"])
        if call is None:
            return  # another client's call, or one we stopped waiting for
        if event.get("type") == "done":
            del self._calls[call.id]
        call.put(event, len(line))

    def _close(self, reason: str, error: BaseException | None = None) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        for call in self._calls.values():
            call.put(error or SandboxGoneError(self.closed_reason, sandbox_id=self.sandbox_id))
        self._calls.clear()
        try:
            self._transport.close()
        except Exception:
            pass
        if not self._probe.done() and self._probe is not asyncio.current_task():
            self._probe.cancel()

    async def _liveness_loop(self) -> None:
        while self.closed_reason is None:
            await asyncio.sleep(LIVENESS_INTERVAL / 2)
            quiet = time.monotonic() - self._last_heard
            if not self._calls or quiet < LIVENESS_INTERVAL:
                continue
            try:
                call = await self.send("info")
                await asyncio.wait_for(self._answer(call), PROBE_TIMEOUT)
            except asyncio.TimeoutError:
                self._close(
                    f"the sandbox's agent stopped answering (silent for {quiet:.0f}s, and no "
                    f"answer to a liveness probe within {PROBE_TIMEOUT:g}s)"
                )
                return
            except Exception:
                return  # closed meanwhile: the calls have their error already

    @staticmethod
    async def _answer(call: Call) -> None:
        while True:
            event = await call.get()
            if isinstance(event, BaseException) or event.get("type") == "done":
                return

    async def send(self, op: str, **fields: Any) -> Call:
        """Send one request; raise :class:`SandboxGoneError` if it could not be sent."""
        if self.closed_reason is not None:
            raise SandboxGoneError(self.closed_reason, sandbox_id=self.sandbox_id)
        call = Call(f"{self._prefix}-{next(self._ids)}")
        message: Message = {"id": call.id, "op": op, **fields}
        self._calls[call.id] = call
        try:
            async with self._write_lock:
                self._transport.write(protocol.encode(message))
                await self._transport.drain()
        except (OSError, RuntimeError) as exc:
            self._calls.pop(call.id, None)
            self._close(f"the connection to the sandbox broke while sending ({exc})")
            raise SandboxGoneError(
                f"could not send {op!r}: {self.closed_reason}", sandbox_id=self.sandbox_id
            ) from exc
        return call

    def forget(self, call: Call) -> None:
        """Stop routing events of ``call`` (after a host-side timeout)."""
        self._calls.pop(call.id, None)

    async def handshake(self, timeout: float) -> Message:
        """Send ``hello`` and return the agent's hello event."""
        call = await self.send("hello", protocol_version=protocol.PROTOCOL_VERSION)

        async def wait() -> Message:
            hello: Message = {}
            while True:
                event = await call.get()
                if isinstance(event, BaseException):
                    raise event
                if event["type"] == "hello":
                    hello = event
                elif event["type"] == "error":
                    raise ProtocolError(
                        f"agent refused the handshake: {event.get('value')}",
                        sandbox_id=self.sandbox_id,
                    )
                elif event["type"] == "done":
                    return hello

        try:
            self.hello = await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            log = "; ".join(self.agent_log[-5:]) or "nothing"
            raise SandboxGoneError(
                f"the sandbox's agent did not answer within {timeout:g}s "
                f"(its log says: {log}); is python3 >= 3.8 in the image?",
                sandbox_id=self.sandbox_id,
            ) from None
        return self.hello

    async def close(self) -> None:
        self._probe.cancel()
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass
        self._close("the connection was closed by this client")
