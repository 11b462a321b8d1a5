"""The SDK's ``BaseSandboxClient``: create, resume and delete e2b-tools sandboxes."""

from __future__ import annotations

import uuid
import weakref
from typing import Any, Literal

from agents.sandbox.manifest import Manifest
from agents.sandbox.session.dependencies import Dependencies
from agents.sandbox.session.manager import Instrumentation
from agents.sandbox.session.sandbox_client import BaseSandboxClient, BaseSandboxClientOptions
from agents.sandbox.session.sandbox_session import SandboxSession
from agents.sandbox.session.sandbox_session_state import SandboxSessionState
from agents.sandbox.snapshot import SnapshotBase, SnapshotSpec, resolve_snapshot
from pydantic import Field

from e2b_tools import AsyncSandbox, SandboxConfig, SandboxNotFoundError

from ._session import BACKEND_ID, E2BToolsSandboxSession, E2BToolsSandboxSessionState


class E2BToolsSandboxClientOptions(BaseSandboxClientOptions):
    """How :class:`E2BToolsSandboxClient` makes a sandbox (``run_config.sandbox.options``).

    Every field has a default, so ``options`` may be left out. The manifest's ``root``
    becomes the sandbox's workspace: a writable tmpfs owned by the sandbox's user (the
    rest of the filesystem is read-only).

    Example:
        >>> E2BToolsSandboxClientOptions(timeout=600, memory="2g").type
        'e2b_tools'
    """

    type: Literal["e2b_tools"] = "e2b_tools"
    image: str | None = None
    """Image to run; ``None``: the default ``e2b-tools/sandbox`` image."""
    timeout: float | None = Field(default=None, gt=0)
    """Sandbox lifetime (TTL) in seconds, enforced inside it; ``None``: 300 s."""
    envs: dict[str, str] | None = None
    """Environment variables for every command (the manifest's win on a clash)."""
    metadata: dict[str, str] | None = None
    """Labels on the sandbox (``e2b-tools ls`` shows them)."""
    cpu: float | None = 1.0
    """CPU cores (``None``: no limit)."""
    memory: str | int | None = "1g"
    """Memory limit such as ``"512m"``; the workspace tmpfs counts against it."""
    network: Literal["none", "full"] | dict[str, Any] = "none"
    """``"none"`` (no network), ``"full"`` or a policy ``{"allow_out": [...],
    "deny_out": [...]}`` enforced by e2b-tools' egress proxy."""
    exposed_ports: tuple[int, ...] = ()
    """Ports the SDK may resolve with ``resolve_exposed_port`` (through ``get_host``:
    a loopback address of this machine)."""
    pause_on_exit: bool = False
    """Shutdown pauses the sandbox instead of killing it, for a later resume; the
    sandbox then lives until killed or until its lifetime ends."""
    snapshot_timeout_s: float = Field(default=120.0, gt=0)
    """Seconds a workspace tar (persist or hydrate) may take inside the sandbox."""


