"""Exceptions raised by e2b-tools: one tree, grouped by who must act.

Each specific error also inherits the matching builtin, and each carries its context as
attributes, so no caller has to parse a message::

    SandboxError                                 root; .sandbox_id
    ├── EngineError                              the Docker side: the operator acts
    │   ├── EngineUnavailableError (ConnectionError)  no engine answers, or it hangs
    │   ├── ImageNotFoundError (LookupError)          the image is not built or pulled
    │   └── ImageBuildError                           building an image failed
    ├── ResourceNotFoundError                    a sandbox or a file that does not exist
    │   ├── SandboxNotFoundError (LookupError)   connect() to an id that is not running
    │   └── NotFoundError (FileNotFoundError)    a path in the sandbox (also a
    │                                            SandboxFileError, below)
    ├── SandboxGoneError (ConnectionError)       the sandbox died, was killed or timed out
    ├── ProtocolError                            the agent's stream broke or made no sense
    ├── SandboxTimeoutError (TimeoutError)       a call ran past its timeout; .state_kept,
    │                                            .execution / .result hold what ran
    ├── CommandExitError                         a command exited non-zero; it *is* the
    │                                            result (.stdout, .stderr, .exit_code)
    ├── SandboxFileError (OSError)               a file operation failed; .kind, .errno,
    │   │                                        .path
    │   ├── NotFoundError (FileNotFoundError)    the path does not exist
    │   └── NotEnoughSpaceError                  the disk (the workspace tmpfs) is full
    └── InvalidArgumentError (ValueError)        bad input: fix the call and retry
        └── UnknownToolError (KeyError)          a tool name the toolkit does not have

The agent's wire error names (``protocol.ERRORS``) are translated in one place,
:func:`error_from_event`. E2B's names are kept as aliases so ``except`` clauses written
for E2B keep working::

    SandboxException          = SandboxError
    TimeoutException          = SandboxTimeoutError
    CommandExitException      = CommandExitError
    NotFoundException         = ResourceNotFoundError  (catches both below, as in E2B)
    SandboxNotFoundException  = SandboxNotFoundError
    FileNotFoundException     = NotFoundError
    NotEnoughSpaceException   = NotEnoughSpaceError
    InvalidArgumentException  = InvalidArgumentError
"""

from __future__ import annotations

import builtins
import errno as _errno
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._models import CommandResult, Execution

FileErrorKind = Literal[
    "not_found",
    "is_directory",
    "not_a_directory",
    "permission_denied",
    "exists",
    "no_space",
    "not_regular",
    "too_large",
    "other",
]
"""What went wrong in a file operation, as :attr:`SandboxFileError.kind` says."""


