"""``e2b-tools serve``'s control plane on the Docker Engine, driven by the real E2B SDK
(side venv, ``tests/e2b-sdk-requirements.txt``) in a subprocess: list with a metadata
filter, connect, pause and resume, kill, 404 after kill, the network switch, and the
deadline removing a sandbox. Engine-free checks: ``tests/unit/test_serve_control.py``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import Served, run_e2b_sdk, serving

from e2b_tools import Sandbox
from e2b_tools_serve import ServeSettings

KEY = "e2b_" + "7a" * 20
AUTH = {"X-API-KEY": KEY}

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="the latest e2b SDK needs Python 3.11"
)


@pytest.fixture
def server(image: str) -> Iterator[Served]:
    """The control plane on the default Docker backend, under uvicorn in a thread on an
    ephemeral loopback port; every sandbox it made is killed after the test."""
    settings = ServeSettings(api_key=KEY, templates={"base": image})
    with serving(settings, start_wait=10.0, stop_wait=15.0, kill_wait=60.0) as url:
        yield url


def _run_sdk(url: Served, script: str) -> dict[str, Any]:
    return run_e2b_sdk(url, script, KEY, timeout=240)


LIFECYCLE = """
    import json
    from e2b import Sandbox, SandboxQuery, SandboxState
    from e2b.exceptions import NotFoundException

    out = {}
    a = Sandbox.create(timeout=120, metadata={"team": "red", "run": "serve-engine"})
    b = Sandbox.create(timeout=120, metadata={"team": "blue", "run": "serve-engine"})
    out["ids"] = [a.sandbox_id, b.sandbox_id]
    page = Sandbox.list(query=SandboxQuery(metadata={"team": "red"})).next_items()
    out["red"] = [s.sandbox_id for s in page]
    page = Sandbox.list(query=SandboxQuery(metadata={"run": "serve-engine"})).next_items()
    out["both"] = sorted(s.sandbox_id for s in page)
    out["connected"] = Sandbox.connect(a.sandbox_id, timeout=300).sandbox_id
    b.pause()
    paused = Sandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED])).next_items()
    out["paused"] = [s.sandbox_id for s in paused]
    out["resumed_state"] = str(Sandbox.connect(b.sandbox_id).get_info().state.value)
    out["killed"] = [Sandbox.kill(a.sandbox_id), Sandbox.kill(a.sandbox_id)]
    try:
        Sandbox.get_info(a.sandbox_id)
    except NotFoundException as exc:
        out["after_kill"] = type(exc).__name__
    out["left"] = [s.sandbox_id for s in Sandbox.list().next_items()]
    b.kill()
    print(json.dumps(out))
"""


@pytest.mark.timeout(300)
def test_the_sdk_lists_connects_pauses_and_kills(server: Served) -> None:
    out = _run_sdk(server, LIFECYCLE)
    a, b = out["ids"]
    assert out["red"] == [a] and out["both"] == sorted([a, b])
    assert out["connected"] == a
    assert out["paused"] == [b] and out["resumed_state"] == "running"
    assert out["killed"] == [True, False]
    assert out["after_kill"] == "SandboxNotFoundException"
    assert out["left"] == [b]


DEADLINE = """
    import json, time
    from e2b import Sandbox
    from e2b.exceptions import NotFoundException

    sbx = Sandbox.create(timeout=3)
    out = {"id": sbx.sandbox_id}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            Sandbox.get_info(sbx.sandbox_id)
        except NotFoundException:
            out["gone_after"] = True
            break
        time.sleep(0.5)
    print(json.dumps(out))
"""


@pytest.mark.timeout(300)
def test_the_deadline_removes_a_sandbox_made_through_the_sdk(server: Served) -> None:
    out = _run_sdk(server, DEADLINE)
    assert out.get("gone_after") is True, out


@pytest.mark.timeout(300)
def test_a_served_sandbox_is_a_full_e2b_tools_sandbox(server: Served) -> None:
    with httpx.Client(base_url=server.api, timeout=120) as http:
        made = http.post(
            "/v2/sandboxes",
            json={"templateID": "base", "allow_internet_access": True, "envVars": {"X": "1"}},
            headers=AUTH,
        )
        assert made.status_code == 201, made.text
        offline = http.post("/v2/sandboxes", json={"templateID": "base"}, headers=AUTH)
        assert offline.status_code == 201, offline.text
    online = Sandbox.connect(made.json()["sandboxID"])
    closed = Sandbox.connect(offline.json()["sandboxID"])
    try:
        assert online.config.network == "full"
        assert online.commands.run("echo $X").stdout == "1\n"
        assert closed.config.network == "none"
    finally:
        online.kill()
        closed.kill()
