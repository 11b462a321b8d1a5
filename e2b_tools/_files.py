"""``sandbox.files``: files in a sandbox, streamed in chunks both ways.

Host memory stays bounded whatever the sandbox holds: a read is capped (``max_size``,
100 MiB by default) and arrives in 1 MiB chunks into one buffer; a write leaves in
1 MiB chunks taken from the caller's data (or file) as they are sent, and the file is
replaced in one step when the last chunk lands.
"""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import io
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, overload

from ._exceptions import (
    InvalidArgumentError,
    NotFoundError,
    ProtocolError,
    error_from_event,
)
from ._models import EntryInfo, WriteEntry
from .agent.files import FILE_CHUNK
from .agent.protocol import Message

if TYPE_CHECKING:
    from ._channel import Channel
    from ._sandbox import AsyncSandbox

DEFAULT_READ_LIMIT = 100 * 1024 * 1024
"""``files.read`` refuses a file larger than this unless ``max_size`` says otherwise."""

_FILE_TIMEOUT = 120.0
# Time allowed per byte on top of _FILE_TIMEOUT: 1 s per 8 MiB.
_SECONDS_PER_BYTE = 1 / (8 << 20)
_TEXT_CHUNK = FILE_CHUNK // 4  # characters: at most FILE_CHUNK bytes in UTF-8


def _chunks(data: str | bytes | bytearray | memoryview | IO[bytes] | IO[str]) -> Iterator[bytes]:
    """The payload in chunks of at most ``FILE_CHUNK`` bytes, never copied whole."""
    if isinstance(data, str):
        for i in range(0, len(data), _TEXT_CHUNK):
            yield data[i : i + _TEXT_CHUNK].encode("utf-8")
    elif isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data).cast("B")
        for i in range(0, len(view), FILE_CHUNK):
            yield bytes(view[i : i + FILE_CHUNK])
    elif hasattr(data, "read"):
        while True:
            part = data.read(_TEXT_CHUNK)
            if not part:
                return
            yield part.encode("utf-8") if isinstance(part, str) else bytes(part)
    else:
        raise InvalidArgumentError("data must be str, bytes or a readable file object")


