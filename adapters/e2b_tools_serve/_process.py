"""envd's process service (``/process.Process/*``) on an e2b-tools sandbox.

``Start`` runs the command through ``commands.run(background=True, output="bytes")``
and streams ``start``, ``data`` and ``end`` events (keepalives in silences of
``Keepalive-Ping-Interval`` seconds). As in envd, the process outlives a dropped
stream, and at the call's deadline (``Connect-Timeout-Ms``, the SDK's ``timeout``) it
is killed and the stream ends with ``deadline_exceeded``. ``Connect`` follows a running
process (by pid or tag) from now on; ``List``, ``SendSignal``, ``SendInput``,
``CloseStdin`` and ``StreamInput`` act on any command of the sandbox. PTYs (``pty`` in
``Start``, ``SendInput``, ``StreamInput``, and ``Update``) are ``unimplemented``.

Which processes ``List`` shows: every command e2b-tools runs in the sandbox, so also
those started through the e2b-tools API; those begun by ``Start`` carry their envd
config and tag, the others ``/bin/bash -l -c <cmd>``.
"""

from __future__ import annotations

import contextlib
import errno
import signal as signals
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute

from e2b_tools import SandboxError, SandboxFileError

from ._connect import Code, ConnectError
from ._keepalive import keepalive_interval, with_keepalive
from ._process_table import ProcessTable
from ._proto import (
    keepalive_event,
    process_config,
    process_info,
    read_process_request,
    read_start,
    read_stream_input,
    require_selector,
    start_event,
)
from ._rpc import Deadline, client_stream, server_stream, unary
from ._session import Session

Json = dict[str, Any]
_SERVICE = "/process.Process/"
_DEADLINE_SLACK = 0.05
_NO_PTY = (
    "PTYs are not supported by e2b-tools serve: run the command without a PTY "
    "(commands.run) instead"
)


def _table(request: Request) -> ProcessTable:
    session: Session = request.state.session
    return session.service("process", ProcessTable)


def _unimplemented(what: str) -> ConnectError:
    return ConnectError(Code.UNIMPLEMENTED, f"{what}: {_NO_PTY}")


async def _start(request: Request, payload: bytes, deadline: Deadline) -> AsyncIterator[Json]:
    start = read_start(payload)
    if start.pty is not None:
        raise _unimplemented("Start with a pty")
    if not start.cmd:
        raise ConnectError(Code.INVALID_ARGUMENT, "process.cmd is required")
    remaining = deadline.remaining()
    if remaining is not None and remaining <= 0:
        raise ConnectError(Code.DEADLINE_EXCEEDED, "the call's deadline passed")
    table = _table(request)
    process, subscriber = await table.start(
        start.cmd,
        start.args,
        envs=start.envs,
        cwd=start.cwd,
        tag=start.tag,
        stdin=bool(start.stdin),
        user=request.state.user,
        timeout=remaining,
    )
    try:
        yield start_event(process.pid)
        while (event := await subscriber.get()) is not None:
            yield event
        if process.timed_out:
            raise ConnectError(Code.DEADLINE_EXCEEDED, "the call's deadline passed")
    finally:
        process.unsubscribe(subscriber)
        left = deadline.remaining()
        if left is not None and left < _DEADLINE_SLACK and not process.ended:
            # envd kills the process at the call's deadline (e2b-tools would a moment
            # later): kill it before the stream's end says so. (asyncio's timers may
            # fire a little early: hence the slack.)
            with contextlib.suppress(SandboxError):
                await table.session.sandbox.commands.kill(process.pid)


async def _connect(request: Request, payload: bytes, deadline: Deadline) -> AsyncIterator[Json]:
    selector = require_selector(read_process_request(payload, "ConnectRequest"))
    process = _table(request).find(selector.pid, selector.tag)
    subscriber = process.subscribe()
    try:
        yield start_event(process.pid)
        while (event := await subscriber.get()) is not None:
            yield event
    finally:
        process.unsubscribe(subscriber)


StreamHandler = Callable[[Request, bytes, Deadline], AsyncIterator[Json]]


def _kept_alive(handler: StreamHandler) -> StreamHandler:
    """``handler`` with envd's keepalive events in its silences."""

    async def stream(request: Request, payload: bytes, deadline: Deadline) -> AsyncIterator[Json]:
        interval = keepalive_interval(request.headers.get("keepalive-ping-interval"))
        async for event in with_keepalive(
            handler(request, payload, deadline), interval, keepalive_event
        ):
            yield event

    return stream


