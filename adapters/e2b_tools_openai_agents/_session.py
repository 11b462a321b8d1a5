"""The SDK's ``BaseSandboxSession`` over one :class:`e2b_tools.AsyncSandbox`."""

from __future__ import annotations

import io
import logging
import shlex
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Literal, cast

from agents.sandbox.errors import (
    ExposedPortUnavailableError,
    WorkspaceArchiveReadError,
    WorkspaceArchiveWriteError,
    WorkspaceStartError,
    WorkspaceWriteTypeError,
)
from agents.sandbox.session.base_sandbox_session import BaseSandboxSession
from agents.sandbox.session.runtime_helpers import (
    RESOLVE_WORKSPACE_PATH_HELPER,
    RuntimeHelperScript,
)
from agents.sandbox.session.sandbox_session_state import SandboxSessionState
from agents.sandbox.session.tar_workspace import shell_tar_exclude_args
from agents.sandbox.types import ExecResult, ExposedPortEndpoint, User
from agents.sandbox.util.tar_utils import UnsafeTarMemberError, validate_tarfile
from agents.sandbox.workspace_paths import posix_path_for_error, sandbox_path_str
from pydantic import Field

from e2b_tools import (
    AsyncSandbox,
    CommandExitError,
    EngineError,
    SandboxError,
    SandboxGoneError,
    SandboxNotFoundError,
)

from ._errors import raise_exec_error, raise_read_error, raise_write_error

logger = logging.getLogger("e2b_tools_openai_agents")

BACKEND_ID = "e2b_tools"
"""The SDK's ``backend_id`` and the ``type`` of this backend's options and state."""

_SPOOL_IN_MEMORY = 8 * 1024 * 1024
"""Bytes of a read kept in host memory before the rest spills to a host temporary file."""

_CHUNK = 1024 * 1024


class E2BToolsSandboxSessionState(SandboxSessionState):
    """What the SDK serializes to resume a session: the sandbox's id and how to make
    a replacement if it is gone. The options' ``envs`` are not stored (they may hold
    secrets): a replacement sandbox gets the manifest's environment only."""

    type: Literal["e2b_tools"] = "e2b_tools"
    sandbox_id: str
    """The e2b-tools sandbox (``AsyncSandbox.connect(sandbox_id)`` re-attaches)."""
    image: str | None = None
    """Image of the sandbox; ``None``: the default ``e2b-tools/sandbox`` image."""
    sandbox_timeout: float | None = None
    """Sandbox lifetime (TTL) in seconds; ``None``: e2b-tools' default (300 s)."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Labels of the sandbox."""
    cpu: float | None = 1.0
    """CPU cores (``None``: no limit)."""
    memory: str | int | None = "1g"
    """Memory limit (``None``: no limit)."""
    network: Literal["none", "full"] | dict[str, Any] = "none"
    """``"none"``, ``"full"`` or an ``allow_out``/``deny_out`` policy dict."""
    pause_on_exit: bool = False
    """Pause instead of kill at shutdown, so a later resume finds processes and files."""
    snapshot_timeout_s: float = 120.0
    """Seconds a workspace tar (persist or hydrate) may take inside the sandbox."""