class SandboxError(Exception):
    """Root of every error this package raises."""

    def __init__(self, message: str, *, sandbox_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.sandbox_id = sandbox_id

    def __str__(self) -> str:
        if self.sandbox_id:
            return f"{self.message} [sandbox {self.sandbox_id}]"
        return self.message


class EngineError(SandboxError):
    """The Docker Engine side failed; the operator, not the model, must act."""


class EngineUnavailableError(EngineError, ConnectionError):
    """No Docker Engine answers at the configured address (or it does not reply)."""


class ImageNotFoundError(EngineError, LookupError):
    """The sandbox image does not exist on the engine."""


class ImageBuildError(EngineError):
    """Building a sandbox image failed; the message says which step and why."""


class ResourceNotFoundError(SandboxError):
    """A sandbox or a file does not exist (E2B's ``NotFoundException``)."""


class SandboxNotFoundError(ResourceNotFoundError, LookupError):
    """No running sandbox has the given id."""


class TimeoutException(SandboxError):
    """E2B's name for a call that got no answer: it timed out
    (:class:`SandboxTimeoutError`) or its sandbox ended under it
    (:class:`SandboxGoneError`), as E2B reports both."""


class SandboxGoneError(TimeoutException, ConnectionError):
    """The sandbox stopped (killed, out of time, engine restarted) or its stream broke."""


class ProtocolError(SandboxError):
    """The agent's stream broke, or it sent something this version cannot read."""


class SandboxTimeoutError(TimeoutException, TimeoutError):
    """A call exceeded its timeout. ``execution``/``result`` hold what ran until then.

    ``state_kept`` says what happened to a code context: True when the code was
    interrupted and its variables survive, False when the context had to be restarted,
    None where there is no state (commands, stateless languages, the host giving up).
    """

    def __init__(
        self,
        message: str,
        *,
        sandbox_id: str | None = None,
        execution: Execution | None = None,
        result: CommandResult | None = None,
        state_kept: bool | None = None,
    ) -> None:
        super().__init__(message, sandbox_id=sandbox_id)
        self.execution = execution
        self.result = result
        self.state_kept = state_kept


class CommandExitError(SandboxError):
    """A command exited with a non-zero code; the whole result is kept.

    Like E2B's ``CommandExitException``, it *is* the result: ``stdout``, ``stderr``,
    ``exit_code`` and ``error`` are available on the exception itself.
    """

    def __init__(self, result: CommandResult, *, sandbox_id: str | None = None) -> None:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        detail = ("; last output: " + " | ".join(tail)) if tail else ""
        how = (
            f"command was killed by {result.signal} (exit code {result.exit_code})"
            if result.signal
            else f"command exited with code {result.exit_code}"
        )
        super().__init__(how + detail, sandbox_id=sandbox_id)
        self.result = result

    @property
    def stdout(self) -> str:
        return self.result.stdout

    @property
    def stderr(self) -> str:
        return self.result.stderr

    @property
    def exit_code(self) -> int:
        return self.result.exit_code

    @property
    def error(self) -> str | None:
        return self.result.error

    @property
    def signal(self) -> str | None:
        """The signal that ended the command (``"SIGKILL"``...), or None."""
        return self.result.signal


class SandboxFileError(SandboxError, OSError):
    """A file operation failed inside the sandbox.

    ``kind`` names the failure (:data:`FileErrorKind`), ``errno`` is the sandbox's
    errno when there was one, ``path`` the path in the sandbox.
    """

    def __init__(
        self,
        message: str,
        *,
        sandbox_id: str | None = None,
        kind: FileErrorKind = "other",
        errno: int | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message, sandbox_id=sandbox_id)
        self.kind: FileErrorKind = kind
        self.errno = errno
        self.path = path
        self.filename = path


class NotFoundError(SandboxFileError, ResourceNotFoundError, FileNotFoundError):
    """A file or directory in the sandbox does not exist."""

    def __init__(
        self,
        message: str,
        *,
        sandbox_id: str | None = None,
        errno: int | None = _errno.ENOENT,
        path: str | None = None,
    ) -> None:
        super().__init__(message, sandbox_id=sandbox_id, kind="not_found", errno=errno, path=path)


class NotEnoughSpaceError(SandboxFileError):
    """The sandbox's disk (the workspace tmpfs, sized to a share of ``memory``) is full."""

    def __init__(
        self,
        message: str,
        *,
        sandbox_id: str | None = None,
        errno: int | None = _errno.ENOSPC,
        path: str | None = None,
    ) -> None:
        super().__init__(message, sandbox_id=sandbox_id, kind="no_space", errno=errno, path=path)


class InvalidArgumentError(SandboxError, ValueError):
    """An argument to an API call is not valid."""


class UnknownToolError(InvalidArgumentError, KeyError):
    """A tool name that the toolkit does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return SandboxError.__str__(self)


_KIND_BY_NAME: dict[str, FileErrorKind] = {
    "FileNotFoundError": "not_found",
    "IsADirectoryError": "is_directory",
    "NotADirectoryError": "not_a_directory",
    "PermissionError": "permission_denied",
    "FileExistsError": "exists",
    "NotRegularFile": "not_regular",
    "FileTooLarge": "too_large",
}
_KIND_BY_ERRNO: dict[int, FileErrorKind] = {
    _errno.ENOSPC: "no_space",
    _errno.EDQUOT: "no_space",
    _errno.EROFS: "permission_denied",
    _errno.EACCES: "permission_denied",
    _errno.EPERM: "permission_denied",
}


def _file_message(kind: FileErrorKind, name: str, value: str, path: str | None) -> str:
    where = path or "the path"
    if kind == "not_found":
        return f"no such file or directory: {where}"
    if kind == "not_regular":
        return f"{where} is {value}; only regular files can be read or written"
    if kind == "too_large":
        return (
            f"{where} is {value}: pass max_size= (larger, or None for no cap) to read it "
            "whole, or offset= and length= to read a part"
        )
    return f"{name}: {value}" + (f": {path}" if path else "")


def error_from_event(
    event: Mapping[str, Any], sandbox_id: str | None, path: str | None = None
) -> SandboxError:
    """The exception for an agent's ``error`` event (the one translation point).

    ``path`` is the path the caller asked about; the event's own ``path`` (the resolved
    one in the sandbox) wins when present.
    """
    name = str(event.get("name", "Error"))
    value = str(event.get("value", ""))
    number = event.get("errno")
    number = number if isinstance(number, int) else None
    where = event.get("path") if isinstance(event.get("path"), str) else path
    if name == "ProtocolError":
        return ProtocolError(value, sandbox_id=sandbox_id)
    builtin = getattr(builtins, name, None)
    is_os_error = isinstance(builtin, type) and issubclass(builtin, OSError)
    if name in _KIND_BY_NAME or is_os_error:
        kind = _KIND_BY_NAME.get(name) or _KIND_BY_ERRNO.get(number or 0, "other")
        message = _file_message(kind, name, value, path or where)
        if kind == "not_found":
            return NotFoundError(message, sandbox_id=sandbox_id, errno=number, path=where)
        if kind == "no_space":
            return NotEnoughSpaceError(message, sandbox_id=sandbox_id, errno=number, path=where)
        return SandboxFileError(message, sandbox_id=sandbox_id, kind=kind, errno=number, path=where)
    return SandboxError(f"{name}: {value}" + (f": {path}" if path else ""), sandbox_id=sandbox_id)


# E2B's names, so code written against the ``e2b`` SDK keeps working (and
# TimeoutException, a class above).
SandboxException = SandboxError
CommandExitException = CommandExitError
NotFoundException = ResourceNotFoundError
SandboxNotFoundException = SandboxNotFoundError
FileNotFoundException = NotFoundError
NotEnoughSpaceException = NotEnoughSpaceError
InvalidArgumentException = InvalidArgumentError
