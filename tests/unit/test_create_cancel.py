"""A create cancelled while the backend makes the container leaves nothing behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from local_backend import LocalBackend

from e2b_tools import AsyncSandbox, SandboxConfig


class SlowBackend(LocalBackend):
    """Makes its sandboxes slowly, the way a busy engine does."""

    def __init__(self) -> None:
        super().__init__()
        self.killed: list[str] = []

    def create(self, sandbox_id: str, config: SandboxConfig, image: str) -> str:
        time.sleep(0.4)
        return super().create(sandbox_id, config, image)

    def kill(self, container_id: str) -> bool:
        self.killed.append(container_id)
        return super().kill(container_id)


@pytest.fixture
def slow() -> Iterator[SlowBackend]:
    backend = SlowBackend()
    try:
        yield backend
    finally:
        backend.close()


def test_cancelled_during_the_engine_create_removes_the_container(slow: SlowBackend) -> None:
    async def scenario() -> None:
        task = asyncio.ensure_future(AsyncSandbox.create(backend=slow))
        await asyncio.sleep(0.1)  # the create call is in its thread now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + 5
        while not slow.killed and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert len(slow.killed) == 1
    assert slow.list_containers(all_states=True) == []
