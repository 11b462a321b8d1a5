"""Connect framing of ``e2b-tools serve`` (issue 15): golden bytes, errors, hostile input.

Golden bytes come from the Connect protocol reference (connectrpc.com, "Connect
Protocol Reference"); the real ``e2b`` SDK's own connectrpc envelope reader (a side
venv, ``tests/helpers.e2b_sdk_python``) also decodes what we encode.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from helpers import e2b_sdk_python

from e2b_tools_serve._connect import (
    Code,
    ConnectError,
    EnvelopeDecoder,
    check_request,
    check_unary_body,
    decode_single,
    encode_envelope,
    encode_message,
    end_stream,
    parse_timeout_ms,
    unary_error_reply,
)
from e2b_tools_serve._keepalive import keepalive_interval, with_keepalive
from e2b_tools_serve._proto import (
    data_event,
    end_event,
    keepalive_event,
    read_stream_input,
    start_event,
)

STATUS = {
    "canceled": 499,
    "unknown": 500,
    "invalid_argument": 400,
    "deadline_exceeded": 504,
    "not_found": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "resource_exhausted": 429,
    "failed_precondition": 400,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "data_loss": 500,
    "unauthenticated": 401,
}


def test_envelope_golden_bytes() -> None:
    # The spec's examples: <flags: 0><length: 15>{"name": "Buf"} and <flags: 2><length: 2>{}
    assert encode_envelope(b'{"name": "Buf"}') == b'\x00\x00\x00\x00\x0f{"name": "Buf"}'
    assert end_stream() == b"\x02\x00\x00\x00\x02{}"
    assert encode_message({"event": {"start": {"pid": 7}}}) == (
        b'\x00\x00\x00\x00\x1d{"event":{"start":{"pid":7}}}'
    )


def test_end_stream_error_and_metadata() -> None:
    frame = end_stream(ConnectError(Code.UNAVAILABLE, "overloaded"), {"Acme-Cost": ["237"]})
    assert frame[0] == 0x02
    assert int.from_bytes(frame[1:5], "big") == len(frame) - 5
    assert json.loads(frame[5:]) == {
        "error": {"code": "unavailable", "message": "overloaded"},
        "metadata": {"acme-cost": ["237"]},
    }


def test_every_code_has_its_http_status() -> None:
    assert {code.value: code.http_status for code in Code} == STATUS
    reply = unary_error_reply(ConnectError(Code.NOT_FOUND, "no pid 3"))
    assert (reply.status, dict(reply.headers)["content-type"]) == (404, "application/json")
    assert json.loads(reply.body) == {"code": "not_found", "message": "no pid 3"}


def test_split_at_every_byte() -> None:
    payloads = [b"{}", b'{"data":{"input":{"stdin":"aGkK"}}}', b"", b"x" * 300]
    body = b"".join(encode_envelope(p) for p in payloads)
    for cut in range(len(body) + 1):
        decoder = EnvelopeDecoder()
        got = [*decoder.feed(body[:cut]), *decoder.feed(body[cut:])]
        decoder.close()
        assert got == payloads
    decoder = EnvelopeDecoder()
    assert [m for i in range(len(body)) for m in decoder.feed(body[i : i + 1])] == payloads


def test_huge_declared_length_is_refused_before_buffering() -> None:
    decoder = EnvelopeDecoder(max_message_bytes=1024)
    with pytest.raises(ConnectError) as info:
        list(decoder.feed(b"\x00\xff\xff\xff\xff" + b"x" * 10))
    assert info.value.code is Code.RESOURCE_EXHAUSTED
    assert "1024" in info.value.message
    with pytest.raises(ConnectError) as info:
        check_unary_body(b"x" * 1025, 1024)
    assert info.value.code is Code.RESOURCE_EXHAUSTED


@pytest.mark.parametrize(
    ("flags", "code"),
    [
        (0x01, Code.INTERNAL),
        (0x03, Code.INTERNAL),
        (0x02, Code.INVALID_ARGUMENT),
        (0x80, Code.INVALID_ARGUMENT),
    ],
)
def test_bad_flags(flags: int, code: Code) -> None:
    with pytest.raises(ConnectError) as info:
        list(EnvelopeDecoder().feed(encode_envelope(b"{}", flags)))
    assert info.value.code is code


@pytest.mark.parametrize("body", [b"\x00\x00", b"\x00\x00\x00\x00\x05{}"])
def test_truncated_body(body: bytes) -> None:
    decoder = EnvelopeDecoder()
    assert list(decoder.feed(body)) == []
    with pytest.raises(ConnectError, match="truncated") as info:
        decoder.close()
    assert info.value.code is Code.INVALID_ARGUMENT


def test_unary_body_garbage_is_left_to_the_reader() -> None:
    # Framing does not parse JSON: a unary body is bytes within the bound.
    assert check_unary_body(b"\xff not json") == b"\xff not json"


def test_decode_single_needs_exactly_one() -> None:
    assert decode_single(encode_envelope(b"{}")) == b"{}"
    for body in (b"", encode_envelope(b"{}") * 2):
        with pytest.raises(ConnectError, match="expected 1"):
            decode_single(body)


@pytest.mark.parametrize(
    ("value", "ms"),
    [(None, None), ("", None), ("0", None), ("60000", 60000), ("9999999999", 9999999999)],
)
def test_timeout_valid(value: str | None, ms: int | None) -> None:
    assert parse_timeout_ms(value) == ms


@pytest.mark.parametrize(
    "value", ["-1", "+5", "1.5", "60000.0", " 5", "5_000", "12345678901", "1e3", "٣"]
)
def test_timeout_invalid(value: str) -> None:
    with pytest.raises(ConnectError) as info:
        parse_timeout_ms(value)
    assert info.value.code is Code.INVALID_ARGUMENT


def test_check_request() -> None:
    stream = {"content-type": "application/connect+json", "connect-protocol-version": "1"}
    assert check_request({**stream, "connect-timeout-ms": "500"}, streaming=True) == (None, 500)
    assert check_request({"content-type": "application/json; charset=utf-8"}, streaming=False) == (
        None,
        None,
    )
    for content_type, streaming in [
        ("application/proto", False),
        ("application/connect+proto", True),
        ("application/json", True),
        ("application/connect+json", False),
    ]:
        reply, _ = check_request({"content-type": content_type}, streaming=streaming)
        assert reply is not None and reply.status == 415
    with pytest.raises(ConnectError) as info:
        check_request({**stream, "connect-protocol-version": "2"}, streaming=True)
    assert info.value.code is Code.INVALID_ARGUMENT
    with pytest.raises(ConnectError) as info:
        check_request({**stream, "connect-content-encoding": "gzip"}, streaming=True)
    assert info.value.code is Code.UNIMPLEMENTED
    assert (
        check_request({**stream, "connect-content-encoding": "identity"}, streaming=True)[0] is None
    )


async def _gate_source(gate: asyncio.Event, closed: list[bool]):  # type: ignore[no-untyped-def]
    try:
        yield "a"
        await gate.wait()
        yield "b"
    finally:
        closed.append(True)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("50", 50.0),
        ("1", 1.0),
        (None, 90.0),
        ("", 90.0),
        ("0", 90.0),
        ("-5", 90.0),
        ("1.5", 90.0),
        ("abc", 90.0),
        ("٣", 90.0),
        ("99999999999", 90.0),
        ("1000000001", 90.0),
    ],
)
def test_keepalive_interval_header(value: str | None, seconds: float) -> None:
    assert keepalive_interval(value) == seconds


def test_keepalive_interleaves_when_idle() -> None:
    async def run() -> list[str]:
        gate, closed = asyncio.Event(), []
        stream = with_keepalive(_gate_source(gate, closed), 0.02, lambda: "ka")
        got = [await stream.__anext__() for _ in range(3)]  # "a", then idle: keepalives
        gate.set()
        async for item in stream:
            got.append(item)
        assert closed == [True]
        return got

    got = asyncio.run(run())
    assert got[:3] == ["a", "ka", "ka"]
    assert got[-1] == "b"
    assert set(got[3:-1]) <= {"ka"}  # at most a keepalive raced the gate


def test_keepalive_not_sent_when_busy_and_cancels_on_close() -> None:
    async def run() -> None:
        gate, closed = asyncio.Event(), []
        stream = with_keepalive(_gate_source(gate, closed), 30.0, lambda: "ka")
        assert await stream.__anext__() == "a"
        pending = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.05)
        assert not pending.done()  # no keepalive within 30 s, the read still waits
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await stream.aclose()
        assert closed == [True]

    asyncio.run(run())


def test_keepalive_propagates_source_errors() -> None:
    async def broken():  # type: ignore[no-untyped-def]
        yield 1
        raise OSError("agent gone")

    async def run() -> list[int]:
        return [item async for item in with_keepalive(broken(), 1.0, lambda: 0)]

    with pytest.raises(OSError, match="agent gone"):
        asyncio.run(run())


_SDK_READER = r"""
import sys
from connectrpc._codec import proto_json_codec
from connectrpc._compression import IdentityCompression
from connectrpc._protocol_connect import ConnectEnvelopeReader
from connectrpc.errors import ConnectError
from e2b.envd.process.process_pb import StartResponse
reader = ConnectEnvelopeReader(StartResponse, proto_json_codec(), IdentityCompression(), None)
body = sys.stdin.buffer.read()
try:
    for message in reader.feed(body):
        print(message.to_json())
