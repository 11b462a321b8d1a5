"""File operations of the agent (standard library only).

Every path comes from user-controlled state, so nothing here may block the agent's
single loop: files are opened with ``O_NONBLOCK`` and anything that is not a regular
file (a FIFO, a device, a socket) is refused before a byte is read or written. Reads
are capped and sent in chunks; writes arrive in chunks (an *upload*) and replace the
file atomically when the last one lands.
"""

from __future__ import annotations

import base64
import grp
import os
import pwd
import shutil
import stat
from typing import Any, Dict, List, Optional

FILE_CHUNK = 1 << 20
"""Bytes per ``data`` event of ``read_file`` (the host sends writes in such chunks too)."""
UPLOAD_IDLE_SECONDS = 120.0
"""An upload whose next chunk does not come within this time is dropped."""

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFile(OSError):
    """The path names something other than a regular file."""


class FileTooLarge(OSError):
    """A read would return more bytes than the caller's cap."""


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that never blocks and refuses anything but a regular file."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == 6:  # ENXIO: a socket, or a FIFO with no reader (write side)
            raise NotRegularFile(6, "not a regular file (a socket or FIFO)", path) from None
        raise
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "Is a directory", path)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(22, f"{_kind(st.st_mode)}, not a regular file", path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Upload:
    """One file being written, chunk by chunk."""

    def __init__(self, path: str, append: bool) -> None:
        self.path = path
        self.tmp: Optional[str] = None
        self.mode: Optional[int] = None
        self.timer: Optional[int] = None
        if append:
            self.dest = path
            self.fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            return
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory", path)
        # Replace what the path names (through a symlink), keeping an existing file's
        # permission bits, and refuse a file its mode makes read-only, as writing it in
        # place would.
        self.dest = os.path.realpath(path)
        try:
            st = os.stat(self.dest)
        except FileNotFoundError:
            st = None
        if st is not None:
            if not stat.S_ISREG(st.st_mode):
                raise NotRegularFile(22, f"{_kind(st.st_mode)}, not a regular file", path)
            self.mode = stat.S_IMODE(st.st_mode)
            if not os.access(self.dest, os.W_OK, effective_ids=True):
                raise PermissionError(13, "Permission denied", self.dest)
        self.tmp = f"{self.dest}.e2b-tools-{os.getpid()}-{id(self):x}.tmp"
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)

    def write(self, data: bytes) -> None:
        try:
            _write_all(self.fd, data)
        except BaseException:
            self.abort()
            raise

    def commit(self) -> None:
        try:
            if self.mode is not None:
                os.fchmod(self.fd, self.mode)
            os.close(self.fd)
            self.fd = -1
            if self.tmp is not None:
                os.replace(self.tmp, self.dest)
                self.tmp = None
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.tmp is not None:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            self.tmp = None


def _name(uid: int, lookup: Any, cache: Dict[int, str]) -> str:
    """The user (or group) name of an id, or the id itself when it has none."""
    name = cache.get(uid)
    if name is None:
        try:
            name = str(lookup(uid)[0])
        except (KeyError, OSError):
            name = str(uid)
        cache[uid] = name
    return name


_USERS: Dict[int, str] = {}
_GROUPS: Dict[int, str] = {}


