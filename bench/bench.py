"""Latency benchmark: e2b-tools against the raw Docker Engine API, in one run.

Prints, for the same image on the same engine:
  raw   docker create+start             (low-level API, `sleep infinity`)
  raw   exec_run("true")                (the per-call cost of exec-based executors)
  ours  cold Sandbox.create() -> first run_code() result
  ours  run_code("x = 1") round trip    (p50/p95 over --calls calls)
  ours  the same in JavaScript
  ours  commands.run("true")
  ours  host peak RSS growth beside the bytes kept, for: files.read of a 200 MB file
        (max_size raised), a 64 MiB files.write + files.read round trip, and 100 MB of
        stdout through commands.run
  net   cold create -> first run_code with a network policy, beside the one without
  net   HTTP GET to a local upstream from a sandbox through the egress proxy, beside the
        same loop in a plain container on the upstream's network (p50/p95 over --calls)

Usage: python bench/bench.py [--rounds 10] [--calls 300]
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from typing import TypeVar

import docker
import netbench
from timings import summary

from e2b_tools import Sandbox
from e2b_tools.images import DEFAULT_IMAGE, build_image

T = TypeVar("T")
MiB = 1 << 20


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _peak_growth(fn: Callable[[], T]) -> tuple[float, float, T]:
    """(seconds, growth of this process's peak RSS over its RSS before, fn's result)."""
    gc.collect()
    base = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current RSS
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, _status("VmHWM") - base, result


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
    rows.append(("raw   docker create+start", summary(raw_create)))

    cid = api.create_container(DEFAULT_IMAGE, command=["sleep", "infinity"])["Id"]
    api.start(cid)
    container = client.containers.get(cid)
    try:
        rows.append(
            ("raw   exec_run('true')", summary(_time(lambda: container.exec_run("true"), 50)))
        )
    finally:
        api.remove_container(cid, force=True)

    cold: list[float] = []
    for _ in range(args.rounds):
        t = time.perf_counter()
        sbx = Sandbox.create()
        sbx.run_code("1")
        cold.append(time.perf_counter() - t)
        sbx.kill()
    rows.append(("ours  cold create -> first run_code", summary(cold)))
    # Right after its baseline, with the same rounds; the upstream is examples/local_index.py.
    net = netbench.measure(client, DEFAULT_IMAGE, args.rounds, args.calls)

    with Sandbox.create() as sbx:
        for _ in range(20):
            sbx.run_code("x = 1")
        rows.append(
            ("ours  run_code('x = 1')", summary(_time(lambda: sbx.run_code("x = 1"), args.calls)))
        )
        for _ in range(20):
            sbx.run_code("x = 1", language="javascript")
        rows.append(
            (
                "ours  run_code('x = 1', javascript)",
                summary(_time(lambda: sbx.run_code("x = 1", language="javascript"), args.calls)),
            )
        )
        rows.append(
            ("ours  commands.run('true')", summary(_time(lambda: sbx.commands.run("true"), 100)))
        )
        memory: list[tuple[str, float, float, int]] = []
        sbx.commands.run("head -c 200000000 /dev/urandom > big.bin", timeout=300)
        secs, grown, data = _peak_growth(
            lambda: sbx.files.read("big.bin", "bytes", max_size=300 * MiB)
        )
        memory.append(("files.read of 200 MB, max_size=300 MiB", secs, grown, len(data)))
        del data
        sbx.files.remove("big.bin")
        payload = os.urandom(64 * MiB)
        secs, grown, data = _peak_growth(
            lambda: (sbx.files.write("rt.bin", payload), sbx.files.read("rt.bin", "bytes"))[1]
        )
        assert data == payload
        memory.append(("64 MiB files.write + files.read", secs, grown, len(data)))
        data = payload = b""
        secs, grown, result = _peak_growth(
            lambda: sbx.commands.run("head -c 100000000 /dev/zero | tr '\\0' x", timeout=300)
        )
        memory.append(("100 MB stdout via commands.run", secs, grown, len(result.stdout)))

    print(f"\ne2b-tools benchmark ({DEFAULT_IMAGE}, engine {client.version()['Version']})")
    print(f"{'measure':40} {'p50 ms':>9} {'p95 ms':>9} {'min ms':>9} {'n':>5}")
    for name, s in rows:
        print(f"{name:40} {s['p50']:9.2f} {s['p95']:9.2f} {s['min']:9.2f} {s['n']:5d}")
    print(f"\n{'host memory, one call':40} {'seconds':>9} {'kept MiB':>9} {'peak +MiB':>9} ratio")
    for name, secs, grown, kept in memory:
        print(
            f"{name:40} {secs:9.2f} {kept / MiB:9.1f} {grown / MiB:9.1f} "
            f"{grown / max(kept, 1):5.2f}x"
        )
    worst = max(grown / max(kept, 1) for _, _, grown, kept in memory[:2])
    print(
        f"(stdout keeps head and tail: {result.stdout_truncated / 1e6:.1f} MB dropped from the "
        f"middle; file reads keep everything: at most {worst:.2f}x the bytes kept; "
        f"<= 2x: {'met' if worst <= 2 else 'MISSED'})"
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

    _print_network(net, rows[2][1])


def _print_network(net: netbench.NetworkFigures, cold: dict[str, float]) -> None:
    policy = summary(net.policy_cold)
    proxied, direct = summary(net.proxied_get), summary(net.direct_get)
    print(f"\n{'network (egress proxy)':40} {'p50 ms':>9} {'p95 ms':>9} {'min ms':>9} {'n':>5}")
    for name, s in (
        ("ours  cold create -> first run_code", cold),
        ("net   the same, with a network policy", policy),
        ("net   HTTP GET, plain container, direct", direct),
        ("net   HTTP GET, sandbox, through proxy", proxied),
    ):
        print(f"{name:40} {s['p50']:9.2f} {s['p95']:9.2f} {s['min']:9.2f} {s['n']:5d}")
    print(
        f"(network={netbench.POLICY} adds {policy['p50'] - cold['p50']:.1f} ms to a cold start "
        f"({policy['p50'] / cold['p50']:.2f}x p50); the first policy sandbox of the run took "
        f"{net.first_policy_create * 1e3:.0f} ms, starting the proxy if none ran; "
        f"a GET through the proxy is {proxied['p50'] / direct['p50']:.2f}x direct at p50, "
        f"{proxied['p95'] / direct['p95']:.2f}x at p95)"
    )


if __name__ == "__main__":
    main()
