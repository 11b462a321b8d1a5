"""Framework-neutral tools: a name, a description for the model, a pydantic input
model and ``run``/``arun`` returning :class:`ToolOutput`.

Errors are split by who can act on them. What the model can fix or work around (bad
arguments, an error in its code, a non-zero exit, a timeout, a missing file, a path
outside the workspace, a sandbox that was replaced so its state is lost) comes back
as short text with ``is_error=True``, with any charts it made kept as artifacts.
What only the operator can fix (:class:`~e2b_tools.EngineError`: no Docker Engine
answers, the image is missing or failed to build) is raised from ``run``/``arun``,
its message naming the engine address tried and the fix. ``docs/errors.md`` has the
table.
"""

from __future__ import annotations

import base64
import posixpath
import re
import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

import tenacity
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import (
    AsyncSandbox,
    BoundedText,
    CommandExitError,
    CommandResult,
    EngineError,
    EntryInfo,
    FileType,
    InvalidArgumentError,
    NotFoundError,
    SandboxConfig,
    SandboxError,
    SandboxFileError,
    SandboxGoneError,
    SandboxTimeoutError,
    SaveOutput,
)
from ._describe import facts
from ._session import SandboxSession
from ._shape import describe_binary, human_size, is_binary, shape

DEFAULT_BUDGET = 8000
"""Characters per tool result by default: about 2,000 tokens."""

OUTPUT_DIR = ".e2b-tools/outputs"
"""Where, under the workspace, outputs over budget are saved in full."""

_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
}
_BIG_FILE = 1 << 20  # read files above this size line-range by line-range in the sandbox

TOOL_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""What OpenAI's and Anthropic's tool APIs accept as a tool (function) name."""


class Artifact(BaseModel):
    """Something a tool produced that is not text for the model, e.g. a chart."""

    name: str
    """File-like name, e.g. ``figure-1.png``."""
    mime_type: str
    """MIME type, e.g. ``image/png``."""
    data: str
    """Content, base64-encoded."""


class ToolOutput(BaseModel):
    """What a tool gives back: text for the model, artifacts for the application."""

    text: str
    """Shaped to the toolkit's budget; never raw binary or base64 images."""
    artifacts: list[Artifact] = Field(default_factory=list)
    """Images and other binary outputs."""
    is_error: bool = False
    """True when the call failed (bad arguments, error in the code, non-zero exit...);
    ``artifacts`` still holds what was made before the failure (a chart shown before
    an exception, for instance)."""


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunCodeInput(_Input):
    """Arguments of ``run_code``."""

    code: str = Field(min_length=1, description="Source code to run.")
    language: str = Field(
        default="python",
        description=(
            "python, javascript, typescript or bash (each keeps its own state); c, cpp and, "
            "in the full image, java, go, rust, ruby, r run as fresh programs."
        ),
    )
    timeout: float | None = Field(
        default=None, gt=0, le=3600, description="Seconds before the code is interrupted (300)."
    )


class RunShellInput(_Input):
    """Arguments of ``run_shell``."""

    command: str = Field(min_length=1, description="Bash command line to run.")
    cwd: str | None = Field(default=None, description="Working directory (workspace-relative).")
    timeout: float | None = Field(
        default=None, gt=0, le=3600, description="Seconds before the command is killed (60)."
    )


class ReadFileInput(_Input):
    """Arguments of ``read_file``."""

    path: str = Field(min_length=1, description="File to read (workspace-relative or absolute).")
    offset: int | None = Field(default=None, ge=1, description="First line to show (1-based).")
    limit: int | None = Field(default=None, ge=1, le=5000, description="Number of lines.")


class WriteFileInput(_Input):
    """Arguments of ``write_file``."""

    path: str = Field(min_length=1, description="File to write (workspace-relative or absolute).")
    content: str = Field(description="Full text to write.")
    append: bool = Field(default=False, description="Append instead of replacing the file.")


class ListFilesInput(_Input):
    """Arguments of ``list_files``."""

    path: str = Field(default=".", description="Directory to list (workspace-relative).")
    depth: int = Field(default=1, ge=1, le=5, description="Levels to descend.")


InputT = TypeVar("InputT", bound=_Input)


class ToolError(SandboxError):
    """A failure to report to the model as text (the model can act on it), with the
    artifacts made before it."""

    def __init__(self, message: str, *, artifacts: list[Artifact] | None = None) -> None:
        super().__init__(message)
        self.artifacts = artifacts or []


