"""Warm pool benchmark: what a pool buys over a cold create, in one run on one engine.

Prints:
  cold  Sandbox.create() -> first run_code("1") result        (--cold rounds)
  pool  acquire() -> first run_code("1") result from a warm pool of --size
        (--acquisitions in a row, each sandbox killed before the next acquire; when
        the pool is empty the bench waits for one refill first and says how often
        and how long it waited, outside the timings)
  pool  the same from a full pool with the engine quiet before each acquire (the pool
        refilled and the last kill cleaned up, not timed): what one agent that asks
        for a sandbox now and then sees (--settled acquisitions)
  burst --burst concurrent acquire() -> first run_code("1") from a full pool of
        --size: p50/p95/max, failures, cold fallbacks
  memory per idle pooled sandbox: RSS and PSS of the container's processes (agent,
        Python kernel) read from /proc on this host, the container's cgroup usage,
        and the Python memory this process holds per pooled sandbox (tracemalloc)

Usage: python bench/pool.py [--size 8] [--acquisitions 200] [--cold 30] [--burst 50]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
import tracemalloc

import docker
from timings import summary

from e2b_tools import POOL_LABEL, AsyncSandbox, AsyncSandboxPool
from e2b_tools.backends.docker import LABEL_METADATA, LABEL_SANDBOX
from e2b_tools.images import build_image


def _row(name: str, s: dict[str, float]) -> str:
    return (
        f"{name:<44}{s['p50']:>9.2f}{s['p95']:>9.2f}{s['p99']:>9.2f}{s['max']:>9.2f}"
        f"{int(s['n']):>6}"
    )


async def _first_result(pool: AsyncSandboxPool) -> tuple[float, AsyncSandbox]:
    t = time.perf_counter()
    sbx = await pool.acquire()
    await sbx.run_code("1")
    return time.perf_counter() - t, sbx


async def _cold(rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        sbx = await AsyncSandbox.create()
        await sbx.run_code("1")
        out.append(time.perf_counter() - t)
        await sbx.kill()
    return out


async def _sequential(size: int, n: int) -> tuple[list[float], int, float, int]:
    """(samples, times the pool was empty, seconds waited for a refill, cold fallbacks)."""
    samples: list[float] = []
    waits, waited = 0, 0.0
    async with AsyncSandboxPool(size) as pool:
        await pool.wait_ready()
        for _ in range(n):
            if pool.stats().ready == 0:
                waits += 1
                t = time.perf_counter()
                await pool.wait_ready(1)
                waited += time.perf_counter() - t
            took, sbx = await _first_result(pool)
            samples.append(took)
            await sbx.kill()
        cold = pool.stats().cold_fallbacks
    return samples, waits, waited, cold


async def _settled(size: int, n: int) -> list[float]:
    """Acquire -> first result from a full pool on a quiet engine: before each acquire
    the pool is refilled and the engine left alone for a moment (not timed)."""
    samples: list[float] = []
    async with AsyncSandboxPool(size) as pool:
        for _ in range(n):
            await pool.wait_ready()
            await asyncio.sleep(0.3)  # the last kill's clean-up in the engine
            took, sbx = await _first_result(pool)
            samples.append(took)
            await sbx.kill()
    return samples


async def _burst(size: int, n: int) -> tuple[list[float], list[float], int, int, float]:
    """(samples of warm ones, of cold ones, failures, cold fallbacks, wall seconds)."""
    async with AsyncSandboxPool(size) as pool:
        await pool.wait_ready()
        pooled = {entry.sbx.sandbox_id for entry in pool._ready}
        t = time.perf_counter()
        results = await asyncio.gather(
            *(_first_result(pool) for _ in range(n)), return_exceptions=True
        )
        wall = time.perf_counter() - t
        cold = pool.stats().cold_fallbacks
        ok = [r for r in results if not isinstance(r, BaseException)]
        await asyncio.gather(*(sbx.kill() for _, sbx in ok))
    for r in results:
        if isinstance(r, BaseException):
            print(f"burst failure: {type(r).__name__}: {r}")
    warm = [took for took, sbx in ok if sbx.sandbox_id in pooled]
    cold_samples = [took for took, sbx in ok if sbx.sandbox_id not in pooled]
    return warm, cold_samples, n - len(ok), cold, wall


def _proc_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one host process, in bytes."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    return rss, pss


def _cgroup_usage(client: docker.DockerClient, container_id: str) -> int:
    """The container's memory use without its inactive page cache (bytes)."""
    for _ in range(3):  # the engine sometimes answers a one-shot stats call with nothing
        try:
            usage = client.api.stats(container_id, stream=False)["memory_stats"]
        except ValueError:
            continue
        return int(usage.get("usage", 0) - usage.get("stats", {}).get("inactive_file", 0))
    return 0


