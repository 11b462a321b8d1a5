"""Results and descriptions returned by the sandbox API (E2B's names and shapes)."""

from __future__ import annotations

import base64
import datetime as dt
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_MIME_FIELDS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
}


class Result(BaseModel):
    """One output of executed code: a trailing expression's value or a displayed object.

    Each format is a field (``text``, ``html``, ``png`` as base64, ...); ``formats()``
    lists those present.
    """

    text: str | None = None
    """Plain-text representation (``repr`` of the value)."""
    html: str | None = None
    """HTML representation (for example a pandas DataFrame)."""
    markdown: str | None = None
    """Markdown representation."""
    svg: str | None = None
    """SVG image."""
    png: str | None = None
    """PNG image, base64-encoded."""
    jpeg: str | None = None
    """JPEG image, base64-encoded."""
    pdf: str | None = None
    """PDF document, base64-encoded."""
    latex: str | None = None
    """LaTeX representation."""
    json_data: str | None = Field(default=None, alias="json")
    """JSON representation, as a JSON string."""
    javascript: str | None = None
    """JavaScript representation."""
    is_main_result: bool = False
    """True for the value of the code's trailing expression."""
    extra: dict[str, str] = Field(default_factory=dict)
    """Formats with no field of their own, by MIME type."""

    model_config = ConfigDict(populate_by_name=True)

    @classmethod
    def from_mime_bundle(cls, data: dict[str, Any], is_main_result: bool) -> Result:
        """Build a result from a ``{mime_type: content}`` bundle sent by the agent."""
        fields: dict[str, Any] = {"is_main_result": is_main_result}
        extra: dict[str, str] = {}
        for mime, content in data.items():
            name = _MIME_FIELDS.get(mime)
            if name is None:
                extra[mime] = str(content)
            else:
                fields[name] = str(content)
        return cls(**fields, extra=extra)

    def formats(self) -> list[str]:
        """Names of the formats this result has, e.g. ``["text", "html"]``."""
        found = [name for name in _MIME_FIELDS.values() if self._get(name) is not None]
        return found + list(self.extra)

    def _get(self, name: str) -> str | None:
        value: str | None = self.json_data if name == "json" else getattr(self, name)
        return value

    def png_bytes(self) -> bytes | None:
        """The PNG image decoded, if there is one."""
        return base64.b64decode(self.png) if self.png else None

    def __str__(self) -> str:
        return self.text or ""


class Logs(BaseModel):
    """What executed code printed, as chunks in arrival order."""

    stdout: list[str] = Field(default_factory=list)
    """Chunks written to standard output."""
    stderr: list[str] = Field(default_factory=list)
    """Chunks written to standard error."""


class ExecutionError(BaseModel):
    """An exception raised by executed code."""

    name: str
    """Exception class name, e.g. ``ZeroDivisionError``."""
    value: str
    """Exception message."""
    traceback: str = ""
    """Formatted traceback of the user's frames."""


class SaveOutput(BaseModel):
    """Asks the sandbox to save a call's whole output to a file once it is long.

    Example:
        >>> SaveOutput(path="outputs/run-1.log", threshold=8000).threshold
        8000
    """

    path: str
    """File in the sandbox (workspace-relative or absolute) that receives the output."""
    threshold: int = Field(default=0, ge=0)
    """Characters of output (stdout and stderr together) before it is saved."""


class SavedOutput(BaseModel):
    """Where a call's whole output was saved in the sandbox (see :class:`SaveOutput`)."""

    path: str
    """Absolute path of the file in the sandbox; page it with ``files.read``."""
    chars: int
    """Characters of output in all (stdout and stderr, interleaved as they arrived)."""
    bytes: int
    """Its size in UTF-8 bytes."""
    lines: int
    """Its number of lines."""


