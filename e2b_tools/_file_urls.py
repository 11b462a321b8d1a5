"""``upload_url`` / ``download_url``: signed URLs of a sandbox's files, served on this
machine's loopback.

E2B hands out URLs of the file endpoint of the sandbox's own server; a sandbox here has
no server reachable from outside, so this process serves the endpoint itself: one
small HTTP/1.1 server per sandbox on ``127.0.0.1`` (started by the first URL asked
for, closed by ``kill()``), which turns each request into ``files.read(path,
format="stream")`` or ``files.write(path, <spooled body>)`` over the sandbox's channel.

* ``GET /files?path=..`` streams the file (chunked transfer encoding).
* ``POST /files?path=..`` takes ``multipart/form-data`` (each part named ``file``; what
  ``requests.post(url, files={"file": f})`` sends) or a raw ``application/octet-stream``
  body. The body is spooled to a host temporary file while it arrives (the first
  ``SPOOL_MEMORY`` bytes stay in memory), never held whole, and is capped at
  ``MAX_UPLOAD`` bytes (413 beyond). The answer is E2B's: a JSON list of the written
  entries, ``[{"path": ..., "name": ..., "type": "file"}]``. ``X-Metadata-<key>``
  headers become the file's metadata, as in E2B.

Every URL is signed (HMAC-SHA256 with a key made at random per process) over the
sandbox, the operation (read or write), the path, the user and the optional expiry, so
a URL opens one file one way; a wrong signature answers 403, a missing or expired one
401. One request per connection (``Connection: close``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.parser
import email.utils
import hashlib
import hmac
import json
import posixpath
import secrets
import tempfile
import threading
import time
import urllib.parse
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, Literal

from ._commands import _check_user
from ._exceptions import (
    InvalidArgumentError,
    NotEnoughSpaceError,
    NotFoundError,
    SandboxError,
    SandboxFileError,
    SandboxGoneError,
)
from ._loopback import LoopbackListener
from ._models import FileType

if TYPE_CHECKING:
    from ._sandbox import AsyncSandbox

MAX_UPLOAD = 1 << 30
"""Largest upload body (bytes, multipart framing included): 1 GiB; larger is 413."""
SPOOL_MEMORY = 1 << 20
"""Bytes of an upload kept in memory before it spills to a host temporary file."""
MAX_LINE = 8192
"""Longest request line or header line (bytes); longer is 431."""
MAX_HEADERS = 100
"""Most header lines of a request (or of a multipart part); more is 431."""
IO_TIMEOUT = 60.0
"""Seconds a client may stay silent mid-request before its connection is dropped."""

Operation = Literal["read", "write"]

_KEY = secrets.token_bytes(32)
_CHUNK = 1 << 16
_ATTACH = threading.Lock()


class _HttpError(Exception):
    """A request answered with ``status`` and a short text ``message``."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def signature(
    sandbox_id: str, operation: Operation, path: str, user: str, expiration: int | None
) -> str:
    """``v1_<hex>``: the HMAC of a URL's fields (JSON-framed, so none can bleed into
    another)."""
    message = json.dumps([sandbox_id, operation, path, user, expiration]).encode()
    return "v1_" + hmac.new(_KEY, message, hashlib.sha256).hexdigest()


def file_urls_of(sandbox: AsyncSandbox) -> FileUrls:
    """The sandbox's file URL server, made on first use (callable from any thread)."""
    with _ATTACH:
        urls: FileUrls | None = sandbox.__dict__.get("_file_urls")
        if urls is None:
            urls = sandbox.__dict__["_file_urls"] = FileUrls(sandbox)
        return urls


