"""Wire protocol between the host and the in-sandbox agent (shared by both sides).

Standard library only: this module runs inside the sandbox too.

One JSON object per line each way, UTF-8. The host sends requests; the agent answers
with events that carry the request's ``id``. Several requests may be in flight; their
events interleave. Every request ends with exactly one ``done`` event.

Request (host -> agent)::

    {"id": "h1-7", "op": "run_code", "code": "x = 1", "language": "python", ...}

Events (agent -> host)::

    {"id": "h1-7", "type": "stdout", "text": "hi\\n"}
    {"id": "h1-7", "type": "result", "data": {"text/plain": "2"}, "is_main_result": true}
    {"id": "h1-7", "type": "error", "name": "ZeroDivisionError", "value": "...",
     "traceback": "..."}
    {"id": "h1-7", "type": "done", "value": {...}}

``run_code`` and ``command`` take an optional ``spill``: ``{"path": str, "threshold": int}``.
Once a call's output (stdout and stderr, interleaved as it arrives) passes ``threshold``
characters, the agent writes all of it to ``path`` too and the ``done`` value says so
(``"spilled": {"path", "chars", "bytes", "lines"}``), so a host that keeps only part of a huge
output can point at the whole of it.

``command`` sends a ``started`` event with the process's ``pid`` as soon as it runs;
with ``"stdin": true`` its stdin is a pipe fed by ``send_stdin`` (``data`` is text,
or bytes in base64 with ``"base64": true``) / ``close_stdin`` (otherwise it is
closed). With ``"binary": true`` a command's output events carry its bytes in base64
(``{"type": "stdout", "data": "<b64>"}``, at most ``READ_CHUNK`` bytes each) instead
of ``text``, and a spill file holds the raw bytes (its ``chars`` count bytes). A
command that ends by a signal has ``"signal": "SIGKILL"`` (its name) in its ``done``
value besides ``exit_code`` 128+N. ``kill_process`` kills a command's whole process
tree (SIGKILL) and answers once it is gone; with ``signal`` (one of
:data:`KILL_SIGNALS`) other than SIGKILL it sends that signal to the command's process
group and answers at once (``{"killed": true}``: sent), as E2B's ``SendSignal`` does.
``command_attach``
(``pid``) follows a running command: ``started``, then its later output and a ``done``
like its own (a ``cancel`` of it only stops the following: ``done`` says ``detached``).
``rename`` moves ``path`` to ``new_path`` (creating its parents); ``remove`` of a
missing path succeeds.

``read_file`` with ``compress`` may send ``data`` events with ``"compressed": true``
(that chunk is one zlib stream); a ``write_file`` chunk with ``"compressed": true`` is one
too. Each inflates to at most ``FILE_CHUNK`` bytes (``agent/files.py``). The first
chunk of a ``write_file`` may carry ``metadata`` (str to str, E2B's rules): the file's
whole ``user.e2b.*`` metadata (a replaced file without it has none). ``stat``,
``list_dir`` and ``write_file`` entries carry ``metadata`` (an object, or null).

``port_open`` connects to a TCP port on the sandbox's loopback (the host's ``get_host``):
a ``started`` event once connected, the server's bytes as ``data`` events (base64), and
``done`` (``{"closed": why}``) when either side closes or on ``cancel``; ``port_send``
(``target``: the ``port_open`` id, ``data`` in base64, ``eof`` to close the writing
half) finishes once its bytes are written.

``watch_dir`` (``path``, ``recursive``, ``include_entry``) answers ``started`` once the
directory is watched, then ``fs_event`` events (``kind``: ``create``, ``write``, ``remove``,
``rename``, ``chmod``, or ``overflow`` with a ``dropped`` count; ``name`` relative to
``path``; ``entry`` as ``stat`` gives it, with ``include_entry``) until
``cancel``; ``watch_flush`` (``target``) sends what the kernel holds for that watch and
answers how many ``fs_event`` events it sent in all (``agent/watch.py``).

``agent_log`` answers with the agent's own latest log lines (``{"lines": [...], "total":
n}``, at most the last 1000, oldest first; ``limit`` keeps only the last ``limit``).

The first request on a stream is ``hello``; the agent answers with a ``hello`` event
carrying its ``protocol_version`` before the ``done``.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Literal, Optional, Tuple, TypedDict

PROTOCOL_VERSION = 2
"""Bumped whenever a message shape changes incompatibly."""

MAX_LINE = 16 << 20
"""Longest line either side sends or accepts, in bytes. The agent never sends a longer
one (:func:`shrink`); the host treats one as a broken stream."""

# op -> {field: (accepted types, required)}; ``id`` and ``op`` are always required.
_STR = (str,)
_OPT_STR = (str, type(None))
_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_DICT = (dict,)
_BOOL = (bool,)
_INT = (int,)
_OPT_INT = (int, type(None))

FieldSpec = Dict[str, Tuple[Tuple[type, ...], bool]]

REQUEST_FIELDS: Dict[str, FieldSpec] = {
    "hello": {"protocol_version": (_INT, True)},
    "info": {},
    "run_code": {
        "code": (_STR, True),
        "language": (_STR, True),
        "context_id": (_OPT_STR, False),
        "envs": (_DICT, False),
        "timeout": (_OPT_NUM, False),
        "spill": (_DICT, False),
    },
    "command": {
        "cmd": (_STR, True),
        "cwd": (_OPT_STR, False),
        "envs": (_DICT, False),
        "timeout": (_OPT_NUM, False),
        "spill": (_DICT, False),
        "stdin": (_BOOL, False),
        "binary": (_BOOL, False),
    },
    "cancel": {"target": (_STR, True)},
    "port_open": {"port": (_INT, True)},
    "port_send": {"target": (_STR, True), "data": (_STR, True), "eof": (_BOOL, False)},
    "send_stdin": {"pid": (_INT, True), "data": (_STR, True), "base64": (_BOOL, False)},
    "close_stdin": {"pid": (_INT, True)},
    "kill_process": {"pid": (_INT, True), "signal": (_STR, False)},
    "command_attach": {"pid": (_INT, True)},
    "list_processes": {},
    "read_file": {
        "path": (_STR, True),
        "offset": (_INT, False),
        "length": (_OPT_INT, False),
        "limit": (_OPT_INT, False),
        "compress": (_BOOL, False),
    },
    "write_file": {
        "path": (_STR, True),
        "data": (_STR, True),
        "append": (_BOOL, False),
        "upload": (_STR, False),
        "final": (_BOOL, False),
        "compressed": (_BOOL, False),
        "metadata": (_DICT, False),
    },
    "list_dir": {"path": (_STR, True), "depth": (_INT, False)},
    "stat": {"path": (_STR, True)},
    "remove": {"path": (_STR, True)},
    "rename": {"path": (_STR, True), "new_path": (_STR, True)},
    "make_dir": {"path": (_STR, True)},
    "watch_dir": {
        "path": (_STR, True),
        "recursive": (_BOOL, False),
        "include_entry": (_BOOL, False),
    },
    "watch_flush": {"target": (_STR, True)},
    # pause: true stops the deadline's clock (the host freezes the sandbox next);
    # pause: false starts it again, the deadline moved by the time stopped.
    "set_timeout": {"deadline": (_NUM, False), "pause": (_BOOL, False)},
    "create_context": {"language": (_STR, True), "cwd": (_OPT_STR, False)},
    "list_contexts": {},
    "restart_context": {"context_id": (_STR, True)},
    "remove_context": {"context_id": (_STR, True)},
    "agent_log": {"limit": (_OPT_INT, False)},
}

KILL_SIGNALS = ("SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
"""The signals ``kill_process`` may send (by name; SIGKILL when it names none). A fixed
list, so a request can neither name an arbitrary number nor a signal that stops or
confuses the agent's own bookkeeping (SIGSTOP, SIGCHLD)."""

