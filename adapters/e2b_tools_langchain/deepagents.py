"""A Deep Agents backend: a deep agent's file and shell tools, run in an e2b-tools sandbox.

Example:
    >>> from deepagents import create_deep_agent
    >>> from e2b_tools_langchain import E2BToolsSandbox
    >>> with E2BToolsSandbox.create() as backend:  # doctest: +SKIP
    ...     agent = create_deep_agent(model="openai:gpt-5", backend=backend)
    ...     agent.invoke({"messages": [{"role": "user", "content": "Plot sin(x)"}]})

Coming from ``langchain_e2b``, ``E2BSandbox(sandbox=e2b.Sandbox.create())`` becomes
``E2BToolsSandbox(sandbox=e2b_tools.Sandbox.create())``.

File operations go through the sandbox agent's file API (``sandbox.files``) and
``execute`` through ``sandbox.commands.run``: no ``docker exec`` and no helper process
per call. ``edit``, ``grep`` and ``glob`` run Deep Agents' own server-side scripts
through ``execute``, so they behave exactly as on every other Deep Agents sandbox.
"""

from __future__ import annotations

import asyncio
import shlex
from typing import Any, Literal, TypeVar

try:
    from deepagents.backends.protocol import (
        INVALID_PATH,
        IS_DIRECTORY,
        DeleteResult,
        ExecuteResponse,
        FileDownloadResponse,
        FileUploadResponse,
        GlobResult,
        LsResult,
        ReadResult,
        WriteResult,
    )
    from deepagents.backends.sandbox import (
        MAX_BINARY_BYTES,
        BaseSandbox,
    )
    from deepagents.backends.utils import EMPTY_CONTENT_WARNING
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "E2BToolsSandbox needs Deep Agents: pip install 'e2b-tools[deepagents]'"
    ) from exc

# The same head-and-tail bound the core applies to each output stream; same package.
from e2b_tools import (
    AsyncSandbox,
    BoundedText,
    CommandExitError,
    FileType,
    InvalidArgumentError,
    LoopBridge,
    NotFoundError,
    Sandbox,
    SandboxError,
    SandboxTimeoutError,
)

from ._deepagents_results import (
    _RELATIVE_GLOB_SCRIPT,
    _SNIFF_SCRIPT,
    TIMEOUT_EXIT_CODE,
    _bad_path,
    _binary_by_name,
    _binary_result,
    _binary_too_big,
    _dir_error,
    _file_data,
    _file_error,
    _file_info,
    _is_utf8,
    _page_text,
    _parse_relative_glob,
)

__all__ = ["DEFAULT_COMMAND_TIMEOUT", "E2BToolsSandbox", "GlobPaths"]

T = TypeVar("T")

DEFAULT_COMMAND_TIMEOUT = 30 * 60
"""Seconds ``execute`` lets a command run when the caller gives no timeout (as
``langchain_e2b`` and Deep Agents' LangSmith sandbox do)."""

GlobPaths = Literal["absolute", "relative"]
"""What ``glob`` returns: see :class:`E2BToolsSandbox`."""

# Text files up to this size are fetched whole and paged on the host (one request, no
# process in the sandbox); bigger ones are paged in the sandbox so a page of a huge log
# does not cost the whole file.
_WHOLE_READ_LIMIT = 2 * 1024 * 1024
# Like Deep Agents: a file is text when its first 8 KiB decode as UTF-8.
_SNIFF_BYTES = 8192
_UPLOAD_CONCURRENCY = 8
_GLOB_MAX_MATCHES = 10_000
_GLOB_TIME_BUDGET = 5.0
_GLOB_COMMAND_TIMEOUT = 60


