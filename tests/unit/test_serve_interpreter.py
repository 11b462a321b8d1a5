"""``e2b-tools serve``'s code interpreter (``/execute``, ``/contexts``) without an engine:
the local backend (the real agent as a subprocess), the real E2B SDK
(``e2b_code_interpreter``, side venv) in a subprocess, and raw HTTP for the wire
format and the hostile cases (bad bodies, a client that leaves or stops reading, 50 MB
of output, a huge result, a sandbox killed mid-run). With the engine (matplotlib's
PNG): ``tests/engine/test_serve_interpreter_engine.py``."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import Served, run_e2b_sdk, serving
from local_backend import LocalBackend

from e2b_tools_serve import ServeSettings, _interpreter

KEY = "e2b_" + "1c" * 20
SECRET = b"interpreter-unit-test-secret-0001"
NEEDS_SDK = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="the latest e2b SDK needs Python 3.11"
)
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
def served(backend: LocalBackend) -> Iterator[Served]:
    """A serve on the local backend; every sandbox it made is killed after."""
    settings = ServeSettings(api_key=KEY, secret=SECRET, backend=backend)
    with serving(settings, start_wait=5.0, stop_wait=10.0, kill_wait=30.0) as url:
        yield url


@pytest.fixture
def box(served: Served) -> dict[str, str]:
    """A sandbox made through the control plane: the headers of its interpreter calls."""
    made = httpx.post(
        f"{served.api}/v2/sandboxes",
        json={"templateID": "base", "timeout": 120},
        headers={"X-API-KEY": KEY},
        timeout=60,
    ).json()
    return {
        "E2b-Sandbox-Id": made["sandboxID"],
        "E2b-Sandbox-Port": "49999",
        "X-Access-Token": made["envdAccessToken"],
    }


def _execute(served: Served, box: dict[str, str], body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(f"{served.sandbox}/execute", json=body, headers=box, timeout=60, **kw)


def _lines(reply: httpx.Response) -> list[dict[str, Any]]:
    assert reply.status_code == 200, reply.text
    return [json.loads(raw) for raw in reply.text.splitlines()]


def _rss() -> int:
    """This process's resident memory in bytes (the server runs in it, in a thread)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples this process's RSS in a thread; ``growth`` is the peak over the start."""

    def __init__(self) -> None:
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


# -- the real SDK ----------------------------------------------------------------------

SYNC_SCRIPT = """
import json, time
from e2b_code_interpreter import Sandbox
from e2b.exceptions import NotFoundException, SandboxException, TimeoutException

