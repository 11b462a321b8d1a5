"""Stateful code contexts (standard library only): one kernel process per context,
requests to it queued and run one after another."""

from __future__ import annotations

import json
import os
import selectors
import shlex
import signal
import tempfile
from collections import deque
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional

from . import kernel_python, procs, protocol
from .plumbing import Stream, exec_argv, read_chunk, signal_name
from .protocol import Message

if TYPE_CHECKING:
    from .main import Agent

# Longest line a kernel may send on its control pipe (results are capped well below).
MAX_KERNEL_LINE = 64 << 20


class KernelContext:
    """A stateful kernel process; requests to it run one after another.

    Subclasses say how to start their kernel (:meth:`spawn`); the kernel reads requests
    on one pipe and reports on another (``ready``, ``result``, ``error``, ``done``).
    """

    language = ""

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
        """Start the kernel: requests on ``req_r``, reports on ``ctl_w``."""
        raise NotImplementedError

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
        # To the main thread: the one running the code, and the one whose blocking
        # call the signal must interrupt (the process is stopped at this point).
        procs.signal_main_thread(pid, signal.SIGINT)

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
        data = read_chunk(self.ctl_fd)
        if data is None:
            return
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
            how = f"was killed by {signal_name(-code)}"
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


class PythonContext(KernelContext):
    """A stateful Python process (kernel_python, forked from the agent)."""

    language = "python"

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


class NodeContext(KernelContext):
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
        prefix = env.get("NPM_CONFIG_PREFIX")
        if prefix:  # where `npm install -g` puts packages (it may not exist yet)
            node_path.append(os.path.join(prefix, "lib", "node_modules"))
        env = dict(env, NODE_PATH=os.pathsep.join(node_path))
        # --expose-internals: the kernel parses cells with node's own acorn when no
        # acorn package is installed (top-level await, import statements).
        argv = ["node", "--expose-internals", kernel, str(req_r), str(ctl_w), self.language]
        return self.agent.spawn(
            exec_argv(argv),
            stdin=None,
            stdout=out_w,
            stderr=err_w,
            keep=(req_r, ctl_w),
            env=env,
            cwd=cwd,
        )


class BashContext(KernelContext):
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
            exec_argv(["bash", "--norc", "--noprofile"]),
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
        # The call's envs hold for the call; then each variable is as it was before
        # (the sandbox's value, or unset).
        keys = [str(k) for k in (req.get("envs") or {}) if str(k).isidentifier()]
        for key in keys:
            value = str(req["envs"][key])
            lines.append(f"__e2b_had_{key}=${{{key}+1}}; __e2b_old_{key}=${{{key}-}}")
            lines.append(f"export {key}={shlex.quote(value)}")
        lines.append(f"builtin source {shlex.quote(cell)} < /dev/null")
        lines.append("__e2b_status=$?")
        for key in keys:
            lines.append(
                f'if [ -n "$__e2b_had_{key}" ]; then export {key}="$__e2b_old_{key}"; '
                f"else unset {key}; fi; unset __e2b_had_{key} __e2b_old_{key}"
            )
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
