"""envd's ``filesystem.Filesystem`` service over a sandbox's ``files``.

``Stat``, ``ListDir``, ``MakeDir``, ``Move`` and ``Remove`` are unary; ``WatchDir`` is
a stream (the async SDK) and ``CreateWatcher`` / ``GetWatcherEvents`` /
``RemoveWatcher`` the polled form the sync SDK uses, both on ``files.watch_dir``.

Paths go to ``files`` as they come: e2b-tools resolves a relative path (and ``~``)
under the sandbox's workspace, which is ``/home/user`` on the default image, the home
E2B resolves them under. E2B's ``user`` (the Basic header) is not honoured: every
operation runs as the sandbox's one user (uid 1000, ``user``).

An entry is written as the newest envd writes it: a symlink has the type of what it
points to plus ``isSymlink`` and ``symlinkTarget`` (``e2b`` 2.63 reads it as
``SYMLINK``; older SDKs see the target's type); ``permissions`` is Go's
``FileMode.String()`` and ``mode`` the permission bits.
"""

from __future__ import annotations

import asyncio
import secrets
import stat
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute

from e2b_tools import (
    AsyncSandbox,
    AsyncWatchHandle,
    EntryInfo,
    FilesystemEvent,
    FileType,
    SandboxError,
    SandboxFileError,
)

from . import _proto
from ._connect import Code, ConnectError
from ._errors import connect_error
from ._keepalive import keepalive_interval, with_keepalive
from ._rpc import Deadline, server_stream, unary
from ._session import Session

Json = dict[str, Any]

_PREFIX = "/filesystem.Filesystem/"
_TYPES = {
    FileType.FILE: "FILE_TYPE_FILE",
    FileType.DIR: "FILE_TYPE_DIRECTORY",
    FileType.SYMLINK: "FILE_TYPE_SYMLINK",
}
# ls's first letter of a mode (``stat.filemode``) → the type bits it stands for.
_TYPE_BITS = {
    "-": stat.S_IFREG,
    "d": stat.S_IFDIR,
    "l": stat.S_IFLNK,
    "c": stat.S_IFCHR,
    "b": stat.S_IFBLK,
    "p": stat.S_IFIFO,
    "s": stat.S_IFSOCK,
}
WATCHER_EVENT_LIMIT = 10_000
"""Events a polled watcher (``CreateWatcher``) keeps between two ``GetWatcherEvents``;
past that the oldest are dropped."""
WATCHER_LIMIT = 64
"""Polled watchers one sandbox may hold at once (``resource_exhausted`` beyond)."""


def entry_json(info: EntryInfo) -> Json:
    """An e2b-tools :class:`EntryInfo` as envd's ``EntryInfo`` message."""
    st_mode = _TYPE_BITS.get(info.permissions[:1], 0) | info.mode
    is_symlink = info.symlink_target is not None or info.type == FileType.SYMLINK
    return _proto.entry_info(
        name=info.name,
        type=_TYPES.get(info.type, "FILE_TYPE_UNSPECIFIED") if info.type else "FILE_TYPE_FILE",
        path=info.path,
        size=info.size,
        mode=info.mode & 0o777,
        permissions=_proto.permissions(st_mode),
        owner=info.owner or str(info.uid),
        group=info.group or str(info.gid),
        modified_time=info.modified_time.timestamp(),
        symlink_target=info.symlink_target,
        metadata=info.metadata,
        is_symlink=is_symlink,
    )


def _sandbox(request: Request) -> AsyncSandbox:
    session: Session = request.state.session
    return session.sandbox


async def _stat(request: Request, payload: bytes) -> Json:
    req = _proto.read_fs_request(payload, "StatRequest")
    return {"entry": entry_json(await _sandbox(request).files.get_info(req.path))}


async def _list_dir(request: Request, payload: bytes) -> Json:
    req = _proto.read_fs_request(payload, "ListDirRequest")
    entries = await _sandbox(request).files.list(req.path, depth=req.depth or 1)
    return {"entries": [entry_json(entry) for entry in entries]}


async def _make_dir(request: Request, payload: bytes) -> Json:
    req = _proto.read_fs_request(payload, "MakeDirRequest")
    files = _sandbox(request).files
    try:
        created = await files.make_dir(req.path)
    except SandboxFileError as exc:
        if exc.kind in ("exists", "not_a_directory"):
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"path '{req.path}' exists and is not a directory"
            ) from None
        raise
    if not created:
        raise ConnectError(Code.ALREADY_EXISTS, f"directory '{req.path}' already exists")
    return {"entry": entry_json(await files.get_info(req.path))}


async def _move(request: Request, payload: bytes) -> Json:
    req = _proto.read_fs_request(payload, "MoveRequest")
    return {"entry": entry_json(await _sandbox(request).files.rename(req.source, req.destination))}


async def _remove(request: Request, payload: bytes) -> Json:
    req = _proto.read_fs_request(payload, "RemoveRequest")
    await _sandbox(request).files.remove(req.path)
    return {}