SignalName = Literal["SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"]
"""A signal of :data:`KILL_SIGNALS` by name (the host's ``commands.kill(signal=)``)."""

SIGNAL_WORDS: Dict[str, str] = {
    "SIGKILL": "killed",
    "SIGTERM": "terminated",
    "SIGINT": "interrupt",
    "SIGHUP": "hangup",
    "SIGQUIT": "quit",
    "SIGUSR1": "user defined signal 1",
    "SIGUSR2": "user defined signal 2",
    "SIGABRT": "aborted",
    "SIGSEGV": "segmentation fault",
    "SIGPIPE": "broken pipe",
    "SIGBUS": "bus error",
    "SIGFPE": "floating point exception",
    "SIGILL": "illegal instruction",
    "SIGALRM": "alarm clock",
}
"""What Go, so E2B's envd, calls a signal: E2B reports a process it ended as
``"signal: killed"`` (the host's ``CommandResult.error``)."""

FIELD_CHOICES: Dict[Tuple[str, str], Tuple[str, ...]] = {("kill_process", "signal"): KILL_SIGNALS}
"""(op, field) -> the only values that field may take."""

EVENT_TYPES = frozenset(
    {"hello", "started", "stdout", "stderr", "result", "error", "data", "done", "fs_event"}
)

Message = Dict[str, Any]


class SpillInfo(TypedDict, total=False):
    """``done.value.spilled``: where a long output was saved in the sandbox."""

    path: str
    chars: int
    bytes: int
    lines: int
    error: str


class DoneValue(TypedDict, total=False):
    """The ``value`` of the ``done`` event of ``run_code`` and ``command``."""

    execution_count: Optional[int]
    timed_out: str  # "interrupted" (state kept), "restarted" (state lost) or "killed"
    context_restarted: bool
    exit_code: int
    signal: str  # the signal's name ("SIGKILL") when a command ended by one
    pid: int
    spilled: SpillInfo


class ErrorEvent(TypedDict, total=False):
    """An ``error`` event: a name of :data:`ERRORS`, an OSError's name (with ``errno``
    and ``path``), or, from run_code, the name of the exception the code raised."""

    id: str
    type: str
    name: str
    value: str
    traceback: str
    errno: int
    path: str


