"""proto3-JSON messages of envd's ``process.Process`` and ``filesystem.Filesystem``.

Field numbers, names and types are those of E2B's ``spec/envd/process/process.proto``
and ``spec/envd/filesystem/filesystem.proto`` (as shipped in ``e2b`` 2.63). Builders
return JSON-ready dicts in field-number order that omit zero-valued implicit fields,
as proto3 JSON writers do (so an exit code of 0 is absent and the client reads 0).
Readers take a request payload and return frozen dataclasses; see ``_protojson`` for
the parsing rules and errors.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ._protojson import Obj, b64, invalid, parse_object, timestamp

SIGNALS = {"SIGNAL_UNSPECIFIED": 0, "SIGNAL_SIGTERM": 15, "SIGNAL_SIGKILL": 9}
FILE_TYPES = {
    "FILE_TYPE_UNSPECIFIED": 0,
    "FILE_TYPE_FILE": 1,
    "FILE_TYPE_DIRECTORY": 2,
    "FILE_TYPE_SYMLINK": 3,
}
EVENT_TYPES = {
    "EVENT_TYPE_UNSPECIFIED": 0,
    "EVENT_TYPE_CREATE": 1,
    "EVENT_TYPE_WRITE": 2,
    "EVENT_TYPE_REMOVE": 3,
    "EVENT_TYPE_RENAME": 4,
    "EVENT_TYPE_CHMOD": 5,
}

Json = dict[str, object]


# --- process: responses ----------------------------------------------------------------


def start_event(pid: int) -> Json:
    """``StartResponse``/``ConnectResponse`` with ``ProcessEvent.start``."""
    return {"event": {"start": {"pid": pid} if pid else {}}}


def data_event(*, stdout: bytes = b"", stderr: bytes = b"", pty: bytes = b"") -> Json:
    """``ProcessEvent.data``: exactly one of ``stdout``, ``stderr``, ``pty`` (a oneof)."""
    given = [(name, data) for name, data in (("stdout", stdout), ("stderr", stderr), ("pty", pty))]
    chosen = [(name, data) for name, data in given if data]
    if len(chosen) != 1:
        raise ValueError("data_event() takes exactly one non-empty stream")
    name, data = chosen[0]
    return {"event": {"data": {name: b64(data)}}}


def end_event(exit_code: int, *, exited: bool, status: str, error: str | None = None) -> Json:
    """``ProcessEvent.end``: ``exitCode`` (sint32), ``exited``, ``status``, ``error``?"""
    end: Json = {}
    if exit_code:
        end["exitCode"] = exit_code
    if exited:
        end["exited"] = True
    if status:
        end["status"] = status
    if error is not None:
        end["error"] = error
    return {"event": {"end": end}}


def keepalive_event() -> Json:
    """``ProcessEvent.keepalive``: what a silent process stream sends to stay open."""
    return {"event": {"keepalive": {}}}


def process_config(
    cmd: str, args: list[str], envs: Mapping[str, str] | None = None, cwd: str | None = None
) -> Json:
    """``ProcessConfig``: ``cmd``, ``args``, ``envs``, ``cwd``?"""
    config: Json = {}
    if cmd:
        config["cmd"] = cmd
    if args:
        config["args"] = list(args)
    if envs:
        config["envs"] = dict(envs)
    if cwd is not None:
        config["cwd"] = cwd
    return config


def process_info(pid: int, config: Json, tag: str | None = None) -> Json:
    """``ProcessInfo`` (an item of ``ListResponse.processes``)."""
    info: Json = {"config": config}
    if pid:
        info["pid"] = pid
    if tag is not None:
        info["tag"] = tag
    return info


# --- filesystem: responses -------------------------------------------------------------

# Go's os.FileMode.String(): one letter per type bit set, in this order, else "-".
_GO_MODE_LETTERS: tuple[tuple[str, Callable[[int], bool]], ...] = (
    ("d", stat.S_ISDIR),
    ("L", stat.S_ISLNK),
    ("D", lambda m: stat.S_ISBLK(m) or stat.S_ISCHR(m)),
    ("p", stat.S_ISFIFO),
    ("S", stat.S_ISSOCK),
    ("u", lambda m: bool(m & stat.S_ISUID)),
    ("g", lambda m: bool(m & stat.S_ISGID)),
    ("c", stat.S_ISCHR),
    ("t", lambda m: bool(m & stat.S_ISVTX)),
)


def permissions(st_mode: int) -> str:
    """``EntryInfo.permissions`` from a POSIX ``st_mode`` (of ``lstat``), as envd writes
    it (Go's ``FileMode.String()``): ``-rw-r--r--``, ``drwxr-xr-x``, ``Lrwxrwxrwx``,
    ``urwxr-xr-x`` (setuid), ``dtrwxrwxrwx`` (sticky), ``Dcrw-rw-rw-`` (char device)."""
    prefix = "".join(letter for letter, test in _GO_MODE_LETTERS if test(st_mode)) or "-"
    bits = "".join(
        char if st_mode & (1 << (8 - index)) else "-" for index, char in enumerate("rwxrwxrwx")
    )
    return prefix + bits


def file_type(st_mode: int) -> str:
    """``FileType`` name of a (symlink-followed) ``st_mode``, as envd maps it."""
    if stat.S_ISREG(st_mode):
        return "FILE_TYPE_FILE"
    if stat.S_ISDIR(st_mode):
        return "FILE_TYPE_DIRECTORY"
    return "FILE_TYPE_SYMLINK" if stat.S_ISLNK(st_mode) else "FILE_TYPE_UNSPECIFIED"


def entry_info(
    *,
    name: str,
    type: str,
    path: str,
    size: int = 0,
    mode: int = 0,
    permissions: str = "",
    owner: str = "",
    group: str = "",
    modified_time: float | None = None,
    symlink_target: str | None = None,
    metadata: Mapping[str, str] | None = None,
    is_symlink: bool = False,
) -> Json:
    """``EntryInfo``. ``type`` is a ``FILE_TYPE_*`` name; ``mode`` the permission bits
    (envd sends ``st_mode & 0o777``); ``size`` is written as a string (int64);
    ``modified_time`` is Unix seconds, written as RFC 3339."""
    if type not in FILE_TYPES:
        raise ValueError(f"unknown file type {type!r}")
    entry: Json = {}
    for key, value in (("name", name), ("type", type), ("path", path)):
        if value and value != "FILE_TYPE_UNSPECIFIED":
            entry[key] = value
    if size:
        entry["size"] = str(size)
    if mode:
        entry["mode"] = mode
    if permissions:
        entry["permissions"] = permissions
    for key, value in (("owner", owner), ("group", group)):
        if value:
            entry[key] = value
    if modified_time is not None:
        entry["modifiedTime"] = timestamp(modified_time)
    if symlink_target is not None:
        entry["symlinkTarget"] = symlink_target
    if metadata:
        entry["metadata"] = dict(metadata)
    if is_symlink:
        entry["isSymlink"] = True
    return entry


# --- readers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    """``ProcessSelector``: a ``pid`` or a ``tag`` (a oneof; neither may be set)."""

    pid: int | None = None
    tag: str | None = None


@dataclass(frozen=True)
class Pty:
    """``PTY.size``: ``cols`` x ``rows``."""

    cols: int = 0
    rows: int = 0


@dataclass(frozen=True)
class StartRequest:
    """``StartRequest`` (also the shape of a ``ProcessConfig``)."""

    cmd: str = ""
    args: list[str] = field(default_factory=list)
    envs: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    pty: Pty | None = None
    tag: str | None = None
    stdin: bool | None = None


@dataclass(frozen=True)
class ProcessRequest:
    """``ConnectRequest``, ``CloseStdinRequest``, ``SendSignalRequest``,
    ``SendInputRequest``, ``UpdateRequest`` and each ``StreamInputRequest`` event:
    the fields a request does not have stay at their default."""

    process: Selector = Selector()
    signal: int = 0
    stdin: bytes | None = None
    pty_input: bytes | None = None
    pty: Pty | None = None
    event: str | None = None


def _selector(obj: Obj | None) -> Selector:
    if obj is None:
        return Selector()
    obj.oneof("selector", "pid", "tag")
    return Selector(pid=obj.uint32("pid"), tag=obj.string("tag"))


def _pty(obj: Obj | None) -> Pty | None:
    if obj is None:
        return None
    size = obj.message("size")
    if size is None:
        return Pty()
    return Pty(cols=size.uint32("cols") or 0, rows=size.uint32("rows") or 0)


def read_start(payload: bytes) -> StartRequest:
    """Read a ``process.StartRequest``."""
    obj = parse_object(payload, "StartRequest")
    config = obj.message("process") or Obj({}, "StartRequest.process")
    return StartRequest(
        cmd=config.string("cmd") or "",
        args=config.strings("args"),
        envs=config.string_map("envs"),
        cwd=config.string("cwd"),
        pty=_pty(obj.message("pty")),
        tag=obj.string("tag"),
        stdin=obj.boolean("stdin"),
    )


def _input(obj: Obj | None) -> tuple[bytes | None, bytes | None]:
    if obj is None:
        return None, None
    obj.oneof("input", "stdin", "pty")
    return obj.bytes_("stdin"), obj.bytes_("pty")


def read_process_request(payload: bytes, message: str) -> ProcessRequest:
    """Read any unary ``process`` request naming a process (``message`` is its name,
    for errors): ``ConnectRequest``, ``SendSignalRequest``, ``SendInputRequest``,
    ``CloseStdinRequest``, ``UpdateRequest``."""
    obj = parse_object(payload, message)
    stdin, pty_input = _input(obj.message("input"))
    return ProcessRequest(
        process=_selector(obj.message("process")),
        signal=obj.enum("signal", SIGNALS) or 0,
        stdin=stdin,
        pty_input=pty_input,
        pty=_pty(obj.message("pty")),
    )


def read_stream_input(payload: bytes) -> ProcessRequest:
    """Read one ``StreamInputRequest`` envelope: ``event`` is ``start`` (with
    ``process``), ``data`` (with ``stdin``/``pty_input``), ``keepalive`` or ``None``."""
    obj = parse_object(payload, "StreamInputRequest")
    event = obj.oneof("event", "start", "data", "keepalive")
    start = obj.message("start")
    data = obj.message("data")
    stdin, pty_input = _input(data.message("input") if data else None)
    obj.message("keepalive")
    process = _selector(start.message("process")) if start else Selector()
    return ProcessRequest(process=process, stdin=stdin, pty_input=pty_input, event=event)


@dataclass(frozen=True)
class FsRequest:
    """Any ``filesystem`` request; fields a request does not have stay at default."""

    path: str = ""
    depth: int = 0
    source: str = ""
    destination: str = ""
    recursive: bool = False
    include_entry: bool = False
    allow_network_mounts: bool = False
    watcher_id: str = ""


def read_fs_request(payload: bytes, message: str) -> FsRequest:
    """Read a ``filesystem`` request: ``StatRequest``, ``MakeDirRequest``,
    ``RemoveRequest``, ``ListDirRequest`` (``depth``), ``MoveRequest``, ``WatchDirRequest``
    / ``CreateWatcherRequest``, ``GetWatcherEventsRequest`` / ``RemoveWatcherRequest``."""
    obj = parse_object(payload, message)
    return FsRequest(
        path=obj.string("path") or "",
        depth=obj.uint32("depth") or 0,
        source=obj.string("source") or "",
        destination=obj.string("destination") or "",
        recursive=bool(obj.boolean("recursive")),
        include_entry=bool(obj.boolean("include_entry")),
        allow_network_mounts=bool(obj.boolean("allow_network_mounts")),
        watcher_id=obj.string("watcher_id") or "",
    )


def require_selector(request: ProcessRequest) -> Selector:
    """The request's selector, or ``invalid_argument`` if it names no process."""
    if request.process.pid is None and request.process.tag is None:
        raise invalid("process: a pid or a tag is required")
    return request.process
