"""A test-only backend: the real agent as a subprocess of the test process, over pipes.

NO ISOLATION AT ALL: code "in the sandbox" runs as the user running the tests, on this
machine, with its files, network and environment. It exists so that everything above
the container (protocol, sandbox API, tool layer, adapters) can be tested in seconds
without an engine; what the container changes (limits, users, network, the image) is
tested against the real engine. Use relative paths in tests: they land in a scratch
workspace; absolute ones reach the host.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from e2b_tools import (
    InvalidArgumentError,
    NetworkPolicy,
    SandboxConfig,
    SandboxInfo,
    SandboxNotFoundError,
)
from e2b_tools._bundle import AGENT_PACKAGE, agent_files
from e2b_tools.backends.docker import (
    LABEL_CONFIG,
    LABEL_CREATED_AT,
    LABEL_END_AT,
    LABEL_METADATA,
    LABEL_SANDBOX,
    DockerBackend,
)

_STDOUT, _STDERR = 1, 2


class PipeTransport:
    """The agent's stdio pipes as a transport: stdout is the protocol, stderr its log."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin and process.stdout and process.stderr
        self._process = process
        self._out: asyncio.Future[bytes] | None = None
        self._err: asyncio.Future[bytes] | None = None
        self._err_done = False

    async def read_frame(self) -> tuple[int, bytes]:
        process = self._process
        assert process.stdout and process.stderr
        while True:
            if self._out is None:
                self._out = asyncio.ensure_future(process.stdout.read(1 << 16))
            if self._err is None and not self._err_done:
                self._err = asyncio.ensure_future(process.stderr.read(1 << 16))
            waiting = {f for f in (self._out, self._err) if f is not None}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if self._err is not None and self._err in done:
                data, self._err = self._err.result(), None
                if data:
                    return _STDERR, data
                self._err_done = True
            if self._out in done:
                data, self._out = self._out.result(), None
                if not data:
                    raise asyncio.IncompleteReadError(b"", None)
                return _STDOUT, data

    def write(self, data: bytes) -> None:
        assert self._process.stdin
        self._process.stdin.write(data)

    async def drain(self) -> None:
        assert self._process.stdin
        await self._process.stdin.drain()

    def close(self) -> None:
        # The pipes are the sandbox's only channel: leave them open for a reconnect.
        for future in (self._out, self._err):
            if future is not None:
                future.cancel()
        self._out = self._err = None


class _Local:
    def __init__(
        self, sandbox_id: str, config: SandboxConfig, workspace: Path, image: str = "local"
    ) -> None:
        self.sandbox_id = sandbox_id
        self.image = image
        self.config = config
        self.workspace = workspace
        self.end_at = time.time() + config.timeout
        self.process: asyncio.subprocess.Process | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.created = time.time()
        self.paused = False


