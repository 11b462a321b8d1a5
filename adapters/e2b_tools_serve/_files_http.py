"""envd's ``/files`` endpoints: download (``GET``) and upload (``POST``) of whole files.

Memory stays bounded whatever the size, both ways:

- ``GET`` streams the file in pages of :data:`PAGE` bytes, each read from the sandbox
  when the client took the previous one (a slow client holds one page, never the
  sandbox's other calls, as one long ``format="stream"`` read would past its 32 MiB
  backlog), gzip-compressed on the fly when the client accepts gzip. A non-regular
  file (``/dev/zero``, a FIFO) is refused before anything is read.
- ``POST`` takes the body as it arrives (uvicorn stops reading the socket while a chunk
  waits) and writes it into the sandbox in pieces of at most :data:`PIECE` bytes: the
  first replaces the file, the next ones are appended (envd writes into the file as the
  body arrives too, so a reader may see it grow). A multipart body is parsed as it
  streams (python-multipart's push parser, nothing spooled to disk); a gzip body
  (``Content-Encoding: gzip``) is inflated at most :data:`PIECE` bytes at a time, each
  piece written before the next is inflated, so a gzip bomb costs the sandbox's disk
  (a full disk is 507, and the partial file is removed), never the server's memory.

Both forms answer ``[{name, type: "file", path}]``. ``X-Metadata-<key>`` headers
become the file's metadata (e2b-tools stores it as envd 0.6.2 does, and the server
reports 0.6.2, so the SDKs send it).
E2B's ``username`` is not honoured: files belong to the sandbox's one user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from e2b_tools import (
    AsyncFiles,
    NotFoundError,
    SandboxError,
    SandboxFileError,
    WriteInfo,
)

from ._errors import api_error
from ._http import ApiError
from ._session import Session

log = logging.getLogger("e2b_tools.serve")

PIECE = 1 << 20
"""Largest piece of an upload held by the server (and written to the sandbox at once)."""
PAGE = 2 << 20
"""Bytes of a download read from the sandbox at once (and held by the server)."""
MAX_FILES = 10_000
"""Most files one multipart upload may carry."""
GZIP_LEVEL = 1
"""zlib level of compressed downloads: the fastest; SDK downloads are all compressed
(as envd does), so speed matters more than size."""
_METADATA_PREFIX = "x-metadata-"
_IDENTITY_ONLY = ("range", "if-modified-since", "if-none-match", "if-range")


# --- download ----------------------------------------------------------------------------


def accepts_gzip(value: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value accepts ``gzip`` (not with ``q=0``)."""
    for item in (value or "").split(","):
        name, *params = item.split(";")
        if name.strip().lower() not in ("gzip", "x-gzip"):
            continue
        for param in params:
            key, _, raw = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    return float(raw) > 0
                except ValueError:
                    return False
        return True
    return False


async def _download(request: Request) -> Response:
    session: Session = request.state.session
    path = request.query_params.get("path") or ""
    if not path:
        raise ApiError(400, "the path query parameter is required")
    files = session.sandbox.files
    try:
        first = await files.read(path, format="bytes", length=PAGE)
    except NotFoundError:
        raise ApiError(404, f"path '{path}' does not exist") from None
    except SandboxFileError as exc:
        if exc.kind == "is_directory":
            raise ApiError(400, f"path '{path}' is a directory") from None
        raise api_error(exc, session) from None
    except SandboxError as exc:
        raise api_error(exc, session) from None
    headers = {"Content-Type": "application/octet-stream", "Vary": "Accept-Encoding"}
    # As envd: any client that accepts gzip gets it (httpx, so the SDK, always sends
    # "gzip, deflate"), except a Range or conditional request.
    gzip = accepts_gzip(request.headers.get("accept-encoding")) and not any(
        name in request.headers for name in _IDENTITY_ONLY
    )
    if gzip:
        headers["Content-Encoding"] = "gzip"
    return StreamingResponse(_send(files, path, first, gzip, session), headers=headers)


async def _send(
    files: AsyncFiles, path: str, first: bytes, gzip: bool, session: Session
) -> AsyncIterator[bytes]:
    """The file page by page (compressed when ``gzip``). Each page is a call of its
    own, so a client that reads slowly holds one page here and never the sandbox's
    other calls. A failure midway raises: the server breaks the connection and the
    client sees a cut body, never a short file that looks whole."""
    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if gzip else None
    page, offset = first, 0
    while page:
        if packer is None:
            yield page
        else:
            out = await asyncio.to_thread(packer.compress, page)
            if out:
                yield out
        offset += len(page)
        if len(page) < PAGE:
            break
        try:
            page = await files.read(path, format="bytes", offset=offset, length=PAGE)
        except SandboxError as exc:
            api_error(exc, session)  # marks a gone sandbox
            log.warning("download of %s from %s cut: %s", path, session.sandbox_id, exc)
            raise
    if packer is not None:
        yield packer.flush()


