"""Concurrency benchmark: many callers, one sandbox each, in one process.

Prints, for 1, 10 and 50 callers, each driving its own sandbox with ``run_code("n = 1")``
for ``--seconds``: calls per second in all and the p50/p99 latency of one call, first
as asyncio tasks on one event loop (``AsyncSandbox``), then as threads (``Sandbox``).

Targets (2 cores): 50-caller throughput at least 1.5x the single caller's and never
below the 10-caller figure; p99 at most 3x p50.

Two more things it prints, to tell where the time goes:
- the async round of 50 sandboxes again with at most 10 calls in flight at a time
  (the other callers wait their turn on the host): throughput that stays at the
  50-caller figure, not the 10-caller one, says the cost follows how many sandboxes
  take turns on the cores, not how many calls queue;
- for each async round, the CPU milliseconds spent per call in this process, in the
  engine (dockerd, containerd, the container's shim) and in the sandbox (agent, code
  contexts), read from /proc (engine on this machine only).

Usage: python bench/concurrency.py [--seconds 5] [--callers 1,10,50]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

from cpusplit import CpuSplit
from timings import summary

from e2b_tools import AsyncSandbox, Sandbox
from e2b_tools.images import build_image


def _summary(samples: list[float], seconds: float) -> tuple[float, float, float]:
    ms = summary(samples)
    return len(samples) / seconds, ms["p50"], ms["p99"]


async def _async_round(
    callers: int, seconds: float, in_flight: int | None = None
) -> tuple[tuple[float, float, float], dict[str, float]]:
    """(calls/s, p50, p99) and the CPU ms per call by process kind; with ``in_flight``,
    at most that many calls run at a time (latency counts from the turn's start)."""
    sandboxes = await asyncio.gather(*(AsyncSandbox.create() for _ in range(callers)))
    turns = asyncio.Semaphore(in_flight or callers)
    try:
        for sbx in sandboxes:
            await sbx.run_code("n = 1")
        samples: list[float] = []
        stop = time.perf_counter() + seconds

        async def drive(sbx: AsyncSandbox) -> None:
            while time.perf_counter() < stop:
                async with turns:
                    t = time.perf_counter()
                    await sbx.run_code("n = 1")
                    samples.append(time.perf_counter() - t)

        split = CpuSplit()
        split.start()
        started = time.perf_counter()
        await asyncio.gather(*(drive(s) for s in sandboxes))
        elapsed = time.perf_counter() - started
        return _summary(samples, elapsed), split.stop(len(samples))
    finally:
        await asyncio.gather(*(s.kill() for s in sandboxes))


def _thread_round(callers: int, seconds: float) -> tuple[float, float, float]:
    sandboxes = [Sandbox.create() for _ in range(callers)]
    try:
        for sbx in sandboxes:
            sbx.run_code("n = 1")
        samples: list[float] = []
        lock = threading.Lock()
        stop = time.perf_counter() + seconds

        def drive(sbx: Sandbox) -> None:
            mine = []
            while time.perf_counter() < stop:
                t = time.perf_counter()
                sbx.run_code("n = 1")
                mine.append(time.perf_counter() - t)
            with lock:
                samples.extend(mine)

        threads = [threading.Thread(target=drive, args=(s,)) for s in sandboxes]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return _summary(samples, time.perf_counter() - started)
    finally:
        for sbx in sandboxes:
            sbx.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="driving time per round")
    parser.add_argument("--callers", default="1,10,50", help="comma-separated caller counts")
    args = parser.parse_args()
    counts = [int(c) for c in args.callers.split(",")]
    build_image(log=lambda line: None)

    rows: list[tuple[str, int, tuple[float, float, float]]] = []
    splits: dict[str, dict[str, float]] = {}
    for n in counts:
        row, splits[f"x{n}"] = asyncio.run(_async_round(n, args.seconds))
        rows.append(("async tasks", n, row))
    limited = None
    if max(counts) > 10:
        limited, splits[f"x{max(counts)}/10"] = asyncio.run(
            _async_round(max(counts), args.seconds, in_flight=10)
        )
    for n in counts:
        rows.append(("sync threads", n, _thread_round(n, args.seconds)))

    print(f"\n{'callers':26} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99/p50':>8}")
    for kind, n, (rate, p50, p99) in rows:
        print(f"{kind + ' x' + str(n):26} {rate:9.0f} {p50:8.2f} {p99:8.2f} {p99 / p50:8.1f}")
    if limited is not None:
        rate, p50, p99 = limited
        name = f"async x{max(counts)}, 10 in flight"
        print(f"{name:26} {rate:9.0f} {p50:8.2f} {p99:8.2f} {p99 / p50:8.1f}")

    kinds = sorted({k for split in splits.values() for k in split}, key=lambda k: k != "agent")
    print(f"\nCPU ms per call (async rounds) {''.join(f'{r:>12}' for r in splits)}")
    for kind in kinds:
        cells = "".join(f"{splits[r].get(kind, 0.0):12.3f}" for r in splits)
        print(f"  {kind:28}{cells}")
    totals = "".join(f"{sum(split.values()):12.3f}" for split in splits.values())
    print(f"  {'all':28}{totals}")
    for kind in ("async tasks", "sync threads"):
        by_n = {n: r for k, n, r in rows if k == kind}
        if {1, 10, 50} <= set(by_n):
            one, ten, fifty = by_n[1][0], by_n[10][0], by_n[50][0]
            ok = fifty >= 1.5 * one and fifty >= ten
            print(
                f"{kind}: 50 callers {fifty / one:.2f}x one caller, {fifty / ten:.2f}x ten "
                f"(>= 1.5x and >= 1x: {'met' if ok else 'MISSED'}); p99/p50 at 50: "
                f"{by_n[50][2] / by_n[50][1]:.1f} (<= 3: "
                f"{'met' if by_n[50][2] <= 3 * by_n[50][1] else 'MISSED'})"
            )


if __name__ == "__main__":
    main()
