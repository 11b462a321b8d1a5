"""Connect RPC methods as starlette routes: unary, server-streaming and
client-streaming, with the framing, header checks, bounded bodies, deadlines and
errors of ``_connect`` applied the same way for every service.

A handler gets the request (``request.state.session`` is its sandbox) and the decoded
JSON payload bytes, and returns (or yields) plain JSON-able dicts; it raises
:class:`ConnectError` for an RPC error (``_errors.connect_error`` turns an e2b-tools
error into one). Everything else it raises is logged and answered ``internal``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from e2b_tools import SandboxError

from ._connect import (
    DEFAULT_MAX_MESSAGE_BYTES,
    STREAM_RESPONSE_HEADERS,
    UNARY_RESPONSE_HEADERS,
    Code,
    ConnectError,
    EnvelopeDecoder,
    Reply,
    check_request,
    decode_single,
    encode_message,
    end_stream,
    unary_error_reply,
)
from ._errors import connect_error

log = logging.getLogger("e2b_tools.serve")

Json = dict[str, Any]
UnaryHandler = Callable[[Request, bytes], Awaitable[Json]]
StreamHandler = Callable[[Request, bytes, "Deadline"], AsyncIterator[Json]]
ClientStreamHandler = Callable[[Request, AsyncIterator[bytes]], Awaitable[Json]]


class Deadline:
    """The call's deadline from ``Connect-Timeout-Ms`` (``None``: none)."""

    def __init__(self, timeout_ms: int | None) -> None:
        self.timeout_ms = timeout_ms
        self.at = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000

    def remaining(self) -> float | None:
        """Seconds left (never below 0), or ``None`` without a deadline."""
        return None if self.at is None else max(0.0, self.at - time.monotonic())


def _headers(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def _reply(reply: Reply) -> Response:
    return Response(reply.body, status_code=reply.status, headers=dict(reply.headers))


def _as_connect(exc: BaseException, request: Request) -> ConnectError:
    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, SandboxError):
        return connect_error(exc, request.state.session)
    log.error("%s failed", request.url.path, exc_info=exc)
    return ConnectError(Code.INTERNAL, f"internal error: {type(exc).__name__}")


async def _body(request: Request, limit: int) -> bytes:
    """The whole body, refusing it as soon as it passes ``limit`` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED, f"message is larger than configured max {limit} bytes"
            )
    return bytes(body)


def unary(path: str, handler: UnaryHandler, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Route:
    """A unary method at ``path`` (``/<pkg>.<Service>/<Method>``)."""

    async def endpoint(request: Request) -> Response:
        try:
            refusal, timeout_ms = check_request(_headers(request), streaming=False)
            if refusal is not None:
                return _reply(refusal)
            payload = await _body(request, max_bytes)
            deadline = Deadline(timeout_ms)
            try:
                result = await asyncio.wait_for(handler(request, payload), deadline.remaining())
            except asyncio.TimeoutError:
                raise ConnectError(Code.DEADLINE_EXCEEDED, "the call's deadline passed") from None
        except ClientDisconnect:
            return Response(status_code=499)
        except Exception as exc:
            return _reply(unary_error_reply(_as_connect(exc, request)))
        return Response(encode_json(result), status_code=200, headers=dict(UNARY_RESPONSE_HEADERS))

    return Route(path, endpoint, methods=["POST"])


def encode_json(message: Json) -> bytes:
    """A unary body: compact JSON."""
    return encode_message(message)[5:]


def server_stream(
    path: str, handler: StreamHandler, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> Route:
    """A server-streaming method: one request envelope, a stream of message envelopes
    and the end-stream envelope (errors, even before the first message, go there with
    HTTP 200). The handler is cancelled when the client goes away."""

    async def endpoint(request: Request) -> Response:
        try:
            refusal, timeout_ms = check_request(_headers(request), streaming=True)
            if refusal is not None:
                return _reply(refusal)
            payload = decode_single(await _body(request, max_bytes + 5), max_bytes)
        except ClientDisconnect:
            return Response(status_code=499)
        except Exception as exc:
            early = _as_connect(exc, request)
            return Response(
                end_stream(early), status_code=200, headers=dict(STREAM_RESPONSE_HEADERS)
            )
        deadline = Deadline(timeout_ms)
        return StreamingResponse(
            _stream(request, handler(request, payload, deadline), deadline),
            status_code=200,
            headers=dict(STREAM_RESPONSE_HEADERS),
        )

    return Route(path, endpoint, methods=["POST"])


async def _stream(
    request: Request, messages: AsyncIterator[Json], deadline: Deadline
) -> AsyncIterator[bytes]:
    error: ConnectError | None = None
    pending: asyncio.Future[Json] | None = None
    try:
        try:
            while True:
                pending = asyncio.ensure_future(anext(messages))
                done, _ = await asyncio.wait({pending}, timeout=deadline.remaining())
                if not done:
                    error = ConnectError(Code.DEADLINE_EXCEEDED, "the call's deadline passed")
                    break
                finished, pending = pending, None
                try:
                    message = finished.result()
                except StopAsyncIteration:
                    break
                yield encode_message(message)
        except Exception as exc:
            error = _as_connect(exc, request)
        # The end goes out before the handler's clean-up (at a deadline, a client
        # whose own read timeout runs from the last message must not wait for it).
        yield end_stream(error)
    finally:
        # The handler's pending step runs in its own task: stop it, then close the
        # handler. When the client left, this generator is being cancelled, and the
        # cancellation would hit every await here again: the clean-up runs shielded,
        # to its end, whatever happens to this generator.
        cleanup = asyncio.ensure_future(_close(pending, messages))
        _CLEANUPS.add(cleanup)
        cleanup.add_done_callback(_CLEANUPS.discard)
        await asyncio.shield(cleanup)


_CLEANUPS: set[asyncio.Future[None]] = set()
"""Clean-ups in flight (the loop keeps only weak references to tasks)."""


async def _close(pending: asyncio.Future[Json] | None, messages: AsyncIterator[Json]) -> None:
    if pending is not None:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
    closer = getattr(messages, "aclose", None)
    if closer is not None:
        try:
            await closer()
        except Exception:
            log.exception("closing a stream handler failed")


def client_stream(
    path: str, handler: ClientStreamHandler, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> Route:
    """A client-streaming method: request envelopes decoded as they arrive (one at a
    time in memory), one message envelope and the end-stream envelope back."""

    async def endpoint(request: Request) -> Response:
        try:
            refusal, _ = check_request(_headers(request), streaming=True)
            if refusal is not None:
                return _reply(refusal)
            result = await handler(request, _payloads(request, max_bytes))
            body = encode_message(result) + end_stream()
        except ClientDisconnect:
            return Response(status_code=499)
        except Exception as exc:
            body = end_stream(_as_connect(exc, request))
        return Response(body, status_code=200, headers=dict(STREAM_RESPONSE_HEADERS))

    return Route(path, endpoint, methods=["POST"])


async def _payloads(request: Request, max_bytes: int) -> AsyncIterator[bytes]:
    decoder = EnvelopeDecoder(max_bytes)
    async for chunk in request.stream():
        for payload in decoder.feed(chunk):
            yield payload
    decoder.close()
