"""The in-sandbox agent: the container's main process (standard library only).

It speaks :mod:`protocol` on private duplicates of the container's stdin/stdout; the
original descriptors 0 and 1 are pointed at ``/dev/null`` and stderr so that nothing
the agent starts can write into the protocol stream. One single-threaded selector
loop serves every request; code contexts and shell commands are child processes.
"""

from __future__ import annotations

import codecs
import heapq
import itertools
import json
import os
import selectors
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from . import files, kernel_python, languages, procs, protocol
from .protocol import Message

READ_CHUNK = 1 << 16
# Longest line a kernel may send on its control pipe (results are capped well below).
MAX_KERNEL_LINE = 64 << 20
# After a command's main process exits, how long to keep reading output that its
# background children may still write before the call returns.
EXIT_DRAIN_SECONDS = 0.2
ALIASES = languages.aliases()
LANGUAGES = languages.available()


def _log(msg: str) -> None:
    try:
        os.write(2, f"e2b-tools-agent: {msg}\n".encode("utf-8", "replace"))
    except OSError:
        pass


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _memory_limit() -> Optional[int]:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < (1 << 60):
            return int(text)
    return None


def _exec(argv: List[str]) -> Callable[[], None]:
    """A workload that replaces itself with ``argv`` (looked up on the child's PATH)."""
    return lambda: os.execvp(argv[0], argv)


