"""Exceptions raised by e2b-tools.

The tree (each specific error also inherits the matching builtin)::

    SandboxError
    ├── EngineUnavailableError (ConnectionError)  no Docker Engine answers
    ├── ImageNotFoundError (LookupError)          the image is not built or pulled
    ├── SandboxNotFoundError (LookupError)        no sandbox with that id
    ├── SandboxGoneError (ConnectionError)        the container died / connection lost
    ├── SandboxTimeoutError (TimeoutError)        a call exceeded its timeout
    ├── CommandExitError                          a command exited non-zero (carries it)
    ├── InvalidArgumentError (ValueError)         bad input to an API call
    ├── NotFoundError (FileNotFoundError)         a path in the sandbox does not exist
    ├── SandboxFileError (OSError)                any other file error in the sandbox
    └── ProtocolError                             the agent answered something unexpected

E2B's names are kept as aliases (``SandboxException``, ``TimeoutException``,
``CommandExitException``, ``NotFoundException``, ``InvalidArgumentException``) so
``except`` clauses written for E2B keep working.
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import CommandResult, Execution


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


class EngineUnavailableError(SandboxError, ConnectionError):
    """No Docker Engine answers at the configured address."""


class ImageNotFoundError(SandboxError, LookupError):
    """The sandbox image does not exist on the engine."""


class SandboxNotFoundError(SandboxError, LookupError):
    """No running sandbox has the given id."""


class SandboxGoneError(SandboxError, ConnectionError):
    """The sandbox stopped (killed, out of time, engine restarted) or its stream broke."""


class SandboxTimeoutError(SandboxError, TimeoutError):
    """A call exceeded its timeout. ``execution``/``result`` hold what ran until then."""

    def __init__(
        self,
        message: str,
        *,
        sandbox_id: str | None = None,
        execution: Execution | None = None,
        result: CommandResult | None = None,
    ) -> None:
        super().__init__(message, sandbox_id=sandbox_id)
        self.execution = execution
        self.result = result


class CommandExitError(SandboxError):
    """A command exited with a non-zero code; the whole result is kept.

    Like E2B's ``CommandExitException``, it *is* the result: ``stdout``, ``stderr``,
    ``exit_code`` and ``error`` are available on the exception itself.
    """

    def __init__(self, result: CommandResult, *, sandbox_id: str | None = None) -> None:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        detail = ("; last output: " + " | ".join(tail)) if tail else ""
        super().__init__(
            f"command exited with code {result.exit_code}{detail}", sandbox_id=sandbox_id
        )
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


class InvalidArgumentError(SandboxError, ValueError):
    """An argument to an API call is not valid."""


class NotFoundError(SandboxError, FileNotFoundError):
    """A file or directory in the sandbox does not exist."""


class SandboxFileError(SandboxError, OSError):
    """A file operation failed inside the sandbox (permission, is a directory, ...)."""


class ProtocolError(SandboxError):
    """The agent sent something this version of e2b-tools does not understand."""


def error_from_event(
    event: dict[str, Any], sandbox_id: str | None, path: str | None = None
) -> SandboxError:
    """The exception for an ``error`` event of the agent (the one translation point)."""
    name = str(event.get("name", "Error"))
    value = str(event.get("value", ""))
    where = f": {path}" if path else ""
    if name == "FileNotFoundError":
        return NotFoundError(f"no such file or directory{where}", sandbox_id=sandbox_id)
    if name in ("IsADirectoryError", "NotADirectoryError", "PermissionError", "FileExistsError"):
        return SandboxFileError(f"{name}: {value}{where}", sandbox_id=sandbox_id)
    if name == "ProtocolError":
        return ProtocolError(value, sandbox_id=sandbox_id)
    if name == "NotRegularFile":
        return SandboxFileError(
            f"{path or 'the path'} is {value}; only regular files can be read or written",
            sandbox_id=sandbox_id,
        )
    if name == "FileTooLarge":
        return SandboxFileError(
            f"{path or 'the file'} is {value}: pass max_size= (larger, or None for no cap) "
            "to read it whole, or offset= and length= to read a part",
            sandbox_id=sandbox_id,
        )
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, OSError):
        return SandboxFileError(f"{name}: {value}{where}", sandbox_id=sandbox_id)
    return SandboxError(f"{name}: {value}{where}", sandbox_id=sandbox_id)


# E2B's names, so code written against the ``e2b`` SDK keeps working.
SandboxException = SandboxError
TimeoutException = SandboxTimeoutError
CommandExitException = CommandExitError
NotFoundException = NotFoundError
InvalidArgumentException = InvalidArgumentError