class E2BToolsSandboxSession(BaseSandboxSession):
    """A sandbox session of the OpenAI Agents SDK backed by an e2b-tools sandbox.

    ``exec`` runs through ``commands.run`` (one JSON line to the sandbox's agent, no
    ``docker exec``), ``read``/``write`` through ``files`` (binary safe, 1 MiB
    chunks), and workspace snapshots as tar archives made inside the sandbox.
    Create sessions with :class:`E2BToolsSandboxClient`.
    """

    state: E2BToolsSandboxSessionState

    def __init__(self, *, state: E2BToolsSandboxSessionState, sandbox: AsyncSandbox) -> None:
        self.state = state
        self._sandbox = sandbox
        self._workspace_root_ready = state.workspace_root_ready

    @property
    def sandbox(self) -> AsyncSandbox:
        """The e2b-tools sandbox this session drives."""
        return self._sandbox

    def mark_resumed(self, reconnected: bool) -> None:
        """Tell the SDK whether the workspace and system state survived a resume (the
        sandbox was re-attached) or must be rebuilt (a replacement sandbox)."""
        self._set_start_state_preserved(reconnected, system=reconnected)

    @property
    def sandbox_id(self) -> str:
        """The sandbox's id (``e2b-tools ls`` shows it)."""
        return self.state.sandbox_id

    # -- start / stop ------------------------------------------------------------------
    def _runtime_helpers(self) -> tuple[RuntimeHelperScript, ...]:
        return (RESOLVE_WORKSPACE_PATH_HELPER,)

    def _current_runtime_helper_cache_key(self) -> object | None:
        return self.state.sandbox_id

    async def _validate_path_access(self, path: Path | str, *, for_write: bool = False) -> Path:
        # Checked inside the sandbox too: a symlink there must not lead a read or a
        # write out of the workspace.
        return await self._validate_remote_path_access(path, for_write=for_write)

    async def _prepare_backend_workspace(self) -> None:
        # The client makes the manifest root the sandbox's workspace (a writable tmpfs),
        # so this only matters for a sandbox made otherwise; it is cheap either way.
        root = self._workspace_root_path()
        try:
            await self._sandbox.commands.run(
                f"mkdir -p -- {shlex.quote(root.as_posix())}", cwd="/", timeout=30
            )
        except EngineError:
            raise
        except CommandExitError as exc:
            raise WorkspaceStartError(
                path=root,
                context={"reason": "workspace_root_nonzero_exit", "stderr": exc.stderr[-4096:]},
                cause=exc,
            ) from exc
        except SandboxError as exc:
            raise WorkspaceStartError(path=root, cause=exc) from exc
        self._workspace_root_ready = True

    def _mark_workspace_root_ready_from_probe(self) -> None:
        super()._mark_workspace_root_ready_from_probe()
        self._workspace_root_ready = True

    async def _shutdown_backend(self) -> None:
        try:
            if self.state.pause_on_exit:
                await self._sandbox.pause()
            else:
                await self._sandbox.kill()
        except (SandboxGoneError, SandboxNotFoundError):
            pass  # already gone: nothing is left to release
        except EngineError:
            raise  # the container may be left running: the operator must know
        except SandboxError as exc:
            logger.warning("e2b-tools sandbox %s: shutdown failed: %s", self.sandbox_id, exc)
            await self._sandbox.kill()

    async def running(self) -> bool:
        """Whether the sandbox runs (not killed, timed out or paused)."""
        try:
            return await self._sandbox.is_running()
        except EngineError:
            raise
        except SandboxError:
            return False

    # -- exec ----------------------------------------------------------------------------
    async def _resolved_envs(self) -> dict[str, str]:
        return await self.state.manifest.environment.resolve()

    async def _exec_internal(
        self, *command: str | Path, timeout: float | None = None
    ) -> ExecResult:
        argv = [str(part) for part in command]
        user: str | None = None
        # BaseSandboxSession.exec(user=...) prefixes `sudo -u NAME --`; the sandbox has no
        # sudo, and e2b-tools' commands take E2B's user= instead ("user" or "root").
        if len(argv) >= 4 and argv[0] == "sudo" and argv[1] == "-u" and argv[3] == "--":
            user, argv = argv[2], argv[4:]
        run_timeout: float | None = None
        if timeout is not None:
            run_timeout = max(float(timeout), 0.001)  # e2b-tools reads 0 as "no limit"
        cwd = self.state.manifest.root if self._workspace_root_ready else "/"
        envs = await self._resolved_envs()
        try:
            result = await self._sandbox.commands.run(
                shlex.join(argv),
                cwd=cwd,
                envs=envs or None,
                timeout=run_timeout,
                user=cast(Any, user),
            )
        except CommandExitError as exc:  # a non-zero exit is a result, not an error
            return _exec_result(exc.stdout, exc.stderr, exc.exit_code)
        except SandboxError as exc:
            raise_exec_error(exc, command=command, timeout=timeout, sandbox_id=self.sandbox_id)
        return _exec_result(result.stdout, result.stderr, result.exit_code)

    # -- files ---------------------------------------------------------------------------
    async def read(self, path: Path, *, user: str | User | None = None) -> io.IOBase:
        """Read a workspace file, binary safe; large files spill to a host temp file."""
        if user is not None:
            await self._check_read_with_exec(path, user=user)
        workspace_path = await self._validate_path_access(path)
        try:
            return await self._read_spooled(sandbox_path_str(workspace_path))
        except SandboxError as exc:
            raise_read_error(exc, path=path, sandbox_id=self.sandbox_id)

    async def _read_spooled(self, path: str) -> io.IOBase:
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        try:
            reader = await self._sandbox.files.read(path, "stream")
            async with reader:
                async for chunk in reader:
                    spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return cast(io.IOBase, spool)

    async def _read_bounded(self, path: Path, *, max_bytes: int) -> bytes:
        # openai-agents 0.24's read_bounded hook: only max_bytes ever leave the sandbox.
        workspace_path = await self._validate_path_access(path)
        try:
            return await self._sandbox.files.read(
                sandbox_path_str(workspace_path), "bytes", max_size=None, length=max_bytes
            )
        except SandboxError as exc:
            raise_read_error(exc, path=path, sandbox_id=self.sandbox_id)

    async def write(self, path: Path, data: io.IOBase, *, user: str | User | None = None) -> None:
        """Write a workspace file from a binary file object, streamed in chunks."""
        if user is not None:
            await self._check_write_with_exec(path, user=user)
        workspace_path = await self._validate_path_access(path, for_write=True)
        stream = _BinaryChunks(data, path)
        try:
            await self._sandbox.files.write(sandbox_path_str(workspace_path), cast(Any, stream))
        except SandboxError as exc:
            raise_write_error(exc, path=workspace_path, sandbox_id=self.sandbox_id)

    # -- workspace snapshots -------------------------------------------------------------
    def _tar_path(self, kind: str) -> str:
        return f"/tmp/.e2b-tools-openai-agents-{kind}-{self.state.session_id.hex}.tar"

    async def _run_checked(
        self,
        cmd: str,
        error: type[WorkspaceArchiveReadError] | type[WorkspaceArchiveWriteError],
    ) -> None:
        root = posix_path_for_error(self._workspace_root_path())
        try:
            await self._sandbox.commands.run(cmd, cwd="/", timeout=self.state.snapshot_timeout_s)
        except EngineError:
            raise
        except CommandExitError as exc:
            raise error(
                path=root,
                context={"exit_code": exc.exit_code, "stderr": exc.stderr[-4096:]},
                cause=exc,
                retryable=False,
            ) from exc
        except SandboxError as exc:
            raise error(path=root, cause=exc, retryable=False) from exc

    async def _remove_quietly(self, path: str) -> None:
        try:
            await self._sandbox.files.remove(path)
        except SandboxError:
            pass

    async def persist_workspace(self) -> io.IOBase:
        """The workspace as a tar stream (members relative to the root), spooled on the
        host. The archive is made in the sandbox's ``/tmp``, so it must fit there."""
        root = self._workspace_root_path()
        tar_path = self._tar_path("persist")
        excludes = " ".join(shell_tar_exclude_args(self._persist_workspace_skip_relpaths()))
        cmd = f"tar {excludes} -C {shlex.quote(root.as_posix())} -cf {shlex.quote(tar_path)} ."
        try:
            await self._run_checked(cmd, WorkspaceArchiveReadError)
            return await self._read_spooled(tar_path)
        except EngineError:
            raise
        except SandboxError as exc:
            raise WorkspaceArchiveReadError(
                path=posix_path_for_error(root), cause=exc, retryable=False
            ) from exc
        finally:
            await self._remove_quietly(tar_path)

    async def hydrate_workspace(self, data: io.IOBase) -> None:
        """Unpack a tar stream from :meth:`persist_workspace` into the workspace root,
        after checking on the host that no member leaves it."""
        root = self._workspace_root_path()
        error_root = posix_path_for_error(root)
        tar_path = self._tar_path("hydrate")
        with tempfile.TemporaryFile() as archive:
            for chunk in _BinaryChunks(data, error_root):
                archive.write(chunk)
            try:
                archive.seek(0)
                with tarfile.open(fileobj=archive, mode="r:*") as tar:
                    validate_tarfile(tar, allow_external_symlink_targets=False)
            except UnsafeTarMemberError as exc:
                raise WorkspaceArchiveWriteError(
                    path=error_root,
                    context={"reason": exc.reason, "member": exc.member},
                    cause=exc,
                ) from exc
            except (tarfile.TarError, OSError) as exc:
                raise WorkspaceArchiveWriteError(path=error_root, cause=exc) from exc
            archive.seek(0)
            try:
                await self._sandbox.files.write(tar_path, archive)
            except SandboxError as exc:
                raise_write_error(exc, path=error_root, sandbox_id=self.sandbox_id)
        try:
            quoted_root = shlex.quote(root.as_posix())
            await self._run_checked(
                f"mkdir -p -- {quoted_root} && tar -C {quoted_root} -xf {shlex.quote(tar_path)}",
                WorkspaceArchiveWriteError,
            )
        finally:
            await self._remove_quietly(tar_path)
        self._workspace_root_ready = True

    # -- ports ---------------------------------------------------------------------------
    async def _resolve_exposed_port(self, port: int) -> ExposedPortEndpoint:
        try:
            host = self._sandbox.get_host(port)
        except EngineError:
            raise
        except Exception as exc:
            raise ExposedPortUnavailableError(
                port=port,
                exposed_ports=self.state.exposed_ports,
                reason="backend_unavailable",
                context={"backend": BACKEND_ID, "detail": "get_host_failed"},
                cause=exc,
            ) from exc
        hostname, _, port_text = host.rpartition(":")
        return ExposedPortEndpoint(host=hostname, port=int(port_text), tls=False)


def _exec_result(stdout: str, stderr: str, exit_code: int) -> ExecResult:
    return ExecResult(
        stdout=stdout.encode("utf-8", "replace"),
        stderr=stderr.encode("utf-8", "replace"),
        exit_code=exit_code,
    )


class _BinaryChunks:
    """A file object the SDK hands over, read as ``bytes`` chunks (text is UTF-8);
    anything else raises the SDK's ``WorkspaceWriteTypeError``."""

    def __init__(self, data: object, path: Path) -> None:
        self._data = data
        self._path = path

    def read(self, size: int = -1) -> bytes:
        reader = getattr(self._data, "read", None)
        if reader is None:
            raise WorkspaceWriteTypeError(path=self._path, actual_type=type(self._data).__name__)
        chunk = reader(size)
        if isinstance(chunk, str):
            return chunk.encode("utf-8")
        if isinstance(chunk, (bytes, bytearray, memoryview)):
            return bytes(chunk)
        raise WorkspaceWriteTypeError(path=self._path, actual_type=type(chunk).__name__)

    def __iter__(self) -> _BinaryChunks:
        return self

    def __next__(self) -> bytes:
        chunk = self.read(_CHUNK)
        if not chunk:
            raise StopIteration
        return chunk