class ContextNotFound(LookupError):
    """A request named a code context that does not exist."""


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
        if seq is not None:
            self._cancelled.add(seq)

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

    def __init__(self, path: str, threshold: int) -> None:
        self.path = path
        self.threshold = threshold
        self.buffer: List[str] = []
        self.chars = 0
        self.bytes = 0
        self.lines = 0
        self.file: Optional[Any] = None
        self.error: Optional[str] = None

    def add(self, text: str) -> None:
        self.chars += len(text)
        self.bytes += len(text.encode("utf-8", "replace"))
        self.lines += text.count("\n")
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

    def __init__(self, agent: Agent, fd: int, kind: str, owner: Any) -> None:
        self.agent = agent
        self.fd = fd
        self.kind = kind
        self.owner = owner
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
            try:
                data = os.read(self.fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self.emit(self.decoder.decode(b"", final=True))
                self.close()
                self.owner.stream_closed(self)
                return
            self.emit(self.decoder.decode(data))

    def emit(self, text: str) -> None:
        rid = self.owner.current_request()
        if text and rid is not None:
            self.agent.output(rid, self.kind, text)

    def close(self) -> None:
        if self.open:
            self.open = False
            self.agent.sel.unregister(self.fd)
            os.close(self.fd)


class PythonContext:
    """A stateful Python process; requests to it run one after another."""

    language = "python"

    def __init__(self, agent: Agent, context_id: str, cwd: str) -> None:
        self.agent = agent
        self.id = context_id
        self.cwd = cwd
        self.queue: Deque[Message] = deque()
        self.current: Optional[Message] = None
        self.proc: Optional[procs.Guarded] = None
        self.call_start = 0.0
        self.ready = False
        self.ctl_fd = -1
        self.req_fd = -1
        self.ctl_buf = protocol.LineBuffer(MAX_KERNEL_LINE)
        self.streams: List[Stream] = []
        self.timer: Optional[int] = None
        self.timed_out: Optional[str] = None

    # -- process lifecycle -------------------------------------------------------
    def start(self) -> None:
        req_r, req_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        env = self.agent.child_env()
        cwd = self.cwd if os.path.isdir(self.cwd) else "/"
        try:
            self.proc = self.spawn(req_r, ctl_w, out_w, err_w, env, cwd)
        except BaseException:
            for fd in (req_w, ctl_r, out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (req_r, ctl_w, out_w, err_w):
                os.close(fd)
        self.agent.watch(self.proc, self.check_exit)
        self.req_fd = req_w
        self.ctl_fd = ctl_r
        self.ctl_buf = protocol.LineBuffer(MAX_KERNEL_LINE)
        self.ready = False
        os.set_blocking(ctl_r, False)
        self.agent.sel.register(ctl_r, selectors.EVENT_READ, self.on_control)
        self.streams = [
            Stream(self.agent, out_r, "stdout", self),
            Stream(self.agent, err_r, "stderr", self),
        ]

    def spawn(
        self, req_r: int, ctl_w: int, out_w: int, err_w: int, env: Dict[str, str], cwd: str
    ) -> procs.Guarded:
        # Forked, not exec'd: a context starts in about a millisecond this way.
        return self.agent.spawn(
            lambda: kernel_python.main(req_r, ctl_w),
            stdin=None,
            stdout=out_w,
            stderr=err_w,
            keep=(req_r, ctl_w),
            env=env,
            cwd=cwd,
        )

    def current_request(self) -> Optional[str]:
        return self.current["id"] if self.current else None

    def stream_closed(self, stream: Stream) -> None:
        pass

    def _teardown(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=5)
            self.agent.unwatch(self.proc)
        for s in self.streams:
            s.read_available()
            s.close()
        if self.ctl_fd >= 0:
            self.agent.sel.unregister(self.ctl_fd)
            os.close(self.ctl_fd)
            self.ctl_fd = -1
        if self.req_fd >= 0:
            os.close(self.req_fd)
            self.req_fd = -1
        self.proc = None
        self.ready = False

    def kill(self, why: str = "") -> None:
        """Stop the process; calls running or queued on it fail with ``why``."""
        pending = ([self.current] if self.current is not None else []) + list(self.queue)
        self.current = None
        self.queue.clear()
        self.agent.timers.cancel(self.timer)
        self.timer = None
        self._teardown()
        for req in pending:
            self.agent.fail(req["id"], "ContextRestarted", why or "the code context was stopped")

    def describe(self) -> Dict[str, Any]:
        return {"id": self.id, "language": self.language, "cwd": self.cwd}

    # -- requests ----------------------------------------------------------------
    def submit(self, req: Message) -> None:
        self.queue.append(req)
        if self.proc is None:
            try:
                self.start()
            except BaseException:
                self.queue.remove(req)  # failed now: it must not run later
                raise
        self.pump()

    def pump(self) -> None:
        if self.current is not None or not self.ready or not self.queue:
            return
        self.current = req = self.queue.popleft()
        self.timed_out = None
        self.call_start = procs.now_ticks()
        data = self.encode_request(req)
        try:
            while data:
                data = data[os.write(self.req_fd, data) :]
        except OSError:
            self.on_died()
            return
        timeout = req.get("timeout")
        if timeout:
            self.timer = self.agent.timers.add(float(timeout), self.on_timeout)

    def encode_request(self, req: Message) -> bytes:
        """What the kernel reads for one request."""
        return protocol.encode({"code": req["code"], "envs": req.get("envs") or {}})

    def send_interrupt(self, pid: int) -> None:
        os.kill(pid, signal.SIGINT)

    def cancel(self, rid: str) -> bool:
        if self.current is not None and self.current["id"] == rid:
            self.interrupt("cancelled")
            return True
        for req in list(self.queue):
            if req["id"] == rid:
                self.queue.remove(req)
                self.agent.finish(rid, {"cancelled": True})
                return True
        return False

    def on_timeout(self) -> None:
        self.timer = None
        self.interrupt("interrupted")

    def interrupt(self, why: str) -> None:
        if self.proc is None or self.current is None:
            return
        self.timed_out = why
        pid = self.proc.pid
        try:
            # Frozen, the kernel cannot start more while the rest of the call goes:
            # whatever it started (children, daemons, a fork bomb). Processes from
            # earlier calls and the kernel itself stay.
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            return
        try:
            self.proc.kill(keep_workload=True, since=self.call_start)
            self.send_interrupt(pid)
        except ProcessLookupError:
            return
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        rid = self.current["id"]
        self.timer = self.agent.timers.add(self.agent.interrupt_grace, lambda: self.force(rid))

    def force(self, rid: str) -> None:
        """The code ignored KeyboardInterrupt: kill the context and start a fresh one."""
        self.timer = None
        if self.current is None or self.current["id"] != rid:
            return
        why = "restarted" if self.timed_out == "interrupted" else "cancelled"
        self._teardown()
        self.agent.send(
            {
                "id": rid,
                "type": "error",
                "name": "ContextRestarted",
                "value": (
                    f"the code did not stop within {self.agent.interrupt_grace:g}s of "
                    f"KeyboardInterrupt, so the {self.language} context was killed and restarted; "
                    "its variables and imports were lost"
                ),
                "traceback": "",
            }
        )
        self.current = None
        self.agent.finish(rid, {"timed_out": why, "context_restarted": True})
        self.start()

    def on_control(self) -> None:
        try:
            data = os.read(self.ctl_fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.on_died()
            return
        for line in self.ctl_buf.feed(data):
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict):
                self.on_kernel_message(msg)

    def on_kernel_message(self, msg: Message) -> None:
        kind = msg.get("type")
        if kind == "ready":
            self.ready = True
            self.pump()
            return
        if self.current is None:
            return
        rid = self.current["id"]
        for s in self.streams:
            s.read_available()
        if kind in ("result", "error"):
            msg["id"] = rid
            self.agent.send(msg)
        elif kind == "done":
            self.agent.timers.cancel(self.timer)
            self.timer = None
            value: Dict[str, Any] = {"execution_count": msg.get("execution_count")}
            if self.timed_out:
                value["timed_out"] = self.timed_out
            self.current = None
            self.agent.finish(rid, value)
            self.pump()

    def check_exit(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.on_died()

    def on_died(self) -> None:
        proc = self.proc
        if proc is None:
            return
        code = proc.poll()
        if code is None:
            code = proc.wait(timeout=1)
        self._teardown()
        if code is not None and code < 0:
            how = f"was killed by {_signal_name(-code)}"
            if -code == signal.SIGKILL:
                limit = self.agent.memory_limit
                if limit:
                    how += (
                        f" (most likely the sandbox's memory limit of {limit / 2**20:.0f} MiB "
                        "was reached)"
                    )
        else:
            how = f"exited with code {code}"
        if self.current is not None:
            rid = self.current["id"]
            self.agent.timers.cancel(self.timer)
            self.timer = None
            self.agent.send(
                {
                    "id": rid,
                    "type": "error",
                    "name": "ContextDied",
                    "value": (
                        f"the {self.language} context {how}; its variables and imports were lost "
                        "and the next call runs in a fresh context"
                    ),
                    "traceback": "",
                }
            )
            self.current = None
            self.agent.finish(rid, {"context_restarted": True})
        if self.queue:
            self.start()


class NodeContext(PythonContext):
    """A stateful JavaScript or TypeScript process (``node`` running kernel_node.js)."""

    def __init__(self, agent: Agent, context_id: str, cwd: str, language: str) -> None:
        super().__init__(agent, context_id, cwd)
        self.language = language

    def spawn(
        self, req_r: int, ctl_w: int, out_w: int, err_w: int, env: Dict[str, str], cwd: str
    ) -> procs.Guarded:
        kernel = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_node.js")
        node_path = [p for p in env.get("NODE_PATH", "").split(os.pathsep) if p]
        for extra in ("/usr/share/nodejs", "/usr/lib/node_modules", "/usr/local/lib/node_modules"):
            if os.path.isdir(extra) and extra not in node_path:
                node_path.append(extra)
        env = dict(env, NODE_PATH=os.pathsep.join(node_path))
        return self.agent.spawn(
            _exec(["node", kernel, str(req_r), str(ctl_w), self.language]),
            stdin=None,
            stdout=out_w,
            stderr=err_w,
            keep=(req_r, ctl_w),
            env=env,
            cwd=cwd,
        )


class BashContext(PythonContext):
    """A stateful bash process: ``cd``, variables and functions persist across calls.

    Each call's code is written to a file and ``source``d with stdin from /dev/null (so
    it cannot swallow the next request); then the shell reports ``$?`` on the control
    pipe. ``trap : INT`` lets an interrupt stop the running command, not the shell.
    """

    language = "bash"

    def spawn(
        self, req_r: int, ctl_w: int, out_w: int, err_w: int, env: Dict[str, str], cwd: str
    ) -> procs.Guarded:
        self.ctl_number = ctl_w
        self.cells = tempfile.mkdtemp(prefix=f".e2b-tools-bash-{self.id}-")
        self.count = 0
        return self.agent.spawn(
            _exec(["bash", "--norc", "--noprofile"]),
            stdin=req_r,
            stdout=out_w,
            stderr=err_w,
            keep=(ctl_w,),
            env=env,
            cwd=cwd,
        )

    def start(self) -> None:
        super().start()
        boot = f'trap : INT\nbuiltin printf \'{{"type":"ready"}}\\n\' >&{self.ctl_number}\n'
        os.write(self.req_fd, boot.encode())

    def encode_request(self, req: Message) -> bytes:
        self.count += 1
        cell = os.path.join(self.cells, f"cell-{self.count}.sh")
        with open(cell, "w", encoding="utf-8") as f:
            f.write(req["code"])
        lines = []
        envs = req.get("envs") or {}
        for key, value in envs.items():
            if str(key).isidentifier():
                lines.append(f"export {key}={shlex.quote(str(value))}")
        lines.append(f"builtin source {shlex.quote(cell)} < /dev/null")
        lines.append("__e2b_status=$?")
        for key in envs:
            if str(key).isidentifier():
                lines.append(f"unset {key}")
        lines.append(
            'builtin printf \'{"type":"done","exit_code":%d,"execution_count":%d}\\n\' '
            f'"$__e2b_status" {self.count} >&{self.ctl_number}'
        )
        return ("\n".join(lines) + "\n").encode("utf-8")

    def send_interrupt(self, pid: int) -> None:
        # The shell ignores INT (trap); the command it runs, in its group, stops.
        os.killpg(pid, signal.SIGINT)

    def on_kernel_message(self, msg: Message) -> None:
        code = msg.get("exit_code")
        if msg.get("type") == "done" and self.current is not None and code:
            for s in self.streams:
                s.read_available()
            self.agent.send(
                {
                    "id": self.current["id"],
                    "type": "error",
                    "name": "NonZeroExit",
                    "value": f"the last command exited with code {code}",
                    "traceback": "",
                }
            )
        super().on_kernel_message(msg)


class Command:
    """One shell command in its own process group; stdin closed unless asked for."""

    def __init__(self, agent: Agent, req: Message) -> None:
        self.agent = agent
        self.req = req
        self.rid: str = req["id"]
        self.timed_out = False
        self.exited_at: Optional[float] = None
        self.finished = False
        self.timer: Optional[int] = None
        self.drain_timer: Optional[int] = None
        env = agent.child_env(req.get("envs"))
        cwd = agent.resolve(req.get("cwd") or agent.workdir)
        shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
        self.stdin_fd = -1
        self.stdin_pending = b""
        self.stdin_closing = False
        if not os.path.isdir(cwd):
            raise NotADirectoryError(20, "Not a directory", cwd)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        in_r: Optional[int] = None
        in_w = -1
        if req.get("stdin"):
            stdin_pipe = os.pipe()
            in_r, in_w = stdin_pipe[0], stdin_pipe[1]
        try:
            self.proc = agent.spawn(
                _exec([shell, "-c", req["cmd"]]),
                stdin=in_r,
                stdout=out_w,
                stderr=err_w,
                env=env,
                cwd=cwd,
            )
        except BaseException:
            for fd in (out_r, err_r, in_w):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            for child_end in (out_w, err_w, in_r):
                if child_end is not None:
                    os.close(child_end)
        agent.watch(self.proc, self.check_exit)
        self.streams = [Stream(agent, out_r, "stdout", self), Stream(agent, err_r, "stderr", self)]
        if in_w >= 0:
            self.stdin_fd = in_w
            os.set_blocking(self.stdin_fd, False)
        agent.send({"id": self.rid, "type": "started", "pid": self.proc.pid})
        timeout = req.get("timeout")
        if timeout:
            self.timer = agent.timers.add(float(timeout), self.on_timeout)

    def describe(self) -> Dict[str, Any]:
        return {
            "pid": self.proc.pid,
            "cmd": self.req["cmd"],
            "cwd": self.req.get("cwd"),
            "stdin": self.stdin_fd >= 0,
        }

    def write_stdin(self, data: bytes) -> None:
        if self.stdin_fd < 0 or self.stdin_closing:
            raise BrokenPipeError(32, "stdin of this process is closed (run it with stdin=True)")
        self.stdin_pending += data
        self.flush_stdin()

    def close_stdin(self) -> None:
        self.stdin_closing = True
        self.flush_stdin()

    def flush_stdin(self) -> None:
        """Write what the pipe takes now; the rest waits for the pipe to drain."""
        if self.stdin_fd < 0:
            return
        try:
            while self.stdin_pending:
                n = os.write(self.stdin_fd, self.stdin_pending)
                self.stdin_pending = self.stdin_pending[n:]
        except BlockingIOError:
            pass
        except OSError:  # the process closed its end: nothing more to deliver
            self.stdin_pending = b""
            self.stdin_closing = True
        registered = self.stdin_fd in self.agent.sel.get_map()
        if self.stdin_pending and not registered:
            self.agent.sel.register(self.stdin_fd, selectors.EVENT_WRITE, self.flush_stdin)
        elif not self.stdin_pending:
            if registered:
                self.agent.sel.unregister(self.stdin_fd)
            if self.stdin_closing:
                os.close(self.stdin_fd)
                self.stdin_fd = -1

    def current_request(self) -> Optional[str]:
        return self.rid

    def finish(self, value: Dict[str, Any]) -> None:
        self.agent.finish(self.rid, value)

    def on_timeout(self) -> None:
        self.timer = None
        self.timed_out = True
        self.kill()

    def kill(self) -> None:
        """Kill the command and every process it started, wherever they moved."""
        self.proc.kill()

    def stream_closed(self, stream: Stream) -> None:
        self.maybe_finish()

    def check_exit(self) -> None:
        if self.exited_at is None and self.proc.poll() is not None:
            self.exited_at = time.monotonic()
            self.agent.unwatch(self.proc)  # its status pipe has nothing more to say
            if any(s.open for s in self.streams):
                self.drain_timer = self.agent.timers.add(EXIT_DRAIN_SECONDS, self.stop_reading)
            self.maybe_finish()

    def stop_reading(self) -> None:
        for s in self.streams:
            s.read_available()
            s.close()
        self.maybe_finish()

    def maybe_finish(self) -> None:
        if self.finished or any(s.open for s in self.streams):
            return
        code = self.proc.poll()
        if code is None:
            return
        self.finished = True
        if self.stdin_fd >= 0:
            self.stdin_pending = b""
            self.close_stdin()
        self.agent.timers.cancel(self.timer)
        self.agent.timers.cancel(self.drain_timer)
        self.agent.commands.pop(self.rid, None)
        self.agent.unwatch(self.proc)
        exit_code = 128 - code if code < 0 else code
        value: Dict[str, Any] = {"exit_code": exit_code, "pid": self.proc.pid}
        if self.timed_out:
            value["timed_out"] = True
        self.finish(value)


_BUILD_FAILED = 254


class ProgramRun(Command):
    """``run_code`` for a stateless language: write the file, build it, run it."""

    def __init__(self, agent: Agent, req: Message, spec: languages.LanguageSpec) -> None:
        self.dir = tempfile.mkdtemp(prefix=f".e2b-tools-{spec['name']}-")
        with open(os.path.join(self.dir, spec["file"]), "w", encoding="utf-8") as f:
            f.write(req["code"])
        script = spec["run"]
        if spec["build"]:
            script = f"{spec['build']} || exit {_BUILD_FAILED}\n{spec['run']}"
        command = {
            "id": req["id"],
            "cmd": script,
            "cwd": self.dir,
            "envs": req.get("envs") or {},
            "timeout": req.get("timeout"),
        }
        super().__init__(agent, command)

    def finish(self, value: Dict[str, Any]) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        code = value.get("exit_code", 0)
        if value.get("timed_out"):
            self.agent.finish(self.rid, {"timed_out": "killed"})
            return
        if code == _BUILD_FAILED:
            error = (
                "CompileError",
                "the program did not compile (the compiler's output is on stderr)",
            )
        elif code:
            error = ("NonZeroExit", f"the program exited with code {code}")
        else:
            error = None
        if error is not None:
            self.agent.send(
                {
                    "id": self.rid,
                    "type": "error",
                    "name": error[0],
                    "value": error[1],
                    "traceback": "",
                }
            )
        self.agent.finish(self.rid, {"exit_code": code})


class Agent(files.FileOps):
    def __init__(self, root: str) -> None:
        self.root = root
        env = os.environ
        # First of all: out of user code's reach (see procs).
        self.identity = procs.become_agent(env.pop("E2B_TOOLS_USER", ""))
        self.workdir = env.pop("E2B_TOOLS_WORKDIR", "") or env.get("HOME") or "/"
        deadline = env.pop("E2B_TOOLS_DEADLINE", "")
        self.interrupt_grace = float(env.pop("E2B_TOOLS_INTERRUPT_GRACE", "") or 2.0)
        self.base_env = dict(env)
        self.memory_limit = _memory_limit()
        self.in_fd = os.dup(0)
        self.out_fd = os.dup(1)
        for fd in (self.in_fd, self.out_fd):
            os.set_inheritable(fd, False)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(2, 1)
        os.close(devnull)
        self.sel = selectors.DefaultSelector()
        os.set_blocking(self.in_fd, False)
        self.sel.register(self.in_fd, selectors.EVENT_READ, self.on_input)
        self.sig_r, self.sig_w = os.pipe()
        for fd in (self.sig_r, self.sig_w):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        signal.set_wakeup_fd(self.sig_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: self.shutdown("SIGTERM"))
        self.sel.register(self.sig_r, selectors.EVENT_READ, self.on_signal)
        self.inbuf = protocol.LineBuffer()
        self.timers = Timers()
        self.guards: Set[procs.Guarded] = set()
        self.uploads: Dict[str, files.Upload] = {}
        self.contexts: Dict[str, PythonContext] = {}
        self.commands: Dict[str, Command] = {}
        self.spills: Dict[str, Spill] = {}
        self.context_seq = 0
        self.deadline: Optional[float] = float(deadline) if deadline else None
        self.deadline_timer: Optional[int] = None
        self.watchdog = procs.Watchdog(self.deadline)
        self.schedule_deadline()
        # Warm the default context so the first run_code does not pay for its start.
        self.context("python", None).start()

    # -- plumbing ----------------------------------------------------------------
    def send(self, msg: Message) -> None:
        data = protocol.encode(msg)
        if len(data) > protocol.MAX_LINE:
            for smaller in protocol.shrink(msg, len(data)):
                self.send(smaller)
            return
        while data:
            try:
                data = data[os.write(self.out_fd, data) :]
            except BlockingIOError:
                time.sleep(0.001)
            except OSError as exc:
                _log(f"protocol output lost: {exc}")
                return

    def output(self, rid: str, kind: str, text: str) -> None:
        self.send({"id": rid, "type": kind, "text": text})
        spill = self.spills.get(rid)
        if spill is not None:
            spill.add(text)

    def start_spill(self, req: Message) -> None:
        spec = req.get("spill")
        if spec:
            self.spills[req["id"]] = Spill(
                self.resolve(str(spec.get("path", ""))), int(spec.get("threshold", 0))
            )

    def finish(self, rid: str, value: Optional[Dict[str, Any]] = None) -> None:
        value = dict(value or {})
        spill = self.spills.pop(rid, None)
        if spill is not None:
            saved = spill.close()
            if saved is not None:
                value["spilled"] = saved
        self.send({"id": rid, "type": "done", "value": value})

    def fail(self, rid: str, name: str, value: str) -> None:
        self.send({"id": rid, "type": "error", "name": name, "value": value, "traceback": ""})
        self.finish(rid)

    def child_env(self, extra: Optional[Dict[str, Any]] = None) -> Dict[str, str]:
        env = dict(self.base_env)
        if extra:
            env.update({str(k): str(v) for k, v in extra.items()})
        return env

    def resolve(self, path: str) -> str:
        path = os.path.expanduser(path)
        return os.path.normpath(os.path.join(self.workdir, path))

    def spawn(
        self,
        run: Callable[[], None],
        *,
        stdin: Optional[int],
        stdout: int,
        stderr: int,
        env: Dict[str, str],
        cwd: str,
        keep: Tuple[int, ...] = (),
    ) -> procs.Guarded:
        """Start a workload as the sandbox user, under a guard (see procs)."""
        proc = procs.Guarded(
            run,
            self.identity,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            keep=keep,
            env=env,
            cwd=cwd,
        )
        self.guards.add(proc)
        return proc

    def watch(self, proc: procs.Guarded, on_exit: Callable[[], None]) -> None:
        """Call ``on_exit`` when news of ``proc``'s exit arrives."""
        self.sel.register(proc.status_fd, selectors.EVENT_READ, on_exit)

    def unwatch(self, proc: procs.Guarded) -> None:
        if proc.status_fd >= 0:
            self.sel.unregister(proc.status_fd)
            proc.close()

    def schedule_deadline(self) -> None:
        self.timers.cancel(self.deadline_timer)
        self.deadline_timer = None
        try:
            self.watchdog.set_deadline(self.deadline)
        except OSError as exc:
            _log(f"watchdog unreachable: {exc}")
        if self.deadline is not None:
            delay = max(0.0, self.deadline - time.time())
            self.deadline_timer = self.timers.add(delay, lambda: self.shutdown("deadline"))

    def shutdown(self, why: str) -> None:
        _log(f"exiting: {why}")
        for proc in self.guards:
            procs.kill_tree(proc.guard_pid)
        os._exit(0)

    def context(self, language: str, context_id: Optional[str]) -> PythonContext:
        if context_id:
            ctx = self.contexts.get(context_id)
            if ctx is None:
                raise ContextNotFound(
                    f"no code context {context_id!r} (removed, or never created); "
                    "create one with create_code_context()"
                )
            return ctx
        key = f"{language}-default"
        ctx = self.contexts.get(key)
        if ctx is None:
            ctx = self.contexts[key] = self.new_context(key, language, self.workdir)
        return ctx

    def new_context(self, context_id: str, language: str, cwd: str) -> PythonContext:
        if language == "python":
            return PythonContext(self, context_id, cwd)
        if language == "bash":
            return BashContext(self, context_id, cwd)
        return NodeContext(self, context_id, cwd, language)

    # -- the loop ----------------------------------------------------------------
    def run(self) -> None:
        while True:
            for key, _ in self.sel.select(self.timers.next_delay()):
                try:
                    key.data()
                except Exception as exc:
                    _log(f"handler failed: {type(exc).__name__}: {exc}")
            self.timers.run_due()

    def on_signal(self) -> None:
        try:
            while os.read(self.sig_r, 4096):
                pass
        except BlockingIOError:
            pass
        for proc in list(self.guards):
            if proc.reap():
                self.guards.discard(proc)
        try:
            gone = os.waitpid(self.watchdog.pid, os.WNOHANG)[0]
        except ChildProcessError:
            gone = self.watchdog.pid
        if gone:
            _log("the watchdog died; starting another")
            os.close(self.watchdog.fd)
            self.watchdog = procs.Watchdog(self.deadline)

    def on_input(self) -> None:
        try:
            data = os.read(self.in_fd, 1 << 20)
        except BlockingIOError:
            return
        if not data:
            # The attach stream closed for good; the sandbox lives on until its
            # deadline so running work and files are not lost.
            self.sel.unregister(self.in_fd)
            _log("input closed")
            return
        dropped = self.inbuf.dropped
        for line in self.inbuf.feed(data):
            self.handle_line(line)
        if self.inbuf.dropped != dropped:
            _log(f"dropped a request line over {protocol.MAX_LINE} bytes")

    def handle_line(self, line: bytes) -> None:
        try:
            req = protocol.decode_request(line)
        except protocol.ProtocolError as exc:
            rid = ""
            try:
                rid = str(json.loads(line).get("id", ""))
            except Exception:
                pass
            self.fail(rid, "ProtocolError", str(exc))
            return
        rid = req["id"]
        handler = getattr(self, "op_" + req["op"])
        try:
            handler(req)
        except OSError as exc:
            self.fail(rid, type(exc).__name__, exc.strerror or str(exc))
        except Exception as exc:
            self.fail(rid, type(exc).__name__, str(exc))

    # -- ops ---------------------------------------------------------------------
    def op_hello(self, req: Message) -> None:
        self.send(
            {
                "id": req["id"],
                "type": "hello",
                "protocol_version": protocol.PROTOCOL_VERSION,
                "pid": os.getpid(),
                "deadline": self.deadline,
                "languages": list(LANGUAGES),
                "workdir": self.workdir,
                "python": sys.version.split()[0],
            }
        )
        if req["protocol_version"] != protocol.PROTOCOL_VERSION:
            self.fail(
                req["id"],
                "ProtocolMismatch",
                f"agent speaks protocol {protocol.PROTOCOL_VERSION}, "
                f"host speaks {req['protocol_version']}",
            )
            return
        self.finish(req["id"])

    def op_info(self, req: Message) -> None:
        self.finish(
            req["id"],
            {
                "deadline": self.deadline,
                "contexts": sorted(self.contexts),
                "commands": [c.proc.pid for c in self.commands.values()],
            },
        )

    def op_set_timeout(self, req: Message) -> None:
        self.deadline = float(req["deadline"])
        self.schedule_deadline()
        self.finish(req["id"], {"deadline": self.deadline})

    def language_of(self, req: Message) -> Optional[str]:
        """The request's language by its table name; None after failing the request."""
        asked = str(req["language"]).lower()
        language = ALIASES.get(asked, asked)
        if language in LANGUAGES:
            return language
        self.fail(
            req["id"],
            "UnsupportedLanguage",
            languages.unavailable(str(req["language"]), LANGUAGES),
        )
        return None

    def op_run_code(self, req: Message) -> None:
        language = self.language_of(req)
        if language is None:
            return
        self.start_spill(req)
        spec = languages.spec(language)
        if spec["file"] and not req.get("context_id"):
            self.commands[req["id"]] = ProgramRun(self, req, spec)
            return
        self.context(language, req.get("context_id")).submit(req)

    def op_create_context(self, req: Message) -> None:
        language = self.language_of(req)
        if language is None:
            return
        if languages.spec(language)["file"]:
            self.fail(
                req["id"],
                "UnsupportedLanguage",
                f"{language} is stateless: each run_code call builds and runs a fresh "
                "program, so it has no contexts; call run_code without context=",
            )
            return
        cwd = self.resolve(req.get("cwd") or self.workdir)
        if not os.path.isdir(cwd):
            raise NotADirectoryError(20, "Not a directory", cwd)
        self.context_seq += 1
        ctx = self.new_context(f"{language}-{self.context_seq}", language, cwd)
        self.contexts[ctx.id] = ctx
        ctx.start()
        self.finish(req["id"], ctx.describe())

    def op_list_contexts(self, req: Message) -> None:
        self.finish(req["id"], {"contexts": [c.describe() for c in self.contexts.values()]})

    def op_restart_context(self, req: Message) -> None:
        ctx = self.context("", req["context_id"])
        ctx.kill("the code context was restarted while this call was running or waiting")
        ctx.start()
        self.finish(req["id"], ctx.describe())

    def op_remove_context(self, req: Message) -> None:
        ctx = self.context("", req["context_id"])
        ctx.kill("the code context was removed while this call was running or waiting")
        del self.contexts[ctx.id]
        self.finish(req["id"])

    def op_command(self, req: Message) -> None:
        self.start_spill(req)
        try:
            cmd = Command(self, req)
        except BlockingIOError as exc:
            self.fail(
                req["id"],
                "ResourceExhausted",
                f"could not start the command: {exc.strerror} (the sandbox's process limit "
                "may be reached; kill some processes or raise pids_limit)",
            )
            return
        self.commands[req["id"]] = cmd

    def op_cancel(self, req: Message) -> None:
        target = req["target"]
        found = False
        cmd = self.commands.get(target)
        if cmd is not None:
            cmd.kill()
            found = True
        for ctx in self.contexts.values():
            found = ctx.cancel(target) or found
        self.finish(req["id"], {"found": found})

    def process(self, pid: int) -> Command:
        for cmd in self.commands.values():
            if cmd.proc.pid == pid:
                return cmd
        raise ProcessLookupError(3, f"no running command with pid {pid}")

    def op_send_stdin(self, req: Message) -> None:
        self.process(req["pid"]).write_stdin(req["data"].encode("utf-8"))
        self.finish(req["id"])

    def op_close_stdin(self, req: Message) -> None:
        self.process(req["pid"]).close_stdin()
        self.finish(req["id"])

    def op_kill_process(self, req: Message) -> None:
        try:
            cmd = self.process(req["pid"])
        except ProcessLookupError:
            self.finish(req["id"], {"killed": False})
            return
        cmd.kill()
        # Answer once the process is gone (reaped), not merely signalled.
        cmd.proc.wait(timeout=2.0)
        self.finish(req["id"], {"killed": True})

    def op_list_processes(self, req: Message) -> None:
        self.finish(req["id"], {"processes": [c.describe() for c in self.commands.values()]})


def main(root: str) -> None:
    """Entry point inside the container; ``root`` is the directory holding the package."""
    Agent(root).run()
