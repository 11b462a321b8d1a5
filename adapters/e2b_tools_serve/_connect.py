"""Connect protocol framing with the JSON codec (connectrpc.com "Connect Protocol Reference").

Only what envd's clients use: unary calls (``application/json``, a bare JSON body) and
streaming calls (``application/connect+json``, a body of envelopes
``[flags u8][length u32 big-endian][payload]``). A streaming response always has HTTP
status 200 and ends with an end-stream envelope (flag ``0x02``) holding ``{}`` or
``{"error": {...}}``, also for an error that happens before any message. A unary error
is a non-200 status with a JSON body ``{"code", "message"}``. We never compress and
support the JSON codec only: a protobuf content type gets 415, as the spec requires.

Errors (every one a :class:`ConnectError`, carrying a :class:`Code`):
    invalid_argument  bad header (timeout, protocol version), truncated body, bad flags
    resource_exhausted  an envelope or unary body over the configured maximum size
    internal  a compressed envelope (compression is never negotiated)
    unimplemented  a request ``content-encoding`` other than identity
"""

from __future__ import annotations

import enum
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

FLAG_COMPRESSED = 0x01
FLAG_END_STREAM = 0x02
HEADER = struct.Struct(">BI")
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Largest envelope payload or unary body accepted (the bound on what a client can
make the server buffer)."""

UNARY_CONTENT_TYPE = "application/json"
STREAM_CONTENT_TYPE = "application/connect+json"
UNARY_RESPONSE_HEADERS = (("content-type", UNARY_CONTENT_TYPE), ("content-encoding", "identity"))
STREAM_RESPONSE_HEADERS = (("content-type", STREAM_CONTENT_TYPE),)


class Code(str, enum.Enum):
    """The Connect error codes (the same set as gRPC's), with their HTTP status."""

    CANCELED = "canceled"
    UNKNOWN = "unknown"
    INVALID_ARGUMENT = "invalid_argument"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    PERMISSION_DENIED = "permission_denied"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    FAILED_PRECONDITION = "failed_precondition"
    ABORTED = "aborted"
    OUT_OF_RANGE = "out_of_range"
    UNIMPLEMENTED = "unimplemented"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    DATA_LOSS = "data_loss"
    UNAUTHENTICATED = "unauthenticated"

    @property
    def http_status(self) -> int:
        """The HTTP status of a unary error with this code (the spec's table)."""
        return _HTTP_STATUS[self]


_HTTP_STATUS = {
    Code.CANCELED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


class ConnectError(Exception):
    """An RPC failure, as the client will see it: a code and a message.

    Example:
        >>> err = ConnectError(Code.NOT_FOUND, "process with pid 7 not found")
        >>> err.http_status, err.to_json()
        (404, {'code': 'not_found', 'message': 'process with pid 7 not found'})
    """

    def __init__(self, code: Code, message: str = "") -> None:
        super().__init__(f"{code.value}: {message}" if message else code.value)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status of this error as a unary response."""
        return self.code.http_status

    def to_json(self) -> dict[str, str]:
        """The wire form of the error, in unary bodies and end-stream messages."""
        return {"code": self.code.value, "message": self.message}


@dataclass(frozen=True)
class Reply:
    """A complete HTTP response for the ASGI layer to send as is."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def unary_error_reply(error: ConnectError) -> Reply:
    """A unary error response: the code's HTTP status, ``application/json`` (the only
    content type clients accept on an error) and ``{"code", "message"}``."""
    return Reply(error.http_status, UNARY_RESPONSE_HEADERS, _dumps(error.to_json()))


def unsupported_media_type(*, streaming: bool) -> Reply:
    """415 for a codec we do not speak (``application/proto`` and friends), naming the
    content type to use in ``Accept-Post`` as connect servers do."""
    accept = STREAM_CONTENT_TYPE if streaming else UNARY_CONTENT_TYPE
    return Reply(415, (("accept-post", accept),), b"")


def encode_envelope(payload: bytes, flags: int = 0) -> bytes:
    """One envelope: ``[flags u8][len(payload) u32 big-endian][payload]``."""
    return HEADER.pack(flags, len(payload)) + payload


def encode_message(message: object) -> bytes:
    """A message envelope (flags 0) holding ``message`` as compact JSON."""
    return encode_envelope(_dumps(message))


def end_stream(
    error: ConnectError | None = None, metadata: Mapping[str, list[str]] | None = None
) -> bytes:
    """The end-stream envelope (flag ``0x02``) that must close every streaming response:
    ``{}`` on success, ``{"error": {...}}`` on failure, plus optional trailing
    ``metadata`` (lower-case header names to lists of values)."""
    body: dict[str, object] = {}
    if error is not None:
        body["error"] = error.to_json()
    if metadata:
        body["metadata"] = {key.lower(): list(values) for key, values in metadata.items()}
    return encode_envelope(_dumps(body), FLAG_END_STREAM)


@dataclass(frozen=True)
class Envelope:
    """A decoded envelope: its flags and its (still encoded) payload."""

    flags: int
    payload: bytes


class EnvelopeDecoder:
    """Incremental decoder of a request body made of envelopes.

    Feed it the body's chunks as they arrive, cut anywhere; it yields each complete
    envelope's payload. It never holds more than one envelope (bounded by
    ``max_message_bytes``) plus a 5-byte header: an oversized declared length is
    refused as soon as the header is read, before any of its payload is buffered.
    Call :meth:`close` at the end of the body to detect a truncated envelope.

    Example:
        >>> decoder = EnvelopeDecoder()
        >>> decoder.feed(encode_envelope(b"{}") + b"\\x00\\x00")
        [b'{}']
        >>> try:  # the body stopped 2 bytes into the next envelope's header
        ...     decoder.close()
        ... except ConnectError as exc:
        ...     print(exc.code.value)
        invalid_argument
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._max = max_message_bytes
        self._buffer = bytearray()
        self._length: int | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add ``chunk``; return the payload of every envelope it completes, in order."""
        self._buffer += chunk
        payloads: list[bytes] = []
        while True:
            if self._length is None:
                if len(self._buffer) < HEADER.size:
                    return payloads
                flags, length = HEADER.unpack_from(self._buffer)
                self._check(flags, length)
                del self._buffer[: HEADER.size]
                self._length = length
            if len(self._buffer) < self._length:
                return payloads
            payloads.append(bytes(self._buffer[: self._length]))
            del self._buffer[: self._length]
            self._length = None

    def _check(self, flags: int, length: int) -> None:
        if flags & FLAG_COMPRESSED:
            raise ConnectError(
                Code.INTERNAL,
                "protocol error: sent compressed message without compression support",
            )
        if flags:
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"protocol error: invalid envelope flags {flags:#04x}"
            )
        if length > self._max:
            raise ConnectError(
                Code.RESOURCE_EXHAUSTED,
                f"message is larger than configured max {self._max} bytes: {length}",
            )

    def close(self) -> None:
        """Declare the body finished; raise if it stopped inside an envelope."""
        if self._length is not None:
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"protocol error: truncated envelope: promised {self._length} bytes, "
                f"got {len(self._buffer)}",
            )
        if self._buffer:
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"protocol error: truncated envelope: body ended {len(self._buffer)} bytes "
                f"into a {HEADER.size}-byte header",
            )