out = {}
sbx = Sandbox.create(timeout=120)
try:
    out["first"] = sbx.run_code("x = 41\\nx + 1").text
    out["state"] = sbx.run_code("x").text
    seen = {"stdout": [], "stderr": [], "results": []}
    ex = sbx.run_code(
        "import sys\\nprint('out')\\nprint('err', file=sys.stderr)\\n'bar'",
        on_stdout=lambda m: seen["stdout"].append([m.line, m.timestamp, m.error]),
        on_stderr=lambda m: seen["stderr"].append([m.line, m.error]),
        on_result=lambda r: seen["results"].append([r.text, r.is_main_result]),
    )
    out["seen"] = seen
    out["logs"] = [ex.logs.stdout, ex.logs.stderr]
    out["text"] = ex.text
    out["apostrophe"] = sbx.run_code('"it\\'s"').text
    errors = []
    err = sbx.run_code("1/0", on_error=lambda e: errors.append(e.name))
    out["error"] = [err.error.name, err.error.value, "1/0" in err.error.traceback, errors]
    out["counts"] = [sbx.run_code("1").execution_count for _ in range(2)]
    env = "import os\\nos.environ.get('GREETING', 'unset')"
    out["env"] = [sbx.run_code(env, envs={"GREETING": "hi"}).text, sbx.run_code(env).text]
    out["bash"] = sbx.run_code("echo $((6*7))", language="bash").logs.stdout
    out["js"] = sbx.run_code("[1, 2].length + 1", language="js").text
    try:
        sbx.run_code("1", language="cobol")
    except SandboxException as exc:
        out["cobol"] = [type(exc).__name__, str(exc)]

    ctx = sbx.create_code_context()
    out["ctx"] = [ctx.language, bool(ctx.id), bool(ctx.cwd)]
    sbx.run_code("y = 'in ctx'", context=ctx)
    out["ctx_state"] = sbx.run_code("y", context=ctx).text
    out["ctx_isolated"] = sbx.run_code("'y' in dir()").text
    out["listed"] = ctx.id in [c.id for c in sbx.list_code_contexts()]
    sbx.restart_code_context(ctx)
    out["after_restart"] = sbx.run_code("'y' in dir()", context=ctx).text
    bctx = sbx.create_code_context(language="bash", cwd="/tmp")
    out["bash_ctx"] = [bctx.language, bctx.cwd, sbx.run_code("pwd", context=bctx).logs.stdout]
    sbx.remove_code_context(ctx.id)
    out["removed_listed"] = ctx.id in [c.id for c in sbx.list_code_contexts()]
    for name, call in (
        ("run_removed", lambda: sbx.run_code("1", context=ctx)),
        ("restart_removed", lambda: sbx.restart_code_context(ctx)),
        ("remove_unknown", lambda: sbx.remove_code_context("nope")),
    ):
        try:
            call()
        except NotFoundException as exc:
            out[name] = str(exc)

    sbx.run_code("z = 7")
    started = time.monotonic()
    try:
        sbx.run_code("while True: pass", timeout=1)
    except TimeoutException as exc:
        out["timeout"] = [type(exc).__name__, str(exc), time.monotonic() - started]
    out["after_timeout"] = sbx.run_code("z * 6").text
finally:
    sbx.kill()
print(json.dumps(out))
"""


@NEEDS_SDK
@pytest.mark.timeout(300)
def test_the_real_sdk_runs_code(served: Served) -> None:
    """State across calls, the callbacks, errors, counts, env vars, other languages,
    contexts (create, list, run in, restart loses state, remove, unknown → 404), and a
    client-side timeout that interrupts the run so the next call keeps the state."""
    out = run_e2b_sdk(served, SYNC_SCRIPT, KEY, timeout=240)
    assert out["first"] == "42" and out["state"] == "41"
    assert [m[0] for m in out["seen"]["stdout"]] == ["out\n"]
    assert RFC3339.match(out["seen"]["stdout"][0][1]) and out["seen"]["stdout"][0][2] is False
    assert out["seen"]["stderr"] == [["err\n", True]]
    assert out["seen"]["results"] == [["bar", True]] and out["text"] == "bar"
    assert out["logs"] == [["out\n"], ["err\n"]]
    assert out["apostrophe"] == "it's"  # E2B strips double quotes too
    name, value, has_line, errors = out["error"]
    assert name == "ZeroDivisionError" and "division by zero" in value and has_line
    assert errors == ["ZeroDivisionError"]
    assert out["counts"][1] == out["counts"][0] + 1
    assert out["env"] == ["hi", "unset"]
    assert out["bash"] == ["42\n"] and out["js"] == "3"
    assert out["cobol"][0] == "SandboxException" and "400" in out["cobol"][1]
    assert "python" in out["cobol"][1]  # the message lists the languages there are
    assert out["ctx"] == ["python", True, True]
    assert out["ctx_state"] == "in ctx" and out["ctx_isolated"] == "False"
    assert out["listed"] is True and out["after_restart"] == "False"
    assert out["bash_ctx"] == ["bash", "/tmp", ["/tmp\n"]]
    assert out["removed_listed"] is False
    for key in ("run_removed", "restart_removed", "remove_unknown"):
        assert "not found" in out[key]
    kind, message, elapsed = out["timeout"]
    assert kind == "TimeoutException" and "Execution timed out" in message and elapsed < 10
    assert out["after_timeout"] == "42"


ASYNC_SCRIPT = """
import asyncio, json
from e2b_code_interpreter import AsyncSandbox

async def main():
    out = {}
    sbx = await AsyncSandbox.create(timeout=120)
    try:
        chunks = []

        async def on_stdout(message):
            chunks.append(message.line)

        ex = await sbx.run_code("for i in range(3): print(i)\\n'done'", on_stdout=on_stdout)
        out["run"] = [chunks, ex.text, ex.execution_count]
        ctx = await sbx.create_code_context(language="python")
        await sbx.run_code("a = 5", context=ctx)
        out["ctx"] = (await sbx.run_code("a * 2", context=ctx)).text
        out["listed"] = ctx.id in [c.id for c in await sbx.list_code_contexts()]
        await sbx.restart_code_context(ctx)
        out["restarted"] = (await sbx.run_code("'a' in dir()", context=ctx)).error is None
        await sbx.remove_code_context(ctx)
        out["error"] = (await sbx.run_code("raise KeyError('k')")).error.name
    finally:
        await sbx.kill()
    print(json.dumps(out))

asyncio.run(main())
"""


@NEEDS_SDK
@pytest.mark.timeout(300)
def test_the_real_async_sdk_runs_code(served: Served) -> None:
    out = run_e2b_sdk(served, ASYNC_SCRIPT, KEY, timeout=240)
    assert "".join(out["run"][0]) == "0\n1\n2\n" and out["run"][1] == "done"
    assert isinstance(out["run"][2], int)
    assert out["ctx"] == "10" and out["listed"] is True and out["restarted"] is True
    assert out["error"] == "KeyError"


KILLED_SCRIPT = """
import json, threading, time
from e2b_code_interpreter import Sandbox
from e2b.exceptions import TimeoutException

out = {}
sbx = Sandbox.create(timeout=120)
threading.Timer(1.5, lambda: Sandbox.kill(sbx.sandbox_id)).start()
started = time.monotonic()
try:
    sbx.run_code("import time\\nprint('going', flush=True)\\ntime.sleep(60)")
except TimeoutException as exc:
    out["killed"] = [type(exc).__name__, str(exc), time.monotonic() - started]
out["running"] = sbx.is_running()
print(json.dumps(out))
"""


@NEEDS_SDK
@pytest.mark.timeout(300)
def test_a_sandbox_killed_mid_run_ends_the_stream(served: Served) -> None:
    """The response is cut, so the SDK checks the sandbox and raises E2B's "killed"."""
    out = run_e2b_sdk(served, KILLED_SCRIPT, KEY, timeout=120)
    kind, message, elapsed = out["killed"]
    assert kind == "TimeoutException" and "sandbox was killed" in message
    assert elapsed < 30 and out["running"] is False


FLOOD_SCRIPT = """
import json
from e2b_code_interpreter import Sandbox

sbx = Sandbox.create(timeout=120)
try:
    size = [0]
    ex = sbx.run_code(
        "import sys\\nblock = 'x' * 65535 + '\\\\n'\\n"
        "for _ in range(800): sys.stdout.write(block)\\n'end'",
        on_stdout=lambda m: size.__setitem__(0, size[0] + len(m.line)),
        timeout=120,
    )
    out = {"streamed": size[0], "text": ex.text, "next": sbx.run_code("1 + 1").text}
finally:
    sbx.kill()
print(json.dumps(out))
"""


@NEEDS_SDK
@pytest.mark.timeout(300)
def test_50_mb_of_stdout_streams_with_bounded_server_memory(served: Served) -> None:
    with PeakRss() as rss:
        out = run_e2b_sdk(served, FLOOD_SCRIPT, KEY, timeout=240)
    assert out["streamed"] == 800 * 65536 and out["text"] == "end" and out["next"] == "2"
    print(f"server RSS growth for 52 MB of stdout: {rss.growth / 2**20:.1f} MiB")
    assert rss.growth < 40 << 20  # far below the 52 MB that went through


# -- the wire --------------------------------------------------------------------------


def test_the_lines_and_result_formats(served: Served, box: dict[str, str]) -> None:
    code = (
        "import sys\nprint('hi')\nprint('oops', file=sys.stderr)\n"
        "class R:\n"
        "    def _repr_html_(self): return '<b>r</b>'\n"
        "    def _repr_markdown_(self): return '**r**'\n"
        "    def _repr_json_(self): return {'a': [1, 2]}\n"
        "    def _repr_latex_(self): return '$r$'\n"
        "    def _repr_svg_(self): return '<svg/>'\n"
        "    def __repr__(self): return '\"quoted\"'\n"
        "R()\n"
    )
    lines = _lines(_execute(served, box, {"code": code, "context_id": None, "language": None}))
    kinds = [item["type"] for item in lines]
    assert kinds == ["stdout", "stderr", "result", "number_of_executions", "end_of_execution"]
    assert lines[0]["text"] == "hi\n" and RFC3339.match(lines[0]["timestamp"])
    assert lines[1]["text"] == "oops\n" and RFC3339.match(lines[1]["timestamp"])
    result = lines[2]
    assert result["text"] == "quoted" and result["is_main_result"] is True
    assert result["html"] == "<b>r</b>" and result["markdown"] == "**r**"
    assert result["json"] == {"a": [1, 2]} and result["latex"] == "$r$"
    assert result["svg"] == "<svg/>" and result["extra"] == {}
    assert isinstance(lines[3]["execution_count"], int)
    unknown = _lines(
        _execute(served, box, {"code": "1/0", "language": "python", "env_vars": {"A": "b"}})
    )
    error = next(item for item in unknown if item["type"] == "error")
    assert error["name"] == "ZeroDivisionError" and "Traceback" in error["traceback"]
    assert unknown[-1] == {"type": "end_of_execution"}


def test_keepalive_lines_in_silence(
    served: Served, box: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_interpreter, "KEEPALIVE_SECONDS", 0.2)
    lines = _lines(_execute(served, box, {"code": "import time\ntime.sleep(1.2)\n'up'"}))
    assert {"type": "keepalive"} in lines
    assert [item["type"] for item in lines if item["type"] != "keepalive"] == [
        "result",
        "number_of_executions",
        "end_of_execution",
    ]


def test_bad_requests(served: Served, box: dict[str, str]) -> None:
    both = _execute(served, box, {"code": "1", "context_id": "python-default", "language": "py"})
    assert both.status_code == 400 and "Only one of context_id or language" in both.text
    assert both.headers["content-type"].startswith("text/plain")
    unknown = _execute(served, box, {"code": "1", "context_id": "nope"})
    assert unknown.status_code == 404 and unknown.text == "Context nope not found"
    for body, words in (
        ({"code": 1}, "code must be a string"),
        ({}, "code must be a string"),
        ({"code": "1", "env_vars": {"A": 1}}, "env_vars"),
        ({"code": "1", "language": ["py"]}, "language"),
        ({"code": "1", "language": "cobol"}, "python"),
    ):
        reply = _execute(served, box, body)
        assert reply.status_code == 400 and words in reply.text, (body, reply.text)
    url = f"{served.sandbox}/execute"
    for raw in (b"{not json", b"[1, 2]", b""):
        reply = httpx.post(url, content=raw, headers=box)
        assert reply.status_code == 400 and reply.json()["code"] == 400
    huge = httpx.post(url, content=b'{"code": "' + b"x" * (9 << 20) + b'"}', headers=box)
    assert huge.status_code == 413
    no_token = {k: v for k, v in box.items() if k != "X-Access-Token"}
    assert httpx.post(url, json={"code": "1"}, headers=no_token).status_code == 401
    # The context calls carry no token (E2B's SDKs send none).
    contexts = f"{served.sandbox}/contexts"
    listed = httpx.get(contexts, headers=no_token)
    assert listed.status_code == 200
    assert {c["id"] for c in listed.json()} >= {"python-default"}
    assert set(listed.json()[0]) == {"id", "language", "cwd"}
    made = httpx.post(contexts, json={"language": "js"}, headers=no_token, timeout=60)
    assert made.status_code == 200 and made.json()["language"] == "javascript"
    assert httpx.post(contexts, content=b"{", headers=no_token).status_code == 400
    bad_language = httpx.post(contexts, json={"language": "cobol"}, headers=no_token)
    assert bad_language.status_code == 400
    restart = httpx.post(f"{contexts}/nope/restart", headers=no_token)
    assert restart.status_code == 404 and restart.text == "Context nope not found"
    assert httpx.delete(f"{contexts}/nope", headers=no_token).status_code == 404
    removed = httpx.delete(f"{contexts}/{made.json()['id']}", headers=no_token, timeout=60)
    assert removed.status_code == 200 and removed.json() is None


def test_a_huge_result(served: Served, box: dict[str, str]) -> None:
    """A 20 MB text result and a 6.7 MB PNG: a line over the stream's 4 MiB budget
    passes whole; e2b-tools caps text formats at 1 MiB and keeps images to 8 MiB."""
    code = (
        "class Big:\n"
        "    def _repr_html_(self): return 'h' * 20_000_000\n"
        "    def _repr_png_(self): return b'\\x89PNG' + b'p' * 5_000_000\n"
        "Big()\n"
    )
    with PeakRss() as rss:
        lines = _lines(_execute(served, box, {"code": code}))
    result = lines[0]
    assert result["type"] == "result" and len(result["png"]) == 6_666_672
    assert result["html"].startswith("hhh") and len(result["html"]) < 1_100_000
    print(f"server RSS growth for a 7.7 MB result line: {rss.growth / 2**20:.1f} MiB")
    assert _lines(_execute(served, box, {"code": "2 + 2"}))[0]["text"] == "4"


def test_a_client_that_leaves_cancels_the_run(
    served: Served, box: dict[str, str], tmp_path: Path
) -> None:
    """The run is interrupted in the sandbox (its side effect never happens) and the
    context keeps its state for the next call."""
    marker = tmp_path / "ran"
    _lines(_execute(served, box, {"code": "kept = 'yes'"}))
    code = f"import time\nprint('started', flush=True)\ntime.sleep(3)\nopen({str(marker)!r}, 'w')"
    with httpx.stream(
        "POST", f"{served.sandbox}/execute", json={"code": code}, headers=box, timeout=30
    ) as reply:
        first = json.loads(next(reply.iter_lines()))
        assert first["type"] == "stdout" and first["text"] == "started\n"
    time.sleep(4)
    assert not marker.exists()
    assert _lines(_execute(served, box, {"code": "kept"}))[0]["text"] == "yes"


def _settled(progress: Path, still: float = 1.5, limit: float = 60.0) -> int:
    """The count in ``progress`` once it held still for ``still`` seconds (a loaded
    machine runs the code slower: no fixed sleep)."""
    deadline = time.monotonic() + limit
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        text = progress.read_text() if progress.exists() else ""
        now = int(text) if text.isdigit() else last  # '' while the run rewrites it
        if now != last:
            last, since = now, time.monotonic()
        elif now >= 0 and time.monotonic() - since >= still:
            return now
        time.sleep(0.1)
    raise AssertionError(f"the run never held still (last count {last})")


def test_a_client_that_stops_reading_gets_backpressure(
    served: Served, box: dict[str, str], tmp_path: Path
) -> None:
    """The run blocks on its output while the client does not read (nothing is
    buffered without bound), then is cancelled when the client leaves."""
    progress = tmp_path / "progress"
    code = (
        "import sys\nblock = 'y' * (1 << 20)\n"
        "for i in range(300):\n"
        "    sys.stdout.write(block)\n"
        f"    open({str(progress)!r}, 'w').write(str(i))\n"
    )
    body = json.dumps({"code": code}).encode()
    host = served.sandbox.removeprefix("http://")
    head = "".join(f"{k}: {v}\r\n" for k, v in box.items())
    request = (
        f"POST /execute HTTP/1.1\r\nHost: {host}\r\n{head}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    hostname, port = host.rsplit(":", 1)
    with PeakRss() as rss:
        sock = socket.create_connection((hostname, int(port)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.sendall(request + body)
        stalled_at = _settled(progress)  # blocked, not buffered
        sock.close()
    print(f"stalled after {stalled_at + 1} MiB; server RSS growth {rss.growth / 2**20:.1f} MiB")
    assert stalled_at < 150
    assert rss.growth < 150 << 20
    assert _settled(progress) < 299  # cancelled, not finished
    assert _lines(_execute(served, box, {"code": "'alive'"}))[0]["text"] == "alive"
