"""Where the CPU time of a benchmark round goes, by process kind, read from /proc.

Works when the engine runs on this machine (its processes are visible here): this
process (the host side), ``dockerd``, ``containerd`` and the per-container
``containerd-shim``, and inside the containers the agent (the child of
``docker-init``) and the processes below it (code contexts, helpers).
"""

from __future__ import annotations

import collections
import os

_TICK = os.sysconf("SC_CLK_TCK")


def _read() -> dict[int, tuple[str, int, float]]:
    """pid -> (command name, parent pid, CPU seconds so far)."""
    out: dict[int, tuple[str, int, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(name)] = (comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    return out


def _kind(pid: int, procs: dict[int, tuple[str, int, float]]) -> str:
    comm = procs[pid][0]
    if pid == os.getpid():
        return "host (this process)"
    if comm.startswith("containerd-shim"):
        return "containerd-shim"
    if comm in ("dockerd", "containerd"):
        return comm
    depth, parent = 0, procs[pid][1]
    while parent in procs:
        depth += 1
        if procs[parent][0] == "docker-init":
            return "agent" if depth == 1 else "contexts and helpers"
        parent = procs[parent][1]
    return "other"


class CpuSplit:
    """``start()`` before a round, ``stop(calls)`` after: CPU ms per call by kind."""

    def __init__(self) -> None:
        self._before: dict[int, tuple[str, int, float]] = {}

    def start(self) -> None:
        self._before = _read()

    def stop(self, calls: int) -> dict[str, float]:
        after = _read()
        spent: collections.Counter[str] = collections.Counter()
        for pid, (_, _, cpu) in after.items():
            used = cpu - self._before.get(pid, ("", 0, 0.0))[2]
            if used > 0:
                spent[_kind(pid, after)] += used
        return {kind: secs * 1e3 / max(1, calls) for kind, secs in spent.most_common()}
