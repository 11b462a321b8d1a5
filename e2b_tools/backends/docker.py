"""Sandboxes as Docker containers, through the Docker Engine API (``docker`` SDK).

Blocking calls; the async layer runs them in worker threads. Only the low-level
``APIClient`` is used on the create path: the high-level ``containers.create`` adds an
inspect round trip per call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import threading
import time
from typing import Any, cast

import docker
import docker.errors

from .. import _bundle
from .._config import NetworkPolicy, SandboxConfig, proxied_policy
from .._exceptions import (
    EngineUnavailableError,
    ImageNotFoundError,
    InvalidArgumentError,
    SandboxNotFoundError,
)
from .._models import SandboxInfo
from .._version import __version__
from ._engine import (
    ENGINE_TIMEOUT,
    LABEL_CONFIG,
    LABEL_CREATED_AT,
    LABEL_END_AT,
    LABEL_METADATA,
    LABEL_OWNER,
    LABEL_SANDBOX,
    LABEL_VERSION,
    NAME_PREFIX,
    _engine_help,
    _timed_out,
    engine_address,
    map_docker_errors,
    retry_infra,
)
from .egress import LABEL_SANDBOX_IP, NET_PREFIX, PRUNE_AGE, Egress

__all__ = [
    "ENGINE_TIMEOUT",
    "LABEL_CONFIG",
    "LABEL_CREATED_AT",
    "LABEL_END_AT",
    "LABEL_METADATA",
    "LABEL_OWNER",
    "LABEL_SANDBOX",
    "LABEL_VERSION",
    "NAME_PREFIX",
    "DockerAttach",
    "DockerBackend",
    "default_backend",
    "engine_address",
    "image_name",
    "map_docker_errors",
    "retry_infra",
]


_HEADER = 8


class DockerAttach:
    """The agent's stdio over a container's attach socket (a :class:`Transport`).

    Docker multiplexes a non-TTY container's stdout and stderr on the socket in frames
    with an 8-byte header: stream type, 3 zero bytes, big-endian payload size.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> DockerAttach:
        """Wrap an attach socket (already connected) in asyncio streams."""
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 24)
        return cls(reader, writer)

    async def read_frame(self) -> tuple[int, bytes]:
        header = await self._reader.readexactly(_HEADER)
        size = int.from_bytes(header[4:], "big")
        return header[0], (await self._reader.readexactly(size) if size else b"")

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        self._writer.close()


