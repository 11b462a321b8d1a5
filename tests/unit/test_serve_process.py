"""``e2b-tools serve``'s envd process service without an engine: the real E2B SDK
(side venv, sync and async) against uvicorn on the local backend (the real agent as a
subprocess), and direct Connect calls over httpx for the wire details and the hostile
cases (malformed input, deadlines, keepalives, a reader that never reads, a sandbox
killed mid-stream, 100 MB through one stream with the server's memory bounded).
With the engine: ``tests/engine/test_serve_process_engine.py``."""

from __future__ import annotations

import base64
import json
import struct
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import Served, run_e2b_sdk, serving
from local_backend import LocalBackend

from e2b_tools_serve import ServeSettings
from e2b_tools_serve import _process_table as table_module

KEY = "e2b_" + "7a" * 20
SECRET = b"process-test-secret-process-test"
SDK = pytest.mark.skipif(sys.version_info < (3, 11), reason="the latest e2b SDK needs Python 3.11")


@pytest.fixture(scope="module")
def server(backend: LocalBackend) -> Iterator[Served]:
    """One server for the module; it kills every sandbox it made when it stops."""
    with serving(ServeSettings(api_key=KEY, secret=SECRET, backend=backend)) as served:
        yield served


# -- direct Connect calls --------------------------------------------------------------


