"""Shared by both build paths: the error type, the image-layer texts and the helpers.

:func:`thin_layer_dockerfile` and :func:`_build_thin_layer` make the agent layer that
every variant and build method ends with (:func:`slim_dockerfile` puts it on the base
image); :func:`_docker_build` drives the engine's build API; the rest are small helpers
(progress steps, log clipping, in-memory build contexts).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import json
import re
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.images import Image

from e2b_tools._bundle import (
    AGENT_HASH_LABEL,
    AGENT_PACKAGE,
    BAKED_AGENT_ROOT,
    agent_files,
    baked_command,
)
from e2b_tools._bundle import agent_hash as _bundle_agent_hash
from e2b_tools._exceptions import ImageBuildError
from e2b_tools._version import __version__

from . import names
from .names import (
    DEBIAN_SUITE,
    DEFAULT_IMAGE,
    FULL_IMAGE,
    IMAGE_KIND_LABEL,
    PACKAGES_LABEL,
    ROOTFS_IMAGE,
    SANDBOX_ENV,
    SANDBOX_HOME,
    SANDBOX_UID,
    SANDBOX_USER,
    SLIM_IMAGE,
    VARIANTS,
    VERSION_LABEL,
    Variant,
)

__all__ = [
    "ImageBuildError",
    "image_exists",
    "image_for",
    "packages_hash",
    "slim_dockerfile",
    "thin_layer_dockerfile",
]

_TAIL_LINES = 40
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
"""Terminal colour codes, which the engine puts around a build step's stderr."""
_PROGRESS_EVERY = 5.0
_API_TIMEOUT = 900


def image_exists(tag: str, client: docker.DockerClient) -> bool:
    """Whether the engine has an image by this name or id.

    Args:
        tag: Image reference, e.g. ``"e2b-tools/sandbox:0.1.0"``.
        client: Docker client to ask.

    Returns:
        True if the image is present locally.
    """
    return _get_image(client, tag) is not None


def image_for(variant: Variant) -> str:
    """The sandbox image tag of a variant.

    Args:
        variant: ``"default"``, ``"full"`` or ``"slim"``.

    Returns:
        :data:`DEFAULT_IMAGE`, :data:`FULL_IMAGE` or :data:`SLIM_IMAGE`.

    Example:
        >>> image_for("full") == FULL_IMAGE
        True
    """
    if variant == "default":
        return DEFAULT_IMAGE
    if variant == "full":
        return FULL_IMAGE
    if variant == "slim":
        return SLIM_IMAGE
    raise ValueError(f"unknown image variant {variant!r}; known: {', '.join(VARIANTS)}")


def packages_hash(variant: Variant) -> str:
    """Digest of everything apt puts into a variant's rootfs (its :data:`PACKAGES_LABEL`).

    The full variant's digest covers the default packages too, since its rootfs is built
    on the default one; the slim one covers only :data:`BASE_PACKAGES`.

    Args:
        variant: ``"default"``, ``"full"`` or ``"slim"``.

    Returns:
        12 hex digits.
    """
    image_for(variant)  # validates
    # Read through the module, so that a patched list is what counts.
    if variant == "slim":
        parts: list[object] = [DEBIAN_SUITE, list(names.BASE_PACKAGES), SANDBOX_UID, SANDBOX_HOME]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]
    parts = [DEBIAN_SUITE, list(names.SANDBOX_PACKAGES), SANDBOX_UID, SANDBOX_HOME]
    if variant == "full":
        parts.append(list(names.FULL_PACKAGES))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]


