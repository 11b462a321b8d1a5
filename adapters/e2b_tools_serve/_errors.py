"""e2b-tools errors as the answers of envd and the code interpreter.

One table for every sandbox-side handler, so the SDKs map each failure to the same
exception wherever it happens:

============================================  ====================  ======
e2b-tools error                               Connect code          HTTP
============================================  ====================  ======
sandbox not found                             unavailable, "The     502
                                              sandbox … was not
                                              found"
sandbox gone during the call                  unavailable, "the     502
(``SandboxGoneError``: killed, expired)       connection … ended
                                              before the stream
                                              completed" (the SDK
                                              then probes /health)
``NotFoundError`` (a path)                    not_found             404
file ``exists``                               already_exists        409
``permission_denied``                         permission_denied     403
``no_space``                                  resource_exhausted    507
other file errors, ``InvalidArgumentError``   invalid_argument      400
``SandboxTimeoutError``                       deadline_exceeded     504
``EngineError`` (the Docker Engine)           unavailable           503
anything else of e2b-tools                    internal              500
============================================  ====================  ======
"""

from __future__ import annotations

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

from ._connect import Code, ConnectError
from ._http import ApiError
from ._session import Session

_FILE_KINDS = {
    "not_found": (Code.NOT_FOUND, 404),
    "exists": (Code.ALREADY_EXISTS, 409),
    "permission_denied": (Code.PERMISSION_DENIED, 403),
    "no_space": (Code.RESOURCE_EXHAUSTED, 507),
}


def _classify(exc: SandboxError, session: Session) -> tuple[Code, int, str]:
    if isinstance(exc, SandboxNotFoundError):
        session.mark_gone()
        return Code.UNAVAILABLE, 502, session.gone_message()
    if isinstance(exc, SandboxGoneError):  # it went away during the call
        session.mark_gone()
        return Code.UNAVAILABLE, 502, session.cut_message()
    if isinstance(exc, EngineError):
        return Code.UNAVAILABLE, 503, f"the Docker Engine does not answer: {exc}"
    if isinstance(exc, NotFoundError):
        return Code.NOT_FOUND, 404, str(exc)
    if isinstance(exc, SandboxFileError):
        code, status = _FILE_KINDS.get(exc.kind, (Code.INVALID_ARGUMENT, 400))
        return code, status, str(exc)
    if isinstance(exc, InvalidArgumentError):
        return Code.INVALID_ARGUMENT, 400, str(exc)
    if isinstance(exc, SandboxTimeoutError):
        return Code.DEADLINE_EXCEEDED, 504, str(exc)
    return Code.INTERNAL, 500, f"{type(exc).__name__}: {exc}"


def connect_error(exc: SandboxError, session: Session) -> ConnectError:
    """The Connect error envd answers for ``exc`` (a gone sandbox also marks the
    session, so the next request re-checks it)."""
    code, _, message = _classify(exc, session)
    return ConnectError(code, message)


def api_error(exc: SandboxError, session: Session) -> ApiError:
    """The HTTP error (E2B's ``{"code", "message"}`` body) for ``exc``, for the plain
    HTTP endpoints (``/files``, ``/execute``, ``/contexts``)."""
    _, status, message = _classify(exc, session)
    return ApiError(status, message)