class FileUrls:
    """One sandbox's loopback file endpoint and the signed URLs of it."""

    def __init__(self, sandbox: AsyncSandbox) -> None:
        self._sbx = sandbox
        self._loop = sandbox.loop
        self._listener: LoopbackListener | None = None
        self._lock = threading.Lock()
        self._closed = False

    def url(
        self, operation: Operation, path: str | None, user: str | None, expires_in: int | None
    ) -> str:
        """A signed URL to read (GET) or write (POST) ``path``, valid ``expires_in``
        seconds (``None``: until ``kill()``). Listens from now on; any thread."""
        if operation == "read" and (not isinstance(path, str) or not path):
            raise InvalidArgumentError("path must be a non-empty string")
        if path is not None and (not isinstance(path, str) or not path):
            raise InvalidArgumentError("path must be a non-empty string, or None")
        if expires_in is not None and (
            isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0
        ):
            raise InvalidArgumentError(
                f"use_signature_expiration must be a number of seconds > 0, not {expires_in!r}"
            )
        _check_user(user, self._sbx.config.user)
        username = user or "user"
        expiration = None if expires_in is None else int(time.time()) + expires_in
        query = {} if path is None else {"path": path}
        query["username"] = username
        query["signature"] = signature(
            self._sbx.sandbox_id, operation, path or "", username, expiration
        )
        if expiration is not None:
            query["signature_expiration"] = str(expiration)
        params = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        return f"http://127.0.0.1:{self._port()}/files?{params}"

    def _port(self) -> int:
        with self._lock:
            if self._closed:
                raise SandboxGoneError(
                    "the sandbox was killed; create a new one", sandbox_id=self._sbx.sandbox_id
                )
            if self._listener is None:
                self._listener = LoopbackListener(self._loop, self._connection, limit=MAX_LINE)
            return self._listener.port

    async def close(self) -> None:
        """Stop listening and drop the requests under way (the sandbox is gone)."""
        with self._lock:
            self._closed = True
            listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()

    # -- one request ------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._request(reader, writer)
        except _HttpError as exc:
            with contextlib.suppress(OSError):
                await _answer_error(reader, writer, exc.status, exc.message)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass  # the client went away or fell silent
        except Exception as exc:  # a bug here must not pass silently, nor kill the server
            with contextlib.suppress(OSError):
                await _answer_error(
                    reader, writer, HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {exc!r}"
                )
        finally:
            writer.close()

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method, target, headers = await _read_head(reader)
        split = urllib.parse.urlsplit(target)
        if split.path != "/files":
            raise _HttpError(HTTPStatus.NOT_FOUND, "not found: only /files is served")
        if method not in ("GET", "POST"):
            raise _HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "use GET to download, POST to upload")
        query = _query(split.query)
        path = query.get("path", "")
        operation: Operation = "read" if method == "GET" else "write"
        self._check_signature(operation, path, query)
        try:
            if operation == "read":
                await self._download(path, writer)
            else:
                await self._upload(path, reader, writer, headers)
        except NotFoundError as exc:
            raise _HttpError(HTTPStatus.NOT_FOUND, str(exc)) from None
        except NotEnoughSpaceError as exc:
            raise _HttpError(HTTPStatus.INSUFFICIENT_STORAGE, str(exc)) from None
        except (InvalidArgumentError, SandboxFileError) as exc:
            raise _HttpError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        except SandboxError as exc:
            raise _HttpError(HTTPStatus.BAD_GATEWAY, f"the sandbox failed: {exc}") from None

    def _check_signature(self, operation: Operation, path: str, query: dict[str, str]) -> None:
        given = query.get("signature")
        if not given:
            raise _HttpError(HTTPStatus.UNAUTHORIZED, "missing signature")
        expiration: int | None = None
        if "signature_expiration" in query:
            try:
                expiration = int(query["signature_expiration"])
            except ValueError:
                raise _HttpError(HTTPStatus.UNAUTHORIZED, "bad signature_expiration") from None
        username = query.get("username", "user")
        expected = signature(self._sbx.sandbox_id, operation, path, username, expiration)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise _HttpError(HTTPStatus.FORBIDDEN, "invalid signature")
        if expiration is not None and expiration < time.time():
            raise _HttpError(HTTPStatus.UNAUTHORIZED, "signature expired")

    async def _download(self, path: str, writer: asyncio.StreamWriter) -> None:
        stream = await self._sbx.files.read(path, format="stream")
        async with stream:
            name = urllib.parse.quote(posixpath.basename(path.rstrip("/")) or "file")
            writer.write(
                _head(
                    HTTPStatus.OK,
                    {
                        "Content-Type": "application/octet-stream",
                        "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
                        "Transfer-Encoding": "chunked",
                    },
                )
            )
            try:
                async for chunk in stream:
                    writer.write(b"%x\r\n" % len(chunk))
                    writer.write(chunk)
                    writer.write(b"\r\n")
                    await asyncio.wait_for(writer.drain(), IO_TIMEOUT)
            except SandboxError:
                return  # the answer is under way: the client sees it cut short
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def _upload(
        self,
        path: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        headers: dict[str, list[str]],
    ) -> None:
        body = _Body(reader, headers)
        metadata = {
            name[len("x-metadata-") :]: values[0]
            for name, values in headers.items()
            if name.startswith("x-metadata-") and len(name) > len("x-metadata-")
        }
        kind, params = _content_type(_first(headers, "content-type"))
        boundary = params.get("boundary", "")
        if kind == "multipart/form-data" and not 0 < len(boundary) <= 70:
            raise _HttpError(HTTPStatus.BAD_REQUEST, "multipart body without a boundary")
        if kind not in ("multipart/form-data", "", "application/octet-stream"):
            raise _HttpError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "send multipart/form-data or application/octet-stream",
            )
        if kind != "multipart/form-data" and not path:
            raise _HttpError(
                HTTPStatus.BAD_REQUEST, "a raw body needs a path: sign the URL with one"
            )
        if _first(headers, "expect").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        files: list[tuple[str | None, IO[bytes]]] = []
        try:
            if kind == "multipart/form-data":
                files.extend(await _multipart(body, boundary.encode()))
                if not files:
                    raise _HttpError(HTTPStatus.BAD_REQUEST, "no part named 'file' in the body")
                if path and len(files) > 1:
                    raise _HttpError(
                        HTTPStatus.BAD_REQUEST, "several files for one path; sign a URL per file"
                    )
                targets = [path or _upload_name(filename) for filename, _ in files]
            else:
                files.append((path, await _spool_all(body)))
                targets = [path]
            written = []
            for target, (_, spool) in zip(targets, files, strict=True):
                spool.seek(0)
                info = await self._sbx.files.write(target, spool, metadata=metadata or None)
                kind_name = "directory" if info.type == FileType.DIR else "file"
                written.append({"path": info.path, "name": info.name, "type": kind_name})
        finally:
            for _, spool in files:
                spool.close()
        payload = json.dumps(written).encode()
        writer.write(_head(HTTPStatus.OK, {"Content-Type": "application/json"}, len(payload)))
        writer.write(payload)
        await writer.drain()


