"""Sandboxes as Docker containers, through the Docker Engine API (``docker`` SDK).

Blocking calls; the async layer runs them in worker threads. Only the low-level
``APIClient`` is used on the create path: the high-level ``containers.create`` adds an
inspect round trip per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, TypeVar, cast

import docker
import docker.errors
import requests.exceptions
import tenacity

from .. import _bundle
from .._config import SandboxConfig
from .._exceptions import (
    EngineUnavailableError,
    ImageNotFoundError,
    InvalidArgumentError,
    SandboxError,
    SandboxNotFoundError,
)
from .._models import SandboxInfo
from .._version import __version__

LABEL_SANDBOX = "e2b-tools.sandbox"
"""Every container this package creates carries this label (value: the sandbox id)."""
LABEL_OWNER = "e2b-tools.owner"
LABEL_VERSION = "e2b-tools.version"
LABEL_END_AT = "e2b-tools.end_at"
LABEL_METADATA = "e2b-tools.metadata"
LABEL_CONFIG = "e2b-tools.config"
"""The sandbox's configuration as JSON, environment variables left out (``connect()``
restores the rest)."""
NAME_PREFIX = "e2b-tools-"

T = TypeVar("T")

ENGINE_TIMEOUT = float(os.environ.get("E2B_TOOLS_ENGINE_TIMEOUT") or 10.0)
"""Seconds a control call (create, start, inspect, list, remove) waits for the engine's
answer; set ``E2B_TOOLS_ENGINE_TIMEOUT`` to change it. Image builds have their own."""


def engine_address() -> str:
    """The engine address the Docker SDK uses (``DOCKER_HOST`` or the default socket)."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _engine_help() -> str:
    return (
        f"the Docker Engine at {engine_address()} did not answer; start it (on Linux: "
        "`sudo systemctl start docker`; elsewhere: Docker Desktop) or set DOCKER_HOST to "
        "an engine that answers"
    )


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc).lower()


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.ConnectionError):
        # A refused or reset connection may be an engine (re)starting; one that accepted
        # and then said nothing is hung, and asking again only waits longer.
        return not _timed_out(exc)
    if isinstance(exc, docker.errors.APIError) and not isinstance(exc, docker.errors.NotFound):
        code = exc.status_code or 0
        return code >= 500
    return False


# Infra calls that are safe to repeat: engine connection errors and 5xx, a few times
# within a few seconds.
retry_infra = tenacity.retry(
    retry=tenacity.retry_if_exception(_retryable),
    stop=tenacity.stop_after_attempt(4) | tenacity.stop_after_delay(5),
    wait=tenacity.wait_exponential(multiplier=0.1, max=2),
    reraise=True,
)