def thin_layer_dockerfile(
    base: str,
    *,
    agent_hash: str | None = None,
    version: str = __version__,
    kind: str = "sandbox",
) -> str:
    """The Dockerfile of the agent layer, shared by every build method and variant.

    The build context holds the agent's files under ``e2b_tools_agent/``. No ``RUN``
    instruction, so the layer builds without network.

    Args:
        base: Image (or stage) the layer starts from.
        agent_hash: Value of the agent-hash label; defaults to the current agent's hash.
        version: Value of the image version label.
        kind: Value of the :data:`IMAGE_KIND_LABEL` label.

    Returns:
        The Dockerfile text.
    """
    label_hash = _bundle_agent_hash() if agent_hash is None else agent_hash
    dest = f"{BAKED_AGENT_ROOT}/{AGENT_PACKAGE}/"
    labels = " ".join(
        f"{key}={json.dumps(value)}"
        for key, value in (
            (AGENT_HASH_LABEL, label_hash),
            (VERSION_LABEL, version),
            (IMAGE_KIND_LABEL, kind),
        )
    )
    env = " ".join(f"{key}={value}" for key, value in SANDBOX_ENV)
    return (
        f"FROM {base}\n"
        f"COPY {AGENT_PACKAGE}/ {dest}\n"
        f"LABEL {labels}\n"
        f"ENV {env}\n"
        f"USER {SANDBOX_UID}:{SANDBOX_UID}\n"
        f"WORKDIR {SANDBOX_HOME}\n"
        f"CMD {json.dumps(baked_command())}\n"
    )


def slim_dockerfile(
    base: str,
    *,
    agent_hash: str | None = None,
    packages: str | None = None,
    version: str = __version__,
) -> str:
    """The Dockerfile of the slim variant: the sandbox user on ``base``, then the agent layer.

    Its one ``RUN`` only adds the user (uid/gid 1000, home ``/home/user``) and a ``python``
    link to ``python3``, so it builds without network from the base image's own tools.

    Args:
        base: The image with ``python3`` to start from (:data:`BASE_IMAGE`).
        agent_hash: Value of the agent-hash label; defaults to the current agent's hash.
        packages: Value of the packages label; defaults to ``packages_hash("slim")``.
        version: Value of the image version label.

    Returns:
        The Dockerfile text (two stages; the last is :func:`thin_layer_dockerfile`).

    Example:
        >>> slim_dockerfile("e2b-tools/base:1").splitlines()[0]
        'FROM e2b-tools/base:1 AS slim-rootfs'
    """
    digest = packages_hash("slim") if packages is None else packages
    uid = SANDBOX_UID
    return (
        f"FROM {base} AS slim-rootfs\n"
        "USER 0:0\n"
        "RUN set -eu; \\\n"
        f"    groupadd --gid {uid} {SANDBOX_USER}; \\\n"
        f"    useradd --uid {uid} --gid {uid} --home-dir {SANDBOX_HOME} --create-home \\\n"
        f"        --shell /bin/bash {SANDBOX_USER}; \\\n"
        f"    chown -R {uid}:{uid} {SANDBOX_HOME}; \\\n"
        "    ln -sf /usr/bin/python3 /usr/local/bin/python\n"
        f"LABEL {PACKAGES_LABEL}={json.dumps(digest)}\n"
        + thin_layer_dockerfile(
            "slim-rootfs", agent_hash=agent_hash, version=version, kind="sandbox-slim"
        )
    )


# --------------------------------------------------------------------------- helpers


def _client_from_env() -> docker.DockerClient:
    try:
        return docker.from_env()
    except docker.errors.DockerException as exc:
        raise ImageBuildError(
            f"no Docker Engine answers ({_one_line(exc)}); start one "
            "(on Linux: `sudo systemctl start docker`) or set DOCKER_HOST"
        ) from exc