# -- HTTP/1.1 pieces ---------------------------------------------------------------------


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await asyncio.wait_for(reader.readuntil(b"\n"), IO_TIMEOUT)
    except asyncio.LimitOverrunError:
        raise _HttpError(
            HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request line or header too long"
        ) from None
    return line.rstrip(b"\r\n")


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, list[str]]]:
    """The request's method, target and headers (names lowercased)."""
    line = await _read_line(reader)
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise _HttpError(HTTPStatus.BAD_REQUEST, "malformed request line")
    method, target = parts[0].decode("ascii", "replace"), parts[1].decode("ascii", "replace")
    headers: dict[str, list[str]] = {}
    for _ in range(MAX_HEADERS + 1):
        line = await _read_line(reader)
        if not line:
            return method, target, headers
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise _HttpError(HTTPStatus.BAD_REQUEST, "malformed header line")
        key = name.decode("latin-1").lower()
        headers.setdefault(key, []).append(value.strip().decode("latin-1"))
    raise _HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers")


def _first(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name)
    return values[0] if values else ""


def _query(raw: str) -> dict[str, str]:
    """The query's fields; a field given twice is refused (it could confuse the check)."""
    try:
        pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True, strict_parsing=bool(raw))
    except ValueError:
        raise _HttpError(HTTPStatus.BAD_REQUEST, "malformed query") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise _HttpError(HTTPStatus.BAD_REQUEST, f"query field {key!r} given twice")
        fields[key] = value
    return fields


def _content_type(value: str) -> tuple[str, dict[str, str]]:
    """A Content-Type's lowercased media type and its parameters."""
    if not value:
        return "", {}
    message = email.parser.HeaderParser().parsestr(f"Content-Type: {value}\n\n")
    params = {k.lower(): v for k, v in message.get_params(failobj=[])[1:]}
    return message.get_content_type(), params


def _head(status: HTTPStatus, headers: dict[str, str], length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _answer_error(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: HTTPStatus, message: str
) -> None:
    """Answer ``status`` with ``message``, then read (and drop) what the client still
    sends for a moment, so that closing does not reset the answer away."""
    body = (message + "\n").encode()
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if status == HTTPStatus.METHOD_NOT_ALLOWED:
        headers["Allow"] = "GET, POST"
    writer.write(_head(status, headers, len(body)) + body)
    await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()

    async def drain() -> None:
        drained = 0
        while drained < SPOOL_MEMORY and (chunk := await reader.read(_CHUNK)):
            drained += len(chunk)

    with contextlib.suppress(OSError, asyncio.TimeoutError):
        await asyncio.wait_for(drain(), 1.0)


class _Body:
    """A request body's bytes as they arrive (Content-Length or chunked), capped at
    ``MAX_UPLOAD``."""

    def __init__(self, reader: asyncio.StreamReader, headers: dict[str, list[str]]) -> None:
        self._reader = reader
        self._seen = 0
        encoding = ",".join(headers.get("transfer-encoding", [])).strip().lower()
        lengths = headers.get("content-length", [])
        if encoding and lengths:
            raise _HttpError(HTTPStatus.BAD_REQUEST, "both Content-Length and Transfer-Encoding")
        self._chunked = encoding == "chunked"
        if encoding and not self._chunked:
            raise _HttpError(HTTPStatus.NOT_IMPLEMENTED, f"transfer encoding {encoding!r}")
        self._left = 0  # bytes left: of the body, or of the current chunk
        self._ended = False
        if not self._chunked:
            if len(set(lengths)) != 1 or not lengths[0].isdigit():
                raise _HttpError(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length")
            self._left = int(lengths[0])
            self._count(self._left)

    def _count(self, size: int) -> None:
        self._seen += size
        if self._seen > MAX_UPLOAD:
            raise _HttpError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"uploads are capped at {MAX_UPLOAD} bytes"
            )

    async def read(self) -> bytes:
        """The next bytes of the body; ``b""`` at its end."""
        if self._ended:
            return b""
        if self._chunked and self._left == 0:
            line = await _read_line(self._reader)
            try:
                self._left = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _HttpError(HTTPStatus.BAD_REQUEST, "malformed chunk size") from None
            if self._left < 0:
                raise _HttpError(HTTPStatus.BAD_REQUEST, "malformed chunk size")
            if self._left == 0:
                while await _read_line(self._reader):
                    pass  # trailers
                self._ended = True
                return b""
            self._count(self._left)
        if self._left == 0:
            self._ended = True
            return b""
        data = await asyncio.wait_for(self._reader.read(min(self._left, _CHUNK)), IO_TIMEOUT)
        if not data:
            raise _HttpError(HTTPStatus.BAD_REQUEST, "the body ended early")
        self._left -= len(data)
        if self._chunked and self._left == 0 and await _read_line(self._reader):
            raise _HttpError(HTTPStatus.BAD_REQUEST, "malformed chunk")
        return data


def _spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)


