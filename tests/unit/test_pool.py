"""The warm sandbox pool without an engine: the real agent as a local subprocess
(``tests/local_backend.py``, no isolation)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator

import pytest
from local_backend import LocalBackend

from e2b_tools import (
    POOL_LABEL,
    AsyncSandbox,
    AsyncSandboxPool,
    EngineUnavailableError,
    InvalidArgumentError,
    Sandbox,
    SandboxConfig,
    SandboxError,
    SandboxPool,
    SandboxQuery,
)
from e2b_tools.tools import Toolkit


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    with LocalBackend() as local:
        yield local


def _live_ids(backend: LocalBackend) -> set[str]:
    return {s["Labels"]["e2b-tools.sandbox"] for s in backend.list_containers(True)}


def _pooled_ids(pool: AsyncSandboxPool) -> list[str]:
    return [entry.sbx.sandbox_id for entry in pool._ready]


@pytest.mark.asyncio
async def test_hands_out_each_once_and_refills_behind(backend: LocalBackend) -> None:
    async with AsyncSandboxPool(2, backend=backend) as pool:
        await pool.wait_ready()
        first_batch = _pooled_ids(pool)
        a = await pool.acquire()
        assert a.sandbox_id == first_batch[0]
        assert pool.stats().ready == 1 and pool.stats().handed_out == 1
        await pool.wait_ready()  # refilled in the background
        b = await pool.acquire()
        assert b.sandbox_id == first_batch[1]
        assert (await b.run_code("6 * 7")).text == "42"
        assert a.config.metadata[POOL_LABEL] == pool.pool_id
        assert a.config.timeout == SandboxConfig().timeout  # the config's, not the pool's
        query = SandboxQuery(metadata={POOL_LABEL: pool.pool_id})
        listed = await AsyncSandbox.list(query, backend=backend).next_items()
        assert {a.sandbox_id, b.sandbox_id} <= {i.sandbox_id for i in listed}
        await pool.wait_ready()
        c = await pool.acquire()
        assert len({a.sandbox_id, b.sandbox_id, c.sandbox_id}) == 3
        stats = pool.stats()
        assert stats.handed_out == 3 and stats.cold_fallbacks == 0
        for sbx in (a, b, c):
            await sbx.kill()


@pytest.mark.asyncio
async def test_a_handed_out_sandbox_gets_the_configs_lifetime(backend: LocalBackend) -> None:
    config = SandboxConfig(timeout=1.5)
    async with AsyncSandboxPool(1, config, backend=backend, pooled_ttl=60) as pool:
        await pool.wait_ready()
        sbx = await pool.acquire()
        await asyncio.sleep(1.0)
        assert await sbx.is_alive()
        await asyncio.sleep(1.5)  # past 1.5 s from the acquire: the agent ended it
        assert not await sbx.is_alive()
        longer = await pool.acquire(timeout=30)
        assert longer.config.timeout == 30
        await longer.kill()


@pytest.mark.asyncio
async def test_killing_at_once_after_acquire_is_not_news(
    backend: LocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """The hand-out's deadline move is in flight when the owner kills the sandbox."""
    async with AsyncSandboxPool(2, backend=backend) as pool:
        await pool.wait_ready()
        for _ in range(3):
            sbx = await pool.acquire()
            await sbx.kill()
            await pool.wait_ready(1)
        await asyncio.sleep(0.2)
    assert not [r for r in caplog.records if "deadline" in r.getMessage()], caplog.text


@pytest.mark.asyncio
async def test_an_empty_pool_creates_cold_and_counts_it(backend: LocalBackend) -> None:
    async with AsyncSandboxPool(1, backend=backend, refill_concurrency=1) as pool:
        await pool.wait_ready()
        warm = await pool.acquire()
        cold = await pool.acquire()  # the refill has not finished: no waiting for it
        assert (await cold.run_code("1 + 1")).text == "2"
        assert pool.stats().cold_fallbacks == 1 and pool.stats().handed_out == 1
        assert cold.config.metadata[POOL_LABEL] == pool.pool_id
        await warm.kill()
        await cold.kill()