@contextlib.contextmanager
def map_docker_errors(sandbox_id: str | None = None) -> Iterator[None]:
    """Translate the SDK's exceptions into this package's, in one place."""
    try:
        yield
    except SandboxError:
        raise
    except docker.errors.NotFound as exc:
        raise SandboxNotFoundError(
            f"not found on the Docker Engine: {exc.explanation}", sandbox_id=sandbox_id
        ) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        how = f"no answer within {ENGINE_TIMEOUT:g}s" if _timed_out(exc) else str(exc)
        raise EngineUnavailableError(f"{_engine_help()} ({how})", sandbox_id=sandbox_id) from exc
    except docker.errors.DockerException as exc:
        raise SandboxError(f"Docker Engine error: {exc}", sandbox_id=sandbox_id) from exc


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
        self._image_commands: dict[str, list[str]] = {}

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = docker.from_env(timeout=int(max(1, ENGINE_TIMEOUT)))
                    except docker.errors.DockerException as exc:
                        how = f"no answer within {ENGINE_TIMEOUT:g}s" if _timed_out(exc) else exc
                        raise EngineUnavailableError(f"{_engine_help()} ({how})") from exc
        return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    # -- images ------------------------------------------------------------------
    def command_for(self, image: str) -> list[str]:
        """The agent command for ``image``: baked when its label matches, else injected."""
        cached = self._image_commands.get(image)
        if cached is not None:
            return cached
        try:
            info = self._inspect_image(image)
        except docker.errors.ImageNotFound as exc:
            from ..images.names import DEFAULT_IMAGE, FULL_IMAGE

            if image == DEFAULT_IMAGE:
                hint = "build it with `e2b-tools image build`"
            elif image == FULL_IMAGE:
                hint = "build it with `e2b-tools image build --variant full`"
            else:
                hint = "pull or build it first, or pass image=None for the default image"
            raise ImageNotFoundError(f"image {image!r} does not exist; {hint}") from exc
        labels = (info.get("Config") or {}).get("Labels") or {}
        if labels.get(_bundle.AGENT_HASH_LABEL) == _bundle.agent_hash():
            command = _bundle.baked_command()
        else:
            command = _bundle.injected_command()
        self._image_commands[image] = command
        return command

    @retry_infra
    def _inspect_image(self, image: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.inspect_image(image))  # type: ignore[no-untyped-call]

    # -- containers --------------------------------------------------------------
    def create(self, sandbox_id: str, config: SandboxConfig, image: str) -> str:
        """Create (not start) the container for a sandbox; returns the container id."""
        with map_docker_errors(sandbox_id):
            command = self.command_for(image)
            end_at = time.time() + config.timeout
            env = {
                "HOME": config.workdir,
                "LANG": "C.UTF-8",
                **config.envs,
                "E2B_TOOLS_USER": config.user,
                "E2B_TOOLS_WORKDIR": config.workdir,
                "E2B_TOOLS_DEADLINE": f"{end_at:.3f}",
                "E2B_TOOLS_INTERRUPT_GRACE": str(config.interrupt_grace),
            }
            labels = {
                LABEL_SANDBOX: sandbox_id,
                LABEL_OWNER: f"{socket.gethostname()}:{os.getpid()}",
                LABEL_VERSION: __version__,
                LABEL_END_AT: f"{end_at:.3f}",
                LABEL_METADATA: json.dumps(config.metadata, sort_keys=True),
                LABEL_CONFIG: config.model_dump_json(exclude={"envs"}),
            }
            host_config = self.api.create_host_config(**self._host_config(config))
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
            )
            # The SDK closes the container's stdin when its first attacher leaves; the
            # agent must keep its input for every later connect().
            spec["StdinOnce"] = False
            return self._create(sandbox_id, spec, NAME_PREFIX + sandbox_id)

    @staticmethod
    def _host_config(config: SandboxConfig) -> dict[str, Any]:
        if config.network == "none":
            network_mode = "none"
        elif config.network == "full":
            network_mode = "bridge"
        else:  # pragma: no cover - pydantic already rejects this
            raise InvalidArgumentError(f"unknown network mode {config.network!r}")
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
        """Remove the container, running or not; False if it was already gone."""
        with map_docker_errors():
            try:
                self._remove(container_id)
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as exc:
                if exc.status_code == 409:  # removal already in progress (auto_remove)
                    return True
                raise
        return True

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

    def find(self, sandbox_id: str) -> dict[str, Any]:
        """Inspect data of the running sandbox ``sandbox_id``."""
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
        created = summary.get("Created")
        return SandboxInfo(
            sandbox_id=labels.get(LABEL_SANDBOX, ""),
            container_id=summary["Id"],
            image=summary.get("Image", ""),
            metadata=metadata,
            started_at=dt.datetime.fromtimestamp(created, dt.timezone.utc) if created else None,
            end_at=dt.datetime.fromtimestamp(float(end_at), dt.timezone.utc) if end_at else None,
            state=summary.get("State", ""),
        )


_default_backend: DockerBackend | None = None
_default_lock = threading.Lock()


def default_backend() -> DockerBackend:
    """The process-wide backend on the engine that ``DOCKER_HOST`` (or the default) names."""
    global _default_backend
    with _default_lock:
        if _default_backend is None:
            _default_backend = DockerBackend()
        return _default_backend