# --- upload ------------------------------------------------------------------------------


class _FileWriter:
    """One file written into the sandbox in pieces of at most :data:`PIECE` bytes."""

    def __init__(self, files: AsyncFiles, path: str, metadata: dict[str, str] | None) -> None:
        self.files = files
        self.path = path
        self.metadata = metadata
        self.buffer = bytearray()
        self.started = False
        self.info: WriteInfo | None = None

    async def feed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= PIECE:
            piece = bytes(self.buffer[:PIECE])
            del self.buffer[:PIECE]
            await self._write(piece)

    async def _write(self, piece: bytes) -> None:
        if self.started:
            self.info = await self.files.write(self.path, piece, append=True)
        else:
            self.info = await self.files.write(self.path, piece, metadata=self.metadata)
            self.started = True

    async def close(self) -> WriteInfo:
        if self.buffer or not self.started:
            piece = bytes(self.buffer)
            self.buffer.clear()
            await self._write(piece)
        assert self.info is not None
        return self.info

    async def discard(self) -> None:
        """Remove what was written of a failed upload (best effort)."""
        self.buffer.clear()
        if self.started:
            with contextlib.suppress(SandboxError):
                await self.files.remove(self.path)


class _Gunzip:
    """A gzip stream (one or more members) inflated in bounded pieces."""

    def __init__(self) -> None:
        self.inflater = zlib.decompressobj(31)
        self.seen = False

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """The inflated bytes of ``data``, at most :data:`PIECE` at a time (each is
        taken before the next is inflated)."""
        self.seen = self.seen or bool(data)
        try:
            while data:
                out = self.inflater.decompress(data, PIECE)
                if out:
                    yield out
                if self.inflater.eof:
                    data = self.inflater.unused_data
                    if data:  # another gzip member follows
                        self.inflater = zlib.decompressobj(31)
                else:
                    data = self.inflater.unconsumed_tail
        except zlib.error as exc:
            raise ApiError(400, f"the body is not valid gzip: {exc}") from None

    def finish(self) -> None:
        if self.seen and not self.inflater.eof:
            raise ApiError(400, "the gzip body ended early")


def _metadata(request: Request) -> dict[str, str] | None:
    found = {
        name[len(_METADATA_PREFIX) :]: value
        for name, value in request.headers.items()
        if name.lower().startswith(_METADATA_PREFIX) and len(name) > len(_METADATA_PREFIX)
    }
    return found or None


def _written(info: WriteInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": info.name, "type": "file", "path": info.path}
    if info.metadata:
        entry["metadata"] = info.metadata
    return entry


async def _upload(request: Request) -> Response:
    session: Session = request.state.session
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";", 1)[0].strip().lower()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "x-gzip", ""):
        raise ApiError(400, f"unsupported Content-Encoding {encoding!r} (gzip or none)")
    gunzip = _Gunzip() if encoding in ("gzip", "x-gzip") else None
    metadata = _metadata(request)
    upload: _Upload
    if kind == "multipart/form-data":
        if gunzip is not None:
            raise ApiError(400, "a multipart upload cannot be gzip-encoded")
        upload = _Multipart(request, session, content_type, metadata)
    elif kind == "application/octet-stream":
        path = request.query_params.get("path") or ""
        if not path:
            raise ApiError(400, "path query parameter is required for raw body upload")
        upload = _OctetStream(request, session, path, metadata, gunzip)
    else:
        raise ApiError(
            400,
            f"unsupported content type: {content_type!r}, expected multipart/form-data "
            "(field 'file') or application/octet-stream (with ?path=)",
        )
    try:
        infos = await upload.run()
    except ClientDisconnect:
        return Response(status_code=499)
    except SandboxError as exc:
        raise api_error(exc, session) from None
    return JSONResponse([_written(info) for info in infos])