async def _list(request: Request, payload: bytes) -> Json:
    read_process_request(payload, "ListRequest")
    table = _table(request)
    running = await table.session.sandbox.commands.list()
    infos = []
    for info in running:
        known = table.processes.get(info.pid)
        if known is not None:
            infos.append(known.info())
            continue
        config = process_config("/bin/bash", ["-l", "-c", info.cmd], None, info.cwd)
        infos.append(process_info(info.pid, config))
    return {"processes": infos} if infos else {}  # proto3 JSON omits an empty list


async def _pid(request: Request, payload: bytes, message: str) -> tuple[int, Any]:
    parsed = read_process_request(payload, message)
    selector = require_selector(parsed)
    if selector.pid is not None:
        return selector.pid, parsed
    return _table(request).find(None, selector.tag).pid, parsed


def _not_found(pid: int) -> ConnectError:
    return ConnectError(Code.NOT_FOUND, f"process with pid {pid} not found")


def _signal(number: int) -> signals.Signals:
    try:
        return signals.Signals(number)
    except ValueError:
        raise ConnectError(
            Code.INVALID_ARGUMENT,
            f"signal {number} is not supported (SIGNAL_SIGKILL, SIGNAL_SIGTERM)",
        ) from None


async def _send_signal(request: Request, payload: bytes) -> Json:
    pid, parsed = await _pid(request, payload, "SendSignalRequest")
    if not parsed.signal:
        raise ConnectError(
            Code.INVALID_ARGUMENT, "signal is required (SIGNAL_SIGKILL, SIGNAL_SIGTERM)"
        )
    killed = await _table(request).session.sandbox.commands.kill(pid, signal=_signal(parsed.signal))
    if not killed:
        raise _not_found(pid)
    return {}


async def _stdin_call(pid: int, call: Awaitable[None]) -> None:
    """Run a stdin call; a pid with no running command is ``not_found``."""
    try:
        await call
    except SandboxFileError as exc:
        if exc.errno == errno.ESRCH:
            raise _not_found(pid) from None
        raise ConnectError(Code.FAILED_PRECONDITION, f"process {pid}: {exc.message}") from None


async def _send_input(request: Request, payload: bytes) -> Json:
    pid, parsed = await _pid(request, payload, "SendInputRequest")
    if parsed.pty_input is not None:
        raise _unimplemented("SendInput to a pty")
    commands = _table(request).session.sandbox.commands
    await _stdin_call(pid, commands.send_stdin(pid, parsed.stdin or b""))
    return {}


async def _close_stdin(request: Request, payload: bytes) -> Json:
    pid, _ = await _pid(request, payload, "CloseStdinRequest")
    commands = _table(request).session.sandbox.commands
    await _stdin_call(pid, commands.close_stdin(pid))
    return {}


async def _stream_input(request: Request, payloads: AsyncIterator[bytes]) -> Json:
    commands = _table(request).session.sandbox.commands
    pid: int | None = None
    async for payload in payloads:
        message = read_stream_input(payload)
        if message.event == "start":
            if pid is not None:
                raise ConnectError(Code.INVALID_ARGUMENT, "StreamInput: a second start event")
            selector = require_selector(message)
            pid = selector.pid or _table(request).find(None, selector.tag).pid
        elif message.event == "data":
            if pid is None:
                raise ConnectError(
                    Code.INVALID_ARGUMENT, "StreamInput: data before the start event"
                )
            if message.pty_input is not None:
                raise _unimplemented("StreamInput to a pty")
            if message.stdin:
                await _stdin_call(pid, commands.send_stdin(pid, message.stdin))
    if pid is None:
        raise ConnectError(Code.INVALID_ARGUMENT, "StreamInput: no start event")
    return {}


async def _update(request: Request, payload: bytes) -> Json:
    read_process_request(payload, "UpdateRequest")
    raise _unimplemented("Update (a pty resize)")


def routes() -> list[BaseRoute]:
    """The routes of envd's ``process.Process`` service."""
    return [
        server_stream(_SERVICE + "Start", _kept_alive(_start)),
        server_stream(_SERVICE + "Connect", _kept_alive(_connect)),
        unary(_SERVICE + "List", _list),
        unary(_SERVICE + "SendSignal", _send_signal),
        unary(_SERVICE + "SendInput", _send_input),
        unary(_SERVICE + "CloseStdin", _close_stdin),
        client_stream(_SERVICE + "StreamInput", _stream_input),
        unary(_SERVICE + "Update", _update),
    ]
