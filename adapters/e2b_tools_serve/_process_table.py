"""The process table of one served sandbox: the commands envd's ``Start`` began, each
with its config, tag and a fan-out of its events to the streams that follow it.

Each process has one e2b-tools handle (``commands.run(background=True,
output="bytes")``) whose output callbacks publish envd events to its subscribers (the
``Start`` stream that began it, any ``Connect`` streams). A process outlives its
streams: it ends when it exits, is killed, or the sandbox goes.

Memory is bounded per subscriber. Each has a queue of at most
:data:`SUBSCRIBER_BUDGET` bytes of output; when a subscriber's queue is full the
publisher waits for it to drain (backpressure, which e2b-tools carries through to the
process itself), and a subscriber that takes nothing for :data:`STALL_SECONDS` is
**disconnected**: its stream ends with ``aborted`` (the process runs on; ``Connect``
follows it again). Output with no subscriber is dropped: ``Connect`` gets only future
events, as envd's does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from e2b_tools import (
    AsyncCommandHandle,
    CommandExitError,
    CommandResult,
    InvalidArgumentError,
    SandboxError,
    SandboxTimeoutError,
)

from ._connect import Code, ConnectError
from ._proto import data_event, end_event, process_config, process_info
from ._session import Session

log = logging.getLogger("e2b_tools.serve")

Json = dict[str, Any]

SUBSCRIBER_BUDGET = 1 << 20
"""Bytes of output (base64 in the events) one subscriber may have queued."""
STALL_SECONDS = 30.0
"""Seconds a full subscriber may take nothing before it is disconnected."""

_BASH = ("/bin/bash", "bash", "/usr/bin/bash")


def command_line(cmd: str, args: list[str]) -> str:
    """The shell command e2b-tools runs for envd's argv: the SDKs' ``/bin/bash -l -c X``
    is ``X``; any other argv is quoted into one line."""
    if cmd in _BASH and len(args) == 3 and args[:2] == ["-l", "-c"]:
        return args[2]
    return shlex.join([cmd, *args])


def end_of(result: CommandResult) -> Json:
    """envd's ``end`` event for an e2b-tools result: Go's ``ProcessState`` words
    (``exit status 3``; a signal is exit code -1, not exited, ``signal: killed``)."""
    if result.signal is not None:
        error = result.error or ""
        status = error if error.startswith("signal: ") else f"signal: {result.signal}"
        return end_event(-1, exited=False, status=status, error=status)
    status = f"exit status {result.exit_code}"
    return end_event(
        result.exit_code, exited=True, status=status, error=status if result.exit_code else None
    )


def _encoded(data: bytes) -> int:
    """Bytes of ``data`` in an event (base64)."""
    return (len(data) + 2) // 3 * 4


class Subscriber:
    """One stream following a process: a bounded queue of its events."""

    def __init__(self, budget: int) -> None:
        self._events: collections.deque[tuple[Json, int]] = collections.deque()
        self._size = 0
        self._budget = budget
        self._changed = asyncio.Event()
        self._drained = asyncio.Event()
        self.closed = False
        self.error: BaseException | None = None

    def has_room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit (an empty queue always takes one event)."""
        return self._size == 0 or self._size + size <= self._budget

    def push(self, event: Json, size: int = 0) -> None:
        """Queue an event (``size``: its bytes of output, counted against the budget)."""
        if self.closed:
            return
        self._events.append((event, size))
        self._size += size
        self._changed.set()

    def close(self, error: BaseException | None = None) -> None:
        """End the stream after what is queued (with ``error``, raised by :meth:`get`)."""
        if not self.closed:
            self.closed = True
            self.error = error
        self._changed.set()
        self._drained.set()

    async def wait_room(self, size: int, seconds: float) -> bool:
        """Wait until ``size`` bytes fit; False if the reader took nothing for
        ``seconds`` (or went away)."""
        while not self.closed and not self.has_room(size):
            self._drained.clear()
            before = self._size
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained.wait(), seconds)
            if self._size >= before and not self.has_room(size):
                return False
        return not self.closed

    async def get(self) -> Json | None:
        """The next event; ``None`` once the stream ended (its error is raised)."""
        while not self._events:
            if self.closed:
                if self.error is not None:
                    raise self.error
                return None
            self._changed.clear()
            await self._changed.wait()
        event, size = self._events.popleft()
        self._size -= size
        self._drained.set()
        return event