class AsyncFiles:
    """Files in a sandbox (``sandbox.files``). Relative paths are under the workspace."""

    def __init__(self, sandbox: AsyncSandbox, channel: Channel) -> None:
        self._sbx = sandbox
        self._channel = channel

    @overload
    async def read(
        self,
        path: str,
        format: Literal["text"] = "text",
        *,
        max_size: int | None = DEFAULT_READ_LIMIT,
        offset: int = 0,
        length: int | None = None,
    ) -> str: ...

    @overload
    async def read(
        self,
        path: str,
        format: Literal["bytes"],
        *,
        max_size: int | None = DEFAULT_READ_LIMIT,
        offset: int = 0,
        length: int | None = None,
    ) -> bytes: ...

    @overload
    async def read(
        self,
        path: str,
        format: Literal["stream"],
        *,
        max_size: int | None = DEFAULT_READ_LIMIT,
        offset: int = 0,
        length: int | None = None,
    ) -> AsyncFileStreamReader: ...

    async def read(
        self,
        path: str,
        format: Literal["text", "bytes", "stream"] = "text",
        *,
        max_size: int | None = DEFAULT_READ_LIMIT,
        offset: int = 0,
        length: int | None = None,
    ) -> str | bytes | AsyncFileStreamReader:
        """Read a file (or ``length`` bytes of it from ``offset``) as text or bytes.

        ``format="stream"`` (E2B's) returns at once with an iterator of ``bytes``
        chunks (``async for``; a plain ``for`` in the blocking API) that holds one
        chunk at a time, so ``max_size`` does not apply. Consume it or close it
        promptly: past 32 MiB not taken, the sandbox's other calls wait for it.

        Args:
            path: A regular file; FIFOs, devices and sockets are refused.
            format: ``"text"`` (UTF-8) or ``"bytes"``.
            max_size: Refuse a file (or the part from ``offset``) larger than this many
                bytes instead of reading it; ``None``: no cap, at your host's risk.
            offset: First byte to read.
            length: Bytes to read at most (``None``: to the end); pages a large file.

        Raises:
            NotFoundError: No such file.
            SandboxFileError: Not a regular file, or larger than ``max_size``.
            InvalidArgumentError: ``format="text"`` on a file that is not UTF-8.

        Example:
            >>> head = await sbx.files.read("big.log", length=4096)  # doctest: +SKIP
        """
        if format == "stream":
            return await self._stream(path, offset, length)
        if format not in ("text", "bytes"):
            raise InvalidArgumentError("format must be 'text', 'bytes' or 'stream'")
        # BytesIO hands its buffer to getvalue() without a copy: one copy of the data.
        buf = io.BytesIO()
        await self._read_into(path, buf.write, max_size, offset, length)
        data = buf.getvalue()
        del buf
        if format == "bytes":
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgumentError(
                f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                "read it with format='bytes'",
                sandbox_id=self._sbx.sandbox_id,
            ) from None

    async def _stream(self, path: str, offset: int, length: int | None) -> AsyncFileStreamReader:
        if offset < 0 or (length is not None and length < 0):
            raise InvalidArgumentError("offset and length must be >= 0")
        fields: dict[str, Any] = {"path": path, "offset": offset, "length": length}
        call = await self._channel.send("read_file", fields)
        stream = AsyncFileStreamReader(self._channel.events(call, None), self._sbx.sandbox_id, path)
        await stream._start()  # a missing file raises here, not at the first chunk
        return stream

    async def _read_into(
        self,
        path: str,
        sink: Callable[[bytes], object],
        max_size: int | None,
        offset: int = 0,
        length: int | None = None,
    ) -> int:
        """Stream a file's bytes into ``sink``; returns how many arrived."""
        if offset < 0 or (length is not None and length < 0):
            raise InvalidArgumentError("offset and length must be >= 0")
        if max_size is not None and max_size <= 0:
            raise InvalidArgumentError("max_size must be > 0 bytes, or None for no cap")
        if length is not None and max_size is not None and length > max_size:
            raise InvalidArgumentError(f"length={length} is over max_size={max_size}")
        sbx = self._sbx
        cap = length if length is not None else max_size
        fields: dict[str, Any] = {"path": path, "offset": offset, "length": length}
        fields["limit"] = max_size
        timeout = _FILE_TIMEOUT + (cap or 0) * _SECONDS_PER_BYTE
        call = await self._channel.send("read_file", fields)
        received = 0
        error: Message | None = None
        async for event in self._channel.events(call, None if cap is None else timeout):
            if event["type"] == "data":
                chunk = base64.b64decode(event["data"])
                received += len(chunk)
                if cap is not None and received > cap:
                    raise ProtocolError(
                        f"the sandbox sent more than the {cap} bytes asked for",
                        sandbox_id=sbx.sandbox_id,
                    )
                sink(chunk)
            elif event["type"] == "error":
                error = event
        if error is not None:
            raise error_from_event(error, sbx.sandbox_id, path)
        return received

    async def write(
        self,
        path: str,
        data: str | bytes | bytearray | memoryview | IO[bytes] | IO[str],
        *,
        append: bool = False,
    ) -> EntryInfo:
        """Write a file, creating parent directories.

        The file is replaced in one step once all of ``data`` arrived (a reader never
        sees half of it); an existing file keeps its mode and a symlink is written
        through. ``append=True`` adds to the end instead. ``data`` may be a file object,
        read in chunks as it is sent.
        """
        token = secrets.token_hex(8)
        chunks = _chunks(data)
        current: bytes | None = next(chunks, b"")
        value: dict[str, Any] = {}
        first = True
        while current is not None:
            following = next(chunks, None)
            fields: dict[str, Any] = {
                "path": path,
                "data": base64.b64encode(current).decode("ascii"),
            }
            if append and first:
                fields["append"] = True
            if following is not None or not first:
                fields["upload"] = token
            if following is not None:
                fields["final"] = False
            value = await self._channel.request("write_file", fields, _FILE_TIMEOUT, path)
            current, first = following, False
        return _entry(value)

    async def list(self, path: str = ".", depth: int | None = 1) -> list[EntryInfo]:
        """Entries of a directory, recursing ``depth`` levels (``None``: 1, as in E2B)."""
        depth = 1 if depth is None else depth
        if depth < 1:
            raise InvalidArgumentError("depth must be >= 1")
        value = await self._channel.request(
            "list_dir", {"path": path, "depth": depth}, _FILE_TIMEOUT, path
        )
        return [_entry(e) for e in value.get("entries", [])]

    async def exists(self, path: str) -> bool:
        """Whether a file or directory exists at ``path``."""
        value = await self._channel.request("stat", {"path": path}, _FILE_TIMEOUT, path)
        return bool(value.get("exists"))

    async def get_info(self, path: str) -> EntryInfo:
        """Details of one file or directory."""
        value = await self._channel.request("stat", {"path": path}, _FILE_TIMEOUT, path)
        if not value.get("exists"):
            raise NotFoundError(
                f"no such file or directory: {path}", sandbox_id=self._sbx.sandbox_id
            )
        return _entry(value["entry"])

    async def remove(self, path: str) -> None:
        """Delete a file, or a directory with everything in it; a missing path is not
        an error (as in E2B)."""
        await self._channel.request("remove", {"path": path}, _FILE_TIMEOUT, path)

    async def rename(self, old_path: str, new_path: str) -> EntryInfo:
        """Rename (move) a file or directory, creating the new path's parents.

        Raises:
            NotFoundError: ``old_path`` does not exist.
        """
        value = await self._channel.request(
            "rename", {"path": old_path, "new_path": new_path}, _FILE_TIMEOUT, old_path
        )
        return _entry(value)

    async def write_files(self, files: builtins.list[WriteEntry]) -> builtins.list[EntryInfo]:
        """Write several files (E2B's ``write_files``), one after the other, as
        :meth:`write` does; returns their entries (each a ``WriteInfo``) in order.

        Example:
            >>> await sbx.files.write_files(  # doctest: +SKIP
            ...     [WriteEntry(path="a.txt", data="A"), WriteEntry(path="b.bin", data=b"B")]
            ... )
        """
        for item in files:
            if not isinstance(item, dict) or "path" not in item or "data" not in item:
                raise InvalidArgumentError("each file must be a WriteEntry(path=..., data=...)")
        return [await self.write(item["path"], item["data"]) for item in files]

    async def make_dir(self, path: str) -> bool:
        """Create a directory and its parents; False if it already existed."""
        value = await self._channel.request("make_dir", {"path": path}, _FILE_TIMEOUT, path)
        return bool(value.get("created"))

    async def upload(self, local_path: str | os.PathLike[str], path: str) -> EntryInfo:
        """Copy a file from the host into the sandbox, in chunks."""
        with open(local_path, "rb") as f:
            return await self.write(path, f)

    async def download(
        self,
        path: str,
        local_path: str | os.PathLike[str],
        *,
        max_size: int | None = None,
    ) -> Path:
        """Copy a file from the sandbox to the host, in chunks; returns the local path.

        ``max_size`` caps the bytes written to the host's disk (``None``: no cap).
        """
        target = Path(local_path)
        with open(target, "wb") as f:
            await self._read_into(path, f.write, max_size)
        return target


