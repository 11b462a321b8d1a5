"""e2b-tools: E2B-style code sandboxes on your own Docker Engine, for AI agents.

Example:
    >>> from e2b_tools import Sandbox
    >>> with Sandbox.create() as sbx:  # doctest: +SKIP
    ...     sbx.run_code("x = 41")
    ...     print(sbx.run_code("x + 1").text)
    42
"""

from ._config import SandboxConfig
from ._exceptions import (
    CommandExitError,
    CommandExitException,
    EngineUnavailableError,
    ImageNotFoundError,
    InvalidArgumentError,
    InvalidArgumentException,
    NotFoundError,
    NotFoundException,
    ProtocolError,
    SandboxError,
    SandboxException,
    SandboxFileError,
    SandboxGoneError,
    SandboxNotFoundError,
    SandboxTimeoutError,
    TimeoutException,
)
from ._files import AsyncFiles
from ._gc import agc, gc
from ._models import (
    CommandResult,
    Context,
    EntryInfo,
    Execution,
    ExecutionError,
    FileType,
    Logs,
    ProcessInfo,
    Result,
    SandboxInfo,
)
from ._sandbox import AsyncCommandHandle, AsyncCommands, AsyncSandbox
from ._sync import CommandHandle, Commands, Files, Sandbox
from ._version import __version__

__all__ = [
    "AsyncCommandHandle",
    "AsyncCommands",
    "AsyncFiles",
    "AsyncSandbox",
    "CommandExitError",
    "CommandExitException",
    "CommandHandle",
    "CommandResult",
    "Commands",
    "Context",
    "EngineUnavailableError",
    "EntryInfo",
    "Execution",
    "ExecutionError",
    "FileType",
    "Files",
    "ImageNotFoundError",
    "InvalidArgumentError",
    "InvalidArgumentException",
    "Logs",
    "NotFoundError",
    "NotFoundException",
    "ProcessInfo",
    "ProtocolError",
    "Result",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxException",
    "SandboxFileError",
    "SandboxGoneError",
    "SandboxInfo",
    "SandboxNotFoundError",
    "SandboxTimeoutError",
    "TimeoutException",
    "__version__",
    "agc",
    "gc",
]
