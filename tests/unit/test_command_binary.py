"""Binary command output and stdin (``output="bytes"``): every byte value survives,
memory stays bounded, the default text mode is unchanged. Engine-free: the real agent
as a subprocess."""

from __future__ import annotations

import base64
import hashlib
import tracemalloc
from collections.abc import Iterator

import pytest
from local_backend import LocalBackend

from e2b_tools import (
    CommandExitError,
    InvalidArgumentError,
    ProtocolError,
    Sandbox,
    SandboxConfig,
    SaveOutput,
)
from e2b_tools._bridge import blocking
from e2b_tools.agent import protocol
from e2b_tools.agent.plumbing import READ_CHUNK

ALL_BYTES = bytes(range(256))
LIMIT = 64 * 1024
"""A small ``output_limit`` (bytes per stream kept on the host) for the flood tests."""


@pytest.fixture
def small(backend: LocalBackend) -> Iterator[Sandbox]:
    """A sandbox that keeps only ``LIMIT`` bytes of each stream."""
    sbx = Sandbox.create(backend=backend, timeout=300, config=SandboxConfig(output_limit=LIMIT))
    try:
        yield sbx
    finally:
        sbx.kill()


def _python(code: str) -> str:
    return f"python3 -c '{code}'"


def test_every_byte_value_round_trips_through_stdout(local_sandbox: Sandbox) -> None:
    cmd = _python(
        "import sys; sys.stdout.buffer.write(bytes(range(256)) * 3); "
        "sys.stderr.buffer.write(bytes(range(255, -1, -1)))"
    )
    result = local_sandbox.commands.run(cmd, output="bytes")
    assert result.stdout_bytes == ALL_BYTES * 3
    assert result.stderr_bytes == ALL_BYTES[::-1]
    assert (result.stdout_truncated, result.stderr_truncated) == (0, 0)
    # The text view is the same bytes decoded, as text mode would give them.
    assert result.stdout == (ALL_BYTES * 3).decode("utf-8", "replace")
    text = local_sandbox.commands.run(cmd)
    assert text.stdout_bytes is None and text.stdout == result.stdout


def test_text_mode_is_unchanged(local_sandbox: Sandbox) -> None:
    result = local_sandbox.commands.run("printf 'a\\377b\\n'")
    assert result.stdout == "a\ufffdb\n"
    assert (result.stdout_bytes, result.stderr_bytes, result.signal) == (None, None, None)


def test_every_byte_value_round_trips_through_stdin(local_sandbox: Sandbox) -> None:
    handle = local_sandbox.commands.run("cat", background=True, stdin=True, output="bytes")
    handle.send_stdin(ALL_BYTES)
    local_sandbox.commands.send_stdin(handle.pid, bytearray(ALL_BYTES[::-1]))
    handle.send_stdin(b"")  # nothing: still fine
    handle.close_stdin()
    result = handle.wait()
    assert result.stdout_bytes == ALL_BYTES + ALL_BYTES[::-1]
    assert result.stderr_bytes == b""


def test_stdin_bytes_reach_a_text_mode_command(local_sandbox: Sandbox) -> None:
    handle = local_sandbox.commands.run("od -An -tx1 -v", background=True, stdin=True)
    handle.send_stdin(ALL_BYTES)
    handle.close_stdin()
    assert bytes.fromhex("".join(handle.wait().stdout.split())) == ALL_BYTES


def test_callbacks_receive_bytes_in_bounded_chunks(local_sandbox: Sandbox) -> None:
    chunks: list[bytes] = []
    errs: list[bytes] = []
    cmd = _python(
        "import sys; sys.stdout.buffer.write(bytes(range(256)) * 4096); "
        "sys.stderr.buffer.write(bytes([255, 0]))"
    )
    result = local_sandbox.commands.run(
        cmd, output="bytes", on_stdout=chunks.append, on_stderr=errs.append
    )
    assert all(isinstance(c, bytes) and 0 < len(c) <= READ_CHUNK for c in chunks)
    assert b"".join(chunks) == result.stdout_bytes == ALL_BYTES * 4096
    assert b"".join(errs) == b"\xff\x00"


def test_a_background_binary_command(local_sandbox: Sandbox) -> None:
    seen: list[bytes] = []
    handle = local_sandbox.commands.run(
        "printf '\\000\\377'; exit 3", background=True, output="bytes", on_stdout=seen.append
    )
    with pytest.raises(InvalidArgumentError, match="output='bytes' is not iterated"):
        next(iter(handle))
    with pytest.raises(CommandExitError) as caught:
        handle.wait()
    assert caught.value.result.stdout_bytes == b"\x00\xff" == b"".join(seen)


