"""``e2b-tools serve``'s sandbox listener without an engine: which sandbox a request is
for and who may send it (the guard in ``_sandbox_app``), checked with plain HTTP on
uvicorn and with the real E2B SDK (side venv). The services behind the guard have
their own tests (``test_serve_process``, ``test_serve_files``,
``test_serve_interpreter``)."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import Served, run_e2b_sdk, serving
from local_backend import LocalBackend

from e2b_tools import Sandbox, SandboxNotFoundError
from e2b_tools_serve import ServeSettings
from e2b_tools_serve._registry import Sandboxes
from e2b_tools_serve._sandbox_app import basic_user, file_signature, signature_valid

KEY = "e2b_" + "a7" * 20
SECRET = b"guard-test-secret-guard-test-secret"
AUTH = {"X-API-KEY": KEY}
SETTINGS = ServeSettings(api_key=KEY, secret=SECRET)


@pytest.fixture
def served(backend: LocalBackend) -> Iterator[Served]:
    settings = ServeSettings(api_key=KEY, secret=SECRET, backend=backend)
    with serving(settings, start_wait=5.0, stop_wait=10.0, kill_wait=30.0) as urls:
        yield urls


def _create(served: Served, **body: Any) -> tuple[str, str]:
    reply = httpx.post(
        f"{served.api}/v2/sandboxes", json={"templateID": "base", **body}, headers=AUTH, timeout=60
    )
    assert reply.status_code == 201, reply.text
    return reply.json()["sandboxID"], reply.json()["envdAccessToken"]


def _get(url: str, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{url}{path}", headers=headers, timeout=30)


def test_sandbox_ids_are_long_and_dns_safe(served: Served) -> None:
    ids = {_create(served)[0] for _ in range(3)}
    assert len(ids) == 3
    assert all(re.fullmatch(r"[a-z0-9]{20}", sid) for sid in ids)


def test_the_token_of_the_named_sandbox_is_required(served: Served) -> None:
    sid, token = _create(served)
    other, other_token = _create(served)
    admitted = _get(served.sandbox, "/nope", **{"E2b-Sandbox-Id": sid, "X-Access-Token": token})
    assert admitted.status_code == 404 and "no such route: GET /nope" in admitted.text
    for headers in (
        {"E2b-Sandbox-Id": sid},  # no token
        {"E2b-Sandbox-Id": sid, "X-Access-Token": "0" * 64},
        {"E2b-Sandbox-Id": sid, "X-Access-Token": other_token},  # B's token, A's id
        {"E2b-Sandbox-Id": other, "X-Access-Token": token},
    ):
        refused = _get(served.sandbox, "/files?path=a", **headers)
        assert refused.status_code == 401, headers
        assert refused.json() == {"code": 401, "message": refused.json()["message"]}
    # A Connect client reads the code's name from the body.
    rpc = httpx.post(
        f"{served.sandbox}/process.Process/List",
        json={},
        headers={"E2b-Sandbox-Id": sid, "X-Access-Token": other_token},
        timeout=30,
    )
    assert rpc.status_code == 401 and rpc.json()["code"] == "unauthenticated"


def test_health_needs_the_sandbox_only(served: Served) -> None:
    sid, _ = _create(served)
    assert _get(served.sandbox, "/health", **{"E2b-Sandbox-Id": sid}).status_code == 204
    unknown = "z" * 20
    gone = _get(served.sandbox, "/health", **{"E2b-Sandbox-Id": unknown})
    assert gone.status_code == 502
    assert gone.json()["message"] == f"The sandbox {unknown} was not found"
    assert httpx.delete(f"{served.api}/sandboxes/{sid}", headers=AUTH).status_code == 204
    assert _get(served.sandbox, "/health", **{"E2b-Sandbox-Id": sid}).status_code == 502


def test_web_pages_are_refused_before_anything_else(served: Served) -> None:
    sid, token = _create(served)
    for url in (served.sandbox, served.interpreter):
        reply = _get(
            url,
            "/health",
            **{"E2b-Sandbox-Id": sid, "X-Access-Token": token, "Origin": "http://evil.test"},
        )
        assert reply.status_code == 403 and reply.json()["code"] == 403


def test_the_port_header_picks_the_service(served: Served) -> None:
    sid, token = _create(served)
    headers = {"E2b-Sandbox-Id": sid, "X-Access-Token": token}
    closed = _get(served.sandbox, "/health", **headers, **{"E2b-Sandbox-Port": "8080"})
    assert closed.status_code == 502 and "port is not open" in closed.json()["message"]
    # The interpreter's /contexts calls come without a token (as E2B's SDKs send them);
    # envd's routes do not have /contexts.
    envd = _get(served.sandbox, "/contexts", **{"E2b-Sandbox-Id": sid})
    assert envd.status_code == 401
    interp = _get(
        served.sandbox, "/contexts", **{"E2b-Sandbox-Id": sid, "E2b-Sandbox-Port": "49999"}
    )
    assert interp.status_code != 401


def test_a_token_alone_finds_its_sandbox(served: Served) -> None:
    _create(served)
    sid, token = _create(served)
    reply = _get(served.interpreter, "/nope", **{"X-Access-Token": token})
    assert reply.status_code == 404 and "no such route" in reply.text
    assert _get(served.interpreter, "/nope", **{"X-Access-Token": "f" * 64}).status_code == 401
    assert sid


def test_a_signed_file_url_finds_its_sandbox_and_expires(served: Served) -> None:
    sid, token = _create(served)
    now = int(time.time())

    def signed(path: str, op: str, expiration: int | None, signs: str = "") -> httpx.Response:
        query = {
            "path": path,
            "signature": file_signature(signs or path, op, None, token, expiration),
        }
        if expiration is not None:
            query["signature_expiration"] = str(expiration)
        return httpx.get(f"{served.sandbox}/files", params=query, timeout=30)

    assert signed("a.txt", "read", now + 60).status_code != 401
    assert signed("a.txt", "read", None).status_code != 401
    expired = signed("a.txt", "read", now - 1)
    assert expired.status_code == 401 and "expired" in expired.json()["message"]
    assert signed("b.txt", "read", now + 60, signs="a.txt").status_code == 401  # another path
    assert signed("a.txt", "write", None).status_code == 401  # signed for an upload
    assert sid


def test_debug_mode_needs_the_flag(served: Served) -> None:
    refused = _get(served.interpreter, "/contexts")
    assert refused.status_code == 401 and "--debug-sandbox" in refused.json()["message"]
    named = _get(served.sandbox, "/health", **{"E2b-Sandbox-Id": "debug_sandbox_id"})
    assert named.status_code == 502 and "--debug-sandbox" in named.json()["message"]


def test_debug_mode_serves_one_shared_sandbox_killed_at_stop(backend: LocalBackend) -> None:
    settings = ServeSettings(api_key=KEY, secret=SECRET, backend=backend, debug_sandbox=True)
    with serving(settings, start_wait=5.0, stop_wait=10.0, kill_wait=30.0) as served:
        first = _get(served.sandbox, "/health", **{"E2b-Sandbox-Id": "debug_sandbox_id"})
        assert first.status_code == 204
        assert _get(served.interpreter, "/health").status_code == 204
        listed = httpx.get(f"{served.api}/v2/sandboxes", headers=AUTH, timeout=30).json()
        assert len(listed) == 1  # one shared sandbox, however many requests


def test_the_shared_sandbox_ends_with_the_server(backend: LocalBackend) -> None:
    settings = ServeSettings(api_key=KEY, secret=SECRET, backend=backend, debug_sandbox=True)

    async def scenario() -> tuple[str, bool]:
        sandboxes = Sandboxes(settings)
        session = await sandboxes.shared_session()
        assert (await sandboxes.shared_session()) is session
        await sandboxes.aclose()
        return session.sandbox_id, session.closed

    sandbox_id, closed = asyncio.run(scenario())
    assert closed
    with pytest.raises(SandboxNotFoundError):
        Sandbox.get_info(sandbox_id, backend=backend)


def test_signature_and_basic_auth_parsing() -> None:
    token = SETTINGS.access_token("x" * 20)
    sig = file_signature("/home/user/f", "write", "user", token, 100)
    query = {"path": "/home/user/f", "username": "user", "signature": sig}
    assert signature_valid({**query, "signature_expiration": "100"}, "POST", token, now=99)
    assert not signature_valid({**query, "signature_expiration": "100"}, "POST", token, now=101)
    assert not signature_valid({**query, "signature_expiration": "1e9"}, "POST", token, now=1)
    assert not signature_valid({**query, "signature_expiration": "100"}, "GET", token, now=1)
    assert basic_user("Basic dXNlcjo=") == "user"
    for bad in (None, "", "Bearer x", "Basic !!!", "Basic " + "//79"):
        assert basic_user(bad) is None


SDK_HEALTH = """
import json
from e2b import Sandbox
sbx = Sandbox.create(timeout=60)
out = {"running": sbx.is_running()}
sbx.kill()
out["after_kill"] = sbx.is_running()
print(json.dumps(out))
"""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="the latest e2b SDK needs Python 3.11")
@pytest.mark.timeout(300)
def test_the_sdk_sees_a_killed_sandbox_as_not_running(served: Served) -> None:
    out = run_e2b_sdk(served, SDK_HEALTH, KEY, timeout=150)
    assert out == {"running": True, "after_kill": False}


def test_root_is_refused_the_same_way_on_every_service(served: Served) -> None:
    sid, token = _create(served)
    root = {"E2b-Sandbox-Id": sid, "X-Access-Token": token, "Authorization": "Basic cm9vdDo="}
    for url, path in ((served.sandbox, "/files?path=a"), (served.interpreter, "/contexts")):
        refused = _get(url, path, **root)
        assert refused.status_code == 400 and "user 'root' is not available" in refused.text
    by_query = _get(
        served.sandbox,
        "/files?path=a&username=root",
        **{"E2b-Sandbox-Id": sid, "X-Access-Token": token},
    )
    assert by_query.status_code == 400
    rpc = httpx.post(f"{served.sandbox}/process.Process/List", json={}, headers=root, timeout=30)
    assert rpc.status_code == 400 and rpc.json()["code"] == "invalid_argument"
    default = {"E2b-Sandbox-Id": sid, "X-Access-Token": token, "Authorization": "Basic dXNlcjo="}
    assert _get(served.sandbox, "/nope", **default).status_code == 404  # 'user' is fine
