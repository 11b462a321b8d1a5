"""File operations of the agent (standard library only).

Every path comes from user-controlled state, so nothing here may block the agent's
single loop: files are opened with ``O_NONBLOCK`` and anything that is not a regular
file (a FIFO, a device, a socket) is refused before a byte is read or written. Reads
are capped and sent in chunks; writes arrive in chunks (an *upload*) and replace the
file atomically when the last one lands.

A chunk either way may be zlib-compressed (``"compressed": true``; E2B's ``gzip=True``
asks for it): each inflates on its own to at most :data:`FILE_CHUNK` bytes, so neither
side can be made to inflate a bomb. User metadata (E2B's) lives in extended attributes
``user.e2b.<key>`` of the file itself, so it follows the file through a rename.
"""

from __future__ import annotations

import base64
import errno
import grp
import os
import pwd
import re
import shutil
import stat
import zlib
from typing import Any, Dict, List, Optional, Tuple

FILE_CHUNK = 1 << 20
"""Bytes per ``data`` event of ``read_file`` (the host sends writes in such chunks too)."""
UPLOAD_IDLE_SECONDS = 120.0
"""An upload whose next chunk does not come within this time is dropped."""
COMPRESS_LEVEL = 1
"""zlib level of compressed chunks: the fastest, which keeps most of the gain on text."""

METADATA_PREFIX = "user.e2b."
"""Extended-attribute namespace of file metadata (E2B's): ``user.e2b.<key>``."""
METADATA_KEY_MAX = 255 - len(METADATA_PREFIX)
"""Longest metadata key, in bytes: the kernel caps an attribute's name at 255."""
METADATA_TOTAL_MAX = 4096
"""Most metadata on one file, counted as E2B counts it: the sum over its keys of
``len("user.e2b.") + len(key) + len(value)``. A read reports no more than this either."""
_KEY = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+\Z")  # an HTTP header name's characters
_VALUE = re.compile(r"[ -~]*\Z")  # printable US-ASCII
_READ_KEYS_MAX = METADATA_TOTAL_MAX // (len(METADATA_PREFIX) + 1)
"""Most keys a read looks at: as many as a write can store (each costs 10 bytes or more)."""

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


class Compressor:
    """Compresses a file's chunks while that pays: after a chunk that shrinks by less
    than a tenth, the rest go as they are (zlib is slower than the wire on data that
    does not compress)."""

    def __init__(self) -> None:
        self.on = True

    def pack(self, chunk: bytes) -> Tuple[bytes, bool]:
        """The chunk to send and whether it is compressed."""
        if self.on and chunk:
            packed = zlib.compress(chunk, COMPRESS_LEVEL)
            if len(packed) * 10 < len(chunk) * 9:
                return packed, True
            self.on = False
        return chunk, False