except ConnectError as exc:
    print("ERROR", exc.code.value, exc.message)
"""


def test_sdk_envelope_reader_decodes_our_stream() -> None:
    body = (
        b"".join(
            encode_message(m)
            for m in (
                start_event(42),
                data_event(stdout=b"hi\n"),
                data_event(stderr=b"\xff\x00"),
                keepalive_event(),
                end_event(-1, exited=False, status="signal: killed", error="signal: killed"),
            )
        )
        + end_stream()
    )
    error_body = end_stream(ConnectError(Code.INVALID_ARGUMENT, "cwd '/nope' does not exist"))
    lines = []
    for data in (body, error_body):
        run = subprocess.run(
            [str(e2b_sdk_python()), "-c", _SDK_READER],
            input=data,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert run.returncode == 0, run.stderr.decode()
        lines += run.stdout.decode().splitlines()
    assert lines == [
        '{"event":{"start":{"pid":42}}}',
        '{"event":{"data":{"stdout":"aGkK"}}}',
        '{"event":{"data":{"stderr":"/wA="}}}',
        '{"event":{"keepalive":{}}}',
        '{"event":{"end":{"exitCode":-1,"status":"signal: killed","error":"signal: killed"}}}',
        "ERROR invalid_argument cwd '/nope' does not exist",
    ]


_SDK_WRITER = r"""
import sys
from connectrpc._codec import proto_json_codec
from connectrpc._protocol_connect import ConnectEnvelopeWriter
from e2b.envd.process.process_pb import StreamInputRequest
writer = ConnectEnvelopeWriter(proto_json_codec(), None)
for text in ('{"start":{"process":{"pid":4}}}', '{"data":{"input":{"stdin":"aGkK"}}}',
             '{"keepalive":{}}'):
    sys.stdout.buffer.write(writer.write(StreamInputRequest.from_json(text)))
"""


def test_we_decode_the_sdk_client_stream() -> None:
    run = subprocess.run(
        [str(e2b_sdk_python()), "-c", _SDK_WRITER], capture_output=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr.decode()
    body = run.stdout
    for cut in range(len(body) + 1):
        decoder = EnvelopeDecoder()
        payloads = decoder.feed(body[:cut]) + decoder.feed(body[cut:])
        decoder.close()
        events = [read_stream_input(payload) for payload in payloads]
        assert [event.event for event in events] == ["start", "data", "keepalive"]
        assert (events[0].process.pid, events[1].stdin) == (4, b"hi\n")