@pytest.mark.asyncio
async def test_a_pooled_sandbox_that_died_is_skipped(backend: LocalBackend) -> None:
    async with AsyncSandboxPool(2, backend=backend) as pool:
        await pool.wait_ready()
        dead = pool._ready[0].sbx
        backend.kill(dead.container_id)  # behind the pool's back
        await asyncio.sleep(0.2)
        sbx = await pool.acquire()
        assert sbx.sandbox_id != dead.sandbox_id
        assert (await sbx.run_code("1")).text == "1"
        assert pool.stats().discarded == 1
        await sbx.kill()


@pytest.mark.asyncio
async def test_waiting_sandboxes_outlive_their_ttl(backend: LocalBackend) -> None:
    async with AsyncSandboxPool(1, backend=backend, pooled_ttl=3) as pool:
        await pool.wait_ready()
        [waiting] = _pooled_ids(pool)
        await asyncio.sleep(4.5)  # past the first deadline: refreshed at half of it
        assert pool.stats().refreshed >= 1
        sbx = await pool.acquire()
        assert sbx.sandbox_id == waiting and (await sbx.run_code("2")).text == "2"
        await sbx.kill()


@pytest.mark.asyncio
async def test_close_kills_the_idle_ones_only(backend: LocalBackend) -> None:
    pool = AsyncSandboxPool(3, backend=backend)
    await pool.wait_ready()
    mine = await pool.acquire()
    await pool.wait_ready()
    idle = set(_pooled_ids(pool))
    await pool.aclose()
    assert _live_ids(backend) == {mine.sandbox_id}
    assert not idle & _live_ids(backend)
    with pytest.raises(SandboxError, match="closed"):
        await pool.acquire()
    assert pool.stats().closed
    await pool.aclose()  # idempotent
    await mine.kill()


@pytest.mark.asyncio
async def test_concurrent_acquires_never_share(backend: LocalBackend) -> None:
    async with AsyncSandboxPool(4, backend=backend) as pool:
        await pool.wait_ready()
        got = await asyncio.gather(*(pool.acquire() for _ in range(12)))
        assert len({s.sandbox_id for s in got}) == 12
        stats = pool.stats()
        assert stats.handed_out + stats.cold_fallbacks == 12 and stats.handed_out == 4
        await asyncio.gather(*(s.kill() for s in got))


def test_a_sync_pool_serves_many_threads(backend: LocalBackend) -> None:
    with SandboxPool(3, backend=backend) as pool:
        pool.wait_ready()

        def use(_: int) -> str:
            with pool.sandbox() as sbx:
                assert sbx.run_code("2 + 2").text == "4"
                return sbx.sandbox_id

        with concurrent.futures.ThreadPoolExecutor(6) as threads:
            ids = list(threads.map(use, range(6)))
        assert len(set(ids)) == 6
        assert pool.stats().handed_out + pool.stats().cold_fallbacks == 6
    time.sleep(0.2)
    assert _live_ids(backend) == set()


@pytest.mark.asyncio
async def test_cancelled_acquires_leak_nothing(backend: LocalBackend) -> None:
    async with AsyncSandboxPool(1, backend=backend, refill_concurrency=1) as pool:
        await pool.wait_ready()
        for delay in (0.0, 0.001, 0.01, 0.05, 0.2, 0.5):
            task = asyncio.ensure_future(pool.acquire())
            await asyncio.sleep(delay)
            task.cancel()
            try:
                sbx = await task
            except asyncio.CancelledError:
                continue
            await sbx.kill()  # finished before the cancel: ours to kill
    await asyncio.sleep(0.2)
    assert _live_ids(backend) == set()


def test_cancelled_acquires_across_loops_leak_nothing(backend: LocalBackend) -> None:
    pool = SandboxPool(1, backend=backend, refill_concurrency=1)
    pool.wait_ready()

    async def cancel_after(delay: float) -> None:
        task = asyncio.ensure_future(pool.async_pool.acquire())  # pool lives on another loop
        await asyncio.sleep(delay)
        task.cancel()
        try:
            sbx = await task
        except asyncio.CancelledError:
            return
        Sandbox(sbx).kill()  # from this loop: through the pool's loop

    for delay in (0.0, 0.001, 0.01, 0.05, 0.2, 0.5):
        asyncio.run(cancel_after(delay))
    pool.close()
    time.sleep(0.2)
    assert _live_ids(backend) == set()


