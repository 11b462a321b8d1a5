"""HTTP requests coming in through ``get_host``: E2B's traffic access token and
``mask_request_host``.

A connection's first request head is read with a bound (:data:`HEAD_LIMIT`; over it:
``431``). With ``allow_public_traffic=False`` it must carry the token (else ``403``,
before the sandbox's port is even opened); the token then admits the whole connection
(one local client's stream), and the header goes on to the server, as E2B's proxy
leaves it. With ``mask_request_host``, every request of the connection gets the masked
Host header: the request stream is followed by its framing (``Content-Length``,
chunked), so keep-alive works; bodies pass byte for byte. After an upgrade
(WebSocket), a ``CONNECT`` or framing it cannot follow, the rest passes unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from ._config import Ingress

HEAD_LIMIT = 16 * 1024
"""Bytes a request head (request line and headers) may have; over it: ``431``."""
TOKEN_HEADER = b"e2b-traffic-access-token"
"""The header that carries :attr:`Sandbox.traffic_access_token` (E2B's name)."""
READ_SIZE = 1 << 16
"""Bytes read from the client at a time."""
LINGER_BYTES = 1 << 20
"""Bytes of a refused client's request read and dropped before closing, so that the
reply is not lost to a reset."""
LINGER_SECONDS = 2.0
"""Seconds spent on that at most."""

_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TARGET = rb"[\x21-\x7e\x80-\xff]"
_REQUEST_LINE = re.compile(rb"%s+ %s+ HTTP/1\.\d" % (_TCHAR, _TARGET))
_PARTIAL_LINE = re.compile(
    rb"%s*|%s+ %s*|%s+ %s+ H(T(T(P(/(1(\.(\d)?)?)?)?)?)?)?"
    % (_TCHAR, _TCHAR, _TARGET, _TCHAR, _TARGET)
)
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")

Kind = Literal["head", "not_http", "too_big", "eof"]


class ClientStream:
    """The local client's bytes, with what was read ahead and not yet forwarded."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        """The client's connection."""
        self._pending = b""

    async def read(self, limit: int = READ_SIZE) -> bytes:
        """Up to ``limit`` bytes (``b""``: the client's end)."""
        if self._pending:
            data, self._pending = self._pending[:limit], self._pending[limit:]
            return data
        return await self.reader.read(limit)

    def unread(self, data: bytes) -> None:
        """Give ``data`` back: the next reads return it first."""
        self._pending = data + self._pending

    async def rest(self) -> AsyncIterator[bytes]:
        """Everything up to the client's end, as it comes."""
        while data := await self.read():
            yield data

    async def exactly(self, size: int) -> AsyncIterator[bytes]:
        """``size`` bytes as they come (fewer if the client ends first)."""
        while size > 0 and (data := await self.read(min(size, READ_SIZE))):
            size -= len(data)
            yield data

    async def line(self) -> bytes | None:
        """One line with its end; None (nothing consumed) if the client ends first or
        the line is over :data:`HEAD_LIMIT`."""
        data = b""
        while (end := data.find(b"\n")) < 0:
            chunk = await self.read(HEAD_LIMIT + 1 - len(data)) if len(data) <= HEAD_LIMIT else b""
            if not chunk:
                self.unread(data)
                return None
            data += chunk
        if end >= HEAD_LIMIT:
            self.unread(data)
            return None
        self.unread(data[end + 1 :])
        return data[: end + 1]

    async def skip_blank_lines(self) -> None:
        """Drop empty lines before a request (servers ignore them too)."""
        while data := await self.read():
            if stripped := data.lstrip(b"\r\n"):
                self.unread(stripped)
                return


@dataclass
class FirstBytes:
    """What a client sent first: a whole request ``head`` (ending in its blank line)
    when ``kind == "head"``, else every byte read (``data``)."""

    kind: Kind
    data: bytes

    @property
    def head(self) -> bytes:
        """The request head (``b""`` unless ``kind == "head"``)."""
        return self.data if self.kind == "head" else b""


def _classify(data: bytes) -> tuple[Kind | None, int]:
    """What ``data`` (the first bytes) is so far, None: read more; and where its head
    ends (when it is one)."""
    line_end = data.find(b"\n")
    if line_end < 0:
        if len(data) > HEAD_LIMIT:
            return "too_big", 0
        return (None if _PARTIAL_LINE.fullmatch(data) else "not_http"), 0
    if not _REQUEST_LINE.fullmatch(data[:line_end].removesuffix(b"\r")):
        return "not_http", 0
    end = _HEAD_END.search(data, max(line_end - 1, 0))
    if end is None:
        return ("too_big" if len(data) > HEAD_LIMIT else None), 0
    return ("too_big" if end.end() > HEAD_LIMIT else "head"), end.end()


async def read_first(stream: ClientStream) -> FirstBytes:
    """Read until a request head is whole, or the bytes cannot be one (at most
    :data:`HEAD_LIMIT` and a byte); what follows a head stays in ``stream``."""
    data = b""
    while True:
        kind, end = _classify(data)
        if kind == "head":
            stream.unread(data[end:])
            return FirstBytes("head", data[:end])
        if kind is not None:
            return FirstBytes(kind, data)
        chunk = await stream.read(max(HEAD_LIMIT + 1 - len(data), 1))
        if not chunk:
            return FirstBytes("eof", data)
        data += chunk


def _fields(head: bytes) -> list[list[bytes]]:
    """The head's header fields, each as its lines (obs-fold continuations joined to
    the field they continue), the request line and the blank line left out."""
    fields: list[list[bytes]] = []
    for line in head.split(b"\n")[1:]:
        if line in (b"", b"\r"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    return fields


def _name(field: list[bytes]) -> bytes:
    return field[0].split(b":", 1)[0].strip().lower()


def _value(field: list[bytes]) -> bytes:
    first = field[0].split(b":", 1)[1] if b":" in field[0] else b""
    return b" ".join(part.strip() for part in [first, *field[1:]]).strip()


def _values(fields: list[list[bytes]], name: bytes) -> list[bytes]:
    return [_value(f) for f in fields if _name(f) == name]


def token_problem(head: bytes, token: str | None) -> str | None:
    """Why ``head`` does not carry ``token``; None when it does."""
    values = _values(_fields(head), TOKEN_HEADER)
    if not values:
        return f"the {TOKEN_HEADER.decode()} header is missing"
    expected = (token or "").encode()
    if token is None or not all(hmac.compare_digest(v, expected) for v in values):
        return f"the {TOKEN_HEADER.decode()} header does not match"
    return None


def masked(head: bytes, host: str) -> bytes:
    """``head`` with one ``Host: host`` in place of its Host fields, every other byte
    as it was."""
    request_line = head.split(b"\n", 1)[0] + b"\n"
    eol = b"\r\n" if request_line.endswith(b"\r\n") else b"\n"
    blank = b"\r\n" if head.endswith(b"\r\n") else b"\n"
    kept = [b"\n".join(f) + b"\n" for f in _fields(head) if _name(f) != b"host"]
    return request_line + b"Host: " + host.encode() + eol + b"".join(kept) + blank


CHUNKED = -1
""":func:`body_length` of a chunked body."""


def body_length(head: bytes) -> int | None:
    """Bytes of the body after request ``head`` (RFC 9112, section 6): a length,
    :data:`CHUNKED`, or None when no more requests follow that can be told apart
    (an upgrade, ``CONNECT``, framing that is not valid)."""
    fields = _fields(head)
    upgrade = _values(fields, b"upgrade") and any(
        b"upgrade" in v.lower() for v in _values(fields, b"connection")
    )
    if upgrade or head.startswith(b"CONNECT "):
        return None
    codings = b",".join(_values(fields, b"transfer-encoding")).lower().split(b",")
    if codings != [b""]:
        return CHUNKED if codings[-1].strip() == b"chunked" else None
    lengths = {v.strip() for value in _values(fields, b"content-length") for v in value.split(b",")}
    if not lengths:
        return 0
    length = lengths.pop()
    return int(length) if not lengths and length.isdigit() else None


async def _chunked(stream: ClientStream) -> AsyncIterator[bytes]:
    """A chunked body and its trailers, as they come; raises ValueError (nothing more
    consumed) at what does not parse."""
    while True:
        line = await stream.line()
        size = _HEX.fullmatch(line.split(b";", 1)[0].strip()) if line else None
        if line is None or size is None:
            stream.unread(line or b"")
            raise ValueError("not a chunk size line")
        yield line
        if int(size.group(), 16) == 0:
            break
        async for data in stream.exactly(int(size.group(), 16)):
            yield data
        line = await stream.line()
        if line is None or line.strip(b"\r\n"):
            stream.unread(line or b"")
            raise ValueError("no line end after a chunk")
        yield line
    while True:  # trailers, then the blank line
        line = await stream.line()
        if line is None:
            raise ValueError("trailers without an end")
        yield line
        if not line.strip(b"\r\n"):
            return


async def masked_requests(stream: ClientStream, head: bytes, host: str) -> AsyncIterator[bytes]:
    """The client's requests from ``head`` on, each head masked (:func:`masked`). A
    later head over the bound ends the stream (the server sees the client's end)."""
    while True:
        yield masked(head, host)
        length = body_length(head)
        if length is None:
            break
        if length == CHUNKED:
            try:
                async for data in _chunked(stream):
                    yield data
            except ValueError:
                break
        else:
            async for data in stream.exactly(length):
                yield data
        await stream.skip_blank_lines()
        following = await read_first(stream)
        if following.kind != "head":
            if following.kind == "not_http":
                yield following.data
                break
            if following.kind == "eof" and following.data:
                yield following.data
            return
        head = following.head
    async for data in stream.rest():
        yield data


async def outgoing(
    stream: ClientStream, first: FirstBytes | None, ingress: Ingress, port: int
) -> AsyncIterator[bytes]:
    """What goes to the sandbox's server on ``port``: ``first`` (already read and
    judged by :func:`refusal`), then the rest of the client's bytes."""
    host = ingress.host_for(port)
    if first is not None and first.kind == "head" and host is not None:
        async for data in masked_requests(stream, first.head, host):
            yield data
        return
    if first is not None and first.data:
        yield first.data
    async for data in stream.rest():
        yield data


def reply(status: str, text: str) -> bytes:
    """A whole HTTP response that closes the connection, ``text`` as its body."""
    body = (text + "\n").encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def refusal(first: FirstBytes, ingress: Ingress) -> bytes | None:
    """The reply that refuses a connection whose first bytes are ``first``; None when
    it may go on (a whole head, with the token if one is required; anything that is
    not HTTP when none is)."""
    if first.kind == "too_big":
        return reply(
            "431 Request Header Fields Too Large", f"the request head is over {HEAD_LIMIT} bytes"
        )
    if ingress.allow_public_traffic:
        return None
    if first.kind != "head":
        return reply(
            "403 Forbidden", f"this sandbox wants HTTP with the {TOKEN_HEADER.decode()} header"
        )
    problem = token_problem(first.head, ingress.traffic_access_token)
    if problem is not None:
        return reply(
            "403 Forbidden", f"this sandbox is secured with a traffic access token: {problem}"
        )
    return None


async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: bytes) -> None:
    """Send ``answer`` and close, after reading (a bounded part of) what the client
    still sends: closing on unread bytes would reset the connection, reply and all."""
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        writer.write(answer)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

        async def drain_client() -> None:
            left = LINGER_BYTES
            while left > 0 and (chunk := await reader.read(min(left, READ_SIZE))):
                left -= len(chunk)

        await asyncio.wait_for(drain_client(), LINGER_SECONDS)
    writer.close()
