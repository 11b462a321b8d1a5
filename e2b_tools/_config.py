"""Sandbox configuration: what :meth:`Sandbox.create` turns its arguments into."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TIMEOUT = 300.0
"""Default sandbox lifetime (TTL) in seconds, as in E2B."""
DEFAULT_CODE_TIMEOUT = 300.0
"""Default ``run_code`` timeout in seconds, as in E2B's code interpreter."""
DEFAULT_COMMAND_TIMEOUT = 60.0
"""Default ``commands.run`` timeout in seconds, as in E2B."""
DEFAULT_OUTPUT_LIMIT = 8 * 1024 * 1024
"""Characters of each output stream a result keeps (head + tail) to bound host memory."""

NetworkMode = Literal["none", "full"]


class SandboxConfig(BaseModel):
    """Everything that shapes one sandbox container. Every hardening default can be
    relaxed here; each field says what it protects.

    Example:
        >>> SandboxConfig(memory="2g", pids_limit=512).memory
        '2g'
    """

    model_config = ConfigDict(extra="forbid")

    image: str | None = None
    """Image to run; ``None`` means the default ``e2b-tools/sandbox:<version>``."""
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0)
    """Lifetime in seconds. The agent inside exits at this deadline even if the
    controlling process died, so nothing outlives it."""
    envs: dict[str, str] = Field(default_factory=dict)
    """Environment variables for everything run in the sandbox."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Free-form labels, returned by ``list`` and usable as its filter."""
    cpu: float | None = Field(default=1.0, gt=0)
    """CPU cores the sandbox may use (``None``: no limit)."""
    memory: str | int | None = "1g"
    """Memory limit (``"512m"``, ``"2g"`` or bytes); swap is capped at the same value so
    the limit is real. ``None``: no limit."""
    pids_limit: int | None = Field(default=256, gt=0)
    """Maximum processes and threads; stops fork bombs. ``None``: no limit."""
    network: NetworkMode = "none"
    """``"none"``: no network at all (default). ``"full"``: Docker's default bridge."""
    read_only: bool = True
    """Read-only root filesystem; ``/tmp`` and the workspace stay writable (tmpfs)."""
    workdir: str = "/home/user"
    """Workspace directory: writable, the default cwd and ``HOME``."""
    workspace_size: str = "1g"
    """Size cap of the workspace tmpfs (counts against ``memory``)."""
    tmp_size: str = "256m"
    """Size cap of the ``/tmp`` tmpfs (counts against ``memory``)."""
    user: str = "1000:1000"
    """User the sandbox runs as; never root by default."""
    cap_drop_all: bool = True
    """Drop every Linux capability."""
    no_new_privileges: bool = True
    """Forbid gaining privileges through setuid binaries."""
    runtime: str | None = None
    """OCI runtime, e.g. ``"runsc"`` for gVisor when the engine has it."""
    interrupt_grace: float = Field(default=2.0, gt=0)
    """Seconds code gets to stop after KeyboardInterrupt before its context is killed."""
    output_limit: int = Field(default=DEFAULT_OUTPUT_LIMIT, gt=1024)
    """Characters per output stream kept in results (head and tail; the middle is
    dropped and counted). Streaming callbacks still see everything."""