async def _memory(size: int, client: docker.DockerClient) -> dict[str, float]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    async with AsyncSandboxPool(size) as pool:
        await pool.wait_ready()
        await asyncio.sleep(2)  # let the kernels settle
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        rss = pss = cgroup = 0
        containers = [
            c
            for c in client.api.containers(filters={"label": LABEL_SANDBOX})
            if json.loads(c["Labels"].get(LABEL_METADATA) or "{}").get(POOL_LABEL) == pool.pool_id
        ]
        for c in containers:
            for proc in client.api.top(c["Id"], ps_args="-eo pid")["Processes"] or []:
                r, p = _proc_memory(int(proc[0]))
                rss, pss = rss + r, pss + p
            cgroup += _cgroup_usage(client, c["Id"])
        n = len(containers)
        assert n == size, f"{n} containers of the pool's {size}"
    mib = float(1 << 20)
    return {
        "rss": rss / n / mib,
        "pss": pss / n / mib,
        "cgroup": cgroup / n / mib,
        "host": grown / n / mib,
    }


async def _main(args: argparse.Namespace) -> None:
    client = docker.from_env()
    # Warm the engine and the page cache so the first sample is not an outlier.
    warm = await AsyncSandbox.create()
    await warm.kill()

    cold = await _cold(args.cold)
    seq, waits, waited, seq_cold = await _sequential(args.size, args.acquisitions)
    settled = await _settled(args.size, args.settled)
    warm, cold_burst, failures, burst_cold, wall = await _burst(args.size, args.burst)
    memory = await _memory(args.size, client)

    print(f"{'measure (ms)':<44}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}{'n':>6}")
    print(_row("cold  create -> first run_code('1')", summary(cold)))
    print(_row(f"pool  acquire -> first run_code('1'), {args.size}", summary(seq)))
    print(_row("pool  the same, full pool, quiet engine", summary(settled)))
    print(_row(f"burst {args.burst} acquires, pool {args.size}: all", summary(warm + cold_burst)))
    print(_row("burst  of which from the pool", summary(warm)))
    if cold_burst:
        print(_row("burst  of which cold fallbacks", summary(cold_burst)))
    print()
    print(
        f"sequential: the pool was empty before {waits} of {args.acquisitions} acquisitions; "
        f"{waited:.1f}s spent waiting for a refill (not timed); cold fallbacks: {seq_cold}"
    )
    print(
        f"burst: {failures} failed, {burst_cold} cold fallbacks, "
        f"{args.burst - burst_cold} from the pool, {wall:.2f}s wall for all {args.burst}"
    )
    print(
        f"memory per idle pooled sandbox: RSS {memory['rss']:.1f} MiB, PSS "
        f"{memory['pss']:.1f} MiB (container processes), cgroup {memory['cgroup']:.1f} MiB; "
        f"this process {memory['host'] * 1024:.0f} KiB of Python objects (tracemalloc)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8, help="sandboxes the pool keeps")
    parser.add_argument("--acquisitions", type=int, default=200, help="acquires in a row")
    parser.add_argument(
        "--settled", type=int, default=100, help="acquires from a full pool, engine quiet"
    )
    parser.add_argument("--cold", type=int, default=30, help="cold creates to time")
    parser.add_argument("--burst", type=int, default=50, help="concurrent acquires")
    args = parser.parse_args()
    build_image(log=lambda line: None)
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