class Execution(BaseModel):
    """The outcome of :meth:`AsyncSandbox.run_code` / :meth:`Sandbox.run_code`.

    Example:
        >>> execution = sandbox.run_code("x = 41\\nx + 1")  # doctest: +SKIP
        >>> execution.text
        '42'
    """

    results: list[Result] = Field(default_factory=list)
    """Outputs: the trailing expression's value and displayed objects."""
    logs: Logs = Field(default_factory=Logs)
    """Printed output."""
    error: ExecutionError | None = None
    """Set when the code raised; the call itself does not raise for user errors."""
    execution_count: int | None = None
    """Number of this execution in its context."""
    execution_time: float = 0.0
    """Wall-clock seconds the call took, as seen by the host."""
    context_restarted: bool = False
    """True when the code context died during this call and its state was lost."""
    saved_output: SavedOutput | None = None
    """Where the whole output was saved, when ``save_output=`` asked and it was long."""

    @property
    def text(self) -> str | None:
        """Text of the main result (the trailing expression's value), if any."""
        for result in self.results:
            if result.is_main_result:
                return result.text
        return None


class Context(BaseModel):
    """A code context: its own process, variables and working directory."""

    id: str
    """Id to pass back (``run_code(..., context=ctx)`` takes the object)."""
    language: str
    """Language of the context."""
    cwd: str
    """Working directory the context started in."""


class CommandResult(BaseModel):
    """The outcome of a finished shell command."""

    stdout: str = ""
    """Standard output (see ``stdout_truncated``)."""
    stderr: str = ""
    """Standard error (see ``stderr_truncated``)."""
    exit_code: int = 0
    """Exit code; 128+N when killed by signal N (as a shell reports it)."""
    error: str | None = None
    """Why the command failed to run or was stopped, if it was."""
    pid: int | None = None
    """Process id of the command inside the sandbox."""
    stdout_truncated: int = 0
    """Bytes of stdout dropped from the middle to bound host memory."""
    stderr_truncated: int = 0
    """Bytes of stderr dropped from the middle to bound host memory."""
    saved_output: SavedOutput | None = None
    """Where the whole output was saved, when ``save_output=`` asked and it was long."""


class ProcessInfo(BaseModel):
    """A command running in the sandbox."""

    pid: int
    """Process id inside the sandbox."""
    cmd: str
    """The command line."""
    cwd: str | None = None
    """Working directory it was started in (``None``: the workspace)."""
    stdin: bool = False
    """Whether its stdin is a pipe that ``send_stdin`` feeds."""


class FileType(str, Enum):
    """Kind of a filesystem entry."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


class EntryInfo(BaseModel):
    """A file or directory in the sandbox."""

    name: str
    """Base name."""
    path: str
    """Absolute path inside the sandbox."""
    type: FileType
    """File, directory or (dangling) symlink; symlinks to directories say ``dir``."""
    size: int
    """Size in bytes."""
    mode: int
    """Permission bits, e.g. ``0o644``."""
    permissions: str
    """Permissions as ``ls -l`` shows them."""
    uid: int
    """Owner's user id."""
    gid: int
    """Owner's group id."""
    modified_time: dt.datetime
    """Last modification time (UTC)."""
    symlink_target: str | None = None
    """Where the entry points if it is a symlink."""


class SandboxInfo(BaseModel):
    """A running sandbox as :meth:`Sandbox.list` reports it."""

    sandbox_id: str
    """Id to pass to ``connect``."""
    container_id: str
    """Docker container id."""
    image: str
    """Image the sandbox runs."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Metadata given at create."""
    started_at: dt.datetime | None = None
    """When the container was created."""
    end_at: dt.datetime | None = None
    """Deadline given at create (``set_timeout`` later moves the real one)."""
    state: str = "running"
    """Container state as the engine reports it."""


class NetworkDecision(BaseModel):
    """One decision of the egress proxy on a sandbox's outgoing request."""

    model_config = ConfigDict(extra="ignore")

    time: dt.datetime
    """When the request came (UTC)."""
    method: str
    """``CONNECT`` for HTTPS and other tunnels, else the HTTP method."""
    host: str
    """The destination as the sandbox named it (a domain or an IP address)."""
    port: int
    address: str | None = None
    """The address connected to (or refused); None when the name was not resolved."""
    allowed: bool
    rule: str | None = None
    """The rule that decided; None for the policy's default."""
    reason: str
    """Why, in one sentence."""
