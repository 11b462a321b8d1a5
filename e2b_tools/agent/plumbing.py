"""The agent's plumbing (standard library only): logging, timers, output streams and
the spill file that keeps a long output whole inside the sandbox."""

from __future__ import annotations

import codecs
import collections
import heapq
import itertools
import os
import selectors
import signal
import time
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Tuple

from . import files

if TYPE_CHECKING:
    from .main import Agent

READ_CHUNK = 1 << 16
"""Bytes per read of a pipe: what a pipe holds at most, and below the size from which
malloc maps (and unmaps) fresh pages for every read."""


def read_chunk(fd: int) -> Optional[bytes]:
    """What a non-blocking pipe holds now: None if nothing yet, ``b""`` at its end."""
    try:
        return os.read(fd, READ_CHUNK)
    except BlockingIOError:
        return None
    except OSError:
        return b""


LOG_LINES = 1000
"""How many of its latest log lines the agent keeps for the ``agent_log`` op."""
LOG_LINE_CHARS = 2000
"""Longest log line kept (so the whole buffer stays far below the protocol's line limit)."""


class LogBuffer:
    """The agent's latest log lines in memory: the container has no log driver
    (``log_config: none``), so without this its stderr would be lost."""

    def __init__(self, size: int = LOG_LINES) -> None:
        self.lines: Deque[str] = collections.deque(maxlen=size)
        self.total = 0

    def add(self, line: str) -> None:
        if len(line) > LOG_LINE_CHARS:
            line = line[:LOG_LINE_CHARS] + f"... [{len(line) - LOG_LINE_CHARS} chars cut]"
        self.lines.append(line)
        self.total += 1

    def tail(self, limit: Optional[int]) -> List[str]:
        lines = list(self.lines)
        return lines if limit is None else lines[max(0, len(lines) - max(0, limit)) :]


LOG = LogBuffer()


def note(msg: str) -> None:
    """Keep a routine line in :data:`LOG` only (the ``agent_log`` op shows it). Unlike
    :func:`log` it costs no trip through the engine to the host, and it does not push
    the lines that explain a failure out of the few the host keeps."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    LOG.add(f"{stamp}.{int(now * 1000) % 1000:03d}Z {msg}")


def log(msg: str) -> None:
    """Write a line to the agent's stderr and keep it in :data:`LOG`."""
    note(msg)
    try:
        os.write(2, f"e2b-tools-agent: {msg}\n".encode("utf-8", "replace"))
    except OSError:
        pass


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def memory_limit() -> Optional[int]:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (1 << 60):
            return int(text)
    return None


def exec_argv(argv: List[str]) -> Callable[[], None]:
    """A workload that replaces itself with ``argv`` (looked up on the child's PATH)."""
    return lambda: os.execvp(argv[0], argv)


class Timers:
    def __init__(self) -> None:
        self._heap: List[Tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cancelled: set[int] = set()

    def add(self, delay: float, fn: Callable[[], None]) -> int:
        seq = next(self._seq)
        heapq.heappush(self._heap, (time.monotonic() + delay, seq, fn))
        return seq

    def cancel(self, seq: Optional[int]) -> None:
        if seq is None:
            return
        self._cancelled.add(seq)
        # Every call sets a timeout timer and cancels it when done; cancelled timers far
        # in the future would otherwise pile up (one per call for the whole timeout).
        if len(self._cancelled) > 64 and 2 * len(self._cancelled) > len(self._heap):
            self._heap = [t for t in self._heap if t[1] not in self._cancelled]
            heapq.heapify(self._heap)
            self._cancelled.clear()

    def __len__(self) -> int:
        """Timers held, cancelled ones not yet dropped included."""
        return len(self._heap)

    def next_delay(self) -> Optional[float]:
        while self._heap and self._heap[0][1] in self._cancelled:
            self._cancelled.discard(heapq.heappop(self._heap)[1])
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - time.monotonic())

    def run_due(self) -> None:
        now = time.monotonic()
        while self._heap and self._heap[0][0] <= now:
            _, seq, fn = heapq.heappop(self._heap)
            if seq in self._cancelled:
                self._cancelled.discard(seq)
                continue
            fn()