def decode_single(body: bytes, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    """The one envelope of a server-streaming request body (exactly one is required)."""
    decoder = EnvelopeDecoder(max_message_bytes)
    payloads = decoder.feed(body)
    decoder.close()
    if len(payloads) != 1:
        raise ConnectError(
            Code.INVALID_ARGUMENT,
            f"protocol error: expected 1 request message, got {len(payloads)}",
        )
    return payloads[0]


def check_unary_body(body: bytes, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes:
    """``body`` if it is within the size bound (a unary body is a bare message)."""
    if len(body) > max_message_bytes:
        raise ConnectError(
            Code.RESOURCE_EXHAUSTED,
            f"message is larger than configured max {max_message_bytes} bytes: {len(body)}",
        )
    return body


_TIMEOUT = re.compile(r"[0-9]{1,10}")


def parse_timeout_ms(value: str | None) -> int | None:
    """``Connect-Timeout-Ms``: 1 to 10 ASCII digits; ``None`` when there is no deadline.

    Absent, empty or ``0`` means no deadline (E2B's clients send none for a disabled
    timeout, and envd treats 0 that way). Anything else, such as ``-1``, ``1.5``,
    ``+5`` or 11 digits, is ``invalid_argument``.
    """
    if value is None or value == "":
        return None
    if not _TIMEOUT.fullmatch(value):
        raise ConnectError(
            Code.INVALID_ARGUMENT,
            f"protocol error: invalid connect-timeout-ms {value[:32]!r}: "
            "expected 1 to 10 ASCII digits",
        )
    return int(value) or None


def _media_type(value: str) -> str:
    return value.partition(";")[0].strip().lower()


def check_request(
    headers: Mapping[str, str], *, streaming: bool
) -> tuple[Reply | None, int | None]:
    """Check a request's Connect headers (lower-case names) before reading its body.

    Returns ``(reply, None)`` when the codec is not ours (send ``reply``: 415), else
    ``(None, timeout_ms)``. Raises :class:`ConnectError` for a bad protocol version,
    timeout or compression; a streaming handler sends it in the end-stream envelope,
    a unary one as :func:`unary_error_reply`.
    """
    expected = STREAM_CONTENT_TYPE if streaming else UNARY_CONTENT_TYPE
    if _media_type(headers.get("content-type", "")) != expected:
        return unsupported_media_type(streaming=streaming), None
    version = headers.get("connect-protocol-version")
    if version is not None and version != "1":
        raise ConnectError(
            Code.INVALID_ARGUMENT, f"connect-protocol-version must be '1': got {version[:32]!r}"
        )
    encoding = headers.get("connect-content-encoding" if streaming else "content-encoding")
    if encoding is not None and encoding.strip().lower() not in ("", "identity"):
        raise ConnectError(
            Code.UNIMPLEMENTED,
            f"unknown compression {encoding[:32]!r}: supported encodings are identity",
        )
    return None, parse_timeout_ms(headers.get("connect-timeout-ms"))