def inflate(data: bytes) -> bytes:
    """One compressed chunk's bytes; ValueError unless ``data`` is exactly one zlib
    stream of at most :data:`FILE_CHUNK` bytes (no more is ever inflated)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, FILE_CHUNK)
    except zlib.error as exc:
        raise ValueError(f"a compressed chunk is not zlib data ({exc})") from None
    if inflater.unconsumed_tail or inflater.unused_data or not inflater.eof:
        raise ValueError(f"a compressed chunk is cut short or inflates past {FILE_CHUNK} bytes")
    return out


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


def check_metadata(metadata: Any) -> Dict[str, str]:
    """File metadata as it will be stored, keys lowercased (as E2B's sandbox stores
    them); ValueError saying what is wrong with it otherwise."""
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict of str to str, not {type(metadata).__name__}")
    out: Dict[str, str] = {}
    total = 0
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(
                f"metadata keys and values must be str, not {type(key).__name__} "
                f"{_short(str(key))} -> {type(value).__name__}"
            )
        if len(key) > METADATA_KEY_MAX:
            raise ValueError(
                f"metadata key {_short(key)} is {len(key)} characters; at most {METADATA_KEY_MAX}"
            )
        total += len(METADATA_PREFIX) + len(key) + len(value)
        if total > METADATA_TOTAL_MAX:
            raise ValueError(
                f"metadata over {METADATA_TOTAL_MAX} bytes (each key counts "
                f"len({METADATA_PREFIX!r}) + len(key) + len(value)); store less"
            )
        if not _KEY.match(key):
            raise ValueError(
                f"invalid metadata key {_short(key)}: keys must be non-empty and use only "
                "HTTP token characters (letters, digits and !#$%&'*+-.^_`|~)"
            )
        if not _VALUE.match(value):
            raise ValueError(
                f"invalid metadata value for key {_short(key)}: values must be printable "
                "US-ASCII (no newlines, tabs or other characters); encode other data, "
                "e.g. in base64"
            )
        lower = key.lower()
        if lower in out:
            raise ValueError(
                f"metadata keys {_short(key)} and {_short(lower)} are one key: keys are "
                "stored lowercased"
            )
        out[lower] = value
    return out


def read_metadata(path: str) -> Optional[Dict[str, str]]:
    """The metadata of the file ``path`` names (through a symlink), None when it has none.

    Best effort, as E2B's: attributes that are not UTF-8 are skipped, and so is all of it
    where the filesystem has no extended attributes or too many names to list. Bounded
    against attributes set inside the sandbox: keys are taken in name order while they
    fit in :data:`METADATA_TOTAL_MAX` (one that does not is skipped), and no more than
    :data:`_READ_KEYS_MAX` keys are looked at.
    """
    try:
        names = sorted(n for n in os.listxattr(path) if n.startswith(METADATA_PREFIX))
    except OSError:
        return None
    out: Dict[str, str] = {}
    budget = METADATA_TOTAL_MAX
    for name in names[:_READ_KEYS_MAX]:
        if budget <= len(name) or name == METADATA_PREFIX:
            continue
        try:
            raw = os.getxattr(path, name)
            cost = len(name.encode("utf-8")) + len(raw)
            value = raw.decode("utf-8")
        except (OSError, UnicodeError):
            continue  # gone meanwhile, or not UTF-8 (a name with surrogates too)
        if cost <= budget:
            budget -= cost
            out[name[len(METADATA_PREFIX) :]] = value
    return out or None


def write_metadata(fd: int, metadata: Dict[str, str], path: str) -> None:
    """Make ``metadata`` (checked) the whole metadata of the open file ``fd``."""
    try:
        for name in os.listxattr(fd):
            if name.startswith(METADATA_PREFIX) and name[len(METADATA_PREFIX) :] not in metadata:
                os.removexattr(fd, name)
        for key, value in metadata.items():
            os.setxattr(fd, METADATA_PREFIX + key, value.encode("ascii"))
    except OSError as exc:
        if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OSError(exc.errno, exc.strerror, path) from None
        if metadata:
            raise OSError(
                exc.errno, "this filesystem has no extended attributes to keep metadata in", path
            ) from None


class Upload:
    """One file being written, chunk by chunk."""

    def __init__(self, path: str, append: bool, metadata: Optional[Dict[str, str]] = None) -> None:
        """Open the file (or its stand-in) and give it ``metadata``: a replaced file gets
        only that (none when it is None); an appended one keeps its own unless given."""
        self.path = path
        self.tmp: Optional[str] = None
        self.mode: Optional[int] = None
        self.timer: Optional[int] = None
        if append:
            self.dest = path
            self.fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            if metadata is not None:
                self._set_metadata(metadata)
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
        if metadata:  # on the stand-in: the file appears with it, or not at all
            self._set_metadata(metadata)

    def _set_metadata(self, metadata: Dict[str, str]) -> None:
        try:
            write_metadata(self.fd, metadata, self.path)
        except BaseException:
            self.abort()
            raise

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
        "metadata": read_metadata(path),
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
        packer = Compressor() if req.get("compress") else None
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
                event: Dict[str, Any] = {"id": req["id"], "type": "data"}
                if packer is not None:
                    chunk, packed = packer.pack(chunk)
                    if packed:
                        event["compressed"] = True
                event["data"] = base64.b64encode(chunk).decode()
                self.send(event)
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
            metadata = req.get("metadata")
            if metadata is not None:  # before anything is made: a refused write makes nothing
                metadata = check_metadata(metadata)
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            upload = Upload(path, bool(req.get("append")), metadata)
        data = base64.b64decode(req["data"])
        if req.get("compressed"):
            try:
                data = inflate(data)
            except ValueError:
                upload.abort()
                raise
        upload.write(data)
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
