"""``e2b-tools serve``'s control plane without an engine: the app on the local backend
(the real agent as a subprocess) through starlette's TestClient, the real E2B SDK (side
venv) in a subprocess against uvicorn on an ephemeral loopback port, the security
guard, hostile requests, and the ``serve`` command's options. With the engine:
``tests/engine/test_serve_control_engine.py``."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import Served, kill_all_served, run_e2b_sdk, serving
from local_backend import LocalBackend
from starlette.testclient import TestClient

import e2b_tools_serve
from e2b_tools import Sandbox
from e2b_tools.cli import main
from e2b_tools_serve import ENVD_VERSION, ServeSettings, control_app

KEY = "e2b_" + "5e" * 20
SECRET = b"unit-test-secret-unit-test-secret"
AUTH = {"X-API-KEY": KEY}


def _settings(backend: LocalBackend, **kwargs: Any) -> ServeSettings:
    return ServeSettings(api_key=KEY, secret=SECRET, backend=backend, **kwargs)


@pytest.fixture
def client(backend: LocalBackend) -> Iterator[TestClient]:
    """The control plane on the local backend; every sandbox it made is killed after."""
    app = control_app(_settings(backend, templates={"custom": "local-image"}))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        try:
            yield test_client
        finally:
            kill_all_served(test_client, AUTH)


def _create(client: TestClient, **body: Any) -> dict[str, Any]:
    reply = client.post("/v2/sandboxes", json={"templateID": "base", **body}, headers=AUTH)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


# -- the P0 routes -----------------------------------------------------------------


def test_create_get_list_timeout_kill(client: TestClient) -> None:
    created = _create(client, metadata={"user": "ada"}, timeout=60)
    sid = created["sandboxID"]
    assert created["envdVersion"] == ENVD_VERSION == "0.6.2"
    assert created["envdAccessToken"] == ServeSettings(api_key=KEY, secret=SECRET).access_token(sid)
    assert created["templateID"] == "base" and created["trafficAccessToken"] is None
    detail = client.get(f"/sandboxes/{sid}", headers=AUTH).json()
    assert detail["state"] == "running" and detail["metadata"] == {"user": "ada"}
    assert detail["envdAccessToken"] == created["envdAccessToken"]
    for field in ("startedAt", "endAt", "cpuCount", "memoryMB", "diskSizeMB", "clientID"):
        assert field in detail
    other = _create(client, metadata={"user": "bob"})  # the v1 path too
    listed = client.get("/v2/sandboxes", params={"metadata": "user=ada"}, headers=AUTH).json()
    assert [item["sandboxID"] for item in listed] == [sid]
    assert "envdAccessToken" not in listed[0]
    v1 = client.get("/sandboxes", headers=AUTH).json()
    assert {item["sandboxID"] for item in v1} == {sid, other["sandboxID"]}
    end_before = detail["endAt"]
    assert (
        client.post(f"/sandboxes/{sid}/timeout", json={"timeout": 600}, headers=AUTH).status_code
        == 204
    )
    assert client.get(f"/sandboxes/{sid}", headers=AUTH).json()["endAt"] > end_before
    assert client.delete(f"/sandboxes/{sid}", headers=AUTH).status_code == 204
    gone = client.get(f"/sandboxes/{sid}", headers=AUTH)
    assert gone.status_code == 404 and "was not found" in gone.json()["message"]
    assert client.delete(f"/sandboxes/{sid}", headers=AUTH).status_code == 404
    timeout = client.post(f"/sandboxes/{sid}/timeout", json={"timeout": 5}, headers=AUTH)
    assert timeout.status_code == 404


def test_v1_create_connect_pause_resume_metrics(client: TestClient) -> None:
    reply = client.post("/sandboxes", json={"templateID": "code-interpreter-v1"}, headers=AUTH)
    assert reply.status_code == 201
    sid = reply.json()["sandboxID"]
    connect = client.post(f"/v2/sandboxes/{sid}/connect", json={"timeout": 30}, headers=AUTH)
    assert connect.status_code == 200 and connect.json()["sandboxID"] == sid
    assert connect.json()["templateID"] == "code-interpreter-v1"
    metrics = client.get(f"/sandboxes/{sid}/metrics", headers=AUTH).json()
    assert metrics and {"cpuUsedPct", "memUsed", "timestampUnix"} <= metrics[0].keys()
    assert client.post(f"/sandboxes/{sid}/pause", headers=AUTH).status_code == 204
    assert client.post(f"/sandboxes/{sid}/pause", headers=AUTH).status_code == 409
    paused = client.get("/v2/sandboxes", params={"state": "paused"}, headers=AUTH).json()
    assert [item["sandboxID"] for item in paused] == [sid]
    assert client.get("/v2/sandboxes", params={"state": "running"}, headers=AUTH).json() == []
    resumed = client.post(f"/sandboxes/{sid}/connect", json={"timeout": 30}, headers=AUTH)
    assert resumed.status_code == 201
    assert client.post(f"/sandboxes/{sid}/resume", json={}, headers=AUTH).status_code == 409
    assert client.post("/v2/sandboxes/nope/connect", json={}, headers=AUTH).status_code == 404


def test_templates_and_reserved_metadata(client: TestClient) -> None:
    unknown = client.post("/v2/sandboxes", json={"templateID": "nope"}, headers=AUTH)
    assert unknown.status_code == 404 and "template not found" in unknown.json()["message"]
    custom = _create(client, templateID="custom")
    info = client.get(f"/sandboxes/{custom['sandboxID']}", headers=AUTH).json()
    assert info["templateID"] == "custom"
    listed = client.get("/v2/sandboxes", params={"template": "custom"}, headers=AUTH).json()
    assert [item["sandboxID"] for item in listed] == [custom["sandboxID"]]
    reserved = client.post(
        "/v2/sandboxes",
        json={"templateID": "base", "metadata": {"e2b-tools-serve": "x"}},
        headers=AUTH,
    )
    assert reserved.status_code == 400 and "reserved" in reserved.json()["message"]


def test_internet_needs_a_network_the_backend_lacks(client: TestClient) -> None:
    # The local backend has no network isolation: asking for the internet is refused
    # with a 400 saying so (the engine test shows the network reaching Docker).
    reply = client.post(
        "/v2/sandboxes", json={"templateID": "base", "allow_internet_access": True}, headers=AUTH
    )
    assert reply.status_code == 400 and "network" in reply.json()["message"]


def test_a_restarted_server_finds_its_sandboxes_and_no_one_elses(
    client: TestClient, backend: LocalBackend
) -> None:
    created = _create(client)
    sid = created["sandboxID"]
    with TestClient(control_app(_settings(backend))) as again:
        detail = again.get(f"/sandboxes/{sid}", headers=AUTH).json()
        assert detail["envdAccessToken"] == created["envdAccessToken"]
    stranger = ServeSettings(api_key=KEY, secret=b"another-secret-entirely", backend=backend)
    with TestClient(control_app(stranger)) as other:
        assert other.get(f"/sandboxes/{sid}", headers=AUTH).status_code == 404
        assert other.get("/v2/sandboxes", headers=AUTH).json() == []
        assert other.delete(f"/sandboxes/{sid}", headers=AUTH).status_code == 404
    # A sandbox made without serve is not serve's either.
    plain = Sandbox.create(backend=backend, timeout=60)
    try:
        assert client.get(f"/sandboxes/{plain.sandbox_id}", headers=AUTH).status_code == 404
        listed = client.get("/v2/sandboxes", headers=AUTH).json()
        assert [item["sandboxID"] for item in listed] == [sid]
    finally:
        plain.kill()


# -- the guard and hostile requests -------------------------------------------------


def test_a_sandbox_killed_behind_the_servers_back_is_404_everywhere(
    client: TestClient, backend: LocalBackend
) -> None:
    sid = _create(client, timeout=60)["sandboxID"]
    assert (
        client.post(f"/sandboxes/{sid}/timeout", json={"timeout": 90}, headers=AUTH).status_code
        == 204
    )
    assert backend.kill(f"local-{sid}")  # attached, and gone without the server knowing
    for method, path, body in (
        ("POST", f"/sandboxes/{sid}/timeout", {"timeout": 30}),
        ("GET", f"/sandboxes/{sid}", None),
        ("POST", f"/v2/sandboxes/{sid}/connect", {}),
        ("POST", f"/sandboxes/{sid}/pause", None),
        ("GET", f"/sandboxes/{sid}/metrics", None),
        ("DELETE", f"/sandboxes/{sid}", None),
    ):
        reply = client.request(method, path, json=body, headers=AUTH)
        assert reply.status_code == 404, (path, reply.text)
        assert reply.json() == {"code": 404, "message": f"The sandbox {sid} was not found"}
    assert client.get("/v2/sandboxes", headers=AUTH).json() == []


def test_key_and_origin_are_checked_before_routing(client: TestClient) -> None:
    for headers in ({}, {"X-API-KEY": "e2b_" + "00" * 20}, {"X-API-KEY": KEY + "0"}):
        reply = client.get("/v2/sandboxes", headers=headers)
        assert reply.status_code == 401 and reply.json()["code"] == 401
        assert client.get("/no/such/route", headers=headers).status_code == 401
    reply = client.get("/v2/sandboxes", headers={**AUTH, "Origin": "http://127.0.0.1:3000"})
    assert reply.status_code == 403 and reply.json()["code"] == 403
    created = client.post(
        "/v2/sandboxes", json={"templateID": "base"}, headers={**AUTH, "Origin": "null"}
    )
    assert created.status_code == 403
    assert client.get("/v2/sandboxes", headers=AUTH).json() == []


def test_errors_are_json_naming_the_route(client: TestClient) -> None:
    unknown = client.get("/v9/sandboxes", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json() == {
        "code": 404,
        "message": "no such route: GET /v9/sandboxes (not served by e2b-tools serve)",
    }
    wrong = client.put("/sandboxes/abc", headers=AUTH)
    assert wrong.status_code == 405 and "PUT /sandboxes/abc" in wrong.json()["message"]
    for method, path in (
        ("POST", "/sandboxes/abc/fork"),
        ("PUT", "/sandboxes/abc/network"),
        ("GET", "/templates"),
        ("POST", "/v3/templates"),
        ("GET", "/sandboxes/metrics"),
        ("GET", "/volumes/v1"),
    ):
        reply = client.request(method, path, headers=AUTH)
        assert reply.status_code == 501, path
        assert reply.json() == {
            "code": 501,
            "message": f"{method} {path} is not supported by e2b-tools serve",
        }
    mcp = client.post("/v2/sandboxes", json={"templateID": "base", "mcp": {"x": {}}}, headers=AUTH)
    assert mcp.status_code == 501


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "JSON object"),
        (b"", "JSON object"),
        (b'{"templateID": 5}', "templateID"),
        (b'{"templateID": "base", "timeout": -1}', "timeout"),
        (b'{"templateID": "base", "timeout": "60"}', "timeout"),
        (b'{"templateID": "base", "timeout": 1e999}', "timeout"),
        (b'{"templateID": "base", "timeout": 99999999}', "timeout"),
        (b'{"templateID": "base", "metadata": {"a": 1}}', "metadata"),
        (b'{"templateID": "base", "envVars": ["A=1"]}', "envVars"),
        (b'{"templateID": "base", "allow_internet_access": "yes"}', "allow_internet_access"),
        (b'{"templateID": "base", "network": {"allowOut": "all"}}', "network"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    ],
)
def test_malformed_create_bodies_get_400(client: TestClient, body: bytes, fragment: str) -> None:
    reply = client.post("/v2/sandboxes", content=body, headers=AUTH)
    assert reply.status_code == 400, reply.text
    assert fragment in reply.json()["message"]


def test_bodies_over_the_limit_get_413_declared_or_streamed(client: TestClient) -> None:
    big = b'{"templateID": "' + b"x" * (2 << 20) + b'"}'
    reply = client.post("/v2/sandboxes", content=big, headers=AUTH)
    assert reply.status_code == 413 and reply.json()["code"] == 413

    def chunks() -> Iterator[bytes]:  # no content-length: counted as it arrives
        for _ in range(40):
            yield b" " * 65536

    reply = client.post("/v2/sandboxes", content=chunks(), headers=AUTH)
    assert reply.status_code == 413
    timeout = client.post("/sandboxes/abc/timeout", content=big, headers=AUTH)
    assert timeout.status_code == 413


def test_list_filters_are_checked(client: TestClient) -> None:
    for params in ({"state": "dead"}, {"limit": "0"}, {"limit": "x"}, {"metadata": "a"}):
        reply = client.get("/v2/sandboxes", params=params, headers=AUTH)
        assert reply.status_code == 400, params


# -- the real E2B SDK against uvicorn ----------------------------------------------


@pytest.fixture
def server(backend: LocalBackend) -> Iterator[Served]:
    """The control plane under uvicorn in a thread on an ephemeral loopback port."""
    with serving(_settings(backend), start_wait=5.0, stop_wait=10.0, kill_wait=30.0) as url:
        yield url


SDK_SCRIPT = textwrap.dedent(
    """
    import json, os
    from e2b import Sandbox, SandboxQuery
    from e2b.exceptions import AuthenticationException, SandboxNotFoundException, NotFoundException

    out = {}
    sbx = Sandbox.create(timeout=60, metadata={"suite": "serve-sdk"})
    out["id"] = sbx.sandbox_id
    info = sbx.get_info()
    out["state"] = str(info.state.value if hasattr(info.state, "value") else info.state)
    out["metadata"] = info.metadata
    out["end_before"] = info.end_at.isoformat()
    sbx.set_timeout(600)
    out["end_after"] = Sandbox.get_info(sbx.sandbox_id).end_at.isoformat()
    listed = Sandbox.list(query=SandboxQuery(metadata={"suite": "serve-sdk"})).next_items()
    out["listed"] = [s.sandbox_id for s in listed]
    out["none_listed"] = Sandbox.list(query=SandboxQuery(metadata={"suite": "x"})).next_items()
    again = Sandbox.connect(sbx.sandbox_id)
    out["connected"] = again.sandbox_id
    out["killed"] = Sandbox.kill(sbx.sandbox_id)
    out["killed_again"] = Sandbox.kill(sbx.sandbox_id)
    try:
        Sandbox.get_info(sbx.sandbox_id)
    except (SandboxNotFoundException, NotFoundException) as exc:
        out["after_kill"] = type(exc).__name__
    try:
        Sandbox.connect(sbx.sandbox_id)
    except Exception as exc:
        out["connect_after_kill"] = type(exc).__name__
    try:
        Sandbox.create(api_key="e2b_" + "00" * 20)
    except AuthenticationException as exc:
        out["wrong_key"] = type(exc).__name__
    try:
        Sandbox.create(template="nope")
    except Exception as exc:
        out["unknown_template"] = [type(exc).__name__, str(exc)]
    print(json.dumps(out))
    """
)


def _run_sdk(url: Served, script: str, key: str = KEY) -> dict[str, Any]:
    return run_e2b_sdk(url, script, key, timeout=150)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the latest e2b SDK needs Python 3.11")
@pytest.mark.timeout(300)
def test_the_real_e2b_sdk_drives_the_control_plane(server: Served) -> None:
    out = _run_sdk(server, SDK_SCRIPT)
    assert out["state"] == "running" and out["metadata"] == {"suite": "serve-sdk"}
    assert out["end_after"] > out["end_before"]
    assert out["listed"] == [out["id"]] and out["none_listed"] == []
    assert out["connected"] == out["id"]
    assert out["killed"] is True and out["killed_again"] is False
    assert out["after_kill"] in ("SandboxNotFoundException", "NotFoundException")
    assert out["connect_after_kill"] in ("SandboxNotFoundException", "NotFoundException")
    assert out["wrong_key"] == "AuthenticationException"
    assert "template not found" in out["unknown_template"][1]


# -- the serve command --------------------------------------------------------------


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("E2B_TOOLS_SERVE_API_KEY", raising=False)
    return tmp_path / "e2b-tools" / "serve.json"


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_print_env_keeps_one_key_in_a_private_file(
    config_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(["serve", "--print-env", "--port", "3111"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "export E2B_API_URL=http://127.0.0.1:3111"
    assert lines[1] == "export E2B_SANDBOX_URL=http://127.0.0.1:49983"
    assert lines[2].startswith("export E2B_API_KEY=e2b_")
    assert stat.S_IMODE(config_home.stat().st_mode) == 0o600
    assert json.loads(config_home.read_text())["api_key"] == lines[2].split("=", 1)[1]
    assert _cli(["serve", "--print-env", "--port", "3111"], capsys)[1] == out
    config_home.chmod(0o644)
    code, _, err = _cli(["serve", "--print-env"], capsys)
    assert code == 1 and "chmod 600" in err


def test_remote_hosts_need_allow_remote_and_a_key(
    config_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = _cli(["serve", "--host", "0.0.0.0"], capsys)
    assert code == 2 and "--allow-remote" in err
    code, _, err = _cli(["serve", "--host", "0.0.0.0", "--allow-remote"], capsys)
    assert code == 2 and "--api-key" in err
    code, _, err = _cli(["serve", "--api-key", "secret"], capsys)
    assert code == 2 and "e2b_" in err
    code, _, err = _cli(["serve", "--template", "nope"], capsys)
    assert code == 2 and "NAME=IMAGE" in err
    calls: list[tuple[ServeSettings, str, int, int, int | None]] = []

    def fake_serve(
        s: ServeSettings, host: str, port: int, envd_port: int, interpreter_port: int | None
    ) -> None:
        calls.append((s, host, port, envd_port, interpreter_port))

    monkeypatch.setattr(e2b_tools_serve, "serve", fake_serve)
    code, _, err = _cli(
        [
            "serve",
            "--host",
            "0.0.0.0",
            "--allow-remote",
            "--api-key",
            KEY,
            "--template",
            "py=python:3.12-slim",
            "--internet",
            "--port",
            "3999",
            "--envd-port",
            "4000",
            "--interpreter-port",
            "0",
        ],
        capsys,
    )
    assert code == 0 and KEY in err and "export E2B_SANDBOX_URL=http://127.0.0.1:4000" in err
    settings, host, port, envd_port, interpreter_port = calls[0]
    assert (host, port, envd_port, interpreter_port) == ("0.0.0.0", 3999, 4000, None)
    assert (settings.api_key, settings.network) == (KEY, "full")
    assert settings.image_for("py") == "python:3.12-slim" and settings.image_for("base") is None
    assert _cli(["serve", "--host", "::1"], capsys)[0] == 0  # loopback, v6
    assert calls[1][0].network == "none"


def test_serve_without_the_extra_says_what_to_install(
    config_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "e2b_tools_serve", None)  # import raises
    code, _, err = _cli(["serve", "--print-env"], capsys)
    assert code == 1 and "pip install 'e2b-tools[serve]'" in err


def test_the_serve_command_serves_until_interrupted(tmp_path: Path) -> None:
    ports = []
    for _ in range(3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    port, envd_port, interpreter_port = ports
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    env.pop("E2B_TOOLS_SERVE_API_KEY", None)
    command = [sys.executable, "-m", "e2b_tools.cli", "serve", "--port", str(port)]
    command += ["--envd-port", str(envd_port), "--interpreter-port", str(interpreter_port)]
    printed = subprocess.run(
        [*command, "--print-env"], env=env, capture_output=True, text=True, timeout=60
    )
    key = printed.stdout.splitlines()[2].split("=", 1)[1]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                reply = httpx.get(f"{url}/nope", headers={"X-API-KEY": key}, timeout=5)
                break
            except httpx.TransportError:
                threading.Event().wait(0.05)
        else:
            pytest.fail("e2b-tools serve did not answer")
        assert reply.status_code == 404 and reply.json()["code"] == 404
        assert httpx.get(f"{url}/v2/sandboxes", timeout=5).status_code == 401
        assert "server" not in httpx.get(f"{url}/x", timeout=5).headers
        for listener in (envd_port, interpreter_port):  # no sandbox named: 401
            sandbox_url = f"http://127.0.0.1:{listener}/files?path=x"
            answer = httpx.get(sandbox_url, headers={"X-Access-Token": "x"}, timeout=5)
            assert answer.status_code == 401 and answer.json()["code"] == 401
    finally:
        process.send_signal(2)  # SIGINT, as Ctrl-C
        _, err = process.communicate(timeout=30)
    assert process.returncode in (0, 130), err
    assert f"export E2B_API_KEY={key}" in err
    assert f"export E2B_SANDBOX_URL=http://127.0.0.1:{envd_port}" in err
