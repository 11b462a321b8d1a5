"""What a sandbox's state is: whether it runs, what the engine and its agent know of it
(``get_info``), its resource use (``get_metrics``) and the agent's own log.
:class:`StateMethods` is a base of :class:`~e2b_tools._sandbox.AsyncSandbox`, which
supplies the attributes."""

from __future__ import annotations

import asyncio
import builtins
import datetime as dt
from datetime import datetime  # by name: scripts/gen_sync.py copies the annotations
from typing import TYPE_CHECKING

from ._channel import Channel
from ._config import SandboxConfig
from ._exceptions import InvalidArgumentError, ProtocolError, SandboxError, SandboxGoneError
from ._inspect import info_from_inspect, mark_auto_paused, metrics, summary_of
from ._models import SandboxInfo, SandboxMetrics, SandboxState
from ._variant import class_method_variant
from .backends import Backend
from .backends.docker import default_backend

if TYPE_CHECKING:
    from ._sandbox import AsyncSandbox


class StateMethods:
    """Liveness, info, metrics and the agent's log (of
    :class:`~e2b_tools._sandbox.AsyncSandbox`)."""

    _backend: Backend
    _channel: Channel
    _config: SandboxConfig
    _container_id: str
    _sandbox_id: str

    async def is_alive(self) -> bool:
        """Whether the sandbox can be reached: its stream is open, or re-attached now."""
        return await self._channel.alive()

    async def is_running(self, request_timeout: float | None = None) -> bool:
        """Whether the sandbox runs: its container runs, not paused by :meth:`pause` or
        by its deadline (auto-pause). ``request_timeout`` bounds the agent's answer."""
        info = await asyncio.to_thread(self._backend.inspect, self._container_id)
        if not (info and info["State"].get("Running") and not info["State"].get("Paused")):
            return False
        if self._config.on_timeout != "pause":
            return True
        try:
            value = await self._channel.request("info", {}, request_timeout or 30.0)
        except SandboxError:
            return False
        return not value.get("auto_paused")

    async def agent_log(self, limit: int | None = 100) -> builtins.list[str]:
        """The agent's own latest log lines, oldest first (``None``: all it keeps, 1000).

        The agent logs its start, each host that connects, deadline changes, context
        restarts and its own failures; the container keeps no other log.

        Example:
            >>> await sbx.agent_log(5)  # doctest: +SKIP
            ['2025-01-01T12:00:00.000Z started: pid 7, python 3.11.2, ...', ...]
        """
        if limit is not None and limit < 0:
            raise InvalidArgumentError("limit must be >= 0 or None")
        try:
            value = await self._channel.request("agent_log", {"limit": limit}, 30.0)
        except ProtocolError as exc:
            if "unknown op 'agent_log'" not in exc.message:
                raise
            raise ProtocolError(
                "this sandbox's agent is older than agent_log and keeps no log; rebuild "
                "the image (`e2b-tools image build`) for new sandboxes to have it",
                sandbox_id=self._sandbox_id,
            ) from None
        return [str(line) for line in value.get("lines", [])]

    @staticmethod
    async def _cls_get_info(
        cls: type[AsyncSandbox], sandbox_id: str, *, backend: Backend | None = None
    ) -> SandboxInfo:
        backend = backend or default_backend()
        info = await asyncio.to_thread(backend.find, sandbox_id)
        result = info_from_inspect(backend, info)
        await mark_auto_paused(backend, summary_of(info), result)
        return result

    @class_method_variant(_cls_get_info)
    async def get_info(self) -> SandboxInfo:
        """What the engine knows of this sandbox; ``end_at`` is the agent's own deadline
        when it runs (``set_timeout`` and pauses move it).

        ``AsyncSandbox.get_info(sandbox_id)`` asks by id (``end_at`` then as created).
        """
        info = await asyncio.to_thread(self._backend.inspect, self._container_id)
        if info is None:
            raise SandboxGoneError("the sandbox no longer exists", sandbox_id=self._sandbox_id)
        result = info_from_inspect(self._backend, info)
        if result.state == SandboxState.RUNNING:
            value = await self._channel.request("info", {}, 30.0)
            if value.get("auto_paused"):
                result.state = SandboxState.PAUSED
            deadline = value.get("deadline")
            if deadline is not None and not value.get("paused"):
                result.end_at = dt.datetime.fromtimestamp(float(deadline), dt.timezone.utc)
        return result

    @staticmethod
    async def _cls_get_metrics(
        cls: type[AsyncSandbox],
        sandbox_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        backend: Backend | None = None,
    ) -> builtins.list[SandboxMetrics]:
        backend = backend or default_backend()
        info = await asyncio.to_thread(backend.find, sandbox_id)
        return await metrics(backend, info, sandbox_id, start, end)

    @class_method_variant(_cls_get_metrics)
    async def get_metrics(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> builtins.list[SandboxMetrics]:
        """The sandbox's CPU, memory and workspace use now, from the engine's stats
        (one sample: the engine keeps no history; takes about a second).

        ``AsyncSandbox.get_metrics(sandbox_id)`` asks by id. A sample outside
        ``start``..``end`` is left out.
        """
        info = await asyncio.to_thread(self._backend.inspect, self._container_id)
        if info is None:
            raise SandboxGoneError("the sandbox no longer exists", sandbox_id=self._sandbox_id)
        return await metrics(self._backend, info, self._sandbox_id, start, end)