class LocalBackend:
    """Implements :class:`e2b_tools.backends.Backend` with agent subprocesses."""

    def __init__(self, base: Path | None = None) -> None:
        self._base = Path(base or tempfile.mkdtemp(prefix="e2b-tools-local-"))
        self._root = self._base / "agent"
        package = self._root / AGENT_PACKAGE
        package.mkdir(parents=True, exist_ok=True)
        for name, data in agent_files().items():
            (package / name).write_bytes(data)
        self._sandboxes: dict[str, _Local] = {}

    # -- Backend ------------------------------------------------------------------
    def create(self, sandbox_id: str, config: SandboxConfig, image: str) -> str:
        if config.network != "none":
            raise InvalidArgumentError("the local backend has no network isolation")
        workspace = self._base / f"workspace-{sandbox_id}"
        workspace.mkdir()
        container_id = f"local-{sandbox_id}"
        self._sandboxes[container_id] = _Local(sandbox_id, config, workspace, image)
        return container_id

    def start(self, container_id: str, sandbox_id: str | None = None) -> None:
        """Nothing to do: the agent starts when its stream is opened."""

    async def open_transport(self, container_id: str) -> PipeTransport:
        box = self._sandboxes[container_id]
        if box.process is None:
            root = str(self._root)
            env = {
                **os.environ,
                **box.config.envs,
                "E2B_SANDBOX": "true",
                "E2B_SANDBOX_ID": box.sandbox_id,
                "HOME": str(box.workspace),
                "LANG": "C.UTF-8",
                "E2B_TOOLS_WORKDIR": str(box.workspace),
                "E2B_TOOLS_DEADLINE": f"{box.end_at:.3f}",
                "E2B_TOOLS_INTERRUPT_GRACE": str(box.config.interrupt_grace),
                "E2B_TOOLS_ON_TIMEOUT": box.config.on_timeout,
                "E2B_TOOLS_AUTO_RESUME": "1" if box.config.auto_resume else "",
                "E2B_TOOLS_LIFETIME": str(box.config.timeout),
            }
            box.loop = asyncio.get_running_loop()
            box.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-c",
                f"import sys; sys.path.insert(0, {root!r}); "
                f"from {AGENT_PACKAGE}.main import main; main({root!r})",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=str(box.workspace),
                start_new_session=True,
                limit=1 << 24,
            )
        return PipeTransport(box.process)

    def kill(self, container_id: str) -> bool:
        box = self._sandboxes.pop(container_id, None)
        if box is None:
            return False
        if box.process is not None and box.process.returncode is None:
            pid = box.process.pid
            if box.paused:  # a stopped agent would not act on SIGTERM
                for stopped in [pid, *_descendants(pid)]:
                    _signal(stopped, signal.SIGCONT)
            try:
                os.kill(pid, signal.SIGTERM)  # the agent kills what it started, then exits
                deadline = time.monotonic() + 5
                while _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.01)
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if box.process is not None and box.loop is not None and not box.loop.is_closed():
            # Its pipes, on the loop that made them (left open, they are closed whenever
            # garbage collection gets to them, with a ResourceWarning in some later test).
            box.loop.call_soon_threadsafe(box.process._transport.close)  # type: ignore[attr-defined]
        shutil.rmtree(box.workspace, ignore_errors=True)
        return True

    def inspect(self, container_id: str, sandbox_id: str | None = None) -> dict[str, Any] | None:
        box = self._sandboxes.get(container_id)
        if box is None:
            return None
        code = box.process.returncode if box.process is not None else None
        running = box.process is not None and code is None and _alive(box.process.pid)
        return {
            "Id": container_id,
            "Config": {"Image": box.image, "Labels": self._labels(box)},
            "State": {
                "Running": running,
                "Paused": running and box.paused,
                "Status": ("paused" if box.paused else "running") if running else "exited",
                "ExitCode": code,
                "OOMKilled": False,
                "StartedAt": dt.datetime.fromtimestamp(box.created, dt.timezone.utc)
                .isoformat()
                .replace("+00:00", "Z"),
            },
        }

    def find(self, sandbox_id: str) -> dict[str, Any]:
        info = self.inspect(f"local-{sandbox_id}")
        if info is None or not info["State"]["Running"]:
            raise SandboxNotFoundError("no such local sandbox", sandbox_id=sandbox_id)
        return info

    def pause(self, container_id: str, sandbox_id: str | None = None) -> bool:
        """SIGSTOP to the agent and every process under it (the cgroup freezer's part)."""
        box = self._running(container_id, sandbox_id)
        if box.paused:
            return False
        assert box.process is not None
        for pid in [box.process.pid, *_descendants(box.process.pid)]:
            _signal(pid, signal.SIGSTOP)
        box.paused = True
        return True

    def unpause(self, container_id: str, sandbox_id: str | None = None) -> bool:
        box = self._running(container_id, sandbox_id)
        if not box.paused:
            return False
        assert box.process is not None
        for pid in [box.process.pid, *_descendants(box.process.pid)]:
            _signal(pid, signal.SIGCONT)
        box.paused = False
        return True

    def stats(self, container_id: str, sandbox_id: str | None = None) -> dict[str, Any]:
        """Docker's stats shape from /proc: CPU ticks of the agent's tree over 0.1 s,
        resident memory as usage, the host's memory as the limit."""
        box = self._running(container_id, sandbox_id)
        assert box.process is not None
        pid = box.process.pid
        before = _cpu_sample(pid)
        time.sleep(0.1)
        after = _cpu_sample(pid)
        rss = sum(_rss(p) for p in [pid, *_descendants(pid)])
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return {
            "read": dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
            "cpu_stats": after,
            "precpu_stats": before,
            "memory_stats": {"usage": rss, "limit": total, "stats": {"file": 0}},
        }

    def _running(self, container_id: str, sandbox_id: str | None) -> _Local:
        box = self._sandboxes.get(container_id)
        if box is None or box.process is None or box.process.returncode is not None:
            raise SandboxNotFoundError("no such local sandbox", sandbox_id=sandbox_id)
        return box

    def list_containers(self, all_states: bool = False) -> list[dict[str, Any]]:
        out = []
        for container_id, box in self._sandboxes.items():
            info = self.inspect(container_id)
            if info is None or not (all_states or info["State"]["Running"]):
                continue
            out.append(
                {
                    "Id": container_id,
                    "Image": box.image,
                    "Labels": self._labels(box),
                    "State": info["State"]["Status"],
                    "Created": int(box.created),
                }
            )
        return out

    def info_from_summary(self, summary: dict[str, Any]) -> SandboxInfo:
        return DockerBackend.info_from_summary(summary)

    def set_network(self, container_id: str, sandbox_id: str | None, policy: NetworkPolicy) -> None:
        raise InvalidArgumentError("the local backend has no network isolation")

    def network_log(
        self, container_id: str, sandbox_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        raise InvalidArgumentError("the local backend has no network isolation")

    def cleanup(self, min_age: float = 0.0) -> None:
        """Nothing is left behind but processes, which kill() ends."""

    # -- helpers ------------------------------------------------------------------
    @staticmethod
    def _labels(box: _Local) -> dict[str, str]:
        return {
            LABEL_SANDBOX: box.sandbox_id,
            LABEL_END_AT: f"{box.end_at:.3f}",
            LABEL_CREATED_AT: f"{box.created:.6f}",
            LABEL_METADATA: json.dumps(box.config.metadata, sort_keys=True),
            LABEL_CONFIG: box.config.model_dump_json(exclude={"envs"}),
        }

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill every sandbox left and remove the scratch directory."""
        for container_id in list(self._sandboxes):
            self.kill(container_id)
        shutil.rmtree(self._base, ignore_errors=True)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (by parent pid, whatever their group or session)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                parent = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _cpu_sample(pid: int) -> dict[str, Any]:
    """Docker's ``cpu_stats`` shape: the tree's CPU time and the host's, in ns."""
    tick = 1e9 / os.sysconf("SC_CLK_TCK")
    used = 0
    for p in [pid, *_descendants(pid)]:
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            used += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    with open("/proc/stat", "rb") as f:
        system = sum(int(x) for x in f.readline().split()[1:8])
    return {
        "cpu_usage": {"total_usage": int(used * tick)},
        "system_cpu_usage": int(system * tick),
        "online_cpus": os.cpu_count() or 1,
    }


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    # Not waitpid: asyncio's child watcher reaps the agent and must get its status.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")