def entry(path: str) -> Dict[str, Any]:
    """What ``stat`` and ``list_dir`` report for one path.

    A symlink is described as E2B does: the type of what it points to (``symlink``
    only when that does not exist) and the absolute, resolved ``symlink_target``.
    """
    st = os.lstat(path)
    kind = "file"
    target = None
    if stat.S_ISDIR(st.st_mode):
        kind = "dir"
    elif stat.S_ISLNK(st.st_mode):
        kind = "symlink"
        target = os.path.realpath(path)
        try:
            kind = "dir" if stat.S_ISDIR(os.stat(path).st_mode) else "file"
        except OSError:
            pass
    return {
        "name": os.path.basename(path) or path,
        "path": path,
        "type": kind,
        "size": st.st_size,
        "mode": stat.S_IMODE(st.st_mode),
        "permissions": stat.filemode(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "owner": _name(st.st_uid, pwd.getpwuid, _USERS),
        "group": _name(st.st_gid, grp.getgrgid, _GROUPS),
        "modified_time": st.st_mtime,
        "symlink_target": target,
    }


class FileOps:
    """The file ops of :class:`main.Agent` (mixed in; uses its plumbing)."""

    uploads: Dict[str, Upload]
    resolve: Any
    send: Any
    finish: Any
    timers: Any

    def op_read_file(self, req: Dict[str, Any]) -> None:
        path = self.resolve(req["path"])
        offset = int(req.get("offset") or 0)
        length: Optional[int] = req.get("length")
        limit: Optional[int] = req.get("limit")
        fd = open_regular(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            if length is None and limit is not None and size - offset > limit:
                raise FileTooLarge(27, f"{size} bytes, over the read limit of {limit}", path)
            cap = length if length is not None else limit
            if offset:
                os.lseek(fd, offset, os.SEEK_SET)
            total = 0
            while cap is None or total < cap:
                n = FILE_CHUNK if cap is None else min(FILE_CHUNK, cap - total)
                chunk = os.read(fd, n)
                if not chunk:
                    break
                total += len(chunk)
                self.send(
                    {"id": req["id"], "type": "data", "data": base64.b64encode(chunk).decode()}
                )
            if length is None and limit is not None and total >= limit and os.read(fd, 1):
                # It grew while being read (or is a /proc file of unknown size).
                raise FileTooLarge(27, f"more than the read limit of {limit} bytes", path)
        finally:
            os.close(fd)
        self.finish(req["id"], {"size": size, "read": total})

    def op_write_file(self, req: Dict[str, Any]) -> None:
        path = self.resolve(req["path"])
        token = req.get("upload")
        upload = self.uploads.pop(token, None) if token else None
        if upload is not None:
            self.timers.cancel(upload.timer)
        else:
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            upload = Upload(path, bool(req.get("append")))
        upload.write(base64.b64decode(req["data"]))
        if not req.get("final", True):
            if not token:
                upload.abort()
                raise ValueError("a write with final=false needs an upload token")
            self.uploads[token] = upload
            upload.timer = self.timers.add(UPLOAD_IDLE_SECONDS, lambda: self.drop_upload(token))
            self.finish(req["id"], {"upload": token})
            return
        upload.commit()
        self.finish(req["id"], entry(path))

    def drop_upload(self, token: str) -> None:
        upload = self.uploads.pop(token, None)
        if upload is not None:
            upload.abort()

    def op_list_dir(self, req: Dict[str, Any]) -> None:
        root = self.resolve(req["path"])
        depth = max(1, int(req.get("depth") or 1))
        if not os.path.isdir(root):
            if os.path.exists(root):
                raise NotADirectoryError(20, "Not a directory", root)
            raise FileNotFoundError(2, "No such file or directory", root)
        entries: List[Dict[str, Any]] = []

        def walk(path: str, level: int) -> None:
            with os.scandir(path) as it:
                items = sorted(it, key=lambda e: e.name)
            for item in items:
                try:
                    entries.append(entry(item.path))
                except OSError:
                    continue
                if level < depth and item.is_dir(follow_symlinks=False):
                    try:
                        walk(item.path, level + 1)
                    except OSError:
                        pass

        walk(root, 1)
        self.finish(req["id"], {"entries": entries})

    def op_stat(self, req: Dict[str, Any]) -> None:
        path = self.resolve(req["path"])
        try:
            value: Dict[str, Any] = {"exists": True, "entry": entry(path)}
        except FileNotFoundError:
            value = {"exists": False}
        self.finish(req["id"], value)

    def op_remove(self, req: Dict[str, Any]) -> None:
        path = self.resolve(req["path"])
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass  # gone already: what was asked for, as in E2B
        self.finish(req["id"])

    def op_rename(self, req: Dict[str, Any]) -> None:
        old = self.resolve(req["path"])
        new = self.resolve(req["new_path"])
        os.lstat(old)  # a missing source names the source, not the destination
        parent = os.path.dirname(new)
        if parent:
            os.makedirs(parent, exist_ok=True)
        os.rename(old, new)
        self.finish(req["id"], entry(new))

    def op_make_dir(self, req: Dict[str, Any]) -> None:
        path = self.resolve(req["path"])
        created = not os.path.isdir(path)
        os.makedirs(path, exist_ok=True)
        self.finish(req["id"], {"created": created})