# --- watching ----------------------------------------------------------------------------


def _event_json(event: FilesystemEvent) -> Json:
    out: Json = {"name": event.name, "type": f"EVENT_TYPE_{event.type.name}"}
    if event.entry is not None:
        out["entry"] = entry_json(event.entry)
    return out


async def _watch_dir(request: Request, payload: bytes, deadline: Deadline) -> AsyncIterator[Json]:
    req = _proto.read_fs_request(payload, "WatchDirRequest")
    queue: asyncio.Queue[Json | BaseException | None] = asyncio.Queue()

    def on_event(event: FilesystemEvent) -> None:
        if queue.qsize() < WATCHER_EVENT_LIMIT:  # a client that does not read loses events
            queue.put_nowait({"filesystem": _event_json(event)})

    def on_exit(error: Exception | None) -> None:
        queue.put_nowait(error)

    handle = await _sandbox(request).files.watch_dir(
        req.path,
        on_event,
        on_exit,
        timeout=None,  # the call's deadline (Connect-Timeout-Ms) bounds the stream
        recursive=req.recursive,
        include_entry=req.include_entry,
    )

    async def events() -> AsyncIterator[Json]:
        yield {"start": {}}
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, SandboxError):
                raise connect_error(item, request.state.session)
            if isinstance(item, BaseException):
                raise item
            yield item

    interval = keepalive_interval(request.headers.get("keepalive-ping-interval"))
    try:
        async for message in with_keepalive(events(), interval, lambda: {"keepalive": {}}):
            yield message
    finally:
        await handle.stop()


class _Watcher:
    """A polled watcher: the events since the last ``GetWatcherEvents``."""

    def __init__(self) -> None:
        self.events: deque[Json] = deque(maxlen=WATCHER_EVENT_LIMIT)
        self.error: Exception | None = None
        self.handle: AsyncWatchHandle | None = None


class _Watchers:
    """A session's polled watchers (stopped with the session)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.by_id: dict[str, _Watcher] = {}

    async def create(self, req: _proto.FsRequest) -> str:
        if len(self.by_id) >= WATCHER_LIMIT:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"this sandbox has {WATCHER_LIMIT} watchers: remove one (RemoveWatcher) first",
            )
        watcher = _Watcher()

        def on_exit(error: Exception | None) -> None:
            watcher.error = error

        watcher.handle = await self.session.sandbox.files.watch_dir(
            req.path,
            lambda event: watcher.events.append(_event_json(event)),
            on_exit,
            timeout=None,
            recursive=req.recursive,
            include_entry=req.include_entry,
        )
        watcher_id = secrets.token_hex(8)
        self.by_id[watcher_id] = watcher
        return watcher_id

    def get(self, watcher_id: str) -> _Watcher:
        try:
            return self.by_id[watcher_id]
        except KeyError:
            raise ConnectError(Code.NOT_FOUND, f"watcher '{watcher_id}' not found") from None

    async def remove(self, watcher_id: str) -> None:
        watcher = self.get(watcher_id)
        del self.by_id[watcher_id]
        if watcher.handle is not None:
            await watcher.handle.stop()

    async def aclose(self) -> None:
        for watcher_id in list(self.by_id):
            await self.remove(watcher_id)


def _watchers(request: Request) -> _Watchers:
    session: Session = request.state.session
    return session.service("filesystem.watchers", _Watchers)


async def _create_watcher(request: Request, payload: bytes) -> Json:
    req = _proto.read_fs_request(payload, "CreateWatcherRequest")
    return {"watcherId": await _watchers(request).create(req)}


async def _get_watcher_events(request: Request, payload: bytes) -> Json:
    req = _proto.read_fs_request(payload, "GetWatcherEventsRequest")
    watcher = _watchers(request).get(req.watcher_id)
    events = list(watcher.events)
    watcher.events.clear()
    if not events and watcher.error is not None:
        error = watcher.error
        if isinstance(error, SandboxError):
            raise connect_error(error, request.state.session)
        raise ConnectError(Code.INTERNAL, f"the watch ended: {error}")
    return {"events": events} if events else {}


async def _remove_watcher(request: Request, payload: bytes) -> Json:
    req = _proto.read_fs_request(payload, "RemoveWatcherRequest")
    await _watchers(request).remove(req.watcher_id)
    return {}


def routes() -> list[BaseRoute]:
    """The ``filesystem.Filesystem`` methods."""
    return [
        unary(_PREFIX + "Stat", _stat),
        unary(_PREFIX + "ListDir", _list_dir),
        unary(_PREFIX + "MakeDir", _make_dir),
        unary(_PREFIX + "Move", _move),
        unary(_PREFIX + "Remove", _remove),
        server_stream(_PREFIX + "WatchDir", _watch_dir),
        unary(_PREFIX + "CreateWatcher", _create_watcher),
        unary(_PREFIX + "GetWatcherEvents", _get_watcher_events),
        unary(_PREFIX + "RemoveWatcher", _remove_watcher),
    ]
