"""Results and descriptions returned by the sandbox API (E2B's names and shapes)."""

from __future__ import annotations

import base64
import datetime as dt
import json as _json
from dataclasses import dataclass
from enum import Enum
from typing import IO, Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, field_validator

from ._charts import Chart, parse_chart

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
    "e2b/data": "data",
    "e2b/chart": "chart",
}
# Formats whose content is JSON data, not text.
_DATA_FIELDS = frozenset({"json", "data", "chart"})


def _unquoted(text: str) -> str:
    """A text result as E2B's server gives it: a string's repr without its single
    quotes (``'bar'`` -> ``bar``), anything else as it is."""
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        return text[1:-1]
    return text


class Result(BaseModel):
    """One output of executed code: a trailing expression's value or a displayed object.

    Each format is a field (``text``, ``html``, ``png`` as base64, ...); ``formats()``
    lists those present. As in E2B, ``json`` is the JSON value itself (a dict), ``data``
    a pandas DataFrame's columns (``{"column": [values...]}``), and ``result["html"]``
    reads a field.

    Example:
        >>> r = Result.from_mime_bundle({"text/plain": "1", "application/json": "[1]"}, True)
        >>> r.json, r.formats()
        ([1], ['text', 'json'])
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
    json_data: Any = Field(default=None, alias="json")
    """JSON representation, as JSON data (read it as ``result.json``, E2B's name)."""
    javascript: str | None = None
    """JavaScript representation."""
    data: dict[str, Any] | None = None
    """Table data of a pandas DataFrame, ``{column: [values...]}`` (E2B's ``data``)."""
    chart: SerializeAsAny[Chart] | None = None
    """E2B's chart: the data of a matplotlib figure shown as this result (a
    :class:`LineChart`, :class:`BarChart`, ... :class:`SuperChart`); None when the
    figure is blank or its data could not be read. ``chart.to_dict()`` is the raw data."""
    is_main_result: bool = False
    """True for the value of the code's trailing expression."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Formats with no field of their own, by MIME type."""

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("chart", mode="before")
    @classmethod
    def _parse_chart(cls, value: Any) -> Chart | None:
        # Data from the sandbox: malformed means no chart, never an exception.
        return value if isinstance(value, Chart) else parse_chart(value)

    @property
    def json(self) -> Any:  # E2B's field name, over pydantic's deprecated method
        """JSON representation as JSON data (``application/json``), E2B's ``json``."""
        return self.json_data

    @classmethod
    def from_mime_bundle(cls, data: dict[str, Any], is_main_result: bool) -> Result:
        """Build a result from a ``{mime_type: content}`` bundle sent by the agent."""
        fields: dict[str, Any] = {"is_main_result": is_main_result}
        extra: dict[str, Any] = {}
        for mime, content in data.items():
            name = _MIME_FIELDS.get(mime)
            if name is None:
                extra[mime] = content
            elif name == "text":
                fields[name] = _unquoted(str(content))
            elif name not in _DATA_FIELDS:
                fields[name] = str(content)
            elif isinstance(content, str):
                try:  # JSON sent as text (the JavaScript kernel does)
                    fields["json_data" if name == "json" else name] = _json.loads(content)
                except ValueError:
                    extra[mime] = content
            else:
                fields["json_data" if name == "json" else name] = content
        if not isinstance(fields.get("data", {}), dict):
            extra["e2b/data"] = fields.pop("data")
        if not isinstance(fields.get("chart", {}), dict):
            extra["e2b/chart"] = fields.pop("chart")
        return cls(**fields, extra=extra)

    def formats(self) -> list[str]:
        """Names of the formats this result has, e.g. ``["text", "html"]``."""
        found = [name for name in _MIME_FIELDS.values() if self._get(name) is not None]
        return found + list(self.extra)

    def _get(self, name: str) -> Any:
        return self.json_data if name == "json" else getattr(self, name)

    def __getitem__(self, item: str) -> Any:
        """A field by name (E2B's ``result["png"]``); an extra format by MIME type."""
        if item in self.extra:
            return self.extra[item]
        return self._get(item)

    def png_bytes(self) -> bytes | None:
        """The PNG image decoded, if there is one."""
        return base64.b64decode(self.png) if self.png else None

    def __str__(self) -> str:
        return self.text or ""


class OutputMessage(str):
    """One chunk of output of ``run_code``, as E2B's streaming callbacks receive it.

    It is the text itself (a ``str``), so callbacks written for plain text keep working.

    Example:
        >>> m = OutputMessage("hi\\n", 1_700_000_000_000_000_000)
        >>> m.line, m.error, m == "hi\\n"
        ('hi\\n', False, True)
    """

    line: str
    """The text of the chunk."""
    timestamp: int
    """When it arrived, in nanoseconds since the Unix epoch."""
    error: bool
    """True for standard error."""

    def __new__(cls, line: str, timestamp: int = 0, error: bool = False) -> OutputMessage:
        self = super().__new__(cls, line)
        self.line = str(line)
        self.timestamp = timestamp
        self.error = error
        return self

    def __getnewargs__(self) -> tuple[str, int, bool]:  # type: ignore[override]
        return (self.line, self.timestamp, self.error)

    def __repr__(self) -> str:
        return f"OutputMessage(line={self.line!r}, timestamp={self.timestamp}, error={self.error})"


class Logs(BaseModel):
    """What executed code printed, as chunks in arrival order."""

    stdout: list[str] = Field(default_factory=list)
    """Chunks written to standard output."""
    stderr: list[str] = Field(default_factory=list)
    """Chunks written to standard error."""

    def to_json(self) -> str:
        """E2B's JSON text of the logs: ``{"stdout": [...], "stderr": [...]}``."""
        return _json.dumps({"stdout": self.stdout, "stderr": self.stderr})


class ExecutionError(BaseModel):
    """An exception raised by executed code."""

    name: str
    """Exception class name, e.g. ``ZeroDivisionError``."""
    value: str
    """Exception message."""
    traceback: str = ""
    """Formatted traceback of the user's frames."""

    def to_json(self) -> str:
        """E2B's JSON text of the error: ``{"name": ..., "value": ..., "traceback": ...}``."""
        return _json.dumps({"name": self.name, "value": self.value, "traceback": self.traceback})


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

    def to_json(self) -> str:
        """E2B's JSON text of the execution.

        Shaped exactly as E2B's: ``results`` holds each result's formats by name (and
        ``text``), while ``logs`` and ``error`` hold the JSON *texts* of
        :meth:`Logs.to_json` and :meth:`ExecutionError.to_json` (``error`` is null
        when there was none).
        """
        results = [
            {
                **{name: _json_format(result, name) for name in result.formats()},
                "text": result.text,
            }
            for result in self.results
        ]
        return _json.dumps(
            {
                "results": results,
                "logs": self.logs.to_json(),
                "error": self.error.to_json() if self.error else None,
            }
        )


def _json_format(result: Result, name: str) -> Any:
    return result.chart.to_dict() if name == "chart" and result.chart else result[name]


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
    signal: str | None = None
    """The name of the signal that ended the command (``"SIGKILL"``, ``"SIGTERM"``),
    ``None`` when it exited by itself."""
    error: str | None = None
    """Why the command failed or was stopped, if it was: ``"exit code 3"``, ``"signal:
    killed"`` (the words E2B's SDK shows for a signal), ``"killed after timeout=5s"``."""
    pid: int | None = None
    """Process id of the command inside the sandbox."""
    stdout_truncated: int = 0
    """Bytes of stdout dropped from the middle to bound host memory."""
    stderr_truncated: int = 0
    """Bytes of stderr dropped from the middle to bound host memory."""
    saved_output: SavedOutput | None = None
    """Where the whole output was saved, when ``save_output=`` asked and it was long."""
    stdout_bytes: bytes | None = None
    """With ``output="bytes"``: standard output as raw bytes (head and tail, the middle
    cut without a marker when it was longer than ``output_limit``; ``stdout_truncated``
    says how many bytes were cut). ``None`` in text mode."""
    stderr_bytes: bytes | None = None
    """With ``output="bytes"``: standard error as raw bytes (as ``stdout_bytes``)."""


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


class WriteInfo(BaseModel):
    """A file as a write reports it (E2B's ``WriteInfo``; :class:`EntryInfo` says more)."""

    name: str
    """Base name."""
    path: str
    """Absolute path inside the sandbox."""
    type: FileType | None
    """File, directory or (dangling) symlink; a symlink says what it points to."""
    metadata: dict[str, str] | None = None
    """E2B's user metadata of the file (``files.write(..., metadata=...)``, or
    ``user.e2b.<key>`` extended attributes set inside the sandbox), keys lowercased;
    ``None`` when it has none. Of a symlink: its target's."""


class WriteEntry(TypedDict):
    """One file for :meth:`AsyncFiles.write_files`: its path and its data."""

    path: str
    data: str | bytes | IO[bytes] | IO[str]


class EntryInfo(WriteInfo):
    """A file or directory in the sandbox."""

    type: FileType
    """File, directory or (dangling) symlink; a symlink says what it points to (its
    own type only when that does not exist), and ``symlink_target`` where."""
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
    owner: str = ""
    """Owner's user name (the id as text when it has no name)."""
    group: str = ""
    """Owner's group name (the id as text when it has no name)."""
    modified_time: dt.datetime
    """Last modification time (UTC)."""
    symlink_target: str | None = None
    """Absolute, resolved path the entry points to if it is a symlink."""


class FilesystemEventType(str, Enum):
    """What happened to a path in a watched directory (E2B's names)."""

    CHMOD = "chmod"
    """Its permissions or other metadata changed."""
    CREATE = "create"
    """It was created, or moved (renamed) into the directory."""
    REMOVE = "remove"
    """It was removed."""
    RENAME = "rename"
    """It was renamed or moved away (its new name, if still watched, comes as CREATE)."""
    WRITE = "write"
    """It was written to."""


@dataclass
class FilesystemEvent:
    """One change in a directory watched with ``files.watch_dir`` (E2B's shape)."""

    name: str
    """Path of what changed, relative to the watched directory (``sub/file.txt`` in a
    recursive watch)."""
    type: FilesystemEventType
    """What happened to it."""
    entry: EntryInfo | None = None
    """The path's details when the event was sent (with ``include_entry=True``); ``None``
    otherwise, and when the path is gone (removed, renamed away)."""


class SandboxState(str, Enum):
    """A sandbox's state, as E2B names it (``SandboxInfo.state`` compares equal to it)."""

    RUNNING = "running"
    PAUSED = "paused"

    def __str__(self) -> str:
        return str(self.value)


class SandboxInfo(BaseModel):
    """A sandbox as :meth:`Sandbox.list` and :meth:`Sandbox.get_info` report it."""

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
    """Deadline given at create (``set_timeout`` and a pause later move the real one;
    ``get_info()`` of a running sandbox asks its agent)."""
    state: str = "running"
    """Container state as the engine reports it: ``"running"`` and ``"paused"`` (equal
    to :class:`SandboxState` members), or another engine state such as ``"exited"``."""
    template_id: str = ""
    """E2B's template id: here the image reference the sandbox was created from (pass
    it as ``create(template=...)`` for another such sandbox)."""
    name: str | None = None
    """E2B's template name (its alias): here the image's name without tag or digest."""


class SandboxQuery(BaseModel):
    """Filters for :meth:`Sandbox.list` (E2B's ``SandboxQuery``)."""

    metadata: dict[str, str] | None = None
    """Only sandboxes whose metadata contains all these pairs."""
    state: list[SandboxState] | None = None
    """Only sandboxes in these states (default: running and paused)."""
    started_after: dt.datetime | None = None
    """Only sandboxes started at or after this time (naive: local time)."""
    template: str | None = None
    """Only sandboxes of this template (image reference or name)."""


class SandboxMetrics(BaseModel):
    """One sample of a sandbox's resource use (E2B's ``SandboxMetrics``), from the
    engine's container stats."""

    cpu_count: int
    """CPUs the sandbox may use (its ``cpu`` limit rounded up, else the host's)."""
    cpu_used_pct: float
    """CPU use in percent of ``cpu_count`` CPUs."""
    mem_used: int
    """Memory used in bytes (without the page cache)."""
    mem_total: int
    """Memory limit in bytes (the host's memory when unlimited)."""
    mem_cache: int = 0
    """Page cache in bytes."""
    disk_used: int = 0
    """Bytes used in the writable workspace (tmpfs, counted in memory)."""
    disk_total: int = 0
    """Size of the workspace in bytes."""
    timestamp: dt.datetime
    """When the engine took the sample (UTC)."""


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
