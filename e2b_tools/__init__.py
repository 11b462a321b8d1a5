"""e2b-tools: E2B-style code sandboxes on your own Docker Engine, for AI agents.

Example:
    >>> from e2b_tools import Sandbox
    >>> with Sandbox.create() as sbx:  # doctest: +SKIP
    ...     sbx.run_code("x = 41")
    ...     print(sbx.run_code("x + 1").text)
    42
"""

from ._bridge import LoopBridge, background_loop
from ._channel import BoundedText, ErrorHandler, OutputHandler, ResultHandler
from ._commands import AsyncCommandHandle, AsyncCommands
from ._config import ALL_TRAFFIC, NetworkPolicy, SandboxConfig
from ._exceptions import (
    CommandExitError,
    CommandExitException,
    EngineError,
    EngineUnavailableError,
    FileErrorKind,
    ImageBuildError,
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
    UnknownToolError,
)
from ._files import DEFAULT_READ_LIMIT, AsyncFiles
from ._gc import agc, gc
from ._models import (
    CommandResult,
    Context,
    EntryInfo,
    Execution,
    ExecutionError,
    FileType,
    Logs,
    NetworkDecision,
    ProcessInfo,
    Result,
    SandboxInfo,
    SavedOutput,
    SaveOutput,
)
from ._pool import DEFAULT_POOLED_TTL, POOL_LABEL, AsyncSandboxPool, PoolStats
from ._pool_sync import SandboxPool
from ._sandbox import AsyncSandbox
from ._sync import CommandHandle, Commands, Files, Sandbox
from ._version import __version__

__all__ = [
    "ALL_TRAFFIC",
    "DEFAULT_POOLED_TTL",
    "DEFAULT_READ_LIMIT",
    "POOL_LABEL",
    "AsyncCommandHandle",
    "AsyncCommands",
    "AsyncFiles",
    "AsyncSandbox",
    "AsyncSandboxPool",
    "BoundedText",
    "CommandExitError",
    "CommandExitException",
    "CommandHandle",
    "CommandResult",
    "Commands",
    "Context",
    "EngineError",
    "EngineUnavailableError",
    "EntryInfo",
    "ErrorHandler",
    "Execution",
    "ExecutionError",
    "FileErrorKind",
    "FileType",
    "Files",
    "ImageBuildError",
    "ImageNotFoundError",
    "InvalidArgumentError",
    "InvalidArgumentException",
    "Logs",
    "LoopBridge",
    "NetworkDecision",
    "NetworkPolicy",
    "NotFoundError",
    "NotFoundException",
    "OutputHandler",
    "PoolStats",
    "ProcessInfo",
    "ProtocolError",
    "Result",
    "ResultHandler",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxException",
    "SandboxFileError",
    "SandboxGoneError",
    "SandboxInfo",
    "SandboxNotFoundError",
    "SandboxPool",
    "SandboxTimeoutError",
    "SaveOutput",
    "SavedOutput",
    "TimeoutException",
    "UnknownToolError",
    "__version__",
    "agc",
    "background_loop",
    "gc",
]