class _FlakyBackend(LocalBackend):
    down = False

    def create(self, sandbox_id: str, config: SandboxConfig, image: str) -> str:
        if self.down:
            raise EngineUnavailableError("engine down (test)")
        return super().create(sandbox_id, config, image)


@pytest.mark.asyncio
async def test_refill_failures_are_retried_and_never_raised_into_acquire() -> None:
    flaky = _FlakyBackend()
    flaky.down = True
    try:
        async with AsyncSandboxPool(1, backend=flaky, max_backoff=0.5) as pool:
            await asyncio.sleep(0.8)
            stats = pool.stats()
            assert stats.refill_failures >= 2 and "engine down" in str(stats.last_error)
            with pytest.raises(EngineUnavailableError):  # the cold create's real error
                await pool.acquire()
            assert pool.stats().cold_fallbacks == 1
            flaky.down = False
            await pool.wait_ready(timeout=30)
            assert pool.stats().last_error is None
            sbx = await pool.acquire()
            assert (await sbx.run_code("3")).text == "3"
            await sbx.kill()
    finally:
        flaky.close()


def test_settings_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="refill_concurrency"):
        AsyncSandboxPool(refill_concurrency=0)
    with pytest.raises(InvalidArgumentError, match="pooled_ttl"):
        AsyncSandboxPool(pooled_ttl=1.5)


# -- the tool layer -----------------------------------------------------------------


def test_toolkit_takes_its_sandbox_from_the_pool(backend: LocalBackend) -> None:
    with SandboxPool(1, backend=backend) as pool:
        pool.wait_ready()
        [pooled] = _pooled_ids(pool.async_pool)
        with Toolkit(pool=pool) as kit:
            out = kit.get("run_code").run(code="x = 6 * 7\nx")
            assert "42" in out.text
            assert kit.session.sandbox is not None
            assert kit.session.sandbox.sandbox_id == pooled
            assert pool.stats().handed_out == 1
            pool.wait_ready()
            # A replacement comes from the pool too, with the usual notice.
            backend.kill(kit.session.sandbox.container_id)
            time.sleep(0.2)
            again = kit.get("run_code").run(code="1 + 1")
            assert "Note:" in again.text and "[result]\n2" in again.text
            assert pool.stats().handed_out == 2 and pool.stats().cold_fallbacks == 0
            current = kit.session.sandbox.sandbox_id
        assert current not in _live_ids(backend)  # killed on close, like its own


@pytest.mark.asyncio
async def test_toolkit_with_an_async_pool(backend: LocalBackend) -> None:
    async with AsyncSandboxPool(1, backend=backend) as pool:
        await pool.wait_ready()
        async with Toolkit(pool=pool) as kit:
            out = await kit.get("run_code").arun({"code": "5 * 5"})
            assert "25" in out.text and pool.stats().handed_out == 1


def test_pool_excludes_sandbox_config_and_backend(backend: LocalBackend) -> None:
    pool = AsyncSandboxPool(1, backend=backend)  # never started: nothing to close
    with pytest.raises(InvalidArgumentError, match="config= or pool="):
        Toolkit(config=SandboxConfig(), pool=pool)
    with pytest.raises(InvalidArgumentError, match="backend= or pool="):
        Toolkit(backend=backend, pool=pool)
    sbx = Sandbox.create(backend=backend, timeout=60)
    with sbx, pytest.raises(InvalidArgumentError, match="sandbox= or pool="):
        Toolkit(sbx, pool=pool)
    assert "/home/user" in Toolkit(pool=pool).get("read_file").description


def test_adapters_pass_the_pool_through(backend: LocalBackend) -> None:
    from e2b_tools_autogpt import ToolDispatcher

    with SandboxPool(1, backend=backend) as pool:
        pool.wait_ready()
        with ToolDispatcher(pool=pool) as dispatcher:
            assert "42" in dispatcher.dispatch("run_code", '{"code": "6 * 7"}')
        assert pool.stats().handed_out == 1
        langchain = pytest.importorskip("e2b_tools_langchain")
        with langchain.SandboxToolkit(pool=pool) as toolkit:
            assert toolkit.core.session.config.metadata[POOL_LABEL] == pool.pool_id
        crewai = pytest.importorskip("e2b_tools_crewai")
        with crewai.SandboxTools(pool=pool) as tools:
            assert tools.toolkit.session.config.metadata[POOL_LABEL] == pool.pool_id