class Box:
    """A sandbox made through the control plane, called over httpx."""

    def __init__(self, served: Served) -> None:
        self.served = served
        created = httpx.post(
            served.api + "/v2/sandboxes",
            json={"templateID": "base", "timeout": 120},
            headers={"X-API-KEY": KEY},
            timeout=60,
        )
        assert created.status_code == 201, created.text
        self.id = created.json()["sandboxID"]
        self.headers = {
            "E2b-Sandbox-Id": self.id,
            "X-Access-Token": created.json()["envdAccessToken"],
            "Connect-Protocol-Version": "1",
        }
        self.http = httpx.Client(base_url=served.sandbox, timeout=60)

    def kill(self) -> None:
        httpx.delete(f"{self.served.api}/sandboxes/{self.id}", headers={"X-API-KEY": KEY})
        self.http.close()

    def unary(self, method: str, body: Any, **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post(
            f"/process.Process/{method}",
            content=content,
            headers={**self.headers, "Content-Type": "application/json", **headers},
        )

    def stream(self, method: str, body: Any, **headers: str) -> Any:
        """An open streaming call (a context manager of an httpx response)."""
        content = body if isinstance(body, bytes) else envelope(body)
        return self.http.stream(
            "POST",
            f"/process.Process/{method}",
            content=content,
            headers={**self.headers, "Content-Type": "application/connect+json", **headers},
        )

    def call(self, method: str, body: Any, **headers: str) -> tuple[list[Any], Any]:
        """A whole streaming call: its messages and its end-stream JSON."""
        with self.stream(method, body, **headers) as reply:
            assert reply.status_code == 200
            return read_all(reply.iter_bytes())


def envelope(message: Any, flags: int = 0) -> bytes:
    payload = json.dumps(message).encode()
    return struct.pack(">BI", flags, len(payload)) + payload


def read_envelopes(chunks: Iterator[bytes]) -> Iterator[tuple[int, Any]]:
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= 5:
            flags, size = struct.unpack(">BI", buffer[:5])
            if len(buffer) < 5 + size:
                break
            yield flags, json.loads(buffer[5 : 5 + size])
            buffer = buffer[5 + size :]
    assert buffer == b"", "a truncated envelope"


def read_all(chunks: Iterator[bytes]) -> tuple[list[Any], Any]:
    messages: list[Any] = []
    end = None
    for flags, message in read_envelopes(chunks):
        if flags & 2:
            end = message
        else:
            assert end is None, "a message after the end"
            messages.append(message)
    assert end is not None, "no end-stream envelope"
    return messages, end


def start_body(cmd: str, **extra: Any) -> dict[str, Any]:
    return {"process": {"cmd": "/bin/bash", "args": ["-l", "-c", cmd]}, **extra}


def stdout_of(messages: list[Any]) -> bytes:
    return b"".join(
        base64.b64decode(m["event"]["data"]["stdout"])
        for m in messages
        if "stdout" in m["event"].get("data", {})
    )


@pytest.fixture
def box(server: Served) -> Iterator[Box]:
    made = Box(server)
    try:
        yield made
    finally:
        made.kill()


def test_start_streams_start_data_end_and_binary_bytes(box: Box) -> None:
    messages, end = box.call("Start", start_body("printf 'a\\xff\\xfe'; echo err >&2; exit 3"))
    assert end == {}
    assert messages[0]["event"]["start"]["pid"] > 0
    assert stdout_of(messages) == b"a\xff\xfe"  # bytes that are not UTF-8 survive
    assert {"event": {"data": {"stderr": base64.b64encode(b"err\n").decode()}}} in messages
    assert messages[-1] == {
        "event": {
            "end": {
                "exitCode": 3,
                "exited": True,
                "status": "exit status 3",
                "error": "exit status 3",
            }
        }
    }
    ok, _ = box.call("Start", {"process": {"cmd": "echo", "args": ["it's", "$HOME"]}})
    assert stdout_of(ok) == b"it's $HOME\n"  # other argv: quoted, not interpreted
    assert ok[-1] == {"event": {"end": {"exited": True, "status": "exit status 0"}}}


def test_keepalives_fill_silences(box: Box) -> None:
    messages, end = box.call(
        "Start", start_body("sleep 2.5; echo done"), **{"Keepalive-Ping-Interval": "1"}
    )
    assert end == {}
    kinds = [next(iter(m["event"])) for m in messages]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert kinds.count("keepalive") >= 2
    assert stdout_of(messages) == b"done\n"


def test_the_deadline_kills_the_process(box: Box) -> None:
    started = time.monotonic()
    messages, end = box.call("Start", start_body("sleep 30"), **{"Connect-Timeout-Ms": "1000"})
    assert 0.9 < time.monotonic() - started < 10
    assert end["error"]["code"] == "deadline_exceeded"
    assert next(iter(messages[0]["event"])) == "start"
    listed = box.unary("List", {})
    assert listed.status_code == 200 and listed.json() == {}  # gone, not just unfollowed


def test_a_dropped_stream_leaves_the_process_running_and_connect_follows_it(box: Box) -> None:
    script = "echo first; sleep 0.5; for i in $(seq 1 20); do echo tick$i; sleep 0.1; done"
    body = start_body(script, tag="ticker")
    with box.stream("Start", body) as reply:
        events = read_envelopes(reply.iter_bytes())
        pid = next(events)[1]["event"]["start"]["pid"]
        assert stdout_of([next(events)[1]]) == b"first\n"
    listed = box.unary("List", {}).json()["processes"]
    assert listed == [
        {
            "pid": pid,
            "tag": "ticker",
            "config": {"cmd": "/bin/bash", "args": ["-l", "-c", body["process"]["args"][2]]},
        }
    ]
    messages, end = box.call("Connect", {"process": {"tag": "ticker"}})
    assert end == {}
    assert messages[0] == {"event": {"start": {"pid": pid}}}
    out = stdout_of(messages).decode()
    assert out.endswith("tick20\n") and "first" not in out  # no replay
    assert messages[-1]["event"]["end"]["exited"] is True
    assert box.unary("List", {}).json() == {}
    _, gone = box.call("Connect", {"process": {"pid": pid}})
    assert gone["error"]["code"] == "not_found"


def test_signals_stdin_and_stream_input(box: Box) -> None:
    with box.stream("Start", start_body("cat; echo; exec sleep 30", stdin=True)) as reply:
        events = read_envelopes(reply.iter_bytes())
        pid = next(events)[1]["event"]["start"]["pid"]
        b64 = base64.b64encode(b"hello ").decode()
        assert (
            box.unary("SendInput", {"process": {"pid": pid}, "input": {"stdin": b64}}).json() == {}
        )
        more = b"".join(
            envelope(m)
            for m in (
                {"start": {"process": {"pid": pid}}},
                {"keepalive": {}},
                {"data": {"input": {"stdin": base64.b64encode(b"world").decode()}}},
            )
        )
        with box.stream("StreamInput", more) as streamed:
            assert read_all(streamed.iter_bytes()) == ([{}], {})
        assert box.unary("CloseStdin", {"process": {"pid": pid}}).json() == {}
        seen = b""
        while b"hello world\n" not in seen:
            seen += base64.b64decode(next(events)[1]["event"]["data"]["stdout"])
        term = box.unary("SendSignal", {"process": {"pid": pid}, "signal": "SIGNAL_SIGTERM"})
        assert term.status_code == 200
        rest = [message for flags, message in events]
    assert rest[-2] == {
        "event": {
            "end": {"exitCode": -1, "status": "signal: terminated", "error": "signal: terminated"}
        }
    }
    assert rest[-1] == {}
    missing = box.unary("SendSignal", {"process": {"pid": pid}, "signal": "SIGNAL_SIGKILL"})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    for method in ("SendInput", "CloseStdin"):
        gone = box.unary(method, {"process": {"pid": pid}, "input": {"stdin": "eA=="}})
        assert gone.status_code == 404, gone.text


def test_malformed_requests_and_ptys_are_refused(box: Box) -> None:
    bad_json = box.unary("List", b"{not json")
    assert bad_json.status_code == 400 and bad_json.json()["code"] == "invalid_argument"
    no_selector = box.unary("SendSignal", {"signal": "SIGNAL_SIGKILL"})
    assert no_selector.status_code == 400
    bad_signal = box.unary("SendSignal", {"process": {"pid": 1}, "signal": "SIGNAL_NOPE"})
    assert bad_signal.status_code == 400
    truncated = envelope(start_body("echo hi"))[:-3]
    _, end = box.call("Start", truncated)
    assert end["error"]["code"] == "invalid_argument"
    _, end = box.call("Start", envelope({"process": {"cmd": 7}}))
    assert end["error"]["code"] == "invalid_argument"
    _, end = box.call("Start", start_body("pwd", pty={"size": {"cols": 80, "rows": 24}}))
    assert end["error"]["code"] == "unimplemented" and "PTY" in end["error"]["message"]
    _, end = box.call(
        "Start", {"process": {"cmd": "/bin/bash", "args": ["-c", "pwd"], "cwd": "/nope"}}
    )
    assert end["error"] == {"code": "invalid_argument", "message": "cwd '/nope' does not exist"}
    update = box.unary("Update", {"process": {"pid": 1}, "pty": {"size": {"cols": 1, "rows": 1}}})
    assert update.status_code == 501
    pty_in = box.unary("SendInput", {"process": {"pid": 1}, "input": {"pty": "eA=="}})
    assert pty_in.status_code == 501
    with box.stream("StreamInput", envelope({"data": {"input": {"stdin": "eA=="}}})) as reply:
        assert read_all(reply.iter_bytes())[1]["error"]["code"] == "invalid_argument"
    with box.stream("StreamInput", b"\x00\x00\x00\x00\x09{}") as reply:
        assert read_all(reply.iter_bytes())[1]["error"]["code"] == "invalid_argument"
    _, end = box.call("Connect", {"process": {"tag": "nobody"}})
    assert end["error"]["code"] == "not_found"
    wrong_token = box.http.post(
        "/process.Process/List",
        content=b"{}",
        headers={**box.headers, "X-Access-Token": "x" * 64, "Content-Type": "application/json"},
    )
    assert wrong_token.status_code == 401


def test_a_sandbox_killed_mid_stream_ends_it_unavailable(box: Box) -> None:
    with box.stream("Start", start_body("echo up; sleep 60")) as reply:
        events = read_envelopes(reply.iter_bytes())
        next(events)
        threading.Timer(0.5, box.kill).start()
        rest = [message for _, message in events]
    assert rest[-1]["error"]["code"] == "unavailable"
    # E2B's words for a cut stream: the SDK then probes /health, which says 502.
    expected = f"the connection to sandbox {box.id} ended before the stream completed"
    assert rest[-1]["error"]["message"] == expected


@pytest.mark.timeout(180)
def test_a_reader_that_never_reads_is_disconnected_and_memory_stays_bounded(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(table_module, "STALL_SECONDS", 1.0)
    # e2b-tools itself bounds a command's output on the host (output_limit head and
    # tail, a handle's unread output, a call's backlog: about 56 MiB by default); the
    # bound here shows the server does not hold output in proportion to its size.
    total = 256 << 20
    tracemalloc.start()
    try:
        with box.stream(
            "Start", start_body(f"sleep 1; head -c {total} /dev/zero", tag="flood")
        ) as fast:
            fast_events = read_envelopes(fast.iter_bytes())
            next(fast_events)
            with box.stream("Connect", {"process": {"tag": "flood"}}) as stalled:
                got = 0
                for _, message in fast_events:  # the reader gets everything...
                    data = message.get("event", {}).get("data", {})
                    got += len(base64.b64decode(data.get("stdout", "")))
                    if "end" in message.get("event", {}):
                        break
                _, peak = tracemalloc.get_traced_memory()
                messages, end = read_all(stalled.iter_bytes())  # ...the other is cut off
    finally:
        tracemalloc.stop()
    print(f"server peak (tracemalloc): {peak >> 20} MiB for {total >> 20} MiB, one reader stalled")
    assert got == total
    assert end["error"]["code"] == "aborted" and "runs on" in end["error"]["message"]
    assert len(stdout_of(messages)) < total
    # A queue without bound would hold the stalled reader's whole share: up to 341 MiB
    # of base64 events. The bound is e2b-tools' ~56 MiB plus the events in flight on
    # both sides of this process (server and test client) on a loaded machine.
    assert peak < 160 << 20, f"the server held {peak >> 20} MiB for {total >> 20} MiB of output"


# -- the real SDK ----------------------------------------------------------------------

SYNC_SCRIPT = """
import json, time, threading
from e2b import (
    Sandbox, CommandExitException, InvalidArgumentException, TimeoutException, NotFoundException,
)

out = {}
sbx = Sandbox.create(timeout=120)
r = sbx.commands.run("echo hi; echo oops >&2")
out["fg"] = [r.stdout, r.stderr, r.exit_code, r.error]
try:
    sbx.commands.run("echo bad >&2; exit 3")
except CommandExitException as exc:
    out["exit"] = [exc.exit_code, exc.stderr, exc.error]
chunks = []
sbx.commands.run("for i in 1 2 3; do echo line$i; sleep 0.05; done", on_stdout=chunks.append)
out["streamed"] = "".join(chunks)
binary = []
r = sbx.commands.run("printf 'ok\\\\xff\\\\xfe'; printf '\\\\xc3\\\\xa9'", on_stdout=binary.append)
out["binary"] = [r.stdout, "".join(binary)]
try:
    sbx.commands.run("pwd", cwd="/does/not/exist")
except InvalidArgumentException as exc:
    out["cwd"] = str(exc)
r = sbx.commands.run("pwd; echo $FOO", cwd="/tmp", envs={"FOO": "bar"})
out["cwd_envs"] = r.stdout

bg = sbx.commands.run("sleep 30", background=True)
out["listed"] = [p.pid for p in sbx.commands.list()] == [bg.pid]
out["listed_cmd"] = [[p.cmd, p.args] for p in sbx.commands.list()]
out["kill"] = [sbx.commands.kill(bg.pid), sbx.commands.kill(bg.pid)]
try:
    bg.wait()
except CommandExitException as exc:
    out["signal"] = [exc.exit_code, exc.error]
out["after_kill"] = sbx.commands.list()

h = sbx.commands.run("cat", background=True, stdin=True)
sbx.commands.send_stdin(h.pid, "one ")
sbx.commands.stream_input(h.pid, ["two ", b"three"])
sbx.commands.close_stdin(h.pid)
out["stdin"] = h.wait().stdout

ticker = sbx.commands.run(
    "for i in $(seq 1 30); do echo t$i; sleep 0.1; done", background=True
)
time.sleep(0.5)
ticker.disconnect()
again = sbx.commands.connect(ticker.pid)
res = again.wait()
out["connect"] = [res.exit_code, res.stdout.strip().splitlines()[-1], "t1\\n" in res.stdout]

started = time.monotonic()
try:
    sbx.commands.run("sleep 30 && echo never", timeout=1)
except TimeoutException as exc:
    out["timeout"] = type(exc).__name__
out["timeout_took"] = time.monotonic() - started
deadline = time.monotonic() + 5
while sbx.commands.list() and time.monotonic() < deadline:
    time.sleep(0.05)
out["after_timeout"] = [p.cmd for p in sbx.commands.list()]
try:
    sbx.commands.connect(999999)
except NotFoundException as exc:
    out["connect_missing"] = type(exc).__name__
sbx.kill()
print(json.dumps(out))
"""


@SDK
@pytest.mark.timeout(300)
def test_the_real_sdk_runs_commands(server: Served) -> None:
    out = run_e2b_sdk(server, SYNC_SCRIPT, KEY, timeout=240)
    assert out["fg"] == ["hi\n", "oops\n", 0, None]
    assert out["exit"] == [3, "bad\n", "exit status 3"]
    assert out["streamed"] == "line1\nline2\nline3\n"
    # The SDK decodes UTF-8 with replacement: the bytes reach it, it replaces them.
    assert out["binary"] == ["ok\ufffd\ufffdé", "ok\ufffd\ufffdé"]
    assert out["cwd"] == "cwd '/does/not/exist' does not exist"
    assert out["cwd_envs"] == "/tmp\nbar\n"
    assert out["listed"] is True
    assert out["listed_cmd"] == [["/bin/bash", ["-l", "-c", "sleep 30"]]]
    assert out["kill"] == [True, False]
    assert out["signal"] == [-1, "signal: killed"]
    assert out["after_kill"] == []
    assert out["stdin"] == "one two three"
    assert out["connect"][0] == 0 and out["connect"][1] == "t30" and out["connect"][2] is False
    assert out["timeout"] == "TimeoutException" and out["timeout_took"] < 10
    assert out["after_timeout"] == []
    assert out["connect_missing"] == "NotFoundException"


ASYNC_SCRIPT = """
import asyncio, json
from e2b import AsyncSandbox, CommandExitException

async def main():
    out = {}
    sbx = await AsyncSandbox.create(timeout=120)
    r = await sbx.commands.run("echo async")
    out["fg"] = r.stdout
    seen = []
    h = await sbx.commands.run(
        "echo a; sleep 0.2; echo b >&2", background=True,
        on_stdout=seen.append, on_stderr=seen.append,
    )
    res = await h.wait()
    out["bg"] = [res.stdout, res.stderr, seen]
    results = await asyncio.gather(
        *(sbx.commands.run(f"echo n{i}; sleep 0.2") for i in range(50))
    )
    out["fifty"] = sorted(int(r.stdout.strip()[1:]) for r in results)
    k = await sbx.commands.run("sleep 30", background=True)
    out["kill"] = await sbx.commands.kill(k.pid)
    try:
        await k.wait()
    except CommandExitException as exc:
        out["signal"] = [exc.exit_code, exc.error]
    total = 0
    def count(chunk):
        nonlocal total
        total += len(chunk)
    r = await sbx.commands.run("head -c 100000000 /dev/zero | tr '\\\\0' x", on_stdout=count,
                               timeout=0)
    out["huge"] = total
    await sbx.kill()
    print(json.dumps(out))

asyncio.run(main())
"""


@SDK
@pytest.mark.timeout(600)
def test_the_async_sdk_fifty_commands_and_100mb_with_bounded_server_memory(
    server: Served,
) -> None:
    tracemalloc.start()
    try:
        out = run_e2b_sdk(server, ASYNC_SCRIPT, KEY, timeout=540)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out["fg"] == "async\n"
    assert out["bg"] == ["a\n", "b\n", ["a\n", "b\n"]]
    assert out["fifty"] == list(range(50))
    assert out["kill"] is True and out["signal"] == [-1, "signal: killed"]
    assert out["huge"] == 100_000_000
    print(f"server peak (tracemalloc): {peak >> 20} MiB for 100 MB through the SDK")
    # The bound is e2b-tools' own per command (two 8 MiB output buffers, 8 MiB unread on
    # the handle, a 32 MiB backlog per call) plus the 1 MiB follower queue and slack, as
    # in the stalled-reader test: it does not grow with the output.
    assert peak < 112 << 20, f"the server held {peak >> 20} MiB for 100 MB of output"