class _Upload:
    """Reads the body, writes it, and on a failure drains the rest of the body (so the
    client reads the error instead of a broken pipe) and removes the partial file."""

    def __init__(self, request: Request, session: Session, metadata: dict[str, str] | None):
        self.request = request
        self.files = session.sandbox.files
        self.metadata = metadata
        self.writer: _FileWriter | None = None
        self.done: list[WriteInfo] = []

    async def run(self) -> list[WriteInfo]:
        body = self.request.stream()
        try:
            async for chunk in body:
                await self.take(chunk)
            await self.end()
        except (SandboxError, ApiError):
            if self.writer is not None:
                await self.writer.discard()
            async for _ in body:  # drain: the client is still sending
                pass
            raise
        return self.done

    async def take(self, chunk: bytes) -> None:
        raise NotImplementedError

    async def end(self) -> None:
        raise NotImplementedError


class _OctetStream(_Upload):
    def __init__(
        self,
        request: Request,
        session: Session,
        path: str,
        metadata: dict[str, str] | None,
        gunzip: _Gunzip | None,
    ) -> None:
        super().__init__(request, session, metadata)
        self.gunzip = gunzip
        self.writer = _FileWriter(self.files, path, metadata)

    async def take(self, chunk: bytes) -> None:
        assert self.writer is not None
        if self.gunzip is None:
            await self.writer.feed(chunk)
            return
        for piece in self.gunzip.pieces(chunk):
            await self.writer.feed(piece)

    async def end(self) -> None:
        assert self.writer is not None
        if self.gunzip is not None:
            self.gunzip.finish()
        self.done.append(await self.writer.close())


class _Multipart(_Upload):
    """``multipart/form-data``: each ``file`` part is a file, its filename the path (or
    ``?path=`` when given); other fields are skipped."""

    def __init__(
        self,
        request: Request,
        session: Session,
        content_type: str,
        metadata: dict[str, str] | None,
    ) -> None:
        super().__init__(request, session, metadata)
        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise ApiError(400, "the multipart Content-Type has no boundary")
        self.path = request.query_params.get("path") or ""
        self.paths: set[str] = set()
        self.events: list[tuple[str, Any]] = []
        self.ended = False
        self.header_name = bytearray()
        self.header_value = bytearray()
        self.headers: dict[str, bytes] = {}
        try:
            self.parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self.headers.clear,
                    "on_header_field": lambda d, s, e: self.header_name.extend(d[s:e]),
                    "on_header_value": lambda d, s, e: self.header_value.extend(d[s:e]),
                    "on_header_end": self._header_end,
                    "on_headers_finished": lambda: self.events.append(
                        ("headers", dict(self.headers))
                    ),
                    "on_part_data": lambda d, s, e: self.events.append(("data", bytes(d[s:e]))),
                    "on_part_end": lambda: self.events.append(("end", b"")),
                    "on_end": self._end,
                },
            )
        except FormParserError as exc:
            raise ApiError(400, f"bad multipart body: {exc}") from None

    def _header_end(self) -> None:
        self.headers[bytes(self.header_name).decode("latin-1").lower()] = bytes(self.header_value)
        self.header_name.clear()
        self.header_value.clear()

    def _end(self) -> None:
        self.ended = True

    async def take(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except FormParserError as exc:
            raise ApiError(400, f"bad multipart body: {exc}") from None
        events, self.events = self.events, []
        for event, data in events:
            if event == "headers":
                self.writer = self._open_part(data)
            elif event == "data" and self.writer is not None:
                await self.writer.feed(data)
            elif event == "end" and self.writer is not None:
                self.done.append(await self.writer.close())
                self.writer = None

    def _open_part(self, headers: dict[str, bytes]) -> _FileWriter | None:
        _, params = parse_options_header(headers.get("content-disposition", b""))
        if params.get(b"name") != b"file":
            return None
        if len(self.done) >= MAX_FILES:
            raise ApiError(413, f"more than {MAX_FILES} files in one upload")
        path = self.path or params.get(b"filename", b"").decode("utf-8", "replace")
        if not path:
            raise ApiError(400, "a file part has no filename (its path) and there is no ?path=")
        if path in self.paths:
            raise ApiError(
                400,
                f"you cannot upload multiple files to the same path '{path}' in one upload "
                "request, only the first specified file was uploaded",
            )
        self.paths.add(path)
        return _FileWriter(self.files, path, self.metadata)

    async def end(self) -> None:
        self.parser.finalize()
        if not self.ended:
            raise ApiError(400, "bad multipart body: it ended before its closing boundary")


def routes() -> list[BaseRoute]:
    """``GET /files`` and ``POST /files``."""
    return [Route("/files", _download, methods=["GET"]), Route("/files", _upload, methods=["POST"])]
