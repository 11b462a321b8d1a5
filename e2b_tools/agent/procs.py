"""The agent's own protection, and the processes it starts (standard library only).

Privileges: the container starts as root with only ``CAP_SETUID``/``CAP_SETGID``. The
agent keeps real and saved uid 0 but works with the sandbox user's effective uid, so it
reads and writes files exactly as the user would, yet user code (all three uids the
user's) can neither signal, ptrace nor open ``/proc/<agent>/fd`` of the agent, of its
watchdog or of ``docker-init`` (PID 1, root, which holds the attach pipe).

Every workload (a code context's kernel, a shell command) runs under a *guard*: a small
process forked from the agent, out of user code's reach like the agent, that is the
child subreaper of everything the workload starts. Processes that double-fork, change
their group or start a new session stay in the guard's tree, so a timed-out, cancelled
or killed call can kill every process it started (:func:`kill_tree`).

The *watchdog* is another such process: it kills the agent at the sandbox's deadline,
so the TTL holds even if the agent itself were stopped or blocked.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from .plumbing import read_chunk

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# How long the deadline's graceful path (the agent's own timer) gets before the watchdog
# kills the agent.
WATCHDOG_GRACE = 2.0


def _log(who: str, msg: str) -> None:
    try:
        os.write(2, f"e2b-tools-{who}: {msg}\n".encode("utf-8", "replace"))
    except OSError:
        pass


_libc: Any = None


def _load_libc() -> Any:
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def prctl(option: int, arg: int) -> bool:
    """``prctl(2)`` through ctypes; False where ctypes or the call is unavailable."""
    try:
        return int(_load_libc().prctl(option, arg, 0, 0, 0)) == 0
    except Exception:
        return False


def signal_main_thread(pid: int, sig: int) -> None:
    """Send ``sig`` to the main thread of process ``pid`` (whose thread id is ``pid``).

    A signal sent to a process goes to any of its threads that does not block it; sent
    while the process is stopped, to whichever thread runs first once it continues. For
    a Python interpreter that may be a thread the code started (NumPy's BLAS pool,
    ``threading``), and then a blocking call of the main thread (``time.sleep``, a
    lock) is not interrupted. ``tgkill(2)`` aims at the main thread itself; where the
    C library lacks it, the signal goes to the process.

    Raises:
        ProcessLookupError: No such process.
    """
    try:
        tgkill = _load_libc().tgkill
    except Exception:
        tgkill = None
    if tgkill is not None:
        if int(tgkill(pid, pid, sig)) == 0:
            return
        import ctypes

        if ctypes.get_errno() == errno.ESRCH:
            raise ProcessLookupError(errno.ESRCH, os.strerror(errno.ESRCH))
    os.kill(pid, sig)


class Identity:
    """Who the agent is and who user code runs as."""

    def __init__(self, uid: int, gid: int, separated: bool) -> None:
        self.uid = uid
        self.gid = gid
        self.separated = separated
        """True when user code runs under another real uid than the agent."""


def _resolve(user: str) -> Tuple[int, int]:
    name, _, group = user.partition(":")
    if name.isdigit():
        uid = int(name)
        gid = uid
    else:
        import pwd

        entry = pwd.getpwnam(name)
        uid, gid = entry.pw_uid, entry.pw_gid
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            import grp

            gid = grp.getgrnam(group).gr_gid
    return uid, gid


def become_agent(user: str) -> Identity:
    """Keep real/saved uid 0 and take the sandbox user's effective ids (see module doc).

    Without root (an old container, or ``user`` is root itself) nothing changes and the
    separation is off; ``Identity.separated`` says which.
    """
    if not user:
        return Identity(os.geteuid(), os.getegid(), False)
    uid, gid = _resolve(user)
    if os.getuid() != 0 or uid == 0:
        return Identity(os.geteuid(), os.getegid(), False)
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(0, uid, 0)
    prctl(PR_SET_DUMPABLE, 0)
    return Identity(uid, gid, True)


def become_user(identity: Identity) -> None:
    """In a child about to run user code: all uids the user's, OOM killer's first pick."""
    if identity.separated:
        os.seteuid(0)  # allowed: the saved uid is 0; needed to write our own /proc files
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    if identity.separated:
        os.setresgid(identity.gid, identity.gid, identity.gid)
        os.setresuid(identity.uid, identity.uid, identity.uid)
        # A changed uid leaves the process non-dumpable; user code may inspect itself.
        prctl(PR_SET_DUMPABLE, 1)


def _close_fds_except(keep: Set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _reset_signals() -> None:
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


def _fork_helper(keep: Set[int], body: Callable[[], None]) -> int:
    """Fork a helper of the agent (it never runs user code); returns its pid.

    The helper keeps the agent's uids, so user code cannot signal or trace it either,
    and only the descriptors in ``keep`` besides 0, 1 and 2.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the helper never returns
        try:
            _reset_signals()
            _close_fds_except({0, 1, 2, *keep})
            body()
        finally:
            os._exit(0)
    return pid