class Spill:
    """Holds a call's output in memory until it passes a threshold, then in a file."""

    def __init__(self, path: str, threshold: int, binary: bool = False) -> None:
        self.path = path
        self.threshold = threshold
        self.binary = binary
        """Raw bytes (a ``binary`` command): written as they are, counted as chars too."""
        self.buffer: List[Any] = []
        self.chars = 0
        self.bytes = 0
        self.lines = 0
        self.file: Optional[Any] = None
        self.error: Optional[str] = None

    def add_bytes(self, data: bytes) -> None:
        """Add raw output; a text spill keeps it as UTF-8 with replacement."""
        if not self.binary:
            self.add(data.decode("utf-8", "replace"))
            return
        self.chars += len(data)
        self.bytes += len(data)
        self.lines += data.count(b"\n")
        self._keep(data)

    def add(self, text: str) -> None:
        if self.binary:
            self.add_bytes(text.encode("utf-8", "replace"))
            return
        self.chars += len(text)
        self.bytes += len(text.encode("utf-8", "replace"))
        self.lines += text.count("\n")
        self._keep(text)

    def _keep(self, text: Any) -> None:
        """Buffer or write ``text`` (str, or bytes for a binary spill)."""
        if self.error is not None:
            return
        if self.file is None:
            self.buffer.append(text)
            if self.chars <= self.threshold:
                return
            try:
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
                fd = files.open_regular(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                # Kept open across many writes until close(): no context manager.
                if self.binary:
                    self.file = open(fd, "wb")  # noqa: SIM115
                    self.file.write(b"".join(self.buffer))
                else:
                    self.file = open(fd, "w", encoding="utf-8", errors="replace")  # noqa: SIM115
                    self.file.write("".join(self.buffer))
            except OSError as exc:
                self.error = f"{type(exc).__name__}: {exc}"
            self.buffer = []
            return
        try:
            self.file.write(text)
        except OSError as exc:  # e.g. the workspace is full
            self.error = f"{type(exc).__name__}: {exc}"

    def close(self) -> Optional[Dict[str, Any]]:
        if self.file is not None:
            try:
                self.file.close()
            except OSError as exc:
                self.error = self.error or f"{type(exc).__name__}: {exc}"
        if self.file is None and self.error is None:
            return None
        saved: Dict[str, Any] = {
            "path": self.path,
            "chars": self.chars,
            "bytes": self.bytes,
            "lines": self.lines,
        }
        if self.error is not None:
            saved["error"] = self.error
        return saved


class Stream:
    """A pipe the agent reads and forwards as ``stdout``/``stderr`` events."""

    def __init__(self, agent: Agent, fd: int, kind: str, owner: Any, binary: bool = False) -> None:
        self.agent = agent
        self.fd = fd
        self.kind = kind
        self.owner = owner
        self.binary = binary
        """Forward raw bytes (:meth:`emit_bytes`) instead of UTF-8 text."""
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.open = True
        os.set_blocking(fd, False)
        agent.sel.register(fd, selectors.EVENT_READ, self.on_readable)

    def on_readable(self) -> None:
        self.read_available(limit=8)

    def read_available(self, limit: int = 1 << 30) -> None:
        """Forward what the pipe holds now (up to ``limit`` chunks); close on EOF."""
        for _ in range(limit):
            if not self.open:
                return
            data = read_chunk(self.fd)
            if data is None:
                return
            if not data:
                if not self.binary:
                    self.emit(self.decoder.decode(b"", final=True))
                self.close()
                self.owner.stream_closed(self)
                return
            if self.binary:
                self.emit_bytes(data)
            else:
                self.emit(self.decoder.decode(data))

    def emit(self, text: str) -> None:
        rid = self.owner.current_request()
        if text and rid is not None:
            self.agent.output(rid, self.kind, text)

    def emit_bytes(self, data: bytes) -> None:
        rid = self.owner.current_request()
        if data and rid is not None:
            self.agent.output_bytes(rid, self.kind, data)

    def close(self) -> None:
        if self.open:
            self.open = False
            self.agent.sel.unregister(self.fd)
            os.close(self.fd)