async def _spool_all(body: _Body) -> IO[bytes]:
    spool = _spool()
    try:
        while chunk := await body.read():
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    return spool


def _upload_name(filename: str | None) -> str:
    """Where a part goes when the URL names no path: its file name (the base name only,
    as E2B's server takes it), relative to the workspace."""
    name = posixpath.basename((filename or "").replace("\\", "/"))
    if name in ("", ".", ".."):
        raise _HttpError(
            HTTPStatus.BAD_REQUEST, "the part has no file name; sign a URL with a path"
        )
    return name


async def _multipart(body: _Body, boundary: bytes) -> list[tuple[str | None, IO[bytes]]]:
    """The parts named ``file`` of a multipart body, each spooled, with its file name."""
    separator = b"\r\n--" + boundary
    buf = bytearray(b"\r\n")  # the first delimiter needs no CRLF before it
    files: list[tuple[str | None, IO[bytes]]] = []

    async def fill(limit: int | None = None) -> None:
        if limit is not None and len(buf) > limit:
            raise _HttpError(HTTPStatus.BAD_REQUEST, "malformed multipart body")
        chunk = await body.read()
        if not chunk:
            raise _HttpError(HTTPStatus.BAD_REQUEST, "multipart body ended early")
        buf.extend(chunk)

    async def until(marker: bytes, limit: int) -> int:
        while (at := buf.find(marker)) < 0:
            await fill(limit)
        return at

    try:
        del buf[: await until(separator, MAX_LINE) + len(separator)]  # past the preamble
        while True:
            while len(buf) < 2:
                await fill()
            if buf.startswith(b"--"):
                break  # the close delimiter; the epilogue is ignored
            end = await until(b"\r\n", MAX_LINE)
            if buf[:end].strip(b" \t"):
                raise _HttpError(HTTPStatus.BAD_REQUEST, "malformed multipart delimiter")
            del buf[: end + 2]
            end = 0 if buf.startswith(b"\r\n") else await until(b"\r\n\r\n", 4 * MAX_LINE) + 2
            name, filename = _part_headers(bytes(buf[:end]))
            del buf[: end + 2]
            spool = _spool() if name == "file" else None
            if spool is not None:
                files.append((filename, spool))
            keep = len(separator) - 1
            while (at := buf.find(separator)) < 0:
                if len(buf) > keep:
                    if spool is not None:
                        spool.write(buf[:-keep])
                    del buf[:-keep]
                await fill()
            if spool is not None:
                spool.write(buf[:at])
            del buf[: at + len(separator)]
        while await body.read():
            pass  # the epilogue, if any
    except BaseException:
        for _, spool in files:
            spool.close()
        raise
    return files


def _part_headers(raw: bytes) -> tuple[str | None, str | None]:
    """A part's form field name and file name, from its headers."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _HttpError(HTTPStatus.BAD_REQUEST, "part headers are not UTF-8") from None
    if text.count("\n") > MAX_HEADERS:
        raise _HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many part headers")
    message = email.parser.HeaderParser().parsestr(text + "\n")
    if message.get_content_disposition() != "form-data":
        raise _HttpError(HTTPStatus.BAD_REQUEST, "a part without Content-Disposition: form-data")
    name = message.get_param("name", header="content-disposition")
    field = email.utils.collapse_rfc2231_value(name) if name is not None else None
    return field, message.get_filename()