class E2BToolsSandbox(BaseSandbox):
    """Deep Agents' ``SandboxBackendProtocol`` on an e2b-tools sandbox.

    Give it a sandbox you made (``Sandbox`` or ``AsyncSandbox``; you kill it), or let
    :meth:`create` / :meth:`acreate` make one that :meth:`close` (or ``with``) kills.
    Both the sync and the async methods work with either kind: every call runs on the
    event loop the sandbox's connection lives on (the library's background loop for a
    ``Sandbox``), so a sync method must not be called from that loop itself.

    Failures the protocol can express come back as results, never as exceptions:
    ``download_files``/``upload_files`` use its codes (``file_not_found``,
    ``is_directory``, ``permission_denied``, ``invalid_path``), ``read``, ``write``,
    ``ls`` and ``delete`` put them in ``error``, and ``execute`` returns the exit code
    (``124`` after a timeout). A relative path is ``invalid_path``: the protocol takes
    absolute ones. An engine that is gone raises ``e2b_tools.EngineError`` (naming the
    engine address and the fix) and a sandbox that stopped ``SandboxGoneError``: no
    retry by the model can fix either (``docs/errors.md``).

    Args:
        sandbox: The sandbox to run in.
        workdir: Working directory of ``execute`` (default: the sandbox's workspace,
            ``/home/user``).
        timeout: Default ``execute`` timeout in seconds; ``0`` or ``None``: no limit.
        overwrite: Whether ``write`` replaces an existing file, as Deep Agents 0.7
            documents (and its ``write_file`` tool tells the model). ``False`` makes
            ``write`` refuse existing files, the contract before 0.7 that LangChain's
            standard sandbox suite (``langchain-tests`` 1.1.9) still checks.
        glob_paths: ``"absolute"``: Deep Agents 0.7's ``glob``, absolute paths of
            regular files (its ``FilesystemMiddleware`` checks ``deny`` rules against
            them). ``"relative"``: the contract before 0.7 that the standard suite
            still checks, Python's ``glob.glob(pattern, recursive=True)`` from the
            search root: paths relative to it, directories included. Permission rules
            cannot see relative paths; use it only without them.

    Example:
        >>> import e2b_tools
        >>> with e2b_tools.Sandbox.create() as sbx:  # doctest: +SKIP
        ...     backend = E2BToolsSandbox(sandbox=sbx)
        ...     backend.execute("echo hi").output
        'hi\\n'
    """

    def __init__(
        self,
        sandbox: Sandbox | AsyncSandbox,
        *,
        workdir: str | None = None,
        timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        overwrite: bool = True,
        glob_paths: GlobPaths = "absolute",
    ) -> None:
        if isinstance(sandbox, Sandbox):
            inner = sandbox.async_sandbox
        elif isinstance(sandbox, AsyncSandbox):
            inner = sandbox
        else:
            raise TypeError(
                "sandbox must be an e2b_tools.Sandbox or AsyncSandbox, "
                f"not {type(sandbox).__name__}"
            )
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout}")
        if glob_paths not in ("absolute", "relative"):
            raise ValueError(f"glob_paths must be 'absolute' or 'relative', not {glob_paths!r}")
        self._sandbox = sandbox
        self._inner = inner
        self._bridge = LoopBridge(inner.loop)
        self._workdir = workdir or inner.config.workdir
        self._timeout = timeout or None
        self._overwrite = overwrite
        self._glob_paths = glob_paths
        self._owned = False

    # -- lifecycle -----------------------------------------------------------------
    @classmethod
    def create(
        cls,
        *,
        workdir: str | None = None,
        command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        overwrite: bool = True,
        glob_paths: GlobPaths = "absolute",
        **sandbox_kwargs: Any,
    ) -> E2BToolsSandbox:
        """Start a sandbox and wrap it; :meth:`close` kills it.

        ``sandbox_kwargs`` go to :meth:`e2b_tools.Sandbox.create` (``image``,
        ``timeout`` as the sandbox's lifetime, ``envs``, ``network``, ``config``...);
        ``command_timeout`` is the backend's ``timeout``.

        Example:
            >>> with E2BToolsSandbox.create(timeout=900) as backend:  # doctest: +SKIP
            ...     backend.execute("python3 --version").exit_code
            0
        """
        sandbox = Sandbox.create(**sandbox_kwargs)
        try:
            backend = cls(
                sandbox,
                workdir=workdir,
                timeout=command_timeout,
                overwrite=overwrite,
                glob_paths=glob_paths,
            )
        except BaseException:
            sandbox.kill()
            raise
        backend._owned = True
        return backend

    @classmethod
    async def acreate(
        cls,
        *,
        workdir: str | None = None,
        command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        overwrite: bool = True,
        glob_paths: GlobPaths = "absolute",
        **sandbox_kwargs: Any,
    ) -> E2BToolsSandbox:
        """Async :meth:`create`: an ``AsyncSandbox`` on the running event loop."""
        sandbox = await AsyncSandbox.create(**sandbox_kwargs)
        try:
            backend = cls(
                sandbox,
                workdir=workdir,
                timeout=command_timeout,
                overwrite=overwrite,
                glob_paths=glob_paths,
            )
        except BaseException:
            await sandbox.kill()
            raise
        backend._owned = True
        return backend

    @property
    def id(self) -> str:
        """The sandbox's id (``e2b_tools.Sandbox.connect`` takes it)."""
        return self._inner.sandbox_id

    @property
    def sandbox(self) -> Sandbox | AsyncSandbox:
        """The sandbox this backend runs in, as it was given."""
        return self._sandbox

    def close(self) -> None:
        """Kill the sandbox if :meth:`create` made it (one you gave is left alone)."""
        if self._owned:
            self._bridge.run(self._inner.kill())

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        if self._owned:
            await self._bridge.arun(self._inner.kill())

    def kill(self) -> bool:
        """Kill the sandbox, whoever made it; False if it was already gone."""
        return self._bridge.run(self._inner.kill())

    async def akill(self) -> bool:
        """Async :meth:`kill`."""
        return await self._bridge.arun(self._inner.kill())

    def __enter__(self) -> E2BToolsSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> E2BToolsSandbox:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<E2BToolsSandbox {self.id}>"

    # -- execute -------------------------------------------------------------------
    def execute(self, command: str, *, timeout: float | None = None) -> ExecuteResponse:
        """Run a bash command in ``workdir``; stdout and stderr come back interleaved.

        Args:
            command: The command line.
            timeout: Seconds before the command and its children are killed (exit code
                124); ``None``: the backend's default; ``0``: no limit.

        Raises:
            ValueError: ``timeout`` is negative.
        """
        return self._bridge.run(self._execute(command, timeout))

    async def aexecute(self, command: str, *, timeout: float | None = None) -> ExecuteResponse:
        """Async :meth:`execute`."""
        return await self._bridge.arun(self._execute(command, timeout))

    async def _execute(self, command: str, timeout: float | None) -> ExecuteResponse:
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds, not {timeout}")
        limit = self._timeout if timeout is None else (timeout or None)
        if not command.strip():
            return ExecuteResponse(output="", exit_code=0)
        # One log for both streams keeps their lines in the order they were written.
        log = BoundedText(self._inner.config.output_limit)
        # Deep Agents bounds async grep and glob with asyncio timeouts, and a cancelled
        # run cancels its tools: cancelling commands.run kills the command as well.
        try:
            result = await self._inner.commands.run(
                command, cwd=self._workdir, timeout=limit, on_stdout=log.add, on_stderr=log.add
            )
            exit_code = result.exit_code
        except CommandExitError as exc:
            exit_code = exc.exit_code
        except SandboxTimeoutError as exc:
            if exc.result is None or limit is None:
                raise  # the agent stopped answering: not the command's doing
            note = f"\n[command timed out after {limit:g}s; it and its child processes were killed]"
            return ExecuteResponse(
                output=log.text() + note, exit_code=TIMEOUT_EXIT_CODE, truncated=log.dropped > 0
            )
        except InvalidArgumentError as exc:  # workdir is not a directory
            return ExecuteResponse(output=f"Error: {exc.message}", exit_code=None)
        return ExecuteResponse(output=log.text(), exit_code=exit_code, truncated=log.dropped > 0)

    # -- read ----------------------------------------------------------------------
    def read(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        """Read lines ``offset`` (0-based) to ``offset + limit`` of a file.

        Text comes back raw (the middleware numbers the lines) with CRLF and CR turned
        into LF, at most about 500 KiB per page (then ``TRUNCATION_MSG`` and a
        ``next_offset`` to continue from). Binary files (by extension, or when their
        first 8 KiB are not UTF-8) come back whole as base64, up to 500 KiB.
        """
        return self._bridge.run(self._read(file_path, offset, limit))

    async def aread(self, file_path: str, offset: int = 0, limit: int = 2000) -> ReadResult:
        """Async :meth:`read`."""
        return await self._bridge.arun(self._read(file_path, offset, limit))

    async def _read(self, file_path: str, offset: int, limit: int) -> ReadResult:
        if _bad_path(file_path):
            return ReadResult(error=f"File '{file_path}': {INVALID_PATH}")
        try:
            info = await self._inner.files.get_info(file_path)
        except SandboxError as exc:
            return ReadResult(error=f"File '{file_path}': {_file_error(exc)}")
        if info.type == FileType.DIR:
            return ReadResult(error=f"File '{file_path}': {IS_DIRECTORY}")
        binary_name = _binary_by_name(file_path)
        if binary_name and info.size > MAX_BINARY_BYTES:
            return _binary_too_big(file_path)
        if not binary_name and info.size > _WHOLE_READ_LIMIT:
            return await self._read_big(file_path, offset, limit)
        try:
            data = await self._inner.files.read(file_path, format="bytes")
        except SandboxError as exc:
            return ReadResult(error=f"File '{file_path}': {_file_error(exc)}")
        if not data:
            return ReadResult(file_data=_file_data(EMPTY_CONTENT_WARNING))
        if binary_name or not _is_utf8(data[:_SNIFF_BYTES]):
            return _binary_result(file_path, data)
        # One bad byte further on should not hide a whole log from the model.
        return _page_text(file_path, data.decode("utf-8", errors="replace"), offset, limit)

    async def _read_big(self, file_path: str, offset: int, limit: int) -> ReadResult:
        sniff = await self._execute(
            f"head -c {_SNIFF_BYTES} {shlex.quote(file_path)} | python3 -c "
            f"{shlex.quote(_SNIFF_SCRIPT)}",
            60,
        )
        if sniff.exit_code == 3:  # binary, and bigger than a preview may be
            return _binary_too_big(file_path)
        return await super().aread(file_path, offset, limit)

    # -- write, upload, download -----------------------------------------------------
    def write(self, file_path: str, content: str) -> WriteResult:
        """Write a UTF-8 text file, creating parent directories.

        An existing file is replaced (atomically), or refused with ``overwrite=False``.
        """
        return self._bridge.run(self._write(file_path, content))

    async def awrite(self, file_path: str, content: str) -> WriteResult:
        """Async :meth:`write`."""
        return await self._bridge.arun(self._write(file_path, content))

    async def _write(self, file_path: str, content: str) -> WriteResult:
        if not self._overwrite and not _bad_path(file_path):
            try:
                exists = await self._inner.files.exists(file_path)
            except SandboxError as exc:
                return WriteResult(error=f"Failed to write file '{file_path}': {_file_error(exc)}")
            if exists:
                return WriteResult(
                    error=(
                        f"Cannot write '{file_path}': it already exists. Edit it instead, "
                        "or delete it first."
                    )
                )
        error = await self._upload_one(file_path, content.encode("utf-8"))
        if error is not None:
            return WriteResult(error=f"Failed to write file '{file_path}': {error}")
        return WriteResult(path=file_path)

    def upload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        """Write files (bytes) into the sandbox, creating parent directories.

        Existing files are replaced. One response per file, in order; a failed file
        does not stop the others.
        """
        return self._bridge.run(self._upload(files))

    async def aupload_files(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        """Async :meth:`upload_files`."""
        return await self._bridge.arun(self._upload(files))

    async def _upload(self, files: list[tuple[str, bytes]]) -> list[FileUploadResponse]:
        gate = asyncio.Semaphore(_UPLOAD_CONCURRENCY)

        async def one(path: str, content: bytes) -> FileUploadResponse:
            async with gate:
                return FileUploadResponse(path=path, error=await self._upload_one(path, content))

        return list(await asyncio.gather(*(one(path, content) for path, content in files)))

    async def _upload_one(self, path: str, content: bytes) -> str | None:
        if _bad_path(path):
            return INVALID_PATH
        try:
            await self._inner.files.write(path, content)
        except SandboxError as exc:
            return _file_error(exc)
        return None

    def download_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        """Read files (bytes) from the sandbox: one response per path, in order."""
        return self._bridge.run(self._download(paths))

    async def adownload_files(self, paths: list[str]) -> list[FileDownloadResponse]:
        """Async :meth:`download_files`."""
        return await self._bridge.arun(self._download(paths))

    async def _download(self, paths: list[str]) -> list[FileDownloadResponse]:
        gate = asyncio.Semaphore(_UPLOAD_CONCURRENCY)

        async def one(path: str) -> FileDownloadResponse:
            if _bad_path(path):
                return FileDownloadResponse(path=path, error=INVALID_PATH)
            async with gate:
                try:
                    data = await self._inner.files.read(path, format="bytes")
                except SandboxError as exc:
                    return FileDownloadResponse(path=path, error=_file_error(exc))
            return FileDownloadResponse(path=path, content=data)

        return list(await asyncio.gather(*(one(path) for path in paths)))

    # -- ls, delete ----------------------------------------------------------------
    def ls(self, path: str) -> LsResult:
        """The entries of a directory: absolute ``path``, ``is_dir``, ``size``,
        ``modified_at`` (symlinks to directories count as directories)."""
        return self._bridge.run(self._ls(path))

    async def als(self, path: str) -> LsResult:
        """Async :meth:`ls`."""
        return await self._bridge.arun(self._ls(path))

    async def _ls(self, path: str) -> LsResult:
        if _bad_path(path):
            return LsResult(error=f"Path '{path}': {INVALID_PATH}")
        try:
            entries = await self._inner.files.list(path)
        except SandboxError as exc:
            return LsResult(error=f"Path '{path}': {_dir_error(exc)}")
        return LsResult(entries=[_file_info(entry) for entry in entries])

    def delete(self, file_path: str) -> DeleteResult:
        """Delete a file, or a directory with everything in it."""
        return self._bridge.run(self._delete(file_path))

    async def adelete(self, file_path: str) -> DeleteResult:
        """Async :meth:`delete`."""
        return await self._bridge.arun(self._delete(file_path))

    async def _delete(self, file_path: str) -> DeleteResult:
        if _bad_path(file_path):
            return DeleteResult(error=f"Error deleting '{file_path}': {INVALID_PATH}")
        try:
            # remove() of a missing path succeeds, as in E2B; the protocol wants to know.
            if not await self._inner.files.exists(file_path):
                return DeleteResult(error=f"Error: '{file_path}' not found")
            await self._inner.files.remove(file_path)
        except NotFoundError:
            return DeleteResult(error=f"Error: '{file_path}' not found")
        except SandboxError as exc:
            return DeleteResult(error=f"Error deleting '{file_path}': {_file_error(exc)}")
        return DeleteResult(path=file_path)

    # -- glob ----------------------------------------------------------------------
    def glob(self, pattern: str, path: str | None = None) -> GlobResult:
        """Files matching ``pattern`` under ``path`` (default ``/``); see ``glob_paths``."""
        if self._glob_paths == "absolute":
            return super().glob(pattern, path)
        return self._bridge.run(self._glob_relative(pattern, path))

    async def aglob(self, pattern: str, path: str | None = None) -> GlobResult:
        """Async :meth:`glob`."""
        if self._glob_paths == "absolute":
            return await super().aglob(pattern, path)
        return await self._bridge.arun(self._glob_relative(pattern, path))

    async def _glob_relative(self, pattern: str, path: str | None) -> GlobResult:
        root = path or "/"
        if _bad_path(root):
            return GlobResult(error=f"Path '{root}': {INVALID_PATH}")
        # A leading / anchors at the root (as in 0.7); .. would leave it.
        pattern = pattern.lstrip("/")
        if ".." in pattern.replace("\\", "/").split("/"):
            return GlobResult(error=f"Path '{root}': invalid_pattern (no '..' segments)")
        response = await self._execute(
            f"python3 -c {shlex.quote(_RELATIVE_GLOB_SCRIPT)} {shlex.quote(root)} "
            f"{shlex.quote(pattern)} {_GLOB_MAX_MATCHES} {_GLOB_TIME_BUDGET}",
            _GLOB_COMMAND_TIMEOUT,
        )
        return _parse_relative_glob(response, root)


# -- helpers (pure) ----------------------------------------------------------------
