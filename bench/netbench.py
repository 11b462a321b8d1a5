"""The network section of ``bench/bench.py``: what the egress proxy costs.

* Cold ``Sandbox.create(network=<policy>)`` -> first ``run_code`` (the sandbox gets a
  network of its own, the proxy joins it and learns the policy), to set beside the
  cold start without a network.
* HTTP GET latency to a local upstream (``examples/local_index.py`` on a network of its
  own): N sequential ``urllib.request.urlopen`` calls timed inside a sandbox, through the
  proxy, and the same loop in a plain container of the same image on the upstream's
  network with the sandbox's CPU and memory limits, no proxy.
"""

from __future__ import annotations

import ast
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from local_index import serve_local_index

from e2b_tools import Sandbox
from e2b_tools.backends.docker import default_backend
from e2b_tools.backends.egress import PROXY_NAME

HOST = "allowed.test"
POLICY = {"allow_out": [HOST]}
WARMUP = 10
LABEL = "e2b-tools.bench"


def _get_loop(url: str, calls: int) -> str:
    """Python that times ``calls`` GETs of ``url`` (after a warm-up) into ``_t``."""
    return (
        "import time, urllib.request\n"
        "def _get():\n"
        f"    with urllib.request.urlopen({url!r}, timeout=10) as r:\n"
        "        r.read()\n"
        f"for _ in range({WARMUP}):\n"
        "    _get()\n"
        "_t = []\n"
        f"for _ in range({calls}):\n"
        "    _s = time.perf_counter()\n"
        "    _get()\n"
        "    _t.append(round(time.perf_counter() - _s, 7))\n"
    )


def cold_with_policy(rounds: int) -> tuple[float, list[float]]:
    """(the first policy sandbox's cold start, which may start the proxy; then ``rounds``
    cold starts with the proxy running)."""
    t = time.perf_counter()
    with Sandbox.create(network=POLICY) as sbx:
        sbx.run_code("1")
        first = time.perf_counter() - t
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        sbx = Sandbox.create(network=POLICY)
        sbx.run_code("1")
        samples.append(time.perf_counter() - t)
        sbx.kill()
    return first, samples


def http_latency(
    client: docker.DockerClient, image: str, calls: int
) -> tuple[list[float], list[float]]:
    """(GET latencies through the proxy from a sandbox, the same in a plain container)."""
    api = client.api
    with serve_local_index(client, image, aliases=[HOST]) as upstream:
        loop = _get_loop(upstream.url("/bench"), calls)
        with Sandbox.create(network=POLICY) as sbx:
            run = sbx.run_code(loop + "_t", timeout=300)
            if run.error is not None:
                raise RuntimeError(f"the proxied loop failed: {run.error.name}: {run.error.value}")
            proxied = list(ast.literal_eval(run.text or "[]"))
        host_config = api.create_host_config(
            network_mode=upstream.network,
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mem_limit="1g",
            nano_cpus=int(1e9),  # the sandbox's defaults: 1 CPU, 1 GiB
        )
        cid = api.create_container(
            image,
            command=["sleep", "infinity"],
            user="1000:1000",
            labels={LABEL: "1"},
            host_config=host_config,
        )["Id"]
        try:
            api.start(cid)
            code, out = client.containers.get(cid).exec_run(
                ["python3", "-I", "-c", loop + "print(_t)"]
            )
            assert isinstance(out, bytes)
            if code != 0:
                raise RuntimeError(f"the direct loop failed: {out.decode(errors='replace')}")
            direct = list(ast.literal_eval(out.decode().strip().splitlines()[-1]))
        finally:
            api.remove_container(cid, force=True)
    return proxied, direct


@dataclass
class NetworkFigures:
    """The samples of the network section, in seconds."""

    first_policy_create: float
    """The first policy sandbox's cold start (it starts the proxy when none runs)."""
    policy_cold: list[float]
    proxied_get: list[float]
    direct_get: list[float]


def measure(client: docker.DockerClient, image: str, rounds: int, calls: int) -> NetworkFigures:
    """Every network figure; a proxy this started is removed again once it is idle."""
    was_running = bool(client.api.containers(filters={"name": f"^/{PROXY_NAME}$"}))
    try:
        first, cold = cold_with_policy(rounds)
        proxied, direct = http_latency(client, image, calls)
    finally:
        if not was_running:
            default_backend().egress.remove_if_idle()
    return NetworkFigures(first, cold, proxied, direct)
