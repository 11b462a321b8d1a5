"""The egress proxy and the networks that join sandboxes to it.

A sandbox with a network policy (or ``network="full"``) gets a Docker network of its
own: ``internal`` (no route out) and without an address for the host on it
(``inhibit_ipv4``), so the only other member is the egress proxy. The proxy is one
container per engine, made from the sandbox image and hardened like a sandbox (read-only
root, no capabilities, an unprivileged user, memory and process limits, no Docker
socket). It also sits on an ordinary bridge network, its way out. It forwards HTTP by
host and everything else through ``CONNECT``, as far as the policy of the sandbox the
connection comes from allows (``agent/egress.py``; the sandbox is known by its address,
which it cannot change without capabilities).

The host talks to the proxy only through ``docker exec`` of its control command: it
writes a sandbox's policy, reads its decision log, forgets it. Each sandbox network
takes a ``/29`` of :data:`SUBNET_POOL`. Networks of sandboxes that died on their own
(their timeout) are removed by the next :meth:`Egress.prune`, which the next sandbox
with a policy runs and ``e2b-tools gc`` too.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.types

from .. import _bundle
from .._config import NetworkPolicy
from .._exceptions import ImageNotFoundError, SandboxError
from .._version import __version__
from ._engine import LABEL_SANDBOX, LABEL_VERSION, NAME_PREFIX, retry_infra

PROXY_NAME = NAME_PREFIX + "egress"
"""The proxy container's name (one per engine)."""
OUT_NETWORK = NAME_PREFIX + "egress-out"
"""The bridge network the proxy reaches the outside through."""
NET_PREFIX = NAME_PREFIX + "net-"
"""Prefix of each sandbox's own network (then the sandbox id)."""
LABEL_EGRESS = "e2b-tools.egress"
"""On the proxy container (``"proxy"``) and the networks it uses (``"out"``, ``"sandbox"``)."""
LABEL_NET_OF = "e2b-tools.network-of"
"""On a sandbox network: the id of its sandbox."""
LABEL_SANDBOX_IP = "e2b-tools.sandbox-ip"
"""On a sandbox container with a policy: its address, the key of its policy in the proxy."""
PROXY_PORT = 3128
"""The proxy's port on every network it is on."""
SUBNET_POOL = ipaddress.IPv4Network(os.environ.get("E2B_TOOLS_SUBNET_POOL") or "10.213.0.0/16")
"""Where sandbox networks take their ``/29`` subnets (``E2B_TOOLS_SUBNET_POOL`` to
change it if the default clashes with a network of yours)."""
PROXY_USER = "65534:65534"
PROXY_MEMORY = "1g"
"""The proxy's memory limit (a cap, not a reservation: it uses ~40 MiB when idle)."""
MAX_CONNECTIONS_PER_SANDBOX = 64
"""Open connections one sandbox may have through the proxy (more get a 429)."""
MAX_CONNECTIONS = 1024
"""Open connections through the proxy in all (more get a 503)."""
_STATE_DIR = "/run/egress"
PRUNE_AGE = 60.0
"""A sandbox network this old whose sandbox is gone is removed; younger ones may belong
to a sandbox another process is creating right now."""
_PRUNE_EVERY = 30.0
_CTL_ENTRY = f"from {_bundle.AGENT_PACKAGE}.egress import ctl; sys.exit(ctl(sys.argv[1:]))"

CommandFor = Callable[[str, str], list[str]]


@dataclass(frozen=True)
class Attachment:
    """A sandbox's place on its own network, next to the proxy."""

    network: str
    sandbox_ip: str
    proxy_ip: str

    def env(self) -> dict[str, str]:
        """The proxy variables that pip, npm, git, curl, wget and requests honour."""
        url = f"http://{self.proxy_ip}:{PROXY_PORT}"
        local = "localhost,127.0.0.1,::1"
        return {
            "HTTP_PROXY": url,
            "HTTPS_PROXY": url,
            "http_proxy": url,
            "https_proxy": url,
            "NO_PROXY": local,
            "no_proxy": local,
            "NODE_USE_ENV_PROXY": "1",
        }


