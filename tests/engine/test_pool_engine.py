"""The warm sandbox pool on the real engine: labels, list, gc and clean-up."""

from __future__ import annotations

import json
import time
from typing import Any

import docker

from e2b_tools import POOL_LABEL, Sandbox, SandboxPool, SandboxQuery, gc
from e2b_tools.backends.docker import LABEL_METADATA, LABEL_SANDBOX, DockerBackend
from e2b_tools.tools import Toolkit


class _OnePool(DockerBackend):
    """The engine as gc sees it, narrowed to one pool's containers: other test runs may
    share the engine, and their containers are not this test's to judge."""

    def __init__(self, pool_id: str) -> None:
        super().__init__()
        self.pool_id = pool_id

    def list_containers(self, all_states: bool = False) -> list[dict[str, Any]]:
        return [s for s in super().list_containers(all_states) if _pool_of(s) == self.pool_id]

    def cleanup(self, min_age: float = 0.0) -> None:
        """Networks and the proxy are shared: not this test's to clean."""


def _pool_of(summary: dict[str, Any]) -> str | None:
    labels = summary.get("Labels") or {}
    return json.loads(labels.get(LABEL_METADATA) or "{}").get(POOL_LABEL)


def _containers(client: docker.DockerClient, pool_id: str) -> list[dict[str, Any]]:
    found = client.api.containers(all=True, filters={"label": LABEL_SANDBOX})
    return [c for c in found if _pool_of(c) == pool_id]


def test_a_pool_hands_out_labelled_working_sandboxes(
    image: str, docker_client: docker.DockerClient
) -> None:
    with SandboxPool(2, pooled_ttl=12) as pool:
        pool.wait_ready()
        query = SandboxQuery(metadata={POOL_LABEL: pool.pool_id})
        listed = Sandbox.list(query).next_items()
        assert len(listed) == 2
        assert len(_containers(docker_client, pool.pool_id)) == 2
        with pool.sandbox() as sbx:
            assert sbx.sandbox_id in {i.sandbox_id for i in listed}
            assert sbx.run_code("6 * 7").text == "42"
            assert sbx.commands.run("echo hi").stdout == "hi\n"
            assert sbx.get_info().metadata[POOL_LABEL] == pool.pool_id
            assert sbx.config.timeout == 300  # the config's lifetime, not the pool's
        pool.wait_ready()
        # Past the deadline the labels were written with: the waiting sandboxes had
        # theirs moved, gc asks their agents and keeps them.
        time.sleep(13)
        assert pool.stats().refreshed >= 2
        assert gc(backend=_OnePool(pool.pool_id)) == []
        assert len(Sandbox.list(query).next_items()) == 2
        with Toolkit(pool=pool) as kit:
            assert "[result]\n4" in kit.get("run_code").run(code="2 + 2").text
        stats = pool.stats()
        assert stats.handed_out == 2 and stats.cold_fallbacks == 0 and stats.discarded == 0
        pool.wait_ready()
    deadline = time.monotonic() + 15
    while _containers(docker_client, pool.pool_id) and time.monotonic() < deadline:
        time.sleep(0.2)  # removal of killed containers is asynchronous
    assert _containers(docker_client, pool.pool_id) == []
