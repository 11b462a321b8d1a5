"""Directory watches of the agent (standard library only): Linux inotify through ctypes.

``watch_dir`` (``path``, ``recursive``) opens one inotify instance for the request and
answers ``started`` once the directory (recursive: every directory under it too) is
watched. From then on it streams ``fs_event`` events, ``{"kind", "name"}``, until the
host cancels it (``cancel`` with the request's id) or the directory is deleted; then
``done``. ``kind`` is E2B's: ``create``, ``write``, ``remove``, ``rename``, ``chmod``,
mapped from inotify as E2B's envd (through fsnotify) maps them: a rename inside the
watched tree is ``rename`` of the old name and ``create`` of the new one. ``name`` is
relative to the watched directory (``sub/file`` in a recursive watch).

A file written through ``write_file`` lands in a temporary file that replaces the target
in one step; the watch hides that temporary file and reports what E2B's envd reports
for its own writes: ``create`` (when the file is new), ``chmod`` (envd hands the file to
the user) and ``write`` of the target. With ``include_entry`` each event carries the
``entry`` of its path as ``stat`` describes it, when the path still exists.

``kind: "overflow"`` with ``dropped: n`` says at least ``n`` events were lost: past
:data:`QUEUE_LIMIT` in one read, or when the kernel's own queue overflowed
(``IN_Q_OVERFLOW``, counted as 1: the kernel does not say how many).

``watch_flush`` (``target``) reads what the kernel holds for a watch at once and
answers ``{"found", "sent"}``, ``sent`` being how many ``fs_event`` events the watch
has sent in all: the host then knows when it has seen every event up to that moment.

Bounds: at most :data:`MAX_WATCHES` watches and :data:`MAX_DIRS` watched directories
per sandbox (a recursive watch of a larger tree is refused; directories that appear
later past the limit are not watched, and the agent log says so), at most
:data:`SCAN_LIMIT` entries looked at when a tree is added, and one read of at most
:data:`READ_SIZE` bytes per round of the agent's loop, so a flood of events costs
bounded memory and time, and other calls keep their turns.
"""

from __future__ import annotations

import errno
import os
import re
import selectors
import struct
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from . import files
from .plumbing import log

if TYPE_CHECKING:
    from .main import Agent

MAX_WATCHES = 64
"""Watches one sandbox runs at once."""
MAX_DIRS = 8192
"""Directories all the watches of one sandbox watch at once (inotify watches are a
per-user kernel resource that the sandboxes of a host share)."""
QUEUE_LIMIT = 4096
"""Events one watch queues from one read of the kernel (or one scan of a new directory);
more are dropped and counted in an ``overflow`` event."""
SCAN_LIMIT = 250_000
"""Entries looked at when a directory tree is added to a watch."""
READ_SIZE = 1 << 16
"""Bytes per read of an inotify descriptor (at least one event with the longest name)."""
FLUSH_READS = 64
"""Reads ``watch_flush`` makes at most before it answers."""

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000

ROOT_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_ONLYDIR
    | IN_EXCL_UNLINK
)
SUB_MASK = ROOT_MASK | IN_DONT_FOLLOW
"""Directories found under the root: symlinks are not followed out of the tree."""

# fsnotify's mapping (E2B's envd), one event per kind an inotify event carries.
KINDS = (
    (IN_CREATE | IN_MOVED_TO, "create"),
    (IN_DELETE, "remove"),
    (IN_MODIFY, "write"),
    (IN_MOVED_FROM, "rename"),
    (IN_ATTRIB, "chmod"),
)

_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then name
# files.Upload's temporary file: "<target>.e2b-tools-<agent pid>-<hex>.tmp".
_UPLOAD_TEMP = re.compile(r"\.e2b-tools-(\d+)-[0-9a-f]+\.tmp$")
_KERNEL_LIMIT = (
    "the kernel's limit of inotify watches (fs.inotify.max_user_watches, shared by the "
    "host's sandboxes) is reached; stop other watches or raise the limit on the host"
)


class ResourceExhausted(Exception):
    """A limit of the agent or of the kernel stops a watch from starting."""