class E2BToolsSandboxClient(BaseSandboxClient[E2BToolsSandboxClientOptions | None]):
    """OpenAI Agents SDK sandbox client running ``SandboxAgent``s in e2b-tools sandboxes.

    Example:
        >>> from agents import RunConfig, Runner
        >>> from agents.sandbox import SandboxRunConfig
        >>> run_config = RunConfig(sandbox=SandboxRunConfig(  # doctest: +SKIP
        ...     client=E2BToolsSandboxClient(), options=E2BToolsSandboxClientOptions()))
        >>> await Runner.run(agent, "hi", run_config=run_config)  # doctest: +SKIP
    """

    backend_id = BACKEND_ID
    supports_default_options = True

    def __init__(
        self,
        *,
        instrumentation: Instrumentation | None = None,
        dependencies: Dependencies | None = None,
    ) -> None:
        self._instrumentation = (
            instrumentation if instrumentation is not None else Instrumentation()
        )
        self._dependencies = dependencies
        # The SDK hands delete() the session wrapper it got from create()/resume(); the
        # wrapper shows no public way back to the session inside, so keep the pairs.
        self._inners: weakref.WeakKeyDictionary[SandboxSession, E2BToolsSandboxSession] = (
            weakref.WeakKeyDictionary()
        )

    def _wrapped(self, inner: E2BToolsSandboxSession) -> SandboxSession:
        session = self._wrap_session(inner, instrumentation=self._instrumentation)
        self._inners[session] = inner
        return session

    async def create(
        self,
        *,
        snapshot: SnapshotSpec | SnapshotBase | None = None,
        manifest: Manifest | None = None,
        options: E2BToolsSandboxClientOptions | None = None,
    ) -> SandboxSession:
        """Start a sandbox whose workspace is ``manifest.root`` (default ``/workspace``).

        Raises:
            e2b_tools.EngineUnavailableError: No Docker Engine answers.
            e2b_tools.ImageNotFoundError: The image is missing (the message says how
                to build it).
        """
        options = options if options is not None else E2BToolsSandboxClientOptions()
        manifest = manifest if manifest is not None else Manifest()
        self._validate_manifest_for_create(manifest)
        session_id = uuid.uuid4()
        state = E2BToolsSandboxSessionState(
            session_id=session_id,
            manifest=manifest,
            snapshot=resolve_snapshot(snapshot, str(session_id)),
            sandbox_id="",
            image=options.image,
            sandbox_timeout=options.timeout,
            metadata=dict(options.metadata or {}),
            cpu=options.cpu,
            memory=options.memory,
            network=options.network,
            pause_on_exit=options.pause_on_exit,
            snapshot_timeout_s=options.snapshot_timeout_s,
            exposed_ports=options.exposed_ports,
        )
        sandbox = await _start_sandbox(state, dict(options.envs or {}))
        state.sandbox_id = sandbox.sandbox_id
        inner = E2BToolsSandboxSession(state=state, sandbox=sandbox)
        return self._wrapped(inner)

    async def delete(self, session: SandboxSession) -> SandboxSession:
        """Release the sandbox: kill it (or leave it paused with ``pause_on_exit``)."""
        inner = self._inners.get(session)
        if inner is None:
            raise TypeError(
                "E2BToolsSandboxClient.delete expects a session this client created or resumed"
            )
        await inner.shutdown()
        return session

    async def resume(self, state: SandboxSessionState) -> SandboxSession:
        """Re-attach to ``state.sandbox_id`` (``AsyncSandbox.connect``, which also resumes a
        paused sandbox); when it is gone, start a replacement that the SDK fills from
        ``state.snapshot``."""
        if not isinstance(state, E2BToolsSandboxSessionState):
            raise TypeError("E2BToolsSandboxClient.resume expects an E2BToolsSandboxSessionState")
        state.assert_path_grants_rebound()
        sandbox: AsyncSandbox | None = None
        if state.sandbox_id:
            try:
                sandbox = await AsyncSandbox.connect(state.sandbox_id)
            except SandboxNotFoundError:
                sandbox = None
        reconnected = sandbox is not None
        if sandbox is None:
            sandbox = await _start_sandbox(state, {})
            state.sandbox_id = sandbox.sandbox_id
            state.workspace_root_ready = False
        inner = E2BToolsSandboxSession(state=state, sandbox=sandbox)
        inner.mark_resumed(reconnected)
        return self._wrapped(inner)

    def deserialize_session_state(self, payload: dict[str, object]) -> SandboxSessionState:
        """The state :meth:`serialize_session_state` wrote, for :meth:`resume`."""
        return self._deserialize_session_state_payload(payload, E2BToolsSandboxSessionState)


async def _start_sandbox(state: E2BToolsSandboxSessionState, envs: dict[str, str]) -> AsyncSandbox:
    manifest_envs = await state.manifest.environment.resolve()
    return await AsyncSandbox.create(
        image=state.image,
        timeout=state.sandbox_timeout,
        metadata=state.metadata or None,
        envs={**envs, **manifest_envs} or None,
        cpu=state.cpu,
        memory=state.memory,
        network=state.network,
        config=SandboxConfig(workdir=state.manifest.root),
    )