class DockerBackend:
    """Creates, attaches to, lists and removes sandbox containers."""

    def __init__(self, client: docker.DockerClient | None = None) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._baked: dict[str, bool] = {}
        self.egress = Egress(lambda: self.api, self.command_for)
        """The egress proxy and the sandbox networks of this engine."""

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = docker.from_env(timeout=int(max(1, ENGINE_TIMEOUT)))
                    except docker.errors.DockerException as exc:
                        how = f"no answer within {ENGINE_TIMEOUT:g}s" if _timed_out(exc) else exc
                        raise EngineUnavailableError(f"{_engine_help(exc)} ({how})") from exc
        return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    # -- images ------------------------------------------------------------------
    def command_for(self, image: str, entry: str = _bundle.AGENT_ENTRY) -> list[str]:
        """The command that runs ``entry`` (the agent by default) in a container of
        ``image``: from the baked package when the image's label matches, else injected."""
        baked = self._baked.get(image)
        if baked is None:
            try:
                info = self._inspect_image(image)
            except docker.errors.ImageNotFound as exc:
                from ..images.names import DEFAULT_IMAGE, FULL_IMAGE, SLIM_IMAGE

                if image == DEFAULT_IMAGE:
                    hint = "build it with `e2b-tools image build`"
                elif image in (FULL_IMAGE, SLIM_IMAGE):
                    variant = "full" if image == FULL_IMAGE else "slim"
                    hint = f"build it with `e2b-tools image build --variant {variant}`"
                else:
                    hint = "pull or build it first, or pass image=None for the default image"
                raise ImageNotFoundError(f"image {image!r} does not exist; {hint}") from exc
            labels = (info.get("Config") or {}).get("Labels") or {}
            baked = labels.get(_bundle.AGENT_HASH_LABEL) == _bundle.agent_hash()
            self._baked[image] = baked
        return _bundle.baked_command(entry) if baked else _bundle.injected_command(entry)

    @retry_infra
    def _inspect_image(self, image: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.inspect_image(image))  # type: ignore[no-untyped-call]

    # -- containers --------------------------------------------------------------
    def create(self, sandbox_id: str, config: SandboxConfig, image: str) -> str:
        """Create (not start) the container for a sandbox; returns the container id."""
        with map_docker_errors(sandbox_id):
            command = self.command_for(image)
            end_at = time.time() + config.timeout
            policy = proxied_policy(config.network)
            attachment = None if policy is None else self.egress.attach(sandbox_id, policy, image)
            env = {
                "HOME": config.workdir,
                "LANG": "C.UTF-8",
                **(attachment.env() if attachment else {}),
                **config.envs,
                "E2B_SANDBOX": "true",
                "E2B_SANDBOX_ID": sandbox_id,
                "E2B_TOOLS_USER": config.user,
                "E2B_TOOLS_WORKDIR": config.workdir,
                "E2B_TOOLS_DEADLINE": f"{end_at:.3f}",
                "E2B_TOOLS_INTERRUPT_GRACE": str(config.interrupt_grace),
                "E2B_TOOLS_ON_TIMEOUT": config.on_timeout,
                "E2B_TOOLS_AUTO_RESUME": "1" if config.auto_resume else "",
                "E2B_TOOLS_LIFETIME": str(config.timeout),
            }
            labels = {
                LABEL_SANDBOX: sandbox_id,
                LABEL_OWNER: f"{socket.gethostname()}:{os.getpid()}",
                LABEL_VERSION: __version__,
                LABEL_END_AT: f"{end_at:.3f}",
                LABEL_CREATED_AT: f"{time.time():.6f}",
                LABEL_METADATA: json.dumps(config.metadata, sort_keys=True),
                LABEL_CONFIG: config.model_dump_json(exclude={"envs"}),
            }
            host = self._host_config(config)
            networking = None
            if attachment is not None:
                labels[LABEL_SANDBOX_IP] = attachment.sandbox_ip
                host["network_mode"] = attachment.network
                endpoint = self.api.create_endpoint_config(ipv4_address=attachment.sandbox_ip)
                networking = self.api.create_networking_config(
                    cast(Any, {attachment.network: endpoint})  # the SDK's stub is wrong
                )
            host_config = self.api.create_host_config(**host)
            spec = self.api.create_container_config(
                image=image,
                command=command,
                stdin_open=True,
                tty=False,
                # Root with two capabilities, for the agent alone: it keeps real uid 0
                # and starts user code as ``config.user`` (see agent/procs.py).
                user="0:0",
                working_dir=config.workdir,
                environment=env,
                labels=labels,
                host_config=host_config,
                networking_config=networking,
            )
            # The SDK closes the container's stdin when its first attacher leaves; the
            # agent must keep its input for every later connect().
            spec["StdinOnce"] = False
            try:
                return self._create(sandbox_id, spec, NAME_PREFIX + sandbox_id)
            except BaseException:
                if attachment is not None:
                    self.egress.detach(sandbox_id)
                raise

    @staticmethod
    def _host_config(config: SandboxConfig) -> dict[str, Any]:
        # A sandbox with a policy gets its own network in create(); none has no network.
        network_mode = "none"
        uid, _, gid = config.user.partition(":")
        owner = f",uid={uid},gid={gid or uid}" if uid.isdigit() and (gid or uid).isdigit() else ""
        workspace, tmp = config.tmpfs_sizes()
        hc: dict[str, Any] = {
            "init": True,
            "network_mode": network_mode,
            "read_only": config.read_only,
            "tmpfs": {
                # exec: Docker's tmpfs default is noexec, which would stop compiled
                # programs and scripts from running.
                "/tmp": f"rw,exec,nosuid,nodev,size={tmp},mode=1777",
                config.workdir: (f"rw,exec,nosuid,nodev,size={workspace},mode=0755{owner}"),
            },
            "pids_limit": config.pids_limit,
            # No json-file log: the protocol stream would otherwise be written to disk.
            "log_config": {"type": "none", "config": {}},
            "auto_remove": True,
            "ipc_mode": "private",
        }
        if config.cap_drop_all:
            hc["cap_drop"] = ["ALL"]
            hc["cap_add"] = ["SETUID", "SETGID"]
        if config.no_new_privileges:
            hc["security_opt"] = ["no-new-privileges"]
        if config.memory is not None:
            hc["mem_limit"] = config.memory
            hc["memswap_limit"] = config.memory
        if config.cpu is not None:
            hc["nano_cpus"] = int(config.cpu * 1e9)
        if config.runtime:
            hc["runtime"] = config.runtime
        return hc

    @retry_infra
    def _create(self, sandbox_id: str, spec: dict[str, Any], name: str) -> str:
        try:
            resp = self.api.create_container_from_config(  # type: ignore[no-untyped-call]
                spec, name=name
            )
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                # An earlier attempt of this very call created it before the error.
                return str(self.api.inspect_container(name)["Id"])
            raise
        return str(resp["Id"])

    def attach(self, container_id: str) -> socket.socket:
        """A raw socket on the container's stdin/stdout/stderr (multiplexed frames)."""
        with map_docker_errors():
            sock = self._attach(container_id)
        raw = cast(socket.socket, getattr(sock, "_sock", sock))
        # Own a duplicate and close every object the SDK made around the original, so
        # closing our end closes the stream and nothing is left for the GC to warn about.
        own = raw.dup()
        sock.close()
        raw.close()
        return own

    async def open_transport(self, container_id: str) -> DockerAttach:
        """A stream to the agent of a created (or running) container."""
        sock = await asyncio.to_thread(self.attach, container_id)
        return await DockerAttach.open(sock)

    @retry_infra
    def _attach(self, container_id: str) -> Any:
        return self.api.attach_socket(
            container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )

    def start(self, container_id: str, sandbox_id: str | None = None) -> None:
        with map_docker_errors(sandbox_id):
            self._start(container_id)

    @retry_infra
    def _start(self, container_id: str) -> None:
        self.api.start(container_id)

    def kill(self, container_id: str) -> bool:
        """Remove the container, running or not, and its network; False if it was
        already gone."""
        with map_docker_errors():
            info = self.inspect(container_id)
            if info is None:
                return False
            try:
                self._remove(container_id)
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: removal already in progress (auto_remove)
                    raise
            network = str((info.get("HostConfig") or {}).get("NetworkMode") or "")
            if network.startswith(NET_PREFIX):
                self.egress.detach(network[len(NET_PREFIX) :])
        return True

    # -- network policy ----------------------------------------------------------
    def _sandbox_ip(self, container_id: str, sandbox_id: str | None) -> str:
        info = self.inspect(container_id, sandbox_id)
        labels = ((info or {}).get("Config") or {}).get("Labels") or {}
        if info is None:
            raise SandboxNotFoundError("the sandbox no longer exists", sandbox_id=sandbox_id)
        if LABEL_SANDBOX_IP not in labels:
            raise InvalidArgumentError(
                "this sandbox was created with network='none', which is fixed for its life; "
                "create it with a policy (even an empty one: network={'allow_out': []}) to "
                "change its network later",
                sandbox_id=sandbox_id,
            )
        return str(labels[LABEL_SANDBOX_IP])

    def set_network(self, container_id: str, sandbox_id: str | None, policy: NetworkPolicy) -> None:
        """Replace the policy of a sandbox created with one (or ``"full"``)."""
        with map_docker_errors(sandbox_id):
            ip = self._sandbox_ip(container_id, sandbox_id)
            self.egress.set_policy(sandbox_id or "", ip, policy)

    def network_log(
        self, container_id: str, sandbox_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """The egress proxy's last ``limit`` decisions for this sandbox."""
        with map_docker_errors(sandbox_id):
            return self.egress.log(self._sandbox_ip(container_id, sandbox_id), limit)

    def cleanup(self, min_age: float = PRUNE_AGE) -> None:
        """Remove what dead sandboxes left: their networks (``min_age`` seconds old at
        least: younger ones may be another process's sandbox in the making), and the
        egress proxy once no sandbox network is left."""
        with map_docker_errors():
            self.egress.prune(min_age)
            self.egress.remove_if_idle()

    @retry_infra
    def _remove(self, container_id: str) -> None:
        self.api.remove_container(container_id, force=True, v=True)

    def inspect(self, container_id: str, sandbox_id: str | None = None) -> dict[str, Any] | None:
        """The container's inspect data, or None if it no longer exists."""
        with map_docker_errors(sandbox_id):
            try:
                return self._inspect(container_id)
            except docker.errors.NotFound:
                return None

    @retry_infra
    def _inspect(self, container_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.inspect_container(container_id))

    def pause(self, container_id: str, sandbox_id: str | None = None) -> bool:
        """``docker pause``: the cgroup freezer stops every process, memory kept."""
        with map_docker_errors(sandbox_id):
            try:
                self._pause(container_id)
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "already paused" in str(exc).lower():
                    return False
                raise
        return True

    @retry_infra
    def _pause(self, container_id: str) -> None:
        self.api.pause(container_id)

    def unpause(self, container_id: str, sandbox_id: str | None = None) -> bool:
        """``docker unpause``; False if the container was not paused."""
        with map_docker_errors(sandbox_id):
            try:
                self._unpause(container_id)
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "not paused" in str(exc).lower():
                    return False
                raise
        return True

    @retry_infra
    def _unpause(self, container_id: str) -> None:
        self.api.unpause(container_id)

    def stats(self, container_id: str, sandbox_id: str | None = None) -> dict[str, Any]:
        """One sample of the engine's container stats (``precpu_stats`` filled: the
        engine waits for a second sample, about a second)."""
        with map_docker_errors(sandbox_id):
            return self._stats(container_id)

    @retry_infra
    def _stats(self, container_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.stats(container_id, stream=False))

    def find(self, sandbox_id: str) -> dict[str, Any]:
        """Inspect data of the running (or paused: ``State.Paused``) sandbox."""
        info = self.inspect(NAME_PREFIX + sandbox_id, sandbox_id)
        if (
            info is None
            or (info.get("Config", {}).get("Labels") or {}).get(LABEL_SANDBOX) != sandbox_id
        ):
            raise SandboxNotFoundError(
                "no sandbox with this id exists (it was killed or reached its timeout)",
                sandbox_id=sandbox_id,
            )
        if not info["State"].get("Running"):
            raise SandboxNotFoundError(
                f"the sandbox is not running (state: {info['State'].get('Status')})",
                sandbox_id=sandbox_id,
            )
        return info

    def list_containers(self, all_states: bool = False) -> list[dict[str, Any]]:
        """Summaries of labelled containers (running ones unless ``all_states``)."""
        with map_docker_errors():
            return self._list(all_states)

    @retry_infra
    def _list(self, all_states: bool) -> list[dict[str, Any]]:
        return cast(
            list[dict[str, Any]],
            self.api.containers(all=all_states, filters={"label": LABEL_SANDBOX}),
        )

    @staticmethod
    def info_from_summary(summary: dict[str, Any]) -> SandboxInfo:
        labels = summary.get("Labels") or {}
        try:
            metadata = json.loads(labels.get(LABEL_METADATA) or "{}")
        except ValueError:
            metadata = {}
        end_at = labels.get(LABEL_END_AT)
        created = labels.get(LABEL_CREATED_AT) or summary.get("Created")
        image = str(summary.get("Image") or "")
        return SandboxInfo(
            sandbox_id=labels.get(LABEL_SANDBOX, ""),
            container_id=summary["Id"],
            image=image,
            metadata=metadata,
            started_at=(
                dt.datetime.fromtimestamp(float(created), dt.timezone.utc) if created else None
            ),
            end_at=dt.datetime.fromtimestamp(float(end_at), dt.timezone.utc) if end_at else None,
            state=summary.get("State", ""),
            template_id=image,
            name=image_name(image) or None,
        )


def image_name(image: str) -> str:
    """An image reference without its tag or digest: ``"e2b-tools/sandbox:1"`` ->
    ``"e2b-tools/sandbox"`` (a registry's port stays: ``"host:5000/img"``)."""
    name = image.partition("@")[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


_default_backend: DockerBackend | None = None
_default_lock = threading.Lock()


def default_backend() -> DockerBackend:
    """The process-wide backend on the engine that ``DOCKER_HOST`` (or the default) names."""
    global _default_backend
    with _default_lock:
        if _default_backend is None:
            _default_backend = DockerBackend()
        return _default_backend
