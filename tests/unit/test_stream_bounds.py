"""The host's protocol reader against a hostile stream, over a socket pair (no engine).

A peer that sends garbage, an endless line or nothing at all must fail the calls in
flight with a clear error, never hang them or grow host memory.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from e2b_tools import (
    InvalidArgumentError,
    ProtocolError,
    SandboxConfig,
    SandboxGoneError,
    _connection,
)
from e2b_tools._config import parse_size
from e2b_tools._connection import AgentConnection
from e2b_tools.agent import protocol
from e2b_tools.backends.docker import DockerAttach


def frame(payload: bytes, stream: int = 1) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


async def _pair() -> tuple[AgentConnection, socket.socket]:
    host, peer = socket.socketpair()
    return AgentConnection(await DockerAttach.open(host), "test"), peer


async def _next_event(conn: AgentConnection, op: str) -> object:
    call = await conn.send(op)
    return await asyncio.wait_for(call.get(), 10)


@pytest.mark.asyncio
async def test_unparseable_line_fails_calls_in_flight_with_protocol_error() -> None:
    conn, peer = await _pair()
    try:
        waiting = asyncio.ensure_future(_next_event(conn, "info"))
        await asyncio.sleep(0.05)
        peer.sendall(frame(b"this is not json\n"))
        error = await waiting
        assert isinstance(error, ProtocolError) and "unreadable line" in str(error)
        assert conn.closed
        with pytest.raises(SandboxGoneError):
            await conn.send("info")
    finally:
        await conn.close()
        peer.close()


@pytest.mark.asyncio
async def test_endless_line_is_cut_at_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "MAX_LINE", 1 << 16)
    conn, peer = await _pair()
    try:
        waiting = asyncio.ensure_future(_next_event(conn, "info"))
        await asyncio.sleep(0.05)
        for _ in range(4):
            peer.sendall(frame(b"a" * (1 << 15)))  # no newline, ever
        error = await waiting
        assert isinstance(error, ProtocolError) and "longer than 65536" in str(error)
    finally:
        await conn.close()
        peer.close()


@pytest.mark.asyncio
async def test_events_of_other_clients_and_agent_log_lines_are_harmless() -> None:
    conn, peer = await _pair()
    try:
        call = await conn.send("info")
        peer.sendall(frame(b'{"id":"someone-else","type":"done","value":{}}\n'))
        peer.sendall(frame(b"agent says hi\n" + b"x" * 100_000, stream=2))
        done = json.dumps({"id": call.id, "type": "done", "value": {"ok": 1}}).encode()
        peer.sendall(frame(done[:10]) + frame(done[10:] + b"\n"))
        event = await asyncio.wait_for(call.get(), 10)
        assert event == {"id": call.id, "type": "done", "value": {"ok": 1}}
        assert conn.agent_log[0] == "agent says hi"
        assert all(len(line) <= 4096 for line in conn.agent_log)
    finally:
        await conn.close()
        peer.close()


@pytest.mark.asyncio
async def test_silent_peer_fails_waiting_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_connection, "LIVENESS_INTERVAL", 0.2)
    monkeypatch.setattr(_connection, "PROBE_TIMEOUT", 0.2)
    conn, peer = await _pair()
    try:
        error = await _next_event(conn, "run_code")
        assert isinstance(error, SandboxGoneError) and "stopped answering" in str(error)
    finally:
        await conn.close()
        peer.close()


@pytest.mark.asyncio
async def test_a_peer_that_answers_probes_keeps_long_calls_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_connection, "LIVENESS_INTERVAL", 0.2)
    monkeypatch.setattr(_connection, "PROBE_TIMEOUT", 0.5)
    conn, peer = await _pair()
    peer.setblocking(False)
    loop = asyncio.get_running_loop()

    async def agent() -> None:
        buf = protocol.LineBuffer()
        while True:
            data = await loop.sock_recv(peer, 65536)
            for line in buf.feed(data):
                request = json.loads(line)
                if request["op"] == "info":
                    answer = {"id": request["id"], "type": "done", "value": {}}
                    await loop.sock_sendall(peer, frame(json.dumps(answer).encode() + b"\n"))

    server = asyncio.ensure_future(agent())
    try:
        call = await conn.send("run_code")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call.get(), 1.5)
        assert not conn.closed
    finally:
        server.cancel()
        await conn.close()
        peer.close()


def test_line_buffer_splits_and_drops_oversized_lines() -> None:
    buf = protocol.LineBuffer(limit=10)
    assert buf.feed(b"ab\ncd") == [b"ab"]
    assert buf.feed(b"e\n\n") == [b"cde"]
    assert buf.feed(b"x" * 11) == [] and buf.dropped == 1
    assert buf.feed(b"yyy\nok\n") == [b"ok"]  # the rest of the long line is skipped
    assert buf.feed(b"0123456789A\nfine\n") == [b"fine"] and buf.dropped == 2
    big = protocol.LineBuffer(limit=1 << 20)
    for _ in range(64):  # 64 MiB without a newline: held to the limit, then dropped
        big.feed(b"z" * (1 << 20))
    assert len(big.buf) <= 1 << 20 and big.dropped == 1


def test_shrink_keeps_every_call_answered() -> None:
    size = protocol.MAX_LINE + 1
    (result,) = protocol.shrink({"id": "1", "type": "result", "data": {}}, size)
    assert "over the protocol's limit" in result["data"]["text/plain"]
    error, done = protocol.shrink({"id": "2", "type": "done", "value": {"entries": []}}, size)
    assert error["name"] == "ResultTooLarge" and done == {"id": "2", "type": "done", "value": {}}
    (cut,) = protocol.shrink({"id": "3", "type": "error", "value": "v" * size}, size)
    assert len(protocol.encode(cut)) < protocol.MAX_LINE


def test_tmpfs_sizes_follow_memory_and_must_fit() -> None:
    assert parse_size("512m") == 512 << 20 and parse_size(1024) == 1024
    assert SandboxConfig().tmpfs_sizes() == (512 << 20, 128 << 20)
    assert SandboxConfig(memory="256m").tmpfs_sizes() == (128 << 20, 32 << 20)
    assert SandboxConfig(memory=None).tmpfs_sizes() == (1 << 30, 256 << 20)
    with pytest.raises(ValueError, match="under a quarter"):
        SandboxConfig(workspace_size="1g")
    with pytest.raises(ValueError, match="not a size"):
        SandboxConfig(tmp_size="lots")


def test_create_reports_sizes_that_do_not_fit() -> None:
    from e2b_tools import Sandbox

    with pytest.raises(InvalidArgumentError, match="raise memory or lower workspace_size"):
        Sandbox.create(memory="512m", config=SandboxConfig(memory="2g", workspace_size="500m"))


@pytest.mark.asyncio
async def test_a_slow_consumer_holds_the_stream_instead_of_buffering_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    monkeypatch.setattr(_connection, "CALL_BACKLOG", 1 << 20)
    conn, peer = await _pair()
    call = await conn.send("command")
    text = "x" * (256 << 10)
    line = json.dumps({"id": call.id, "type": "stdout", "text": text}).encode() + b"\n"
    done = json.dumps({"id": call.id, "type": "done", "value": {}}).encode() + b"\n"

    def flood() -> None:  # 64 MiB in all, far more than the host may hold
        for _ in range(256):
            peer.sendall(frame(line))
        peer.sendall(frame(done))

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    try:
        await asyncio.sleep(1.0)
        assert call.backlog <= (1 << 20) + 2 * len(line), call.backlog
        assert sender.is_alive(), "the whole flood was taken in without a reader"
        count = 0
        while True:
            event = await asyncio.wait_for(call.get(), 10)
            assert isinstance(event, dict)
            if event["type"] == "done":
                break
            count += 1
        assert count == 256
    finally:
        await conn.close()
        peer.close()
        sender.join(timeout=5)