class Guarded:
    """A workload under its guard; the subset of ``subprocess.Popen`` the agent uses.

    ``pid`` is the workload's (the user-visible process). Its exit status arrives on
    ``status_fd``, which the caller watches (:meth:`poll` reads it).

    Args:
        run: Called in the workload child after its set-up; must not return (exec or
            ``os._exit``).
        stdin, stdout, stderr: Descriptors that become the workload's 0, 1 and 2
            (``None`` for stdin: ``/dev/null``).
        keep: Further descriptors the workload keeps (same numbers, inheritable).
    """

    def __init__(
        self,
        run: Callable[[], None],
        identity: Identity,
        *,
        stdin: Optional[int],
        stdout: int,
        stderr: int,
        keep: Sequence[int] = (),
        env: Dict[str, str],
        cwd: str,
    ) -> None:
        self.returncode: Optional[int] = None
        status_r, status_w = os.pipe()

        def guard_body() -> None:  # pragma: no cover - runs in the guard
            # A status write after the agent stopped listening must not kill it.
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            prctl(PR_SET_CHILD_SUBREAPER, 1)
            self._guard(run, identity, status_w, stdin, stdout, stderr, keep, fds, env, cwd)

        # The workload's descriptors: the guard hands them on, then closes its copies.
        fds = {stdout, stderr, *keep} | ({stdin} if stdin is not None else set())
        guard = _fork_helper({status_w, *fds}, guard_body)
        os.close(status_w)
        self.guard_pid = guard
        self.reaped = False
        self.status_fd = status_r
        self._buf = b""
        ready, _, _ = select.select([status_r], [], [], 10.0)
        line = self._read_line() if ready else None
        if line is None or not line.startswith("pid "):
            self.reap()
            os.close(status_r)
            why = line[len("error ") :] if line and line.startswith("error ") else "no answer"
            raise BlockingIOError(11, f"could not start the process: {why}")
        self.pid = int(line.split()[1])
        os.set_blocking(status_r, False)

    @staticmethod
    def _guard(
        run: Callable[[], None],
        identity: Identity,
        status_w: int,
        stdin: Optional[int],
        stdout: int,
        stderr: int,
        keep: Sequence[int],
        fds: Set[int],
        env: Dict[str, str],
        cwd: str,
    ) -> None:  # pragma: no cover - runs in the guard process
        try:
            pid = os.fork()
        except OSError as exc:
            os.write(status_w, f"error {exc.strerror}\n".encode())
            return
        if pid == 0:
            code = 127
            try:
                os.close(status_w)
                signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                os.setsid()
                os.dup2(stdin if stdin is not None else os.open(os.devnull, os.O_RDWR), 0)
                os.dup2(stdout, 1)
                os.dup2(stderr, 2)
                _close_fds_except({0, 1, 2, *keep})
                for fd in keep:
                    os.set_inheritable(fd, True)
                become_user(identity)
                os.environ.clear()
                os.environ.update(env)
                os.chdir(cwd)
                run()
                code = 0
            except BaseException as exc:
                _log("agent", f"could not start a process: {type(exc).__name__}: {exc}")
            finally:
                os._exit(code)
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        os.write(status_w, f"pid {pid}\n".encode())
        # Reap the workload and every orphan of its tree until none is left.
        while True:
            try:
                child, status = os.wait()
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if child == pid:
                try:
                    os.write(status_w, f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
                    os.close(status_w)
                except OSError:
                    pass

    def _read_line(self) -> Optional[str]:
        while b"\n" not in self._buf:
            data = read_chunk(self.status_fd)
            if not data:  # nothing yet (None) or the end (b"")
                return None
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("ascii", "replace")

    def reap(self) -> bool:
        """Collect the guard if it exited (it outlives the workload while orphans do)."""
        if not self.reaped:
            try:
                self.reaped = os.waitpid(self.guard_pid, os.WNOHANG)[0] != 0
            except ChildProcessError:
                self.reaped = True
        return self.reaped

    def poll(self) -> Optional[int]:
        """The workload's exit code (negative: killed by that signal), or None."""
        if self.returncode is None and self.status_fd >= 0:
            # Reap first, read second: once the guard is gone, all it wrote is in the
            # pipe (the other order loses an exit line written in between).
            gone = self.reap()
            line = self._read_line()
            if line is not None and line.startswith("exit "):
                self.returncode = int(line.split()[1])
            elif line is None and gone:
                self.returncode = -signal.SIGKILL  # the guard itself was killed
        return self.returncode

    def wait(self, timeout: float) -> Optional[int]:
        """Wait up to ``timeout`` seconds for the exit code (None if still running)."""
        end = time.monotonic() + timeout
        while self.poll() is None and self.status_fd >= 0:
            left = end - time.monotonic()
            if left <= 0:
                return None
            select.select([self.status_fd], [], [], min(left, 0.05))
        return self.returncode

    def kill(self, keep_workload: bool = False, since: Optional[float] = None) -> int:
        """Kill the workload's tree (see :func:`kill_tree`); returns how many were killed."""
        keep = {self.pid} if keep_workload else set()
        return kill_tree(self.guard_pid, keep=keep, since=since)

    def close(self) -> None:
        if self.status_fd >= 0:
            os.close(self.status_fd)
            self.status_fd = -1


def now_ticks() -> float:
    """The current time in the clock ticks of ``/proc/<pid>/stat``'s start time.

    Rounded down, as the kernel rounds a start time: a process started later in the
    same tick must not look older than this moment.
    """
    return float(int(time.clock_gettime(time.CLOCK_BOOTTIME) * CLOCK_TICKS))


def _processes() -> List[Tuple[int, int, str, int]]:
    """(pid, ppid, state, start ticks) of every process we can see."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        try:
            out.append((int(name), int(fields[1]), fields[0].decode(), int(fields[19])))
        except (IndexError, ValueError):
            continue
    return out


def descendants(root: int, since: Optional[float] = None) -> List[Tuple[int, int, str]]:
    """(pid, ppid, state) of ``root``'s descendants started at or after ``since`` ticks
    (state as in ``/proc/<pid>/stat``: ``Z`` dead, ``T`` stopped, ...)."""
    children: Dict[int, List[Tuple[int, str, int]]] = {}
    for pid, ppid, state, start in _processes():
        children.setdefault(ppid, []).append((pid, state, start))
    found: List[Tuple[int, int, str]] = []
    stack = [root]
    while stack:
        parent = stack.pop()
        for pid, state, start in children.get(parent, ()):
            stack.append(pid)
            if since is None or start >= since:
                found.append((pid, parent, state))
    return found


def _signal_all(pids: List[int], sig: int) -> int:
    sent = 0
    for pid in pids:
        try:
            os.kill(pid, sig)
            sent += 1
        except OSError:
            pass
    return sent


def reap_children(since: float) -> None:
    """Collect this process's dead children that started at or after ``since`` ticks."""
    me = os.getpid()
    for pid, ppid, state, start in _processes():
        if ppid == me and state == "Z" and start >= since:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def freeze_tree(root: int, keep: Set[int]) -> List[int]:
    """SIGSTOP every live descendant of ``root`` but ``keep`` (and theirs), in rounds
    until none runs (a stopped process cannot fork); the pids it stopped, for
    :func:`thaw`. Processes stopped already stay out of the list. About a second at most.
    """
    stopped: List[int] = []
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        skip = set(keep)
        running = []
        for pid, parent, state in descendants(root):
            if pid in skip or parent in skip:
                skip.add(pid)  # a kept process's own children are kept too
            elif state not in "ZXTt":
                running.append(pid)
        if not running:
            break
        for pid in running:
            try:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            except OSError:
                pass
    return stopped


def thaw(pids: List[int]) -> None:
    """SIGCONT what :func:`freeze_tree` stopped."""
    _signal_all(pids, signal.SIGCONT)


def kill_tree(root: int, keep: Optional[Set[int]] = None, since: Optional[float] = None) -> int:
    """SIGKILL every live descendant of ``root`` but ``keep``, until none is left.

    First every process is stopped, in rounds until none runs: a stopped process can
    neither fork nor take CPU from this one, so even a fork bomb that refills the pids
    as fast as they are freed is frozen whole. Then all are killed, in rounds too;
    orphans land on ``root`` (a subreaper), so nothing escapes by double-forking or
    ``setsid``. Returns once they are reaped (their pids free again), but for dead
    children of a kept process, which that process reaps itself. Bounded to about five
    seconds.
    """
    keep = keep or set()
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        running = [
            p for p, _, state in descendants(root, since) if p not in keep and state not in "ZXTt"
        ]
        if not running:
            break
        _signal_all(running, signal.SIGSTOP)
    killed = 0
    while True:
        found = [
            (p, parent, state) for p, parent, state in descendants(root, since) if p not in keep
        ]
        pids = [p for p, _, state in found if state not in "ZX"]
        unreaped = [p for p, parent, state in found if state in "ZX" and parent not in keep]
        if (not pids and not unreaped) or time.monotonic() > end:
            return killed
        killed += _signal_all(pids, signal.SIGKILL)
        time.sleep(0.001)


class Watchdog:
    """A process that kills the agent at the deadline, whatever state the agent is in."""

    def __init__(self, deadline: Optional[float]) -> None:
        agent = os.getpid()
        r, w = os.pipe()
        pid = _fork_helper({r}, lambda: self._watch(agent, r, deadline))
        os.close(r)
        os.set_blocking(w, False)  # a stopped watchdog must not block the agent
        self.pid = pid
        self.fd = w
        self.deadline = deadline
        """The deadline the watchdog enforces (None: none, the clock is stopped)."""

    @staticmethod
    def _watch(agent: int, fd: int, deadline: Optional[float]) -> None:  # pragma: no cover
        buf = b""
        while True:
            wait = None if deadline is None else max(0.0, deadline + WATCHDOG_GRACE - time.time())
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                _log("watchdog", "the sandbox's deadline passed; stopping it")
                os.kill(agent, signal.SIGKILL)
                return
            data = os.read(fd, 256)
            if not data:
                return  # the agent exited: so does the sandbox
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                deadline = float(line) if line.strip() else None

    def set_deadline(self, deadline: Optional[float]) -> None:
        os.write(self.fd, (f"{deadline!r}" if deadline is not None else "").encode() + b"\n")
        self.deadline = deadline
