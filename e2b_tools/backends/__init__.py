"""Where sandboxes live: the one interface every backend implements.

:class:`Backend` is what the sandbox API needs from a place to run sandboxes. The Docker
backend (:mod:`e2b_tools.backends.docker`) is the real one; the test suite has an
engine-free one that runs the real agent as a subprocess (no isolation at all).
Container state comes back in the shape of Docker's inspect data (``Id``, ``State``,
``Config.Labels``), the lingua franca of the layers above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .._config import NetworkPolicy, SandboxConfig
    from .._connection import Transport
    from .._models import SandboxInfo


class Backend(Protocol):
    """Creates, starts, connects to, inspects, lists and removes sandboxes.

    The blocking methods are called from worker threads; :meth:`open_transport` on the
    sandbox's event loop.
    """

    def create(self, sandbox_id: str, config: SandboxConfig, image: str) -> str:
        """Create (not start) a sandbox; returns its container id."""
        ...

    def start(self, container_id: str, sandbox_id: str | None = None) -> None:
        """Start a created sandbox (its agent reads the handshake sent before)."""
        ...

    async def open_transport(self, container_id: str) -> Transport:
        """A stream to the sandbox's agent (before or after :meth:`start`)."""
        ...

    def kill(self, container_id: str) -> bool:
        """Remove the sandbox, running or not; False if it was already gone."""
        ...

    def inspect(self, container_id: str, sandbox_id: str | None = None) -> dict[str, Any] | None:
        """Its state (Docker's inspect shape), or None once it no longer exists."""
        ...

    def find(self, sandbox_id: str) -> dict[str, Any]:
        """Inspect data of the running (or paused) sandbox ``sandbox_id`` (raises if
        none runs; a paused one has ``State.Paused``)."""
        ...

    def pause(self, container_id: str, sandbox_id: str | None = None) -> bool:
        """Freeze every process of the sandbox, memory kept; False if already paused."""
        ...

    def unpause(self, container_id: str, sandbox_id: str | None = None) -> bool:
        """Thaw a paused sandbox; False if it was not paused."""
        ...

    def stats(self, container_id: str, sandbox_id: str | None = None) -> dict[str, Any]:
        """One sample of resource use, in the shape of Docker's container stats
        (``cpu_stats``, ``precpu_stats``, ``memory_stats``, ``read``)."""
        ...

    def list_containers(self, all_states: bool = False) -> list[dict[str, Any]]:
        """Summaries of this package's sandboxes (running ones unless ``all_states``)."""
        ...

    def info_from_summary(self, summary: dict[str, Any]) -> SandboxInfo:
        """A :class:`SandboxInfo` from one summary of :meth:`list_containers`."""
        ...

    def set_network(self, container_id: str, sandbox_id: str | None, policy: NetworkPolicy) -> None:
        """Replace the network policy of a sandbox created with one."""
        ...

    def network_log(
        self, container_id: str, sandbox_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """The last ``limit`` egress decisions for the sandbox (oldest first)."""
        ...

    def cleanup(self, min_age: float = ...) -> None:
        """Remove what dead sandboxes left behind (networks, an unused proxy)."""
        ...
