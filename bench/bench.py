"""Latency benchmark: e2b-tools against the raw Docker Engine API, in one run.

Prints, for the same image on the same engine:
  raw   docker create+start             (low-level API, `sleep infinity`)
  raw   exec_run("true")                (the per-call cost of exec-based executors)
  ours  cold Sandbox.create() -> first run_code() result
  ours  run_code("x = 1") round trip    (p50/p95 over --calls calls)
  ours  the same in JavaScript
  ours  commands.run("true")
  ours  host RSS growth while 100 MB of stdout stream through commands.run

Usage: python bench/bench.py [--rounds 10] [--calls 300]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable

import docker

from e2b_tools import Sandbox
from e2b_tools.images import DEFAULT_IMAGE, build_image


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "p50": statistics.median(ordered) * 1e3,
        "p95": pick(0.95) * 1e3,
        "min": ordered[0] * 1e3,
        "n": len(ordered),
    }


def _time(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="cold starts to time")
    parser.add_argument("--calls", type=int, default=300, help="round trips to time")
    args = parser.parse_args()

    build_image(log=lambda line: None)
    client = docker.from_env()
    api = client.api
    rows: list[tuple[str, dict[str, float]]] = []

    # Warm the engine and page cache once so the first sample is not an outlier.
    warm = api.create_container(DEFAULT_IMAGE, command=["true"])
    api.remove_container(warm["Id"], force=True)

    raw_create: list[float] = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        cid = api.create_container(DEFAULT_IMAGE, command=["sleep", "infinity"])["Id"]
        api.start(cid)
        raw_create.append(time.perf_counter() - t)
        api.remove_container(cid, force=True)
    rows.append(("raw   docker create+start", _ms(raw_create)))

    cid = api.create_container(DEFAULT_IMAGE, command=["sleep", "infinity"])["Id"]
    api.start(cid)
    container = client.containers.get(cid)
    try:
        rows.append(("raw   exec_run('true')", _ms(_time(lambda: container.exec_run("true"), 50))))
    finally:
        api.remove_container(cid, force=True)

    cold: list[float] = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        sbx = Sandbox.create()
        sbx.run_code("1")
        cold.append(time.perf_counter() - t)
        sbx.kill()
    rows.append(("ours  cold create -> first run_code", _ms(cold)))

    with Sandbox.create() as sbx:
        for _ in range(20):
            sbx.run_code("x = 1")
        rows.append(
            ("ours  run_code('x = 1')", _ms(_time(lambda: sbx.run_code("x = 1"), args.calls)))
        )
        for _ in range(20):
            sbx.run_code("x = 1", language="javascript")
        rows.append(
            (
                "ours  run_code('x = 1', javascript)",
                _ms(_time(lambda: sbx.run_code("x = 1", language="javascript"), args.calls)),
            )
        )
        rows.append(
            ("ours  commands.run('true')", _ms(_time(lambda: sbx.commands.run("true"), 100)))
        )
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        result = sbx.commands.run("head -c 100000000 /dev/zero | tr '\\0' x", timeout=300)
        flood_s = time.perf_counter() - t
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024

    print(f"\ne2b-tools benchmark ({DEFAULT_IMAGE}, engine {client.version()['Version']})")
    print(f"{'measure':40} {'p50 ms':>9} {'p95 ms':>9} {'min ms':>9} {'n':>5}")
    for name, s in rows:
        print(f"{name:40} {s['p50']:9.2f} {s['p95']:9.2f} {s['min']:9.2f} {s['n']:5d}")
    kept = len(result.stdout)
    print(
        f"ours  100 MB stdout via commands.run: {flood_s:.2f} s, host peak RSS grew "
        f"{grown:.1f} MiB, result kept {kept / 2**20:.1f} MiB "
        f"({result.stdout_truncated / 1e6:.1f} MB dropped from the middle)"
    )
    raw = rows[0][1]["p50"]
    ours_cold = rows[2][1]["p50"]
    rt = rows[3][1]["p50"]
    js = rows[4][1]["p50"]
    print(
        f"\ntargets: run_code p50 {rt:.2f} ms (<= 2 ms: {'met' if rt <= 2 else 'MISSED'}); "
        f"JavaScript run_code p50 {js:.2f} ms (<= 2 ms: {'met' if js <= 2 else 'MISSED'}); "
        f"cold start {ours_cold / raw:.2f}x raw create+start "
        f"(<= 1.5x: {'met' if ours_cold <= 1.5 * raw else 'MISSED'}); "
        f"exec_run p50 {rows[1][1]['p50']:.1f} ms is the per-call cost we avoid"
    )


if __name__ == "__main__":
    main()
