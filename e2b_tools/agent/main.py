"""The in-sandbox agent: the container's main process (standard library only).

It speaks :mod:`protocol` on private duplicates of the container's stdin/stdout; the
original descriptors 0 and 1 are pointed at ``/dev/null`` and stderr so that nothing
the agent starts can write into the protocol stream. One single-threaded selector
loop serves every request; code contexts and shell commands are child processes.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from . import files, languages, ports, procs, protocol
from .commands import Command, ProgramRun
from .contexts import BashContext, KernelContext, NodeContext, PythonContext
from .plumbing import LOG, READ_CHUNK, Spill, Timers, log, memory_limit, note
from .protocol import Message
from .watch import Watches

LANGUAGES = languages.available()
OUT_BATCH = 1 << 18
_KEEP_PAUSED = frozenset({"hello", "info", "set_timeout", "cancel", "agent_log"})
"""Requests that do not wake an auto-paused sandbox (looking at it is not using it)."""
WATCHDOG_DEFER = 1.0
"""Seconds a later deadline waits before the watchdog hears of it."""
WATCHDOG_DEFER_MIN = 30.0
"""A deadline the watchdog holds closer than this is moved at once."""
"""Bytes of queued protocol output that are written at once, before the loop's turn."""


class ContextNotFound(LookupError):
    """A request named a code context that does not exist."""


