"""One place that turns e2b-tools errors into the OpenAI Agents SDK's sandbox errors.

What the SDK defines is raised as the SDK's type (``ExecTimeoutError``,
``ExecTransportError``, ``WorkspaceReadNotFoundError``, ...), with the e2b-tools error as
its ``cause``. What the operator must fix is not the SDK's business and is never
wrapped: :class:`e2b_tools.EngineError` (no Docker Engine answers, an image is missing)
propagates as it is, so it cannot end up as text for the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from agents.sandbox.errors import (
    ExecTimeoutError,
    ExecTransportError,
    WorkspaceArchiveReadError,
    WorkspaceArchiveWriteError,
    WorkspaceReadNotFoundError,
)

from e2b_tools import (
    EngineError,
    InvalidArgumentError,
    NotFoundError,
    SandboxError,
    SandboxFileError,
    SandboxGoneError,
    SandboxNotFoundError,
    SandboxTimeoutError,
)


def _context(exc: BaseException, sandbox_id: str) -> dict[str, object]:
    ctx: dict[str, object] = {
        "backend": "e2b_tools",
        "sandbox_id": sandbox_id,
        "provider_error": type(exc).__name__,
        "detail": str(exc)[:2000],
    }
    if isinstance(exc, SandboxFileError):
        ctx["kind"] = exc.kind
        ctx["errno"] = exc.errno
    return ctx


def raise_exec_error(
    exc: BaseException,
    *,
    command: Sequence[str | Path],
    timeout: float | None,
    sandbox_id: str,
) -> NoReturn:
    """Raise the SDK's exec error for ``exc`` (an e2b-tools error from ``commands.run``).

    ``CommandExitError`` is not an error for the SDK (it is the result) and must be
    handled by the caller before this.
    """
    if isinstance(exc, EngineError):
        raise exc  # the operator acts: no engine, no image
    ctx = _context(exc, sandbox_id)
    if isinstance(exc, SandboxTimeoutError):
        partial = exc.result
        if partial is not None:
            ctx["stdout"] = partial.stdout[-4096:]
            ctx["stderr"] = partial.stderr[-4096:]
        raise ExecTimeoutError(command=command, timeout_s=timeout, context=ctx, cause=exc) from exc
    if isinstance(exc, (SandboxGoneError, SandboxNotFoundError)):
        ctx["reason"] = "sandbox_gone"
        raise ExecTransportError(
            command=command,
            context=ctx,
            cause=exc,
            message=f"the sandbox is gone (killed or timed out): {exc}",
            retryable=False,
        ) from exc
    if isinstance(exc, InvalidArgumentError):
        ctx["reason"] = "invalid_argument"
        raise ExecTransportError(
            command=command, context=ctx, cause=exc, message=str(exc), retryable=False
        ) from exc
    # ProtocolError and the rest: the call may have run, so never retry it blindly.
    raise ExecTransportError(command=command, context=ctx, cause=exc, retryable=False) from exc


def raise_read_error(exc: BaseException, *, path: Path, sandbox_id: str) -> NoReturn:
    """Raise the SDK's read error for ``exc`` raised while reading ``path``."""
    if isinstance(exc, EngineError):
        raise exc
    ctx = _context(exc, sandbox_id)
    if isinstance(exc, NotFoundError):
        raise WorkspaceReadNotFoundError(path=path, context=ctx, cause=exc) from exc
    retryable = False if isinstance(exc, SandboxError) else None
    raise WorkspaceArchiveReadError(path=path, context=ctx, cause=exc, retryable=retryable) from exc


def raise_write_error(exc: BaseException, *, path: Path, sandbox_id: str) -> NoReturn:
    """Raise the SDK's write error for ``exc`` raised while writing ``path``."""
    if isinstance(exc, EngineError):
        raise exc
    retryable = False if isinstance(exc, SandboxError) else None
    raise WorkspaceArchiveWriteError(
        path=path, context=_context(exc, sandbox_id), cause=exc, retryable=retryable
    ) from exc
