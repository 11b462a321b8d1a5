"""Many idle sandboxes in one process: host memory per sandbox and create time as they
accumulate.

Creates ``--count`` sandboxes one after another from one process (async API, each
answering one ``run_code`` so its connection and default context are live), then
prints the host process's RSS growth per sandbox (target <= 15 MiB) and the create
time of the first 10 beside the last 10 (they should not grow with the count), and
the engine's memory use per sandbox container for reference. Everything is killed at
the end.

Usage: python bench/scale.py [--count 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time

import docker

from e2b_tools import AsyncSandbox
from e2b_tools.images import build_image


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


async def _run(count: int) -> None:
    warm = await AsyncSandbox.create()
    await warm.run_code("1")
    await warm.kill()
    gc.collect()
    before = _rss()
    sandboxes: list[AsyncSandbox] = []
    times: list[float] = []
    try:
        for _ in range(count):
            t = time.perf_counter()
            sbx = await AsyncSandbox.create(timeout=900)
            await sbx.run_code("1")
            times.append(time.perf_counter() - t)
            sandboxes.append(sbx)
        gc.collect()
        grown = _rss() - before
        probe = time.perf_counter()
        await asyncio.gather(*(s.run_code("n = 1") for s in sandboxes))
        sweep = time.perf_counter() - probe
        client = docker.from_env()
        stats = client.api.stats(sandboxes[-1].container_id, stream=False)
        container_mib = stats["memory_stats"].get("usage", 0) / 2**20
        client.close()
    finally:
        await asyncio.gather(*(s.kill() for s in sandboxes), return_exceptions=True)

    first = statistics.median(times[:10]) * 1e3
    last = statistics.median(times[-10:]) * 1e3
    per = grown / count / 2**20
    print(f"\n{count} idle sandboxes in one process")
    print(
        f"host RSS growth: {grown / 2**20:.1f} MiB, {per:.2f} MiB per sandbox "
        f"(<= 15 MiB: {'met' if per <= 15 else 'MISSED'})"
    )
    print(
        f"create -> first result, p50 of the first 10: {first:.1f} ms; of the last 10: "
        f"{last:.1f} ms ({last / first:.2f}x)"
    )
    print(f"one run_code on every sandbox at once: {sweep * 1e3:.0f} ms in all")
    print(f"engine memory of one idle sandbox container: {container_mib:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="sandboxes to create")
    args = parser.parse_args()
    build_image(log=lambda line: None)
    asyncio.run(_run(args.count))


if __name__ == "__main__":
    main()