def validation_message(name: str, exc: ValidationError) -> str:
    """A validation error as instructions the model can follow."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        problems.append(f"- {where}: {err['msg']}")
    return f"Invalid arguments for {name}:\n" + "\n".join(problems) + "\nFix them and call again."


class SandboxTool(ABC, Generic[InputT]):
    """Base of the tools: validation, error-to-text and the output budget."""

    name: str
    """The name the model calls: the tool's own name on the class, with the toolkit's
    ``name_prefix`` on an instance (``sbx_run_code``)."""
    template: ClassVar[str]
    """The description, with ``{workspace}``, ``{network}`` and ``{packages}`` to fill,
    and the tools' own names (``{read_file}``...) for the names the model sees."""
    description: str
    """For the model: the template filled for the default sandbox on the class, for the
    toolkit's own sandbox on an instance."""
    input_model: ClassVar[type[_Input]]

    def __init__(
        self, session: SandboxSession, budget: int = DEFAULT_BUDGET, name_prefix: str = ""
    ) -> None:
        self.session = session
        self.budget = budget
        self.name_prefix = name_prefix
        self.name = name_prefix + type(self).name
        self.description = self.describe(session.config, name_prefix)

    @property
    def base_name(self) -> str:
        """The tool's own name, without the toolkit's prefix (``run_code``)."""
        return type(self).name

    @classmethod
    def describe(cls, config: SandboxConfig, name_prefix: str = "") -> str:
        """The description for a sandbox with this configuration, naming the other
        tools as the model sees them (with ``name_prefix``)."""
        names = {tool.name: name_prefix + tool.name for tool in ALL_TOOLS}
        return cls.template.format(**facts(config), **names)

    def tool_name(self, base_name: str) -> str:
        """The name the model sees for another tool of this toolkit."""
        return self.name_prefix + base_name

    def json_schema(self) -> dict[str, Any]:
        """JSON schema of the arguments (for function-calling APIs)."""
        schema = self.input_model.model_json_schema()
        schema.pop("title", None)
        schema.pop("description", None)
        return schema

    def run(
        self, arguments: Mapping[str, Any] | BaseModel | None = None, /, **kwargs: Any
    ) -> ToolOutput:
        """Run the tool (blocking).

        Failures the model can act on come back as error text (``is_error=True``).

        Raises:
            EngineError: The Docker Engine failed (not answering, image missing); the
                operator must act, so it is never turned into text for the model.
        """
        return self.session.call_sync(self._call(arguments, kwargs))

    async def arun(
        self, arguments: Mapping[str, Any] | BaseModel | None = None, /, **kwargs: Any
    ) -> ToolOutput:
        """Run the tool; failures and exceptions as in :meth:`run`."""
        return await self.session.call(self._call(arguments, kwargs))

    async def _call(
        self, arguments: Mapping[str, Any] | BaseModel | None, kwargs: dict[str, Any]
    ) -> ToolOutput:
        try:
            if isinstance(arguments, BaseModel):
                raw: dict[str, Any] = arguments.model_dump()
            else:
                raw = dict(arguments or {})
            raw.update(kwargs)
            args = self.input_model.model_validate(raw)
        except ValidationError as exc:
            return ToolOutput(text=validation_message(self.name, exc), is_error=True)
        except (TypeError, ValueError) as exc:
            return ToolOutput(text=f"Invalid arguments for {self.name}: {exc}", is_error=True)
        try:
            sbx = await self.session.get()
            output = await self._execute(sbx, args)  # type: ignore[arg-type]
        except EngineError:
            raise  # the operator's to fix, not the model's: see docs/errors.md
        except ToolError as exc:
            output = ToolOutput(text=str(exc), artifacts=exc.artifacts, is_error=True)
        except SandboxTimeoutError as exc:
            output = ToolOutput(text=f"Timed out: {exc.message}", is_error=True)
        except SandboxGoneError as exc:
            output = ToolOutput(
                text=(
                    f"The sandbox stopped during this call ({exc.message}). The next call "
                    "starts a new sandbox; earlier state will be gone."
                ),
                is_error=True,
            )
        except NotFoundError as exc:
            output = ToolOutput(text=f"Not found: {exc.message}", is_error=True)
        except (InvalidArgumentError, SandboxFileError) as exc:
            output = ToolOutput(text=f"Error: {exc.message}", is_error=True)
        except SandboxError as exc:
            output = ToolOutput(text=f"Sandbox error: {exc.message}", is_error=True)
        except Exception as exc:
            output = ToolOutput(
                text=f"Internal error in {self.name}: {type(exc).__name__}: {exc}", is_error=True
            )
        notice = self.session.take_notice()
        if notice:
            output.text = f"{notice}\n\n{output.text}"
        return output

    @abstractmethod
    async def _execute(self, sbx: AsyncSandbox, args: InputT) -> ToolOutput: ...

    # -- helpers -------------------------------------------------------------------
    def resolve(self, path: str) -> str:
        """An absolute sandbox path inside the workspace, or a :class:`ToolError`."""
        workspace = self.session.workspace
        full = posixpath.normpath(posixpath.join(workspace, path.replace("~", workspace, 1)))
        if full != workspace and not full.startswith(workspace.rstrip("/") + "/"):
            raise ToolError(
                f"Error: {path!r} is outside the workspace {workspace}. Use a path under "
                f"{workspace} (relative paths are resolved there)."
            )
        return full

    def timed_out(self, message: str, log: BoundedText) -> ToolError:
        """The error for a call that timed out, with the output it printed before."""
        partial = log.text()
        before = shape(partial, self.budget // 2).text if partial else ""
        return ToolError(message + (f"\n[output before the timeout]\n{before}" if before else ""))

    def save_output(self) -> SaveOutput:
        """Where the sandbox saves this call's whole output if it passes the budget."""
        name = f"{self.name}-{self.session.next_output_id()}.log"
        return SaveOutput(
            path=f"{self.session.workspace}/{OUTPUT_DIR}/{name}", threshold=self.budget
        )


# Reads are safe to repeat: if the stream dropped, the sandbox re-attaches before the
# second attempt; if the sandbox is gone, the second attempt fails the same way.
_retry_reads = tenacity.retry(
    retry=tenacity.retry_if_exception_type(SandboxGoneError),
    stop=tenacity.stop_after_attempt(2),
    reraise=True,
)


async def _run_command(sbx: AsyncSandbox, command: str, **kwargs: Any) -> CommandResult:
    """``commands.run`` that returns a non-zero exit instead of raising it."""
    try:
        result: CommandResult = await sbx.commands.run(command, **kwargs)
    except CommandExitError as exc:
        return exc.result
    return result


class RunCode(SandboxTool[RunCodeInput]):
    name = "run_code"
    template = (
        "Run Python code in a persistent sandbox session (like a Jupyter notebook): "
        "variables, imports and files persist between calls. The value of the last "
        "expression is returned, along with printed output and any error with its "
        "traceback. {packages}; plt.show() (or a figure "
        "left open) returns the chart as an image. The working directory "
        "is the workspace {workspace}. Default timeout 300 s (max 3600). {network} "
        "Long output is cut to its head and tail and saved in full to a file you "
        "can page with {read_file}."
    )
    input_model = RunCodeInput

    async def _execute(self, sbx: AsyncSandbox, args: RunCodeInput) -> ToolOutput:
        log = BoundedText(self.budget * 4)
        timeout = args.timeout or 300.0
        try:
            execution = await sbx.run_code(
                args.code,
                args.language,
                timeout=timeout,
                on_stdout=log.add,
                on_stderr=log.add,
                save_output=self.save_output(),
            )
        except SandboxTimeoutError as exc:
            state = "kept" if exc.state_kept else "lost (the session was restarted)"
            error = self.timed_out(
                f"Timed out after {timeout:g}s: the code was interrupted; session state was "
                f"{state}. Pass a larger timeout (up to 3600) or make the code faster.",
                log,
            )
            # Charts shown before the timeout are kept, as after any other error.
            results = exc.execution.results if exc.execution is not None else []
            error.artifacts = [
                Artifact(name=f"figure-{i}.png", mime_type="image/png", data=r.png)
                for i, r in enumerate(results, 1)
                if r.png
            ]
            raise error from None
        saved = execution.saved_output
        parts: list[str] = []
        artifacts: list[Artifact] = []
        out = log.text()
        if out:
            shaped = shape(
                out,
                self.budget * 3 // 4,
                saved_path=saved.path if saved else None,
                total_lines=saved.lines if saved else None,
                total_bytes=saved.bytes if saved else None,
                reader=self.tool_name("read_file"),
            )
            parts.append(f"[output]\n{shaped.text.rstrip()}")
        for i, result in enumerate(execution.results, 1):
            if result.png:
                artifacts.append(
                    Artifact(name=f"figure-{i}.png", mime_type="image/png", data=result.png)
                )
                parts.append(f"[image figure-{i}.png returned as an artifact]")
            if result.text is not None and not (result.png and result.text.startswith("<Figure")):
                label = "[result]" if result.is_main_result else "[display]"
                parts.append(f"{label}\n{shape(result.text, self.budget // 4).text}")
        if execution.error is not None:
            err = execution.error
            frames = err.traceback.strip().splitlines()[-12:]
            tb = "\n".join(frames)
            parts.append(
                f"[error] {err.name}: {err.value}"
                + (f"\n{shape(tb, self.budget // 4).text}" if tb else "")
            )
        text = "\n".join(parts) if parts else "(no output)"
        return ToolOutput(text=text, artifacts=artifacts, is_error=execution.error is not None)


class RunShell(SandboxTool[RunShellInput]):
    name = "run_shell"
    template = (
        "Run a bash command in the sandbox and get its combined stdout/stderr and exit "
        "code. Use it for files, processes and command-line tools (ls, grep, python3 "
        "script.py, ...). Runs in {workspace} unless cwd is given; stdin is closed, so "
        "interactive programs will not wait for input. Default timeout 60 s (max 3600). "
        "{network} Long output is cut to its head and tail and saved in full to "
        "a file you can page with {read_file}."
    )
    input_model = RunShellInput

    async def _execute(self, sbx: AsyncSandbox, args: RunShellInput) -> ToolOutput:
        cwd = self.resolve(args.cwd) if args.cwd else None
        log = BoundedText(self.budget * 4)
        timeout = args.timeout or 60.0
        try:
            result = await _run_command(
                sbx,
                args.command,
                cwd=cwd,
                timeout=timeout,
                on_stdout=log.add,
                on_stderr=log.add,
                save_output=self.save_output(),
            )
        except SandboxTimeoutError:
            raise self.timed_out(
                f"Timed out after {timeout:g}s: the command and its child processes were "
                "killed. Pass a larger timeout (up to 3600), or run long jobs in the "
                "background with nohup ... & and poll their output.",
                log,
            ) from None
        saved = result.saved_output
        shaped = shape(
            log.text(),
            self.budget - 40,
            saved_path=saved.path if saved else None,
            total_lines=saved.lines if saved else None,
            total_bytes=saved.bytes if saved else None,
            reader=self.tool_name("read_file"),
        )
        body = shaped.text.rstrip("\n") or "(no output)"
        return ToolOutput(
            text=f"{body}\n[exit code: {result.exit_code}]", is_error=result.exit_code != 0
        )


class ReadFile(SandboxTool[ReadFileInput]):
    name = "read_file"
    template = (
        "Read a text file from the sandbox workspace, with line numbers. For long files "
        "or saved outputs, pass offset (first line, 1-based) and limit (number of lines) "
        "to page through it. Images (png, jpg, gif) are returned as artifacts; other "
        "binary files are summarised. Paths are relative to {workspace}."
    )
    input_model = ReadFileInput

    @_retry_reads
    async def _execute(self, sbx: AsyncSandbox, args: ReadFileInput) -> ToolOutput:
        path = self.resolve(args.path)
        info = await sbx.files.get_info(path)
        if info.type == FileType.DIR:
            raise ToolError(
                f"Error: {args.path} is a directory; use {self.tool_name('list_files')} to "
                "see inside it."
            )
        ext = posixpath.splitext(path)[1].lower()
        if ext in _IMAGE_TYPES and info.size <= 20 * _BIG_FILE:
            data = await sbx.files.read(path, format="bytes")
            name = posixpath.basename(path)
            return ToolOutput(
                text=f"[image {name}, {human_size(len(data))}, returned as an artifact]",
                artifacts=[
                    Artifact(
                        name=name, mime_type=_IMAGE_TYPES[ext], data=base64.b64encode(data).decode()
                    )
                ],
            )
        start = args.offset or 1
        if info.size > _BIG_FILE:
            return await self._read_big(sbx, path, args, start)
        data = await sbx.files.read(path, format="bytes")
        if is_binary(data):
            return ToolOutput(
                text=(
                    f"{args.path}: {describe_binary(data)}. Not shown; inspect it with "
                    f"{self.tool_name('run_code')}."
                )
            )
        lines = data.decode("utf-8", "replace").splitlines()
        return self._render(args.path, lines[start - 1 :], start, len(lines), args.limit)

    async def _read_big(
        self, sbx: AsyncSandbox, path: str, args: ReadFileInput, start: int
    ) -> ToolOutput:
        limit = args.limit or 200
        q = shlex.quote(path)
        result = await _run_command(
            sbx,
            f"[ \"$(head -c 8192 {q} | tr -dc '\\000' | wc -c)\" -gt 0 ] && echo BINARY; "
            f"wc -l < {q}; sed -n '{start},{start + limit - 1}p;{start + limit}q' {q}",
            timeout=60,
        )
        out = result.stdout
        if out.startswith("BINARY\n"):
            return ToolOutput(
                text=(
                    f"{args.path}: binary file, not shown; inspect it with "
                    f"{self.tool_name('run_code')}."
                )
            )
        total_s, _, body = out.partition("\n")
        total = int(total_s.strip() or 0)
        lines = body.splitlines()
        return self._render(args.path, lines, start, total, limit)

    def _render(
        self, shown_path: str, lines: list[str], start: int, total: int, limit: int | None
    ) -> ToolOutput:
        if start > max(total, 1):
            raise ToolError(
                f"Error: offset {start} is past the end of {shown_path} ({total} lines)."
            )
        if limit is not None:
            lines = lines[:limit]
        out: list[str] = []
        used = 0
        room = self.budget - 200
        for n, line in enumerate(lines, start):
            if len(line) > room // 2:
                line = line[: room // 2] + f" [... {len(line) - room // 2} more characters]"
            row = f"{n:6d}\t{line}"
            if used + len(row) + 1 > room and out:
                break
            out.append(row)
            used += len(row) + 1
        end = start + len(out) - 1
        footer = f"[{shown_path}: lines {start}-{end} of {total}"
        if end < total:
            footer += f"; continue with offset={end + 1}"
        footer += "]"
        if not out:
            return ToolOutput(text=f"[{shown_path} is empty]")
        return ToolOutput(text="\n".join(out) + "\n" + footer)


class WriteFile(SandboxTool[WriteFileInput]):
    name = "write_file"
    template = (
        "Write a text file in the sandbox workspace, creating parent directories. "
        "Replaces the file unless append is true. Paths are relative to {workspace}."
    )
    input_model = WriteFileInput

    async def _execute(self, sbx: AsyncSandbox, args: WriteFileInput) -> ToolOutput:
        path = self.resolve(args.path)
        info = await sbx.files.write(path, args.content, append=args.append)
        verb = "Appended to" if args.append else "Wrote"
        return ToolOutput(text=f"{verb} {info.path} ({human_size(info.size)} now).")


class ListFiles(SandboxTool[ListFilesInput]):
    name = "list_files"
    template = (
        "List files and directories in the sandbox workspace with their sizes. Use depth "
        "to descend into subdirectories (max 5). Paths are relative to {workspace}."
    )
    input_model = ListFilesInput

    @_retry_reads
    async def _execute(self, sbx: AsyncSandbox, args: ListFilesInput) -> ToolOutput:
        root = self.resolve(args.path)
        entries = await sbx.files.list(root, depth=args.depth)
        entries = [e for e in entries if "/.e2b-tools" not in e.path]
        if not entries:
            return ToolOutput(text=f"{root} is empty.")
        rows: list[str] = []
        used = 0
        for i, entry in enumerate(entries):
            row = _entry_row(entry, root)
            if used + len(row) > self.budget - 120:
                rows.append(f"[... {len(entries) - i} more entries; list a subdirectory]")
                break
            rows.append(row)
            used += len(row) + 1
        return ToolOutput(text=f"{root}:\n" + "\n".join(rows))


def _entry_row(entry: EntryInfo, root: str) -> str:
    rel = posixpath.relpath(entry.path, root)
    if entry.type == FileType.DIR:
        return f"dir   {'':>10}  {rel}/"
    return f"file  {human_size(entry.size):>10}  {rel}"


ALL_TOOLS: tuple[type[SandboxTool[Any]], ...] = (RunCode, RunShell, ReadFile, WriteFile, ListFiles)
for _tool in ALL_TOOLS:
    _tool.description = _tool.describe(SandboxConfig())