class AsyncFileStreamReader:
    """A file read with ``format="stream"``: an async iterator of ``bytes`` chunks.

    Use it with ``async with`` (or call :meth:`aclose`) when you may stop early, so
    the rest of the file is not sent.
    """

    def __init__(
        self, events: AsyncIterator[dict[str, Any]], sandbox_id: str | None, path: str
    ) -> None:
        self._events = events
        self._sandbox_id = sandbox_id
        self._path = path
        self._first: bytes | None = None
        self._done = False

    async def _start(self) -> None:
        self._first = await self._next()

    async def _next(self) -> bytes | None:
        """The next chunk; None at the end."""
        if self._done:
            return None
        try:
            async for event in self._events:
                if event["type"] == "data":
                    return base64.b64decode(event["data"])
                if event["type"] == "error":
                    raise error_from_event(event, self._sandbox_id, self._path)
        except BaseException:
            await self.aclose()
            raise
        self._done = True
        return None

    def __aiter__(self) -> AsyncFileStreamReader:
        return self

    async def __anext__(self) -> bytes:
        chunk, self._first = self._first, None
        if chunk is None:
            chunk = await self._next()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Stop reading; the rest of the file is dropped (safe to call twice)."""
        self._done = True
        self._first = None
        close = getattr(self._events, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> AsyncFileStreamReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _entry(value: dict[str, Any]) -> EntryInfo:
    return EntryInfo(
        **{
            **value,
            "modified_time": dt.datetime.fromtimestamp(
                float(value.get("modified_time", 0)), dt.timezone.utc
            ),
        }
    )
