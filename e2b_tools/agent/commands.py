"""Shell commands and stateless programs (standard library only): each runs under a
guard (see :mod:`procs`), its output forwarded as it comes, to the request that started
it and to the requests that follow it (``command_attach``)."""

from __future__ import annotations

import base64
import os
import selectors
import shutil
import tempfile
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from . import languages
from .plumbing import Stream, exec_argv, signal_name
from .protocol import KILL_SIGNALS, Message

if TYPE_CHECKING:
    from .main import Agent

# After a command's main process exits, how long to keep reading output that its
# background children may still write before the call returns.
EXIT_DRAIN_SECONDS = 0.2

MAX_FOLLOWERS = 16
"""Requests that may follow one command at once (``command_attach``). Past it the oldest
is let go (a ``Detached`` error), so followers whose host went away without cancelling
cost the command a bounded share of the output stream, not one copy per attach ever made."""


class _Forwarded(Stream):
    """A command's pipe: each piece goes to its own request, then to its followers."""

    owner: Command

    def emit(self, text: str) -> None:
        super().emit(text)
        if text:
            for rid in self.owner.followers:
                self.agent.send({"id": rid, "type": self.kind, "text": text})

    def emit_bytes(self, data: bytes) -> None:
        super().emit_bytes(data)
        if data and self.owner.followers:
            encoded = base64.b64encode(data).decode("ascii")
            for rid in self.owner.followers:
                self.agent.send({"id": rid, "type": self.kind, "data": encoded})


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
        self.followers: List[str] = []
        """Requests that follow the command (``command_attach``), oldest first."""
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
                exec_argv([shell, "-c", req["cmd"]]),
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
        binary = bool(req.get("binary"))
        self.streams = [
            _Forwarded(agent, out_r, "stdout", self, binary),
            _Forwarded(agent, err_r, "stderr", self, binary),
        ]
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

    def attach(self, rid: str) -> None:
        """Have request ``rid`` follow the command: a ``started`` event now, then every
        later piece of output and, when it ends, a ``done`` like the command's own."""
        if len(self.followers) >= MAX_FOLLOWERS:
            oldest = self.followers.pop(0)
            self.agent.fail(
                oldest,
                "Detached",
                f"more than {MAX_FOLLOWERS} calls followed command {self.proc.pid}; the "
                "oldest was let go (the command runs on: connect to it again)",
            )
        self.followers.append(rid)
        self.agent.send({"id": rid, "type": "started", "pid": self.proc.pid})

    def detach(self, rid: str) -> bool:
        """Stop request ``rid`` following the command (which runs on); False if it did not."""
        if rid not in self.followers:
            return False
        self.followers.remove(rid)
        self.agent.finish(rid, {"detached": True, "pid": self.proc.pid})
        return True

    def finish(self, value: Dict[str, Any]) -> None:
        self.agent.finish(self.rid, value)

    def on_timeout(self) -> None:
        self.timer = None
        self.timed_out = True
        self.kill()

    def kill(self) -> None:
        """Kill the command and every process it started, wherever they moved."""
        self.proc.kill()

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` (one of ``KILL_SIGNALS``) to the command's process group; False
        if the command already ended (its group id may name someone else's by now)."""
        if signal_name(sig) not in KILL_SIGNALS:
            raise ValueError(f"signal {sig} is not one of {', '.join(KILL_SIGNALS)}")
        if self.proc.poll() is not None:
            return False
        try:
            os.killpg(self.proc.pid, sig)  # the workload called setsid: its pid is the group's
        except ProcessLookupError:
            # Just started: not yet its own group (the guard reports the pid first), so
            # it has no children either. Signal it alone, never the group it is still in.
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                return False
        return True

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
        if code < 0:
            value["signal"] = signal_name(-code)
        if self.timed_out:
            value["timed_out"] = "killed"
        self.finish(value)
        followers, self.followers = self.followers, []
        for rid in followers:
            self.agent.finish(rid, value)


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