@dataclass
class Process:
    """One command envd's ``Start`` began, and who follows it."""

    cmd: str
    args: list[str]
    envs: Mapping[str, str]
    cwd: str | None
    tag: str | None
    pid: int = 0
    handle: AsyncCommandHandle | None = None
    ended: bool = False
    timed_out: bool = False

    def __post_init__(self) -> None:
        self.subscribers: set[Subscriber] = set()

    def info(self) -> Json:
        """Its ``ProcessInfo``."""
        config = process_config(self.cmd, self.args, self.envs, self.cwd)
        return process_info(self.pid, config, self.tag)

    def subscribe(self) -> Subscriber:
        """A new stream following the process from now on."""
        subscriber = Subscriber(SUBSCRIBER_BUDGET)
        if self.ended:
            subscriber.close()
        else:
            self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop following (the process runs on)."""
        self.subscribers.discard(subscriber)
        subscriber.close()

    async def publish(self, event: Json, size: int) -> None:
        """Hand an output event to every subscriber (see the module docstring)."""
        for subscriber in list(self.subscribers):
            if not subscriber.has_room(size) and not await subscriber.wait_room(
                size, STALL_SECONDS
            ):
                self.subscribers.discard(subscriber)
                subscriber.close(
                    ConnectError(
                        Code.ABORTED,
                        f"stopped streaming process {self.pid}: the client read none of its "
                        f"output for {STALL_SECONDS:g}s with {SUBSCRIBER_BUDGET} bytes "
                        "queued; the process runs on (Connect follows it again)",
                    )
                )
                continue
            subscriber.push(event, size)

    async def on_stdout(self, data: bytes) -> None:
        """e2b-tools' stdout callback."""
        await self.publish(data_event(stdout=data), _encoded(data))

    async def on_stderr(self, data: bytes) -> None:
        """e2b-tools' stderr callback."""
        await self.publish(data_event(stderr=data), _encoded(data))

    def finish(self, end: Json | None, error: BaseException | None = None) -> None:
        """The process ended: send ``end`` (or ``error``) to every subscriber."""
        self.ended = True
        subscribers, self.subscribers = self.subscribers, set()
        for subscriber in subscribers:
            if end is not None:
                subscriber.push(end)
            subscriber.close(error)


class ProcessTable:
    """The processes envd's ``Start`` began in one sandbox (``session.service``)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.processes: dict[int, Process] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self.closed = False

    def _gone(self) -> ConnectError:
        return ConnectError(Code.UNAVAILABLE, self.session.cut_message())

    async def start(
        self,
        cmd: str,
        args: list[str],
        *,
        envs: Mapping[str, str],
        cwd: str | None,
        tag: str | None,
        stdin: bool,
        user: str | None,
        timeout: float | None,
    ) -> tuple[Process, Subscriber]:
        """Start a command, following it from its first byte; returns the process (its
        ``pid`` set) and the starter's subscription."""
        if self.closed:
            raise self._gone()
        process = Process(cmd=cmd, args=list(args), envs=dict(envs), cwd=cwd, tag=tag)
        subscriber = process.subscribe()  # before run(): output may come before it returns
        try:
            handle = await self.session.sandbox.commands.run(
                command_line(cmd, args),
                cwd=cwd,
                envs=dict(envs) or None,
                timeout=timeout,
                on_stdout=process.on_stdout,
                on_stderr=process.on_stderr,
                background=True,
                stdin=stdin,
                user="root" if user == "root" else None,
                output="bytes",
            )
        except InvalidArgumentError as exc:
            if cwd is not None and "cwd" in exc.message:
                raise ConnectError(Code.INVALID_ARGUMENT, f"cwd '{cwd}' does not exist") from None
            raise
        process.handle = handle
        process.pid = handle.pid
        self.processes[handle.pid] = process
        watcher = asyncio.get_running_loop().create_task(self._watch(process, handle))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return process, subscriber

    async def _watch(self, process: Process, handle: AsyncCommandHandle) -> None:
        try:
            try:
                result = await handle.wait()
            except CommandExitError as exc:
                result = exc.result
            except SandboxTimeoutError:
                process.timed_out = True
                # envd kills it at the deadline: its followers see a killed process.
                result = CommandResult(exit_code=-1, signal="SIGKILL", error="signal: killed")
            process.finish(end_of(result))
        except SandboxError as exc:
            process.finish(None, exc)
        except asyncio.CancelledError:
            process.finish(None, self._gone())
            raise
        except Exception as exc:  # never leave a follower hanging
            log.exception(
                "following process %s of sandbox %s", process.pid, self.session.sandbox_id
            )
            process.finish(None, exc)
        finally:
            if self.processes.get(process.pid) is process:
                del self.processes[process.pid]

    def find(self, pid: int | None, tag: str | None) -> Process:
        """The running process with ``pid`` (or ``tag``) this table follows, else
        ``not_found``."""
        for process in self.processes.values():
            if (pid is not None and process.pid == pid) or (tag is not None and process.tag == tag):
                return process
        what = f"pid {pid}" if pid is not None else f"tag '{tag}'"
        raise ConnectError(Code.NOT_FOUND, f"process with {what} not found")

    async def aclose(self) -> None:
        """The sandbox is gone (or the server stops): end every stream, stop following."""
        self.closed = True
        for process in list(self.processes.values()):
            process.finish(None, self._gone())
            if process.handle is not None:
                with contextlib.suppress(Exception):
                    await process.handle.disconnect()
        watchers = list(self._watchers)
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        self.processes.clear()