class Agent(files.FileOps):
    def __init__(self, root: str) -> None:
        self.root = root
        env = os.environ
        # First of all: out of user code's reach (see procs).
        self.identity = procs.become_agent(env.pop("E2B_TOOLS_USER", ""))
        self.workdir = env.pop("E2B_TOOLS_WORKDIR", "") or env.get("HOME") or "/"
        deadline = env.pop("E2B_TOOLS_DEADLINE", "")
        # At the deadline: "kill" (exit, the container goes) or "pause" (freeze every
        # process, memory kept, until a host resumes it: E2B's auto-pause).
        self.on_timeout = env.pop("E2B_TOOLS_ON_TIMEOUT", "") or "kill"
        self.auto_resume = env.pop("E2B_TOOLS_AUTO_RESUME", "") == "1"
        self.lifetime = float(env.pop("E2B_TOOLS_LIFETIME", "") or 300.0)
        self.frozen: List[int] = []
        """The processes the deadline froze (auto-pause), for the resume to wake."""
        self.interrupt_grace = float(env.pop("E2B_TOOLS_INTERRUPT_GRACE", "") or 2.0)
        self.base_env = dict(env)
        self.memory_limit = memory_limit()
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
        self.outbuf: List[bytes] = []
        self.outlen = 0
        self.timers = Timers()
        self.guards: Set[procs.Guarded] = set()
        self.uploads: Dict[str, files.Upload] = {}
        self.contexts: Dict[str, KernelContext] = {}
        self.commands: Dict[str, Command] = {}
        self.ports: Dict[str, ports.PortConnection] = {}
        self.spills: Dict[str, Spill] = {}
        self.watches = Watches(self)
        self.context_seq = 0
        self.deadline: Optional[float] = float(deadline) if deadline else None
        self.deadline_timer: Optional[int] = None
        self.watchdog_timer: Optional[int] = None
        self.paused_at: Optional[float] = None
        """When the host stopped the deadline's clock to pause the sandbox (None: runs)."""
        self.watchdog = procs.Watchdog(self.deadline)
        self.schedule_deadline()
        log(
            f"started: pid {os.getpid()}, python {sys.version.split()[0]}, "
            f"languages {', '.join(LANGUAGES)}, workdir {self.workdir}, "
            f"memory limit {self.memory_limit or 'none'}"
        )
        # Warm the default context so the first run_code does not pay for its start.
        self.context("python", None).start()
        if "javascript" in LANGUAGES:
            # Listed from the start, as E2B lists it; node starts on its first use.
            self.context("javascript", None)

    # -- plumbing ----------------------------------------------------------------
    def send(self, msg: Message) -> None:
        """Queue ``msg`` for the host; the loop writes what queued up in one go after
        each round of handlers (one write through the engine's stream copiers instead
        of one per message), or at once past :data:`OUT_BATCH` bytes."""
        data = protocol.encode(msg)
        if len(data) > protocol.MAX_LINE:
            for smaller in protocol.shrink(msg, len(data)):
                self.send(smaller)
            return
        self.outbuf.append(data)
        self.outlen += len(data)
        if self.outlen >= OUT_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.outbuf:
            return
        data = b"".join(self.outbuf)
        self.outbuf.clear()
        self.outlen = 0
        while data:
            try:
                data = data[os.write(self.out_fd, data) :]
            except BlockingIOError:
                time.sleep(0.001)
            except OSError as exc:
                log(f"protocol output lost: {exc}")
                return

    def output(self, rid: str, kind: str, text: str) -> None:
        self.send({"id": rid, "type": kind, "text": text})
        spill = self.spills.get(rid)
        if spill is not None:
            spill.add(text)

    def output_bytes(self, rid: str, kind: str, data: bytes) -> None:
        """Forward raw output of a ``binary`` command (base64 ``data``)."""
        self.send({"id": rid, "type": kind, "data": base64.b64encode(data).decode("ascii")})
        spill = self.spills.get(rid)
        if spill is not None:
            spill.add_bytes(data)

    def start_spill(self, req: Message) -> None:
        spec = req.get("spill")
        if spec:
            self.spills[req["id"]] = Spill(
                self.resolve(str(spec.get("path", ""))),
                int(spec.get("threshold", 0)),
                binary=bool(req.get("binary")),
            )

    def finish(self, rid: str, value: Optional[Dict[str, Any]] = None) -> None:
        value = dict(value or {})
        spill = self.spills.pop(rid, None)
        if spill is not None:
            saved = spill.close()
            if saved is not None:
                value["spilled"] = saved
        self.send({"id": rid, "type": "done", "value": value})

    def fail(self, rid: str, name: str, value: str, **context: Any) -> None:
        """Answer ``rid`` with an error (a name of ``protocol.ERRORS`` or an OSError's)."""
        event: Message = {"id": rid, "type": "error", "name": name, "value": value}
        event.update({k: v for k, v in context.items() if v is not None})
        self.send({**event, "traceback": ""})
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

    def running_deadline(self) -> Optional[float]:
        """The deadline to enforce now: none while the clock is stopped for a pause."""
        return None if self.paused_at is not None else self.deadline

    def schedule_deadline(self) -> None:
        self.timers.cancel(self.deadline_timer)
        self.deadline_timer = None
        deadline = self.running_deadline()
        armed = self.watchdog.deadline
        if (
            deadline is None
            or armed is None
            or deadline < armed
            or armed - time.time() < WATCHDOG_DEFER_MIN
        ):
            self.arm_watchdog()
        elif self.watchdog_timer is None:
            # A later deadline can wait a moment: the watchdog only kills at the one it
            # holds, still far off, and the calls that follow a set_timeout (a pool's
            # hand-out) then do not wait behind waking it.
            self.watchdog_timer = self.timers.add(WATCHDOG_DEFER, self.arm_watchdog)
        if deadline is not None:
            delay = max(0.0, deadline - time.time())
            self.deadline_timer = self.timers.add(delay, self.on_deadline)

    def on_deadline(self) -> None:
        if self.on_timeout != "pause":
            self.shutdown("deadline")
            return
        # Auto-pause: the clock stops (the watchdog with it) and every process but the
        # agent and its watchdog stops where it is, memory kept, until a host resumes.
        self.frozen = procs.freeze_tree(os.getpid(), keep={self.watchdog.pid})
        self.paused_at = time.time()
        log(f"deadline reached: paused ({len(self.frozen)} processes frozen) until resumed")
        self.schedule_deadline()

    def resume_frozen(self) -> None:
        """Wake what the deadline froze; the sandbox runs its lifetime again."""
        procs.thaw(self.frozen)
        self.frozen = []
        self.paused_at = None
        self.deadline = time.time() + self.lifetime
        log(f"resumed after an auto-pause; deadline in {self.lifetime:.0f}s")
        self.schedule_deadline()

    def arm_watchdog(self) -> None:
        """Hand the watchdog the deadline to enforce now."""
        self.timers.cancel(self.watchdog_timer)
        self.watchdog_timer = None
        try:
            self.watchdog.set_deadline(self.running_deadline())
        except OSError as exc:
            log(f"watchdog unreachable: {exc}")

    def shutdown(self, why: str) -> None:
        log(f"exiting: {why}")
        self.flush()
        for proc in self.guards:
            procs.kill_tree(proc.guard_pid)
        os._exit(0)

    def context(self, language: str, context_id: Optional[str]) -> KernelContext:
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

    def new_context(self, context_id: str, language: str, cwd: str) -> KernelContext:
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
                    log(f"handler failed: {type(exc).__name__}: {exc}")
            self.timers.run_due()
            self.flush()

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
            log("the watchdog died; starting another")
            os.close(self.watchdog.fd)
            self.watchdog = procs.Watchdog(self.running_deadline())

    def on_input(self) -> None:
        try:
            data = os.read(self.in_fd, READ_CHUNK)
        except BlockingIOError:
            return
        if not data:
            # The attach stream closed for good; the sandbox lives on until its
            # deadline so running work and files are not lost.
            self.sel.unregister(self.in_fd)
            log("input closed")
            return
        dropped = self.inbuf.dropped
        for line in self.inbuf.feed(data):
            self.handle_line(line)
        if self.inbuf.dropped != dropped:
            log(f"dropped a request line over {protocol.MAX_LINE} bytes")

    def handle_line(self, line: bytes) -> None:
        try:
            req = protocol.decode_request(line)
        except protocol.MalformedMessage as exc:
            rid = ""
            try:
                rid = str(json.loads(line).get("id", ""))
            except Exception:
                pass
            self.fail(rid, "ProtocolError", str(exc))
            return
        rid = req["id"]
        if self.frozen and self.auto_resume and req["op"] not in _KEEP_PAUSED:
            self.resume_frozen()  # E2B's auto_resume: the sandbox's next use wakes it
        handler = getattr(self, "op_" + req["op"])
        try:
            handler(req)
        except OSError as exc:
            path = exc.filename if isinstance(exc.filename, str) else None
            self.fail(rid, type(exc).__name__, exc.strerror or str(exc), errno=exc.errno, path=path)
        except Exception as exc:
            self.fail(rid, type(exc).__name__, str(exc))

    # -- ops ---------------------------------------------------------------------
    def op_hello(self, req: Message) -> None:
        note(f"hello from a host (protocol {req['protocol_version']})")
        self.send(
            {
                "id": req["id"],
                "type": "hello",
                "protocol_version": protocol.PROTOCOL_VERSION,
                "pid": os.getpid(),
                "deadline": self.deadline,
                "auto_paused": bool(self.frozen),
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
                "paused": self.paused_at is not None,
                "auto_paused": bool(self.frozen),
                "contexts": sorted(self.contexts),
                "commands": [c.proc.pid for c in self.commands.values()],
            },
        )

    def op_set_timeout(self, req: Message) -> None:
        pause = req.get("pause")
        if pause is None and req.get("deadline") is None:
            self.fail(req["id"], "ProtocolError", "set_timeout needs a deadline or pause")
            return
        now = time.time()
        if pause is None and self.frozen:
            self.fail(req["id"], "SandboxPaused", "the sandbox is paused; connect() resumes it")
            return
        if pause:
            # The host freezes the whole sandbox next. Frozen, the clocks go on: on
            # waking, the timer and the watchdog would find the deadline passed. So the
            # clock stops here, and starts again, moved by the time stopped, on resume.
            if self.paused_at is None:
                self.paused_at = now
                log("deadline clock stopped for a pause")
        elif self.frozen:  # pause is False: a host resumes an auto-paused sandbox
            self.resume_frozen()
        elif self.paused_at is not None:
            if self.deadline is not None:
                self.deadline += now - self.paused_at
            log(f"deadline clock restarted after {now - self.paused_at:.0f}s paused")
            self.paused_at = None
        if req.get("deadline") is not None:
            self.deadline = float(req["deadline"])
        if self.deadline is not None and not pause:
            note(f"deadline moved to {self.deadline:.3f} ({self.deadline - now:.0f}s from now)")
        self.schedule_deadline()
        self.finish(req["id"], {"deadline": self.deadline, "paused": self.paused_at is not None})

    def language_of(self, req: Message) -> Optional[str]:
        """The request's language by its table name; None after failing the request."""
        language = languages.resolve(req["language"])
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
        log(f"code context {ctx.id} restarted on request")
        ctx.start()
        self.finish(req["id"], ctx.describe())

    def op_remove_context(self, req: Message) -> None:
        ctx = self.context("", req["context_id"])
        ctx.kill("the code context was removed while this call was running or waiting")
        del self.contexts[ctx.id]
        self.finish(req["id"])

    def op_command(self, req: Message) -> None:
        self.start_spill(req)
        for attempt in range(5):
            try:
                cmd = Command(self, req)
                break
            except BlockingIOError as exc:
                if attempt < 4:
                    # Pids just freed (processes being reaped) come back in moments.
                    time.sleep(0.02 * (attempt + 1))
                    continue
                self.fail(
                    req["id"],
                    "ResourceExhausted",
                    f"could not start the command: {exc.strerror} (the sandbox's process "
                    "limit may be reached; kill some processes or raise pids_limit)",
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
        for command in list(self.commands.values()):
            found = command.detach(target) or found  # a follower stops; the command runs on
        found = self.watches.cancel(target) or found
        found = ports.cancel_port(self, target) or found
        self.finish(req["id"], {"found": found})

    def op_port_open(self, req: Message) -> None:
        ports.open_port(self, req)

    def op_port_send(self, req: Message) -> None:
        ports.send_port(self, req)

    def op_watch_dir(self, req: Message) -> None:
        self.watches.start(req)

    def op_watch_flush(self, req: Message) -> None:
        self.watches.flush(req)

    def process(self, pid: int) -> Command:
        for cmd in self.commands.values():
            if cmd.proc.pid == pid:
                return cmd
        raise ProcessLookupError(3, f"no running command with pid {pid}")

    def op_send_stdin(self, req: Message) -> None:
        data = req["data"]
        raw = base64.b64decode(data) if req.get("base64") else data.encode("utf-8")
        self.process(req["pid"]).write_stdin(raw)
        self.finish(req["id"])

    def op_command_attach(self, req: Message) -> None:
        self.process(req["pid"]).attach(req["id"])

    def op_close_stdin(self, req: Message) -> None:
        self.process(req["pid"]).close_stdin()
        self.finish(req["id"])

    def op_kill_process(self, req: Message) -> None:
        try:
            cmd = self.process(req["pid"])
        except ProcessLookupError:
            self.finish(req["id"], {"killed": False})
            return
        name = req.get("signal") or "SIGKILL"
        if name == "SIGKILL":
            cmd.kill()
            # Answer once the process is gone (reaped), not merely signalled.
            cmd.proc.wait(timeout=2.0)
            self.finish(req["id"], {"killed": True})
            return
        # Any other signal goes to the command's process group, as a terminal sends
        # one; whether the command ends is its own choice (E2B's SendSignal).
        sent = cmd.signal_group(getattr(signal, name))
        self.finish(req["id"], {"killed": sent})

    def op_list_processes(self, req: Message) -> None:
        self.finish(req["id"], {"processes": [c.describe() for c in self.commands.values()]})

    def op_agent_log(self, req: Message) -> None:
        self.finish(req["id"], {"lines": LOG.tail(req.get("limit")), "total": LOG.total})


def main(root: str) -> None:
    """Entry point inside the container; ``root`` is the directory holding the package."""
    Agent(root).run()
