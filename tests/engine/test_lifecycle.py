"""Create, connect, list, TTL, kill, images; against the real engine."""

from __future__ import annotations

import time

import docker
import pytest

from e2b_tools import (
    ImageNotFoundError,
    Sandbox,
    SandboxGoneError,
    SandboxNotFoundError,
    SandboxQuery,
)
from e2b_tools.backends.docker import LABEL_SANDBOX


def test_context_manager_kills(image: str, docker_client: docker.DockerClient) -> None:
    with Sandbox.create() as sbx:
        cid = sbx.container_id
        assert sbx.is_running()
    assert docker_client.api.containers(all=True, filters={"id": cid}) == []
    assert sbx.kill() is False  # idempotent


def test_connect_sees_the_same_state(sandbox: Sandbox) -> None:
    sandbox.run_code("shared = 'across connections'")
    other = Sandbox.connect(sandbox.sandbox_id)
    assert other.run_code("shared").text == "across connections"
    assert other.sandbox_id == sandbox.sandbox_id


def test_connect_restores_the_configuration(image: str) -> None:
    from e2b_tools import SandboxConfig
    from e2b_tools.tools import Toolkit

    config = SandboxConfig(pids_limit=300, envs={"SECRET": "kept out of labels"})
    with Sandbox.create(timeout=90, memory="768m", metadata={"job": "7"}, config=config) as sbx:
        again = Sandbox.connect(sbx.sandbox_id)
        assert again.config.timeout == 90 and again.config.memory == "768m"
        assert again.config.pids_limit == 300 and again.config.metadata == {"job": "7"}
        assert again.config.envs == {}  # environment variables are not written to labels
        described = Toolkit(again).get("read_file").description
        assert again.config.workdir in described


def test_connect_to_unknown_id(image: str) -> None:
    with pytest.raises(SandboxNotFoundError):
        Sandbox.connect("doesnotexist")


def test_list_and_metadata_filter(image: str) -> None:
    with (
        Sandbox.create(metadata={"suite": "lifecycle", "n": "1"}) as a,
        Sandbox.create(metadata={"suite": "other"}) as b,
    ):
        ids = {i.sandbox_id for i in Sandbox.list().next_items()}
        assert {a.sandbox_id, b.sandbox_id} <= ids
        only = Sandbox.list(SandboxQuery(metadata={"suite": "lifecycle"})).next_items()
        assert [i.sandbox_id for i in only] == [a.sandbox_id]
        assert only[0].metadata == {"suite": "lifecycle", "n": "1"}


def test_ttl_is_enforced_inside_the_sandbox(image: str, docker_client: docker.DockerClient) -> None:
    sbx = Sandbox.create(timeout=3)
    try:
        assert sbx.run_code("1").text == "1"
        deadline = time.monotonic() + 20
        while docker_client.api.containers(
            all=True, filters={"label": f"{LABEL_SANDBOX}={sbx.sandbox_id}"}
        ):
            assert time.monotonic() < deadline, "the sandbox outlived its timeout"
            time.sleep(0.25)
        with pytest.raises(SandboxGoneError):
            sbx.run_code("1")
    finally:
        sbx.kill()


def test_set_timeout_extends_the_deadline(image: str) -> None:
    with Sandbox.create(timeout=3) as sbx:
        sbx.set_timeout(60)
        time.sleep(4)
        assert sbx.run_code("'still here'").text == "still here"


def test_missing_image_names_the_build_command(image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ImageNotFoundError, match="pull or build it"):
        Sandbox.create(image="e2b-tools/does-not-exist:0")
    import e2b_tools.images.names as names

    monkeypatch.setattr(names, "DEFAULT_IMAGE", "e2b-tools/sandbox:not-built")
    with pytest.raises(ImageNotFoundError, match="e2b-tools image build"):
        Sandbox.create()


def test_agent_injected_into_a_plain_python_image(base_image: str) -> None:
    with Sandbox.create(image=base_image) as sbx:
        assert sbx.run_code("import sys\nx = 2\nx ** 10").text == "1024"
        assert sbx.commands.run("echo plain").stdout == "plain\n"
        sbx.files.write("f.txt", "injected")
        assert sbx.files.read("f.txt") == "injected"
        assert sbx.run_code("import numpy").error is not None  # really only python3


def test_gc_removes_orphans_and_keeps_live_sandboxes(
    image: str, docker_client: docker.DockerClient
) -> None:
    from e2b_tools import SandboxConfig, gc
    from e2b_tools.backends.docker import default_backend
    from e2b_tools.cli import main

    backend = default_backend()
    # An orphan: created by a controller that died before starting it.
    orphan = backend.create("gcorphan0001", SandboxConfig(), image)
    with Sandbox.create() as live:
        assert gc() == ["gcorphan0001"]
        assert docker_client.api.containers(all=True, filters={"id": orphan}) == []
        assert live.run_code("'alive'").text == "alive"
        assert main(["gc", "--all", "--yes"]) == 0
        assert not live.is_running()


def test_dropping_a_connected_object_leaks_nothing(sandbox: Sandbox) -> None:
    import gc

    other = Sandbox.connect(sandbox.sandbox_id)
    assert other.run_code("1").text == "1"
    del other
    gc.collect()  # with filterwarnings=error, an unclosed stream would fail here
    assert sandbox.run_code("2").text == "2"
