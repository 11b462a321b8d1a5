"""``e2b-tools serve``'s Connect route factories (``_rpc``) under uvicorn, with tiny
handlers: a client that leaves mid-stream closes the handler (no error logged), the
call's deadline ends the stream with ``deadline_exceeded`` and closes it too, and a
handler's failure ends the stream with an error envelope, not a broken body."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request

from e2b_tools_serve._connect import encode_envelope
from e2b_tools_serve._rpc import Deadline, server_stream, unary

STREAM = {"content-type": "application/connect+json"}


class Closed:
    """Which handlers ran their clean-up."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.event = threading.Event()

    def add(self, name: str) -> None:
        self.names.append(name)
        self.event.set()


@pytest.fixture
def errors() -> Iterator[list[logging.LogRecord]]:
    """Error records logged anywhere while the test runs."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.ERROR)
    logging.getLogger().addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger().removeHandler(handler)


@pytest.fixture
def server() -> Iterator[tuple[str, Closed]]:
    closed = Closed()

    async def ticks(request: Request, payload: bytes, deadline: Deadline) -> AsyncIterator[Any]:
        try:
            while True:
                await asyncio.sleep(0.02)
                yield {"tick": 1}
        finally:
            await asyncio.sleep(0)  # an await in clean-up, as real handlers have
            closed.add("ticks")

    async def silent(request: Request, payload: bytes, deadline: Deadline) -> AsyncIterator[Any]:
        try:
            await asyncio.sleep(3600)
            yield {}
        finally:
            closed.add("silent")

    async def broken(request: Request, payload: bytes, deadline: Deadline) -> AsyncIterator[Any]:
        yield {"first": True}
        raise KeyError("boom")

    async def echo(request: Request, payload: bytes) -> dict[str, Any]:
        return {"got": json.loads(payload)}

    app = Starlette(
        routes=[
            server_stream("/t.T/Ticks", ticks),
            server_stream("/t.T/Silent", silent),
            server_stream("/t.T/Broken", broken),
            unary("/t.T/Echo", echo, max_bytes=64),
        ]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", closed
    finally:
        uv.should_exit = True
        thread.join(10)
        sock.close()


def _messages(body: bytes) -> list[Any]:
    """The payloads of a response's envelopes (message and end-stream alike)."""
    out = []
    while body:
        _, length = struct.unpack(">BI", body[:5])
        out.append(json.loads(body[5 : 5 + length]))
        body = body[5 + length :]
    return out


def test_a_client_leaving_mid_stream_closes_the_handler(
    server: tuple[str, Closed], errors: list[logging.LogRecord]
) -> None:
    url, closed = server
    for _ in range(5):
        closed.event.clear()
        with httpx.stream(
            "POST", f"{url}/t.T/Ticks", content=encode_envelope(b"{}"), headers=STREAM
        ) as r:
            assert r.status_code == 200
            next(r.iter_raw())  # a tick arrived; leave
        assert closed.event.wait(5), "the handler was not closed"
    assert closed.names == ["ticks"] * 5
    time.sleep(0.2)
    assert not errors, [r.getMessage() for r in errors]


def test_the_deadline_ends_the_stream_and_closes_the_handler(
    server: tuple[str, Closed], errors: list[logging.LogRecord]
) -> None:
    url, closed = server
    started = time.monotonic()
    reply = httpx.post(
        f"{url}/t.T/Silent",
        content=encode_envelope(b"{}"),
        headers={**STREAM, "connect-timeout-ms": "300"},
        timeout=10,
    )
    assert 0.25 < time.monotonic() - started < 5
    assert reply.status_code == 200
    assert _messages(reply.content) == [
        {"error": {"code": "deadline_exceeded", "message": "the call's deadline passed"}}
    ]
    assert closed.event.wait(5) and closed.names == ["silent"]
    assert not errors


def test_a_failing_handler_ends_with_an_error_envelope(server: tuple[str, Closed]) -> None:
    url, _ = server
    reply = httpx.post(
        f"{url}/t.T/Broken", content=encode_envelope(b"{}"), headers=STREAM, timeout=10
    )
    messages = _messages(reply.content)
    assert messages[0] == {"first": True}
    assert messages[1] == {"error": {"code": "internal", "message": "internal error: KeyError"}}


def test_unary_bounds_and_codecs(server: tuple[str, Closed]) -> None:
    url, _ = server
    ok = httpx.post(
        f"{url}/t.T/Echo", content=b'{"a":1}', headers={"content-type": "application/json"}
    )
    assert ok.status_code == 200 and ok.json() == {"got": {"a": 1}}
    big = httpx.post(
        f"{url}/t.T/Echo",
        content=b'{"a":"' + b"x" * 100 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 429 and big.json()["code"] == "resource_exhausted"
    proto = httpx.post(
        f"{url}/t.T/Echo", content=b"\x08\x01", headers={"content-type": "application/proto"}
    )
    assert proto.status_code == 415
    two = encode_envelope(b"{}") * 2
    reply = httpx.post(f"{url}/t.T/Ticks", content=two, headers=STREAM)
    assert _messages(reply.content)[0]["error"]["code"] == "invalid_argument"
