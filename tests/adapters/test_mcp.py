"""The MCP server, driven by the official ``mcp`` client over stdio and streamable HTTP.

The server runs as a subprocess, as clients run it: ``python -m e2b_tools_mcp`` (stdio)
or ``python -m e2b_tools_mcp --http 127.0.0.1:PORT``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import docker
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from e2b_tools.backends.docker import LABEL_SANDBOX
from e2b_tools.tools import ALL_TOOLS, Toolkit

SERVER = [sys.executable, "-m", "e2b_tools_mcp"]
SANDBOX_TOOLS = [cls.name for cls in ALL_TOOLS]
LIFECYCLE_TOOLS = ["create_sandbox", "list_sandboxes", "kill_sandbox"]

Connect = Callable[[], contextlib.AbstractAsyncContextManager[ClientSession]]


# -- servers and clients ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpServer:
    """``python -m e2b_tools_mcp --http 127.0.0.1:PORT`` in a subprocess."""

    def __init__(self, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.log = log
        with log.open("wb") as err:
            self.proc = subprocess.Popen(
                [*SERVER, "--http", f"127.0.0.1:{self.port}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the server did not listen: {log.read_text()}")
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM, and the exit status: 0, or uvicorn re-raising the signal after its
        graceful shutdown."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the server ignored SIGTERM: {self.log.read_text()}") from None


@pytest.fixture(scope="module")
def http_server(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    server = HttpServer(tmp_path_factory.mktemp("mcp") / "server.log")
    try:
        yield server
    finally:
        assert server.stop() in (0, -signal.SIGTERM), server.log.read_text()


@contextlib.asynccontextmanager
async def _stdio_session() -> AsyncIterator[ClientSession]:
    # The SDK passes only a few variables by default; DOCKER_HOST and co. must reach it.
    params = StdioServerParameters(command=SERVER[0], args=SERVER[1:], env=dict(os.environ))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def _http_session(url: str) -> Connect:
    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[ClientSession]:
        async with (
            streamable_http_client(url) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session

    return connect


@pytest.fixture(params=["stdio", "http"])
def connect(request: pytest.FixtureRequest, image: str) -> Connect:
    """Opens a new client session (for stdio: a new server process)."""
    if request.param == "stdio":
        return _stdio_session
    server: HttpServer = request.getfixturevalue("http_server")
    return _http_session(server.url)


# -- helpers ---------------------------------------------------------------------------


def _text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def _ok(session: ClientSession, name: str, **arguments: Any) -> types.CallToolResult:
    result = await session.call_tool(name, arguments)
    assert not result.isError, _text(result)
    return result


async def _error(session: ClientSession, name: str, arguments: dict[str, Any]) -> str:
    result = await session.call_tool(name, arguments)
    assert result.isError, _text(result)
    return _text(result)


async def _sandbox_ids(session: ClientSession) -> set[str]:
    result = await _ok(session, "list_sandboxes")
    assert result.structuredContent is not None
    rows = result.structuredContent["sandboxes"]
    ids = {row["sandbox_id"] for row in rows}
    ids |= {row["current_sandbox_id"] for row in rows if "current_sandbox_id" in row}
    return ids


def _assert_gone(sandbox_ids: set[str]) -> None:
    """No container of these sandboxes is left (their removal may lag a moment)."""
    assert sandbox_ids
    client = docker.from_env()
    try:
        deadline = time.monotonic() + 15
        while True:
            left = [
                c["Names"][0]
                for sid in sorted(sandbox_ids)
                for c in client.api.containers(
                    all=True, filters={"label": f"{LABEL_SANDBOX}={sid}"}
                )
            ]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    finally:
        client.close()
    assert left == [], f"left behind: {left}"


# -- tests -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_lists_the_tools_with_their_schemas(connect: Connect) -> None:
    async with connect() as session:
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert list(listed) == SANDBOX_TOOLS + LIFECYCLE_TOOLS
    toolkit = Toolkit()
    for name in SANDBOX_TOOLS:
        core = toolkit.get(name)
        tool = listed[name]
        assert tool.description == core.description
        schema = tool.inputSchema
        assert schema["additionalProperties"] is False
        assert schema.get("required", []) == core.json_schema().get("required", [])
        assert set(schema["properties"]) == {*core.json_schema()["properties"], "sandbox_id"}
        assert "sandbox_id" not in schema.get("required", [])
    assert listed["run_code"].inputSchema["required"] == ["code"]
    assert listed["read_file"].annotations is not None
    assert listed["read_file"].annotations.readOnlyHint is True
    assert listed["kill_sandbox"].inputSchema["required"] == ["sandbox_id"]


@pytest.mark.asyncio
async def test_runs_code_and_files_and_cleans_up(connect: Connect) -> None:
    async with connect() as session:
        assert _text(await _ok(session, "run_code", code="x = 41\nx + 1")) == "[result]\n42"
        assert _text(await _ok(session, "run_code", code="x")) == "[result]\n41"
        wrote = await _ok(session, "write_file", path="notes/a.txt", content="héllo\nworld\n")
        assert "Wrote" in _text(wrote)
        read = _text(await _ok(session, "read_file", path="notes/a.txt"))
        assert "héllo" in read and "world" in read
        assert "a.txt" in _text(await _ok(session, "list_files", path="notes"))
        shell = _text(await _ok(session, "run_shell", command="cat notes/a.txt | wc -l"))
        assert shell == "2\n[exit code: 0]"
        seen = await _sandbox_ids(session)
        assert len(seen) == 1
    _assert_gone(seen)


@pytest.mark.asyncio
async def test_a_chart_comes_back_as_image_content(connect: Connect) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()"
    async with connect() as session:
        result = await _ok(session, "run_code", code=code)
        seen = await _sandbox_ids(session)
    images = [c for c in result.content if isinstance(c, types.ImageContent)]
    assert len(images) == 1, result.content
    assert images[0].mimeType == "image/png"
    assert base64.b64decode(images[0].data).startswith(b"\x89PNG\r\n\x1a\n")
    assert "returned as an artifact" in _text(result)  # the text never carries base64
    _assert_gone(seen)


@pytest.mark.asyncio
async def test_errors_are_tool_results(connect: Connect) -> None:
    async with connect() as session:
        assert "code: Field required" in await _error(session, "run_code", {})
        assert "Extra inputs are not permitted" in await _error(
            session, "run_code", {"code": "1", "bogus": 2}
        )
        assert "timeout" in await _error(session, "run_code", {"code": "1", "timeout": -1})
        assert "sandbox_id: must be a string" in await _error(
            session, "run_code", {"code": "1", "sandbox_id": 7}
        )
        assert "no sandbox 'nope'" in await _error(
            session, "run_code", {"code": "1", "sandbox_id": "nope"}
        )
        assert "no tool named 'rm_rf'" in await _error(session, "rm_rf", {})
        assert "takes no arguments" in await _error(session, "create_sandbox", {"image": "x"})
        assert "sandbox_id" in await _error(session, "kill_sandbox", {})
        assert "outside the workspace" in await _error(
            session, "read_file", {"path": "/etc/passwd"}
        )
        assert "Not found" in await _error(session, "read_file", {"path": "missing.txt"})
        raised = await _error(session, "run_code", {"code": "1 / 0"})
        assert "ZeroDivisionError" in raised
        assert "[exit code: 3]" in await _error(session, "run_shell", {"command": "exit 3"})
        # The session survives all of it.
        assert _text(await _ok(session, "run_code", code="2 + 2")) == "[result]\n4"
        seen = await _sandbox_ids(session)
    _assert_gone(seen)


@pytest.mark.asyncio
async def test_sessions_are_isolated(connect: Connect) -> None:
    async with connect() as first, connect() as second:
        await _ok(first, "run_code", code="secret = 'first'")
        await _ok(first, "write_file", path="mine.txt", content="first's\n")
        await _ok(second, "run_code", code="1")  # its own default sandbox
        first_ids, second_ids = await _sandbox_ids(first), await _sandbox_ids(second)
        assert first_ids.isdisjoint(second_ids)
        assert "NameError" in await _error(second, "run_code", {"code": "secret"})
        assert "Not found" in await _error(second, "read_file", {"path": "mine.txt"})
        # Another session's sandbox ids are refused, as unknown ids are.
        (theirs,) = first_ids
        assert f"no sandbox {theirs!r}" in await _error(
            second, "run_code", {"code": "1", "sandbox_id": theirs}
        )
        assert f"no sandbox {theirs!r}" in await _error(
            second, "kill_sandbox", {"sandbox_id": theirs}
        )
        assert _text(await _ok(first, "run_code", code="secret")) == "[result]\nfirst"
    _assert_gone(first_ids | second_ids)


@pytest.mark.asyncio
async def test_several_sandboxes_per_session(connect: Connect) -> None:
    async with connect() as session:
        listed = await _ok(session, "list_sandboxes")
        assert "no sandbox yet" in _text(listed)
        await _ok(session, "run_code", code="where = 'default'")
        created = await _ok(session, "create_sandbox")
        assert created.structuredContent is not None
        other = created.structuredContent["sandbox_id"]
        assert other in _text(created)
        await _ok(session, "run_code", code="where = 'other'", sandbox_id=other)
        await _ok(session, "write_file", path="f.txt", content="other\n", sandbox_id=other)
        assert _text(await _ok(session, "run_code", code="where")) == "[result]\ndefault"
        assert "Not found" in await _error(session, "read_file", {"path": "f.txt"})
        read = await _ok(session, "read_file", path="f.txt", sandbox_id=other)
        assert "other" in _text(read)
        seen = await _sandbox_ids(session)
        assert len(seen) == 2 and other in seen
        rows = (await _ok(session, "list_sandboxes")).structuredContent
        assert rows is not None
        assert [(r["default"], r["running"]) for r in rows["sandboxes"]] == [
            (True, True),
            (False, True),
        ]
        killed = await _ok(session, "kill_sandbox", sandbox_id=other)
        assert other in _text(killed)
        _assert_gone({other})
        assert f"no sandbox {other!r}" in await _error(
            session, "run_code", {"code": "1", "sandbox_id": other}
        )
        assert await _sandbox_ids(session) == seen - {other}
    _assert_gone(seen)


def _rpc(proc: subprocess.Popen[str], message: dict[str, Any]) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
    proc.stdin.flush()
    if "id" not in message:
        return {}
    reply: dict[str, Any] = json.loads(proc.stdout.readline())
    assert "result" in reply, reply
    return reply["result"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_stdio_server_kills_its_sandboxes(image: str, signum: int) -> None:
    # Raw JSON-RPC: the SDK's client hides the process, and here stdin stays open.
    with subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        try:
            client = {"name": "test", "version": "1"}
            init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": client}
            _rpc(proc, {"id": 1, "method": "initialize", "params": init})
            _rpc(proc, {"method": "notifications/initialized"})
            call = {"name": "run_code", "arguments": {"code": "1"}}
            assert _rpc(proc, {"id": 2, "method": "tools/call", "params": call})["isError"] is False
            call = {"name": "list_sandboxes", "arguments": {}}
            rows = _rpc(proc, {"id": 3, "method": "tools/call", "params": call})
            seen = {row["sandbox_id"] for row in rows["structuredContent"]["sandboxes"]}
            proc.send_signal(signum)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    _assert_gone(seen)


@pytest.mark.asyncio
async def test_http_server_shutdown_kills_open_sessions_sandboxes(
    image: str, tmp_path: Path
) -> None:
    server = HttpServer(tmp_path / "server.log")
    try:
        async with (
            streamable_http_client(server.url, terminate_on_close=False) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await _ok(session, "run_code", code="1")
            await _ok(session, "create_sandbox")
            seen = await _sandbox_ids(session)
            assert len(seen) == 2
            # The session is still open when the server stops.
            assert server.stop() in (0, -signal.SIGTERM), server.log.read_text()
            _assert_gone(seen)
    finally:
        server.stop()


@pytest.mark.asyncio
async def test_http_session_end_kills_its_sandboxes_only(http_server: HttpServer) -> None:
    connect = _http_session(http_server.url)
    async with connect() as staying:
        await _ok(staying, "run_code", code="alive = True")
        async with connect() as leaving:
            await _ok(leaving, "run_code", code="1")
            await _ok(leaving, "create_sandbox")
            gone = await _sandbox_ids(leaving)
        _assert_gone(gone)  # the client's DELETE ended the session
        assert _text(await _ok(staying, "run_code", code="alive")) == "[result]\nTrue"
        kept = await _sandbox_ids(staying)
    _assert_gone(kept)


def test_http_refuses_foreign_host_headers(http_server: HttpServer) -> None:
    # A page that rebinds its DNS name to 127.0.0.1 sends its own name as Host.
    import httpx

    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    foreign = {**headers, "Host": f"attacker.example:{http_server.port}"}
    refused = httpx.post(http_server.url, json=initialize, headers=foreign, timeout=10)
    assert refused.status_code == 421
    accepted = httpx.post(http_server.url, json=initialize, headers=headers, timeout=10)
    assert accepted.status_code == 200
    session = accepted.headers["mcp-session-id"]
    ended = httpx.delete(http_server.url, headers={"Mcp-Session-Id": session}, timeout=10)
    assert ended.status_code == 200