def upstream_env() -> dict[str, str]:
    """The host's own proxy settings, handed to the egress proxy for its way out.

    ``E2B_TOOLS_EGRESS_UPSTREAM`` wins; otherwise ``HTTPS_PROXY`` / ``HTTP_PROXY`` (either
    case). The address must be reachable from containers (not the host's loopback).
    """
    upstream = os.environ.get("E2B_TOOLS_EGRESS_UPSTREAM")
    if upstream is None:
        for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
            if os.environ.get(name):
                upstream = os.environ[name]
                break
    env: dict[str, str] = {}
    if upstream:
        env["E2B_TOOLS_EGRESS_UPSTREAM"] = upstream
        bypass = os.environ.get("NO_PROXY") or os.environ.get("no_proxy")
        if bypass:
            env["E2B_TOOLS_EGRESS_NO_UPSTREAM"] = bypass
    return env


class Egress:
    """The engine's egress proxy and the sandbox networks, for one Docker client."""

    def __init__(self, api: Callable[[], docker.APIClient], command_for: CommandFor) -> None:
        self._api = api
        self._command_for = command_for
        self._lock = threading.Lock()
        self._proxy: str | None = None
        self._proxy_image: str | None = None
        self._last_prune = 0.0

    # -- the proxy ---------------------------------------------------------------
    def ensure(self, fallback_image: str) -> str:
        """The running proxy's container id; created and started when missing."""
        with self._lock:
            if self._proxy is None:
                self._proxy = self._start_proxy(fallback_image)
            return self._proxy

    def _forget(self) -> None:
        with self._lock:
            self._proxy = None

    def _start_proxy(self, fallback_image: str) -> str:
        api = self._api()
        try:
            info = api.inspect_container(PROXY_NAME)
        except docker.errors.NotFound:
            info = None
        if info is not None and info["State"].get("Running"):
            labels = info["Config"].get("Labels") or {}
            current = labels.get(_bundle.AGENT_HASH_LABEL) == _bundle.agent_hash()
            # A proxy from another version of this package is replaced once no sandbox
            # uses it; until then it keeps serving the sandboxes it has.
            if current or api.networks(filters={"label": LABEL_NET_OF}):
                self._proxy_image = str(info["Config"].get("Image"))
                return str(info["Id"])
        if info is not None:  # stopped, dead or outdated: make a fresh one
            _ignore_missing(api.remove_container, PROXY_NAME, force=True)
        self._ensure_out_network(api)
        image, command = self._proxy_command(fallback_image)
        tmpfs_opts = "rw,noexec,nosuid,nodev"
        host_config = api.create_host_config(
            network_mode=OUT_NETWORK,
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            tmpfs={
                _STATE_DIR: f"{tmpfs_opts},size=64m,mode=0700,uid=65534,gid=65534",
                "/tmp": f"{tmpfs_opts},size=16m,mode=1777",
            },
            mem_limit=PROXY_MEMORY,
            memswap_limit=PROXY_MEMORY,
            pids_limit=1024,
            init=True,
            restart_policy={"Name": "unless-stopped"},
            log_config=docker.types.LogConfig(
                type="json-file", config={"max-size": "1m", "max-file": "2"}
            ),
        )
        env = {
            "E2B_TOOLS_EGRESS_STATE": _STATE_DIR,
            "E2B_TOOLS_EGRESS_PROTECTED": str(SUBNET_POOL),
            # A stalled tunnel holds up to ~0.5 MiB (buffers, kernel socket memory):
            # these caps keep a hostile sandbox from using up the proxy's memory.
            "E2B_TOOLS_EGRESS_MAX_CLIENT": str(MAX_CONNECTIONS_PER_SANDBOX),
            "E2B_TOOLS_EGRESS_MAX_TOTAL": str(MAX_CONNECTIONS),
        }
        env.update(upstream_env())
        spec = api.create_container_config(
            image=image,
            command=command,
            user=PROXY_USER,
            environment=env,
            labels={
                LABEL_EGRESS: "proxy",
                LABEL_VERSION: __version__,
                _bundle.AGENT_HASH_LABEL: _bundle.agent_hash(),
            },
            host_config=host_config,
        )
        try:
            container_id = str(
                api.create_container_from_config(spec, name=PROXY_NAME)["Id"]  # type: ignore[no-untyped-call]
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            container_id = str(api.inspect_container(PROXY_NAME)["Id"])  # another process won
        for extra in filter(None, os.environ.get("E2B_TOOLS_EGRESS_NETWORKS", "").split(",")):
            api.connect_container_to_network(container_id, extra.strip())
        api.start(container_id)
        self._proxy_image = image
        try:
            self._wait_ready(api, container_id)
        except BaseException:
            _ignore_missing(api.remove_container, container_id, force=True)
            raise
        return container_id

    def _proxy_command(self, fallback_image: str) -> tuple[str, list[str]]:
        from ..images.names import DEFAULT_IMAGE

        for image in dict.fromkeys((DEFAULT_IMAGE, fallback_image)):
            try:
                return image, self._command_for(image, _bundle.EGRESS_ENTRY)
            except ImageNotFoundError:
                continue
        raise ImageNotFoundError(
            f"the egress proxy runs from {DEFAULT_IMAGE!r}, which does not exist; build it "
            "with `e2b-tools image build`"
        )

    @staticmethod
    def _ensure_out_network(api: docker.APIClient) -> None:
        if api.networks(names=[OUT_NETWORK]):
            return
        try:
            api.create_network(
                OUT_NETWORK, driver="bridge", labels={LABEL_EGRESS: "out"}, check_duplicate=True
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise

    @staticmethod
    def _wait_ready(api: docker.APIClient, container_id: str, limit: float = 15.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            logs = api.logs(container_id, stdout=True, stderr=True, tail=50)
            if b"egress ready" in logs:
                return
            state = api.inspect_container(container_id)["State"]
            if not state.get("Running") and state.get("Status") != "created":
                break
            time.sleep(0.02)
        tail = api.logs(container_id, tail=5).decode("utf-8", "replace").strip()
        raise SandboxError(f"the egress proxy did not start: {tail or 'no output'}")

    def join(self, network: str, fallback_image: str) -> None:
        """Let the proxy reach the containers of Docker network ``network`` (a package
        mirror, a test upstream), starting it if needed; policies still decide who may.
        A proxy started later joins again the networks named in
        ``E2B_TOOLS_EGRESS_NETWORKS`` (comma-separated)."""
        api = self._api()
        proxy = self.ensure(fallback_image)
        if network in api.inspect_container(proxy)["NetworkSettings"]["Networks"]:
            return
        try:
            api.connect_container_to_network(proxy, network)
        except docker.errors.APIError as exc:
            if "already exists" not in str(exc):
                raise

    # -- sandbox networks --------------------------------------------------------
    def attach(self, sandbox_id: str, policy: NetworkPolicy, fallback_image: str) -> Attachment:
        """Make ``sandbox_id``'s network, join the proxy to it and give it ``policy``."""
        if time.monotonic() - self._last_prune > _PRUNE_EVERY:
            self.prune()
        api = self._api()
        network, subnet = self._create_network(api, sandbox_id)
        hosts = list(subnet.hosts())
        attachment = Attachment(network, str(hosts[1]), str(hosts[2]))
        try:
            for attempt in (1, 2):
                proxy = self.ensure(fallback_image)
                try:
                    api.connect_container_to_network(
                        proxy, network, ipv4_address=attachment.proxy_ip
                    )
                    break
                except docker.errors.NotFound:
                    self._forget()  # removed by gc or by hand: start a new one
                    if attempt == 2:
                        raise
            self.set_policy(sandbox_id, attachment.sandbox_ip, policy)
        except BaseException:
            self.detach(sandbox_id)
            raise
        return attachment

    @retry_infra
    def _create_network(
        self, api: docker.APIClient, sandbox_id: str
    ) -> tuple[str, ipaddress.IPv4Network]:
        name = NET_PREFIX + sandbox_id
        count = SUBNET_POOL.num_addresses // 8
        if not count:
            raise SandboxError(f"E2B_TOOLS_SUBNET_POOL={SUBNET_POOL} is smaller than a /29")
        base = int(SUBNET_POOL.network_address)
        for index in random.sample(range(count), min(24, count)):
            subnet = ipaddress.IPv4Network((base + 8 * index, 29))
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet))])
            try:
                api.create_network(
                    name,
                    driver="bridge",
                    internal=True,
                    ipam=ipam,
                    check_duplicate=True,
                    options={
                        "com.docker.network.bridge.inhibit_ipv4": "true",
                        "com.docker.network.bridge.enable_ip_masquerade": "false",
                    },
                    labels={LABEL_EGRESS: "sandbox", LABEL_NET_OF: sandbox_id},
                )
                return name, subnet
            except docker.errors.APIError as exc:
                if "overlap" in str(exc).lower():
                    continue  # taken by another sandbox network: try another subnet
                raise
        raise SandboxError(
            f"no free /29 subnet in {SUBNET_POOL} after 24 tries; remove unused sandbox "
            "networks (`e2b-tools gc`) or set E2B_TOOLS_SUBNET_POOL to a larger range"
        )

    def detach(self, sandbox_id: str) -> None:
        """Remove ``sandbox_id``'s network (after its container is gone)."""
        api = self._api()
        network = NET_PREFIX + sandbox_id
        try:
            config = api.inspect_network(network)["IPAM"]["Config"]
        except docker.errors.NotFound:
            return
        try:
            api.disconnect_container_from_network(PROXY_NAME, network, force=True)
        except docker.errors.APIError:
            pass  # not connected, or no proxy
        _ignore_missing(api.remove_network, network)
        if config:
            # Free the proxy's state for that address: its policy and decision log.
            sandbox_ip = str(list(ipaddress.IPv4Network(config[0]["Subnet"]).hosts())[1])
            try:
                self._ctl(["remove", sandbox_ip])
            except (SandboxError, docker.errors.APIError):
                pass  # no proxy: nothing to free

    def prune(self, min_age: float = PRUNE_AGE) -> list[str]:
        """Remove networks (at least ``min_age`` seconds old) of sandboxes that no longer
        exist; returns their sandbox ids."""
        self._last_prune = time.monotonic()
        api = self._api()
        alive = {
            (c.get("Labels") or {}).get(LABEL_SANDBOX)
            for c in api.containers(all=True, filters={"label": LABEL_SANDBOX})
            if c.get("State") not in ("exited", "dead", "removing")
        }
        removed = []
        for net in api.networks(filters={"label": LABEL_NET_OF}):
            owner = (net.get("Labels") or {}).get(LABEL_NET_OF, "")
            if owner in alive or _age(net.get("Created")) < min_age:
                continue
            self.detach(owner)
            removed.append(owner)
        return removed

    def remove_if_idle(self) -> bool:
        """Remove the proxy and its network when no sandbox network is left."""
        api = self._api()
        if api.networks(filters={"label": LABEL_NET_OF}):
            return False
        self._forget()
        _ignore_missing(api.remove_container, PROXY_NAME, force=True)
        try:
            _ignore_missing(api.remove_network, OUT_NETWORK)
        except docker.errors.APIError:
            pass  # something else joined it
        return True

    # -- policy and log ------------------------------------------------------------
    def set_policy(self, sandbox_id: str, sandbox_ip: str, policy: NetworkPolicy) -> None:
        """Give the sandbox at ``sandbox_ip`` this policy (from its next connection on);
        its decision log starts afresh."""
        document = {"sandbox_id": sandbox_id, **policy.model_dump()}
        args = ["set", sandbox_ip, json.dumps(document)]
        self._ctl(args)

    def log(self, sandbox_ip: str, limit: int) -> list[dict[str, Any]]:
        """The proxy's last ``limit`` decisions for the sandbox at ``sandbox_ip``."""
        out = self._ctl(["log", sandbox_ip, str(int(limit))])
        entries = []
        for line in out.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries[-limit:] if limit > 0 else []

    def _ctl(self, args: list[str]) -> str:
        api = self._api()
        try:
            if self._proxy is None or self._proxy_image is None:
                info = api.inspect_container(PROXY_NAME)
                self._proxy, self._proxy_image = str(info["Id"]), str(info["Config"]["Image"])
            command = self._command_for(self._proxy_image, _CTL_ENTRY) + args
            exec_id = api.exec_create(self._proxy, command, user=PROXY_USER)["Id"]
            out, err = api.exec_start(exec_id, demux=True)
            code = api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.NotFound:
            self._forget()
            raise SandboxError(
                "the egress proxy is gone (removed by hand or by `e2b-tools gc --all`); "
                "the sandbox has no network until it is created again"
            ) from None
        if code != 0:
            reason = (err or b"").decode("utf-8", "replace").strip()[-500:]
            raise SandboxError(f"the egress proxy refused {args[0]!r}: {reason or code}")
        return (out or b"").decode("utf-8", "replace")


def _ignore_missing(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        call(*args, **kwargs)
    except docker.errors.NotFound:
        pass


def _age(created: str | None) -> float:
    """Seconds since Docker's ``Created`` timestamp (``inf`` when unknown)."""
    if not created:
        return float("inf")
    try:
        stamp = dt.datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return float("inf")
    return time.time() - stamp.timestamp()
