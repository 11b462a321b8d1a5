"""Sandbox facts from the engine's data: :class:`SandboxInfo` from inspect data, and
E2B's metrics from one sample of Docker's container stats; and what only a sandbox's
agent knows (its deadline, whether the deadline paused it)."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import math
import time
from datetime import datetime
from typing import Any

from ._channel import Channel
from ._exceptions import SandboxError
from ._models import SandboxInfo, SandboxMetrics, SandboxState
from .agent.protocol import Message
from .backends import Backend
from .backends.docker import LABEL_CONFIG, LABEL_END_AT, LABEL_SANDBOX

METRICS_SLACK = 2.0
"""Seconds an ``end`` of :func:`metrics` may lie before the moment it is called."""
HELLO_TIMEOUT = 5.0
"""Seconds a sandbox's agent gets to answer when asked what only it knows."""


async def agent_hello(backend: Backend, container_id: str, sandbox_id: str) -> Message | None:
    """The agent's ``hello`` (its deadline, ``auto_paused``, ...); None if it does not
    answer within :data:`HELLO_TIMEOUT`."""
    try:
        conn = await Channel.open(backend, container_id, sandbox_id, HELLO_TIMEOUT)
    except SandboxError:
        return None
    await conn.close()
    return conn.hello


def may_be_auto_paused(summary: dict[str, Any]) -> bool:
    """A running sandbox made with ``on_timeout="pause"`` past its first deadline: its
    agent may have paused it (or ``set_timeout`` moved the deadline; ask the agent)."""
    labels = summary.get("Labels") or {}
    return (
        summary.get("State") == "running"
        and '"on_timeout":"pause"' in (labels.get(LABEL_CONFIG) or "")
        and float(labels.get(LABEL_END_AT) or "inf") < time.time()
    )


async def mark_auto_paused(backend: Backend, summary: dict[str, Any], info: SandboxInfo) -> None:
    """``info.state`` PAUSED if the sandbox of ``summary`` was paused by its deadline."""
    if may_be_auto_paused(summary):
        labels = summary.get("Labels") or {}
        hello = await agent_hello(backend, summary["Id"], labels.get(LABEL_SANDBOX, ""))
        if hello is not None and hello.get("auto_paused"):
            info.state = SandboxState.PAUSED


def summary_of(info: dict[str, Any]) -> dict[str, Any]:
    """A container list entry's fields from a container's inspect data."""
    return {
        "Id": info["Id"],
        "Image": info["Config"].get("Image"),
        "Labels": info["Config"].get("Labels"),
        "State": info["State"].get("Status"),
    }


def info_from_inspect(backend: Backend, info: dict[str, Any]) -> SandboxInfo:
    result = backend.info_from_summary(summary_of(info))
    started = info["State"].get("StartedAt")
    if started:
        result.started_at = dt.datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00")
    return result


async def metrics(
    backend: Backend,
    info: dict[str, Any],
    sandbox_id: str,
    start: datetime | None,
    end: datetime | None,
) -> builtins.list[SandboxMetrics]:
    # The engine keeps no history: the one sample is of now, and it stands for the
    # moment it was asked for (it takes about a second to come); an ``end`` of "now"
    # taken just before the call still includes it.
    asked = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=METRICS_SLACK)
    stats = await asyncio.to_thread(backend.stats, info["Id"], sandbox_id)
    sample = metrics_from_stats(stats, info)
    if (start is not None and sample.timestamp < _aware(start)) or (
        end is not None and asked > _aware(end)
    ):
        return []
    return [sample]


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone() if moment.tzinfo is None else moment


def metrics_from_stats(stats: dict[str, Any], info: dict[str, Any]) -> SandboxMetrics:
    """E2B's metrics from one sample of Docker's container stats (cgroup v1 or v2)
    and the container's inspect data (for its limits and workspace size)."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    online = int(cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or [1]))
    nano_cpus = int((info.get("HostConfig") or {}).get("NanoCpus") or 0)
    cpu_count = max(1, math.ceil(nano_cpus / 1e9)) if nano_cpus else online
    used = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get(
        "total_usage", 0
    )
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    # Docker's formula gives percent of one CPU; E2B's is percent of the sandbox's CPUs.
    pct = used / system * online * 100.0 / cpu_count if used > 0 and system > 0 else 0.0
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    cache = int(detail.get("file", detail.get("cache", 0)) or 0)
    inactive = int(detail.get("inactive_file", detail.get("total_inactive_file", 0)) or 0)
    workspace = _workspace_size(info)
    read = str(stats.get("read") or "")
    try:
        stamp = dt.datetime.fromisoformat(read[:26].rstrip("Z") + "+00:00")
    except ValueError:
        stamp = dt.datetime.now(dt.timezone.utc)
    return SandboxMetrics(
        cpu_count=cpu_count,
        cpu_used_pct=round(min(pct, 100.0), 2),
        mem_used=max(0, int(memory.get("usage", 0)) - inactive),
        mem_total=int(memory.get("limit", 0)),
        mem_cache=cache,
        disk_used=0,
        disk_total=workspace,
        timestamp=stamp,
    )


def _workspace_size(info: dict[str, Any]) -> int:
    """The size of the sandbox's workspace tmpfs (its ``size=`` option), or 0."""
    workdir = str((info.get("Config") or {}).get("WorkingDir") or "")
    options = ((info.get("HostConfig") or {}).get("Tmpfs") or {}).get(workdir, "")
    for option in str(options).split(","):
        key, _, value = option.partition("=")
        if key == "size":
            units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
            factor = units.get(value[-1:].lower(), 1)
            digits = value[:-1] if value[-1:].lower() in units else value
            with contextlib.suppress(ValueError):
                return int(float(digits) * factor)
    return 0