def test_wait_callbacks_of_a_binary_handle_get_bytes(local_sandbox: Sandbox) -> None:
    handle = local_sandbox.commands.run("printf '\\001\\002'", background=True, output="bytes")
    got: list[bytes] = []
    result = handle.wait(on_stdout=got.append)
    assert b"".join(got) == result.stdout_bytes == b"\x01\x02"


def test_connect_to_a_binary_command_gets_text(local_sandbox: Sandbox) -> None:
    # A follower that did not ask for bytes gets the raw data decoded.
    handle = local_sandbox.commands.run(
        "read line; printf 'caf\\303\\251 \\377\\n'", background=True, stdin=True, output="bytes"
    )
    follower = local_sandbox.commands.connect(handle.pid)
    handle.send_stdin("go\n")
    assert follower.wait().stdout == "café \ufffd\n"
    assert handle.wait().stdout_bytes == b"caf\xc3\xa9 \xff\n"


def test_output_mode_is_checked(local_sandbox: Sandbox) -> None:
    with pytest.raises(InvalidArgumentError, match="output must be 'text' or 'bytes'"):
        local_sandbox.commands.run("true", output="binary")  # type: ignore[call-overload]


def test_100_mb_of_random_binary_stdout_stays_bounded(small: Sandbox) -> None:
    total = 100_000_000
    seen = [0, 0]

    def count(chunk: bytes) -> None:
        seen[0] += len(chunk)
        seen[1] = max(seen[1], len(chunk))

    small.commands.run(f"head -c {total} /dev/urandom > r.bin")
    tracemalloc.start()
    try:
        result = small.commands.run(
            "cat r.bin",
            output="bytes",
            on_stdout=count,
            save_output=SaveOutput(path="saved/out.bin", threshold=1000),
            timeout=300,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == [total, READ_CHUNK]
    assert result.stdout_bytes is not None
    assert len(result.stdout_bytes) == LIMIT
    assert result.stdout_truncated == total - LIMIT
    # Bounded: a few chunks in flight, never the 100 MB.
    assert peak < 16 * 1024 * 1024, peak
    # The head and tail kept are the file's; the saved copy is the whole of it.
    head = small.commands.run(f"head -c {LIMIT // 2} r.bin", output="bytes").stdout_bytes
    tail = small.commands.run(f"tail -c {LIMIT // 2} r.bin", output="bytes").stdout_bytes
    assert head is not None and tail is not None
    assert result.stdout_bytes == head + tail
    assert result.saved_output is not None
    assert (result.saved_output.bytes, result.saved_output.chars) == (total, total)
    same = small.commands.run("cmp r.bin saved/out.bin && sha256sum < r.bin")
    assert len(same.stdout.split()[0]) == 64
    assert "omitted" in result.stdout  # the text view marks the cut


def test_a_short_binary_spill_keeps_raw_bytes(local_sandbox: Sandbox) -> None:
    result = local_sandbox.commands.run(
        _python("import sys; sys.stdout.buffer.write(bytes(range(256)) * 8)"),
        output="bytes",
        save_output=SaveOutput(path="o/raw.bin", threshold=100),
    )
    assert result.saved_output is not None
    assert local_sandbox.files.read("o/raw.bin", format="bytes") == ALL_BYTES * 8
    assert (
        hashlib.sha256(result.stdout_bytes or b"").digest()
        == hashlib.sha256(ALL_BYTES * 8).digest()
    )


def test_the_agent_sends_base64_data_events(local_sandbox: Sandbox) -> None:
    channel = local_sandbox.async_sandbox._channel
    fields = {"cmd": "printf '\\000\\377'", "binary": True, "timeout": 10}
    outcome = blocking.run(channel.fold("command", fields, 20.0))
    assert outcome.raw is not None and outcome.raw[0].data() == b"\x00\xff"
    assert outcome.stdout.text() == ""  # text sinks stay empty
    line = b'{"id":"1","op":"command","cmd":"x","binary":"yes"}'
    with pytest.raises(protocol.MalformedMessage, match="wrong type"):
        protocol.decode_request(line)
    event = {"id": "1", "type": "stdout", "data": base64.b64encode(b"\xff").decode()}
    assert protocol.decode_event(protocol.encode(event)) == event


def test_output_that_is_not_base64_is_a_protocol_error(local_sandbox: Sandbox) -> None:
    channel = local_sandbox.async_sandbox._channel
    assert channel._b64(base64.b64encode(ALL_BYTES).decode()) == ALL_BYTES
    for bad in ("!!!!", "abc", "ab\ncd=="):
        with pytest.raises(ProtocolError, match="not base64"):
            channel._b64(bad)
