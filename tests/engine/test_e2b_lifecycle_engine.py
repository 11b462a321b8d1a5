"""E2B's lifecycle API on the engine: pause and resume with ``docker pause`` (processes
and memory kept, the timeout clock stopped), the by-id forms, metrics from the engine's
stats, and gc keeping paused sandboxes."""

from __future__ import annotations

import time

import docker
import pytest

from e2b_tools import (
    InvalidArgumentError,
    Sandbox,
    SandboxQuery,
    SandboxState,
    gc,
)
from e2b_tools.backends.docker import LABEL_SANDBOX


def _state(client: docker.DockerClient, sandbox_id: str) -> str | None:
    found = client.api.containers(all=True, filters={"label": f"{LABEL_SANDBOX}={sandbox_id}"})
    return str(found[0]["State"]) if found else None


def _deadline(sbx: Sandbox) -> float:
    info = sbx.get_info()
    assert info.end_at is not None
    return info.end_at.timestamp()


def test_paused_past_its_timeout_resumes_with_processes_and_memory(
    image: str, docker_client: docker.DockerClient
) -> None:
    timeout = 4.0
    sbx = Sandbox.create(timeout=timeout)
    try:
        sbx.run_code("x = 41")
        server = sbx.commands.run("sleep 600", background=True)
        before = _deadline(sbx)
        assert sbx.pause() is True
        assert _state(docker_client, sbx.sandbox_id) == "paused"
        # Past the deadline and the watchdog's grace while frozen.
        time.sleep(timeout + 4)
        assert _state(docker_client, sbx.sandbox_id) == "paused"
        same = Sandbox.connect(sbx.sandbox_id)
        assert _state(docker_client, sbx.sandbox_id) == "running"
        assert same.run_code("x + 1").text == "42"
        assert server.pid in {p.pid for p in same.commands.list()}
        assert timeout + 3 < _deadline(same) - before < timeout + 15
        # The time left before the pause still runs out: the sandbox removes itself.
        gone = time.monotonic() + timeout + 20
        while _state(docker_client, sbx.sandbox_id) is not None:
            assert time.monotonic() < gone, "the resumed sandbox outlived its timeout"
            time.sleep(0.25)
    finally:
        sbx.kill()


def test_by_id_forms_list_and_gc(image: str, docker_client: docker.DockerClient) -> None:
    sbx = Sandbox.create(timeout=60, metadata={"suite": "e2b-lifecycle"})
    sid = sbx.sandbox_id
    try:
        Sandbox.set_timeout(sid, 600)
        assert abs(_deadline(sbx) - (time.time() + 600)) < 30
        info = Sandbox.get_info(sid)
        assert info.state == SandboxState.RUNNING and info.template_id == image
        assert info.name == image.rpartition(":")[0]
        # A running sandbox's deadline only grows on connect(timeout=...).
        Sandbox.connect(sid, timeout=5)
        assert _deadline(sbx) > time.time() + 500
        assert Sandbox.pause(sid) is True
        assert Sandbox.pause(sid) is False
        query = SandboxQuery(metadata={"suite": "e2b-lifecycle"}, state=[SandboxState.PAUSED])
        assert [i.sandbox_id for i in Sandbox.list(query).next_items()] == [sid]
        with pytest.raises(InvalidArgumentError, match="paused"):
            Sandbox.set_timeout(sid, 60)
        assert sid not in gc(dry_run=True)
        assert Sandbox.kill(sid) is True  # paused, killed all the same
        assert Sandbox.kill(sid) is False
    finally:
        sbx.kill()


def test_get_metrics_from_the_engine(image: str) -> None:
    with Sandbox.create(cpu=1.0, memory="512m") as sbx:
        sbx.commands.run("head -c 1000000 /dev/zero > blob")
        (sample,) = sbx.get_metrics()
        assert sample.cpu_count == 1 and 0 <= sample.cpu_used_pct <= 100
        assert sample.mem_total == 512 << 20 and 0 < sample.mem_used < sample.mem_total
        assert sample.disk_total > 0
        (by_id,) = Sandbox.get_metrics(sbx.sandbox_id)
        assert by_id.mem_total == sample.mem_total


def test_auto_pause_by_id_in_list_and_kept_by_gc(
    image: str, docker_client: docker.DockerClient
) -> None:
    sbx = Sandbox.beta_create(auto_pause=True, timeout=3)
    sid = sbx.sandbox_id
    try:
        sbx.run_code("x = 41")
        end = time.monotonic() + 15
        while Sandbox.get_info(sid).state != SandboxState.PAUSED:
            assert time.monotonic() < end, "the deadline did not pause the sandbox"
            time.sleep(0.3)
        # Frozen by its own agent (the engine cannot be asked from inside).
        assert _state(docker_client, sid) == "running"
        time.sleep(3)  # past the watchdog's grace too
        paused = Sandbox.list(SandboxQuery(state=[SandboxState.PAUSED])).next_items()
        assert sid in {i.sandbox_id for i in paused}
        assert sid not in gc(dry_run=True)
        same = Sandbox.connect(sid, timeout=60)
        assert same.run_code("x + 1").text == "42"
        assert Sandbox.get_info(sid).state == SandboxState.RUNNING
    finally:
        sbx.kill()