_libc: Any = None


def _lib() -> Any:
    global _libc
    if _libc is None:
        import ctypes

        lib = ctypes.CDLL(None, use_errno=True)
        lib.inotify_init1.argtypes = [ctypes.c_int]
        lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        lib.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        _libc = lib
    return _libc


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


class Inotify:
    """One inotify instance (non-blocking, closed on exec)."""

    def __init__(self) -> None:
        try:
            self.lib = _lib()
            fd = int(self.lib.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
        except (ImportError, OSError, AttributeError) as exc:
            raise OSError(errno.ENOSYS, f"inotify is not available here ({exc})") from None
        if fd < 0:
            err = _errno()
            if err in (errno.EMFILE, errno.ENFILE):
                raise ResourceExhausted(
                    "no inotify instance left (fs.inotify.max_user_instances, shared by "
                    "the host's sandboxes, or the open-files limit); stop other watches"
                )
            raise OSError(err, os.strerror(err))
        self.fd = fd

    def add(self, path: str, mask: int) -> int:
        """Watch ``path``; its watch descriptor."""
        wd = int(self.lib.inotify_add_watch(self.fd, os.fsencode(path), mask))
        if wd < 0:
            err = _errno()
            raise OSError(err, os.strerror(err), path)
        return wd

    def remove(self, wd: int) -> None:
        self.lib.inotify_rm_watch(self.fd, wd)  # fails only for a watch gone already

    def read(self) -> Optional[bytes]:
        """The events the kernel holds, up to :data:`READ_SIZE` bytes; None if none."""
        try:
            return os.read(self.fd, READ_SIZE) or None
        except BlockingIOError:
            return None

    def close(self) -> None:
        """Close the instance: the kernel drops all of its watches."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def parse(data: bytes) -> List[Tuple[int, int, int, bytes]]:
    """``(wd, mask, cookie, name)`` of each ``struct inotify_event`` in ``data``."""
    events = []
    offset = 0
    size = _HEADER.size
    while offset + size <= len(data):
        wd, mask, cookie, length = _HEADER.unpack_from(data, offset)
        name = data[offset + size : offset + size + length].split(b"\0", 1)[0]
        events.append((wd, mask, cookie, name))
        offset += size + length
    return events


def _join(rel: str, name: str) -> str:
    return rel + "/" + name if rel else name


class Watch:
    """One ``watch_dir`` request: an inotify instance and the directories it watches."""

    def __init__(
        self, owner: Watches, rid: str, root: str, recursive: bool, include_entry: bool
    ) -> None:
        self.owner = owner
        self.rid = rid
        self.root = root
        self.recursive = recursive
        self.include_entry = include_entry
        self.ino = Inotify()
        self.dirs: Dict[int, str] = {}
        """Watch descriptor -> directory relative to the root ("" is the root)."""
        self.root_wd = -1
        self.queue: List[Tuple[str, str]] = []
        self.dropped = 0
        self.sent = 0
        self.uploads: Dict[str, bool] = {}
        """The agent's upload temporary files (relative) -> whether the target existed."""
        self.moves: Dict[int, bool] = {}
        """Rename cookie of an upload temporary file -> whether the target existed."""
        self.unwatched = 0
        self.ended = False
        self.registered = False

    # -- directories ---------------------------------------------------------------
    def open(self) -> None:
        """Watch the root (and, recursive, the tree under it); raises what stops it."""
        try:
            self.root_wd = self.ino.add(self.root, ROOT_MASK)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise ResourceExhausted(_KERNEL_LIMIT) from None
            raise
        self.dirs[self.root_wd] = ""
        if self.recursive:
            self.scan("", emit=False, strict=True)

    def add_dir(self, rel: str, strict: bool = False) -> bool:
        """Watch the directory ``rel``; False if it is gone or a limit stops it."""
        if self.owner.dirs_watched() >= MAX_DIRS:
            why = f"the limit of {MAX_DIRS} watched directories per sandbox is reached"
            if strict:
                raise ResourceExhausted(
                    f"{self.root} holds more directories than one sandbox watches "
                    f"({MAX_DIRS}, all its watches together); watch a smaller tree, "
                    "or pass recursive=False"
                )
            self.note_unwatched(rel, why)
            return False
        try:
            wd = self.ino.add(os.path.join(self.root, rel), SUB_MASK)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                if strict:
                    raise ResourceExhausted(_KERNEL_LIMIT) from None
                self.note_unwatched(rel, _KERNEL_LIMIT)
            return False  # gone meanwhile, a symlink, or not readable: nothing to watch
        self.dirs[wd] = rel
        return True

    def scan(self, top: str, emit: bool, strict: bool = False) -> None:
        """Watch every directory under ``top`` (watched already). With ``emit``, report
        each entry found as created: it appeared after ``top`` did but before ``top``'s
        watch was in place, so no event of its own will come."""
        stack = [top]
        seen = 0
        while stack:
            rel = stack.pop()
            try:
                entries = os.scandir(os.path.join(self.root, rel))
            except OSError:
                continue
            with entries:
                for entry in entries:
                    seen += 1
                    if seen > SCAN_LIMIT:
                        if strict:
                            raise ResourceExhausted(
                                f"{self.root} holds more than {SCAN_LIMIT} entries; watch a "
                                "smaller tree, or pass recursive=False"
                            )
                        self.note_unwatched(rel, f"over {SCAN_LIMIT} entries in a new tree")
                        return
                    child = _join(rel, entry.name)
                    if emit:
                        self.push("create", child)
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        continue
                    if is_dir and self.add_dir(child, strict):
                        stack.append(child)

    def drop_tree(self, top: str) -> None:
        """Stop watching ``top`` and what is under it (it moved away)."""
        prefix = top + "/"
        for wd, rel in list(self.dirs.items()):
            if rel == top or rel.startswith(prefix):
                self.ino.remove(wd)
                del self.dirs[wd]

    def note_unwatched(self, rel: str, why: str) -> None:
        self.unwatched += 1
        if self.unwatched == 1:
            log(f"watch {self.rid}: {_join(self.root, rel)} is not watched ({why})")

    # -- events --------------------------------------------------------------------
    def push(self, kind: str, name: str) -> None:
        if self.queue and self.queue[-1] == (kind, name):
            return  # as the kernel does: one event for a run of identical ones
        if len(self.queue) >= QUEUE_LIMIT:
            self.dropped += 1
            return
        self.queue.append((kind, name))

    def send(self) -> None:
        """Send the queued events (and a count of those dropped)."""
        agent = self.owner.agent
        for kind, name in self.queue:
            event: Dict[str, Any] = {"id": self.rid, "type": "fs_event", "kind": kind, "name": name}
            if self.include_entry:
                try:
                    event["entry"] = files.entry(os.path.join(self.root, name))
                except OSError:
                    pass  # gone (removed, renamed away): no entry, as in E2B
            agent.send(event)
        self.sent += len(self.queue)
        self.queue.clear()
        if self.dropped:
            agent.send(
                {
                    "id": self.rid,
                    "type": "fs_event",
                    "kind": "overflow",
                    "name": "",
                    "dropped": self.dropped,
                }
            )
            self.sent += 1
            self.dropped = 0

    def handle(self, data: bytes) -> None:
        for wd, mask, cookie, raw in parse(data):
            if mask & IN_Q_OVERFLOW:
                self.dropped += 1  # at least one; the kernel does not say how many
                continue
            rel = self.dirs.get(wd)
            if rel is None:
                continue  # a directory dropped from the watch
            if mask & IN_IGNORED:
                del self.dirs[wd]
                self.ended = self.ended or wd == self.root_wd
                continue
            if not raw:
                continue  # about a watched directory itself: its parent reports it
            name = os.fsdecode(raw)
            path = _join(rel, name)
            if self.upload(mask, cookie, path, name):
                continue
            if mask & IN_ISDIR and self.recursive:
                if mask & IN_MOVED_FROM:
                    self.drop_tree(path)
                elif mask & (IN_CREATE | IN_MOVED_TO):
                    self.push("create", path)
                    if self.add_dir(path):
                        self.scan(path, emit=bool(mask & IN_CREATE))
                    continue
            for bit, kind in KINDS:
                if mask & bit:
                    self.push(kind, path)

    def upload(self, mask: int, cookie: int, path: str, name: str) -> bool:
        """Whether the event is about an upload of the agent (and was handled).

        ``write_file`` writes a temporary file next to the target and renames it over
        the target; E2B reports its own writes as ``create`` (a new file), ``chmod``
        and ``write`` of the target. ``files.Upload`` gives the temporary file the
        target's mode (``fchmod``: an ``IN_ATTRIB``) only when the target exists already.
        """
        if mask & IN_MOVED_TO and cookie in self.moves:
            if not self.moves.pop(cookie):
                self.push("create", path)
            self.push("chmod", path)
            self.push("write", path)
            return True
        match = _UPLOAD_TEMP.search(name)
        if match is None or mask & IN_ISDIR or int(match.group(1)) != os.getpid():
            return False
        if mask & IN_CREATE:
            self.uploads[path] = False
        elif mask & IN_ATTRIB:
            self.uploads[path] = True
        elif mask & IN_MOVED_FROM:
            if len(self.moves) >= 64:
                self.moves.clear()
            self.moves[cookie] = self.uploads.pop(path, False)
        elif mask & IN_DELETE:
            self.uploads.pop(path, None)
        if len(self.uploads) > 1024:
            self.uploads.clear()  # never the case with the agent's own uploads
        return True

    def on_readable(self) -> None:
        """One read of the kernel's events per round of the agent's loop."""
        self.read_once()
        if self.ended:
            self.owner.end(self, "removed")

    def read_once(self) -> bool:
        """Read, handle and send one batch; False if the kernel held nothing."""
        data = self.ino.read()
        if data is None:
            return False
        self.handle(data)
        self.send()
        return True

    def close(self) -> None:
        if self.registered:
            self.owner.agent.sel.unregister(self.ino.fd)
            self.registered = False
        self.ino.close()


class Watches:
    """The ``watch_dir``, ``watch_flush`` and (for watches) ``cancel`` ops of the agent."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.active: Dict[str, Watch] = {}

    def dirs_watched(self) -> int:
        return sum(len(w.dirs) for w in self.active.values())

    def start(self, req: Dict[str, Any]) -> None:
        rid = req["id"]
        if len(self.active) >= MAX_WATCHES:
            raise ResourceExhausted(
                f"this sandbox already runs {MAX_WATCHES} directory watches, the most it "
                "runs at once; stop() some first"
            )
        if rid in self.active:
            raise ValueError(f"a watch with id {rid!r} runs already")
        root = self.agent.resolve(req["path"])
        watch = Watch(self, rid, root, bool(req.get("recursive")), bool(req.get("include_entry")))
        self.active[rid] = watch
        try:
            watch.open()
            self.agent.sel.register(watch.ino.fd, selectors.EVENT_READ, watch.on_readable)
            watch.registered = True
        except BaseException:
            del self.active[rid]
            watch.close()
            raise
        self.agent.send({"id": rid, "type": "started"})

    def flush(self, req: Dict[str, Any]) -> None:
        watch = self.active.get(req["target"])
        if watch is None:
            self.agent.finish(req["id"], {"found": False})
            return
        for _ in range(FLUSH_READS):
            if not watch.read_once():
                break
        sent = watch.sent
        if watch.ended:
            self.end(watch, "removed")
        self.agent.finish(req["id"], {"found": True, "sent": sent})

    def cancel(self, target: str) -> bool:
        watch = self.active.get(target)
        if watch is None:
            return False
        self.end(watch, "cancelled")
        return True

    def end(self, watch: Watch, reason: str) -> None:
        """Close a watch and answer its request (``done``)."""
        if self.active.pop(watch.rid, None) is None:
            return
        watch.close()
        value: Dict[str, Any] = {"reason": reason, "sent": watch.sent}
        if watch.unwatched:
            value["unwatched"] = watch.unwatched
        self.agent.finish(watch.rid, value)