def _get_image(client: docker.DockerClient, ref: str) -> Image | None:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def _one_line(exc: BaseException | str, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _clip(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "kB") else f"{size:.2f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _with_tail(message: str, tail: Iterable[str]) -> str:
    lines = list(tail)
    if not lines:
        return message
    return message + f"\n--- last {len(lines)} lines of output ---\n" + "\n".join(lines)


class _Steps:
    """Numbered step lines with elapsed time."""

    def __init__(self, total: int, log: Callable[[str], None]) -> None:
        self.total = total
        self.log = log
        self.number = 0

    @contextlib.contextmanager
    def __call__(self, title: str) -> Iterator[None]:
        self.number += 1
        self.log(f"[{self.number}/{self.total}] {title} ...")
        started = time.monotonic()
        try:
            yield
        except BaseException:
            self.log(f"      failed after {time.monotonic() - started:.1f}s")
            raise
        self.log(f"      done in {time.monotonic() - started:.1f}s")


@contextlib.contextmanager
def _long_api_timeout(client: docker.DockerClient) -> Iterator[None]:
    """Lift the client's read timeout for requests that stream gigabytes."""
    old = client.api.timeout
    client.api.timeout = max(old, _API_TIMEOUT)
    try:
        yield
    finally:
        client.api.timeout = old


# ---------------------------------------------------------------- docker build API


def _tar_context(files: dict[str, bytes], dirs: Sequence[str] = ()) -> bytes:
    """An in-memory build context: files 0644, directories 0755, owned by root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = 946684800
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 946684800
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _docker_build(
    client: docker.DockerClient,
    log: Callable[[str], None],
    *,
    context: bytes | Path,
    tag: str,
    dockerfile: str | None = None,
    target: str | None = None,
    labels: dict[str, str] | None = None,
    nocache: bool = False,
    pull: bool = False,
    network_mode: str | None = None,
    fix: str,
) -> None:
    """Run one build, logging its ``Step`` lines (and a line every few seconds between).

    ``context`` is an in-memory tar or a directory (docker-py tars it, honouring its
    ``.dockerignore``; ``dockerfile`` may then lie outside it).
    """
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    last_progress = time.monotonic()
    source: dict[str, Any]
    if isinstance(context, Path):
        source = {"path": str(context), "dockerfile": dockerfile}
    else:
        source = {"fileobj": io.BytesIO(context), "custom_context": True}
    try:
        stream = client.api.build(
            **source,
            tag=tag,
            target=target,
            labels=labels,
            rm=True,
            forcerm=True,
            nocache=nocache,
            pull=pull,
            network_mode=network_mode,
            decode=True,
            timeout=_API_TIMEOUT,
        )
        failed: str | None = None
        for chunk in stream:
            # After an error, read on to the end of the stream, which the engine closes
            # at once: raising mid-stream would leave the connection open.
            if failed is not None or not isinstance(chunk, dict):
                continue
            error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
            if error:
                failed = str(error).strip()
                continue
            text = chunk.get("stream")
            if not isinstance(text, str):
                continue
            for line in _ANSI.sub("", text).splitlines():
                line = line.rstrip()
                if not line:
                    continue
                tail.append(line)
                if line.startswith("Step "):
                    log(f"      {_clip(line)}")
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress >= _PROGRESS_EVERY:
                    log(f"        {_clip(line)}")
                    last_progress = time.monotonic()
        if failed is not None:
            raise ImageBuildError(_with_tail(f"building {tag} failed: {failed}\n{fix}", tail))
    except ImageBuildError:
        raise
    except (
        docker.errors.DockerException,
        requests.exceptions.RequestException,
        OSError,  # reading a build context directory
    ) as exc:
        raise ImageBuildError(
            _with_tail(f"building {tag} failed: {_one_line(exc)}\n{fix}", tail)
        ) from exc
    if not image_exists(tag, client):
        raise ImageBuildError(_with_tail(f"building {tag} produced no image\n{fix}", tail))


def _build_thin_layer(
    client: docker.DockerClient,
    log: Callable[[str], None],
    *,
    base: str = ROOTFS_IMAGE,
    tag: str = DEFAULT_IMAGE,
    kind: str = "sandbox",
) -> None:
    _docker_build(
        client,
        log,
        context=_agent_context(thin_layer_dockerfile(base, kind=kind)),
        tag=tag,
        fix="The agent layer needs no network; check that the engine has disk space.",
    )


def _agent_context(dockerfile: str) -> bytes:
    """A build context of ``dockerfile`` and the agent's files under ``e2b_tools_agent/``."""
    files = {"Dockerfile": dockerfile.encode()}
    files.update({f"{AGENT_PACKAGE}/{name}": data for name, data in agent_files().items()})
    return _tar_context(files, dirs=[AGENT_PACKAGE])
