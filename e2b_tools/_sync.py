"""Blocking facade over the async API: one source of truth for behaviour.

Every sync method runs its async twin on one event loop in a background thread
(started on first use) and waits for it. Signatures are kept identical to the async
ones; ``tests/test_api_surface.py`` checks that they do not drift. Streaming callbacks
passed to the sync API run on that background thread.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import IO, Any, Literal, TypeVar, overload

from ._config import (
    DEFAULT_CODE_TIMEOUT,
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_TIMEOUT,
    NetworkMode,
    SandboxConfig,
)
from ._files import DEFAULT_READ_LIMIT, AsyncFiles
from ._models import CommandResult, Context, EntryInfo, Execution, ProcessInfo, SandboxInfo
from ._sandbox import (
    AsyncCommandHandle,
    AsyncCommands,
    AsyncSandbox,
    ErrorHandler,
    OutputHandler,
    ResultHandler,
)
from .backends.docker import DockerBackend

T = TypeVar("T")


class _Portal:
    """An event loop on a daemon thread that blocking callers submit coroutines to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="e2b-tools-loop", daemon=True
        )
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError(
                "the blocking Sandbox API was called from one of its own callbacks; "
                "use AsyncSandbox there instead"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except (KeyboardInterrupt, SystemExit):
            future.cancel()
            raise
        except concurrent.futures.CancelledError:
            raise


_portal: _Portal | None = None
_portal_lock = threading.Lock()


def _get_portal() -> _Portal:
    global _portal
    with _portal_lock:
        if _portal is None or _portal.pid != os.getpid():
            _portal = _Portal()
        return _portal


def portal_loop() -> asyncio.AbstractEventLoop:
    """The background event loop that the blocking API runs on."""
    return _get_portal().loop


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return _get_portal().call(coro)


class Sandbox:
    """A running sandbox (blocking API). See :class:`AsyncSandbox` for the details.

    Example:
        >>> with Sandbox.create() as sbx:  # doctest: +SKIP
        ...     sbx.run_code("x = 41")
        ...     sbx.run_code("x + 1").text
        '42'
    """

    def __init__(self, inner: AsyncSandbox) -> None:
        self._inner = inner
        self.commands = Commands(inner.commands)
        """Shell commands: ``sbx.commands.run("ls")``."""
        self.files = Files(inner.files)
        """Files: ``sbx.files.write(path, data)``, ``read``, ``list``, ..."""

    @property
    def sandbox_id(self) -> str:
        """This sandbox's id (pass it to :meth:`connect`)."""
        return self._inner.sandbox_id

    @property
    def container_id(self) -> str:
        """The Docker container's id."""
        return self._inner.container_id

    @property
    def image(self) -> str:
        """The image the sandbox runs."""
        return self._inner.image

    @property
    def config(self) -> SandboxConfig:
        """The configuration the sandbox was created with."""
        return self._inner.config

    @property
    def async_sandbox(self) -> AsyncSandbox:
        """The async twin of this object (same sandbox, same connection)."""
        return self._inner

    def __repr__(self) -> str:
        return f"<Sandbox {self.sandbox_id} image={self.image!r}>"

    @classmethod
    def create(
        cls,
        image: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        envs: dict[str, str] | None = None,
        cpu: float | None = 1.0,
        memory: str | int | None = "1g",
        network: NetworkMode = "none",
        metadata: dict[str, str] | None = None,
        *,
        config: SandboxConfig | None = None,
        backend: DockerBackend | None = None,
    ) -> Sandbox:
        """Start a new sandbox; see :meth:`AsyncSandbox.create`."""
        return cls(
            _run(
                AsyncSandbox.create(
                    image,
                    timeout,
                    envs,
                    cpu,
                    memory,
                    network,
                    metadata,
                    config=config,
                    backend=backend,
                )
            )
        )

    @classmethod
    def connect(cls, sandbox_id: str, *, backend: DockerBackend | None = None) -> Sandbox:
        """Attach to a running sandbox by id; see :meth:`AsyncSandbox.connect`."""
        return cls(_run(AsyncSandbox.connect(sandbox_id, backend=backend)))

    @classmethod
    def list(
        cls,
        metadata: dict[str, str] | None = None,
        *,
        backend: DockerBackend | None = None,
    ) -> list[SandboxInfo]:
        """Running sandboxes; see :meth:`AsyncSandbox.list`."""
        return _run(AsyncSandbox.list(metadata, backend=backend))

    def kill(self) -> bool:
        """Stop and remove the sandbox; False if it was already gone."""
        return _run(self._inner.kill())

    def is_running(self) -> bool:
        """Whether the container still runs."""
        return _run(self._inner.is_running())

    def set_timeout(self, timeout: float) -> None:
        """Move the sandbox's deadline to ``timeout`` seconds from now."""
        _run(self._inner.set_timeout(timeout))

    def get_info(self) -> SandboxInfo:
        """What the engine knows of this sandbox."""
        return _run(self._inner.get_info())

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()

    def create_code_context(self, language: str = "python", cwd: str | None = None) -> Context:
        """Start a new code context; see :meth:`AsyncSandbox.create_code_context`."""
        return _run(self._inner.create_code_context(language, cwd))

    def list_code_contexts(self) -> builtins.list[Context]:
        """The sandbox's code contexts."""
        return _run(self._inner.list_code_contexts())

    def restart_code_context(self, context: Context) -> Context:
        """Kill and restart a context (its state is lost)."""
        return _run(self._inner.restart_code_context(context))

    def remove_code_context(self, context: Context) -> None:
        """Kill a context and forget it."""
        _run(self._inner.remove_code_context(context))

    def run_code(
        self,
        code: str,
        language: str = "python",
        *,
        context: Context | None = None,
        timeout: float | None = DEFAULT_CODE_TIMEOUT,
        envs: dict[str, str] | None = None,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
        on_result: ResultHandler | None = None,
        on_error: ErrorHandler | None = None,
    ) -> Execution:
        """Run code in the sandbox's stateful context; see :meth:`AsyncSandbox.run_code`."""
        return _run(
            self._inner.run_code(
                code,
                language,
                context=context,
                timeout=timeout,
                envs=envs,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
                on_result=on_result,
                on_error=on_error,
            )
        )


class Commands:
    """Shell commands (blocking); see :class:`AsyncCommands`."""

    def __init__(self, inner: AsyncCommands) -> None:
        self._inner = inner

    @overload
    def run(
        self,
        cmd: str,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
        *,
        background: Literal[False] = False,
        stdin: bool = False,
    ) -> CommandResult: ...

    @overload
    def run(
        self,
        cmd: str,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
        *,
        background: Literal[True],
        stdin: bool = False,
    ) -> CommandHandle: ...

    def run(
        self,
        cmd: str,
        cwd: str | None = None,
        envs: dict[str, str] | None = None,
        timeout: float | None = DEFAULT_COMMAND_TIMEOUT,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
        *,
        background: bool = False,
        stdin: bool = False,
    ) -> CommandResult | CommandHandle:
        """Run a command; see :meth:`AsyncCommands.run`."""
        if background:
            handle = _run(
                self._inner.run(
                    cmd, cwd, envs, timeout, on_stdout, on_stderr, background=True, stdin=stdin
                )
            )
            return CommandHandle(handle)
        return _run(self._inner.run(cmd, cwd, envs, timeout, on_stdout, on_stderr, stdin=stdin))

    def list(self) -> builtins.list[ProcessInfo]:
        """Commands running in the sandbox."""
        return _run(self._inner.list())

    def kill(self, pid: int) -> bool:
        """Kill a command's whole process group."""
        return _run(self._inner.kill(pid))

    def send_stdin(self, pid: int, data: str) -> None:
        """Write to a command's stdin (started with ``stdin=True``)."""
        _run(self._inner.send_stdin(pid, data))

    def close_stdin(self, pid: int) -> None:
        """Close a command's stdin."""
        _run(self._inner.close_stdin(pid))


class CommandHandle:
    """A command started with ``background=True`` (blocking API)."""

    def __init__(self, inner: AsyncCommandHandle) -> None:
        self._inner = inner

    @property
    def pid(self) -> int:
        """Process id inside the sandbox."""
        return self._inner.pid

    def wait(self) -> CommandResult:
        """Wait for the command; raises :class:`CommandExitError` on non-zero exit."""
        return _run(self._inner.wait())

    def kill(self) -> bool:
        """Kill the command's whole process group."""
        return _run(self._inner.kill())

    def send_stdin(self, data: str) -> None:
        """Write to the command's stdin."""
        _run(self._inner.send_stdin(data))

    def close_stdin(self) -> None:
        """Close the command's stdin."""
        _run(self._inner.close_stdin())


class Files:
    """Files (blocking); see :class:`AsyncFiles`."""

    def __init__(self, inner: AsyncFiles) -> None:
        self._inner = inner

    @overload
    def read(
        self,
        path: str,
        format: Literal["text"] = "text",
        *,
        max_size: int | None = DEFAULT_READ_LIMIT,
        offset: int = 0,
        length: int | None = None,
    ) -> str: ...

    @overload
    def read(
        self,
        path: str,
        format: Literal["bytes"],
        *,
        max_size: int | None = DEFAULT_READ_LIMIT,
        offset: int = 0,
        length: int | None = None,
    ) -> bytes: ...

    def read(
        self,
        path: str,
        format: Literal["text", "bytes"] = "text",
        *,
        max_size: int | None = DEFAULT_READ_LIMIT,
        offset: int = 0,
        length: int | None = None,
    ) -> str | bytes:
        """Read a file (capped at ``max_size``) as text or bytes; see :meth:`AsyncFiles.read`."""
        if format == "bytes":
            return _run(
                self._inner.read(path, "bytes", max_size=max_size, offset=offset, length=length)
            )
        return _run(self._inner.read(path, format, max_size=max_size, offset=offset, length=length))

    def write(
        self,
        path: str,
        data: str | bytes | bytearray | memoryview | IO[bytes] | IO[str],
        *,
        append: bool = False,
    ) -> EntryInfo:
        """Write (or ``append`` to) a file, creating parent directories."""
        return _run(self._inner.write(path, data, append=append))

    def list(self, path: str = ".", depth: int = 1) -> list[EntryInfo]:
        """Entries of a directory."""
        return _run(self._inner.list(path, depth))

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        return _run(self._inner.exists(path))

    def get_info(self, path: str) -> EntryInfo:
        """Details of one file or directory."""
        return _run(self._inner.get_info(path))

    def remove(self, path: str) -> None:
        """Delete a file or a directory tree."""
        _run(self._inner.remove(path))

    def make_dir(self, path: str) -> bool:
        """Create a directory and its parents; False if it existed."""
        return _run(self._inner.make_dir(path))

    def upload(self, local_path: str | os.PathLike[str], path: str) -> EntryInfo:
        """Copy a host file into the sandbox."""
        return _run(self._inner.upload(local_path, path))

    def download(
        self, path: str, local_path: str | os.PathLike[str], *, max_size: int | None = None
    ) -> Path:
        """Copy a sandbox file to the host, in chunks (``max_size`` caps it)."""
        return _run(self._inner.download(path, local_path, max_size=max_size))