ERRORS: Dict[str, str] = {
    "ProtocolError": "the agent could not read a request",
    "ProtocolMismatch": "host and agent speak different protocol versions",
    "UnsupportedLanguage": "the image has no such language, or it takes no contexts",
    "ContextNotFound": "no code context with that id",
    "ContextDied": "the code context died during the call; its state is lost",
    "ContextRestarted": "the code context was restarted or removed under the call",
    "NonZeroExit": "a stateless program or bash cell ended with a non-zero status",
    "CompileError": "a stateless program did not compile",
    "ResourceExhausted": "no process could be started (the pids limit)",
    "ResultTooLarge": "an answer was over the line limit and dropped",
    "NotRegularFile": "a FIFO, device, socket or directory where a regular file was needed",
    "FileTooLarge": "a read would return more bytes than its limit",
    "SandboxPaused": "the deadline paused the sandbox (auto-pause); resume it first",
    "Detached": "too many calls followed one command; the oldest was let go (it runs on)",
}
"""Error names the agent itself sends (``error`` events also carry the names of Python's
OSError subclasses, with ``errno`` and ``path``, and, from code, any exception's name)."""


class MalformedMessage(ValueError):
    """A line that is not a valid message of this protocol."""


def encode(message: Message) -> bytes:
    """One message as one line of compact JSON, newline included."""
    return (
        json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
        + b"\n"
    )


def _load(line: bytes) -> Message:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MalformedMessage("a message must be a JSON object")
    if not isinstance(obj.get("id"), str):
        raise MalformedMessage("a message needs a string 'id'")
    return obj


def decode_request(line: bytes) -> Message:
    """Parse and validate one request line; unknown ops or fields raise MalformedMessage."""
    obj = _load(line)
    op = obj.get("op")
    spec = REQUEST_FIELDS.get(op) if isinstance(op, str) else None
    if spec is None:
        raise MalformedMessage(f"unknown op {op!r}; known: {', '.join(sorted(REQUEST_FIELDS))}")
    for key, value in obj.items():
        if key in ("id", "op"):
            continue
        if key not in spec:
            raise MalformedMessage(f"op {op!r} takes no field {key!r}")
        types, _ = spec[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise MalformedMessage(f"field {key!r} of op {op!r} has the wrong type")
        choices = FIELD_CHOICES.get((str(op), key))
        if choices is not None and value not in choices:
            raise MalformedMessage(
                f"field {key!r} of op {op!r} must be one of {', '.join(choices)}, not {value!r}"
            )
    for key, (_, required) in spec.items():
        if required and key not in obj:
            raise MalformedMessage(f"op {op!r} needs field {key!r}")
    return obj


def decode_event(line: bytes) -> Message:
    """Parse one event line from the agent."""
    obj = _load(line)
    if obj.get("type") not in EVENT_TYPES:
        raise MalformedMessage(f"unknown event type {obj.get('type')!r}")
    return obj


def shrink(message: Message, size: int) -> List[Message]:
    """What to send instead of ``message``, whose line would be ``size`` bytes."""
    rid = message.get("id", "")
    kind = message.get("type")
    note = f"[{size} bytes, over the protocol's limit of {MAX_LINE}: dropped by e2b-tools]"
    if kind == "result":
        return [{**message, "data": {"text/plain": f"<a result of {note}>"}}]
    if kind == "error":
        cut = MAX_LINE // 8
        return [
            {
                **message,
                "value": str(message.get("value", ""))[:cut],
                "traceback": str(message.get("traceback", ""))[-cut:],
            }
        ]
    error = {
        "id": rid,
        "type": "error",
        "name": "ResultTooLarge",
        "value": f"the answer was {note}; ask for less (a smaller directory, a lower depth)",
        "traceback": "",
    }
    return [error, {"id": rid, "type": "done", "value": {}}] if kind == "done" else [error]


class LineBuffer:
    """Splits a byte stream into lines, holding at most ``limit`` bytes of an unfinished one.

    A longer line is dropped whole (up to its newline) and counted in ``dropped``. Each
    byte is scanned once, so a huge line costs linear time, not quadratic.
    """

    def __init__(self, limit: Optional[int] = None) -> None:
        self.limit = MAX_LINE if limit is None else limit
        self.buf = bytearray()
        self.skip = False
        self.dropped = 0

    def feed(self, data: bytes) -> List[bytes]:
        if self.skip:
            end = data.find(b"\n")
            if end < 0:
                return []
            data = data[end + 1 :]
            self.skip = False
        if b"\n" not in data:
            self.buf += data
            if len(self.buf) > self.limit:
                self._drop()
            return []
        self.buf += data
        *lines, rest = self.buf.split(b"\n")
        self.buf = rest
        if len(rest) > self.limit:
            self._drop()
        out = []
        for line in lines:
            if len(line) > self.limit:
                self.dropped += 1
            elif line.strip():
                out.append(bytes(line))
        return out

    def _drop(self) -> None:
        self.buf = bytearray()
        self.skip = True
        self.dropped += 1
