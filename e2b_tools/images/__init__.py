"""Building the sandbox images on the local Docker Engine.

Two variants, ``default`` and ``full``. The default variant is three images, all tagged
with the package version:

* :data:`BASE_IMAGE`: Debian bookworm with only ``python3``. Kept as "a plain image that
  has only python3" (the agent gets injected into such images).
* :data:`ROOTFS_IMAGE`: the base plus the sandbox packages (numpy, pandas, matplotlib,
  IPython, node, tsc, bash) and the unprivileged user ``user`` (uid/gid 1000).
* :data:`DEFAULT_IMAGE`: a thin layer on the rootfs that bakes in the agent package and
  is labelled with its hash (see :mod:`e2b_tools._bundle`).

Two ways to make the first two: ``dockerfile`` builds ``images/Dockerfile`` from
``debian:bookworm-slim`` (needs a container registry), ``offline`` bootstraps the tree
with ``debootstrap`` from the Debian package mirror and imports it (needs root and a
Debian/Ubuntu host, no registry). The thin layer is the same for both and needs no
network, so when only the agent changed just that layer is rebuilt.

The full variant adds two images on top of :data:`ROOTFS_IMAGE`:

* :data:`FULL_ROOTFS_IMAGE`: the rootfs plus :data:`FULL_PACKAGES` (Java, Go, Rust, Ruby,
  R), installed by a ``RUN apt-get`` layer from the Debian mirror (no registry needed).
* :data:`FULL_IMAGE`: the same thin agent layer on top.

Every rootfs carries a :data:`PACKAGES_LABEL` digest of its package lists, so changing a
list rebuilds the images that hold it, not just the agent layer.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import importlib.resources
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors
import requests.exceptions
from docker.models.images import Image
from docker.utils import parse_repository_tag

from e2b_tools._bundle import (
    AGENT_HASH_LABEL,
    AGENT_PACKAGE,
    BAKED_AGENT_ROOT,
    agent_files,
    agent_hash,
    baked_command,
)
from e2b_tools._bundle import agent_hash as _bundle_agent_hash
from e2b_tools._version import __version__

if sys.platform != "win32":
    import fcntl

__all__ = [
    "BASE_IMAGE",
    "DEFAULT_IMAGE",
    "FULL_IMAGE",
    "FULL_PACKAGES",
    "FULL_ROOTFS_IMAGE",
    "IMAGE_KIND_LABEL",
    "PACKAGES_LABEL",
    "ROOTFS_IMAGE",
    "SANDBOX_PACKAGES",
    "VARIANTS",
    "BuildMethod",
    "ImageBuildError",
    "Variant",
    "build_image",
    "full_layer_dockerfile",
    "image_exists",
    "image_for",
    "packages_hash",
    "thin_layer_dockerfile",
]

DEFAULT_IMAGE = f"e2b-tools/sandbox:{__version__}"
"""The sandbox image: rootfs plus the baked agent."""

BASE_IMAGE = f"e2b-tools/base:{__version__}"
"""Debian bookworm with only ``python3``."""

ROOTFS_IMAGE = f"e2b-tools/sandbox-rootfs:{__version__}"
"""The full sandbox file system, before the agent layer."""

FULL_IMAGE = f"e2b-tools/sandbox-full:{__version__}"
"""The full variant: :data:`FULL_ROOTFS_IMAGE` plus the baked agent."""

FULL_ROOTFS_IMAGE = f"e2b-tools/sandbox-full-rootfs:{__version__}"
"""The sandbox rootfs plus :data:`FULL_PACKAGES`, before the agent layer."""

IMAGE_KIND_LABEL = "e2b-tools.image"
"""Label naming which of our images an image is: ``base``, ``sandbox-rootfs``, ``sandbox``,
``sandbox-full-rootfs``, ``sandbox-full``."""

PACKAGES_LABEL = "e2b-tools.packages"
"""Label of a rootfs (inherited by its sandbox image): digest of its package lists."""

Variant = Literal["default", "full"]
VARIANTS: tuple[Variant, ...] = ("default", "full")
"""The image variants ``build_image`` and ``e2b-tools image build --variant`` know."""

VERSION_LABEL = "org.opencontainers.image.version"

BuildMethod = Literal["auto", "dockerfile", "offline"]

DEBIAN_SUITE = "bookworm"
REGISTRY_BASE_IMAGE = "debian:bookworm-slim"
"""What ``images/Dockerfile`` starts from; pulling it is also the registry probe."""

SANDBOX_PACKAGES: tuple[str, ...] = (
    "python3-numpy",
    "python3-pandas",
    "python3-matplotlib",
    "python3-ipython",
    "python-is-python3",
    "nodejs",
    "node-typescript",
    "gcc",
    "g++",
    "bash",
    "coreutils",
    "procps",
    "ca-certificates",
)
"""Debian packages of the sandbox on top of ``python3`` (kept equal to the Dockerfile's)."""

FULL_PACKAGES: tuple[str, ...] = (
    "default-jdk-headless",
    "golang-go",
    "rustc",
    "ruby",
    "r-base-core",
)
"""Debian packages the full variant adds to the sandbox rootfs (Java, Go, Rust, Ruby, R)."""

SANDBOX_USER = "user"
SANDBOX_UID = 1000
SANDBOX_HOME = "/home/user"

SANDBOX_ENV: tuple[tuple[str, str], ...] = (
    ("LANG", "C.UTF-8"),
    ("HOME", SANDBOX_HOME),
    ("MPLBACKEND", "Agg"),
    ("PYTHONUNBUFFERED", "1"),
)

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SLIM_PATHS = ("usr/share/doc", "usr/share/man", "usr/share/info", "var/lib/apt/lists")
_TAIL_LINES = 40
_PROGRESS_EVERY = 5.0
_API_TIMEOUT = 900


class ImageBuildError(RuntimeError):
    """Building an image failed; the message says what failed and how to fix it."""


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
        variant: ``"default"`` or ``"full"``.

    Returns:
        :data:`DEFAULT_IMAGE` or :data:`FULL_IMAGE`.

    Example:
        >>> image_for("full") == FULL_IMAGE
        True
    """
    if variant == "default":
        return DEFAULT_IMAGE
    if variant == "full":
        return FULL_IMAGE
    raise ValueError(f"unknown image variant {variant!r}; known: {', '.join(VARIANTS)}")


def packages_hash(variant: Variant) -> str:
    """Digest of everything apt puts into a variant's rootfs (its :data:`PACKAGES_LABEL`).

    The full variant's digest covers the default packages too, since its rootfs is built
    on the default one.

    Args:
        variant: ``"default"`` or ``"full"``.

    Returns:
        12 hex digits.
    """
    image_for(variant)  # validates
    parts: list[object] = [DEBIAN_SUITE, list(SANDBOX_PACKAGES), SANDBOX_UID, SANDBOX_HOME]
    if variant == "full":
        parts.append(list(FULL_PACKAGES))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]


def full_layer_dockerfile(base: str, *, packages: str | None = None) -> str:
    """The Dockerfile of the full variant's package layer.

    One ``RUN apt-get install`` of :data:`FULL_PACKAGES` from the Debian mirror that
    ``base``'s apt sources name; it needs the mirror, not a container registry.

    Args:
        base: The sandbox rootfs to extend.
        packages: Value of the packages label; defaults to ``packages_hash("full")``.

    Returns:
        The Dockerfile text.
    """
    digest = packages_hash("full") if packages is None else packages
    return (
        f"FROM {base}\n"
        "USER 0:0\n"
        "RUN set -eux; \\\n"
        "    apt-get -q -o Acquire::Retries=3 update; \\\n"
        "    DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Use-Pty=0 install -y \\\n"
        f"        --no-install-recommends {' '.join(FULL_PACKAGES)}; \\\n"
        "    apt-get clean; \\\n"
        "    rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/info/*\n"
        f'LABEL {IMAGE_KIND_LABEL}="sandbox-full-rootfs" {PACKAGES_LABEL}={json.dumps(digest)}\n'
    )


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


def build_image(
    *,
    variant: Variant = "default",
    method: BuildMethod = "auto",
    force: bool = False,
    client: docker.DockerClient | None = None,
    log: Callable[[str], None] = print,
) -> str:
    """Build a variant's sandbox image (and the images under it) unless it is up to date.

    An image is up to date when its agent-hash label matches the current agent and its
    packages label matches the package lists; when only the agent changed, only the thin
    agent layer is rebuilt.

    Args:
        variant: ``"default"`` (:data:`DEFAULT_IMAGE`) or ``"full"`` (:data:`FULL_IMAGE`,
            the default rootfs plus Java, Go, Rust, Ruby and R; builds the default one
            first when needed).
        method: How to make the base images: ``"dockerfile"`` builds from
            ``debian:bookworm-slim`` (needs a registry), ``"offline"`` uses debootstrap
            and the Debian mirror (needs root on Debian/Ubuntu), ``"auto"`` picks offline
            when no registry answers. The full variant's extra layer always comes from
            the Debian mirror.
        force: Rebuild every image of the variant even when up to date.
        client: Docker client; defaults to ``docker.from_env()``.
        log: Receives progress lines.

    Returns:
        The tag that was built (or found up to date).

    Raises:
        ImageBuildError: Something failed; the message says how to fix it.
        ValueError: Unknown variant or method.
    """
    tag = image_for(variant)
    if method not in ("auto", "dockerfile", "offline"):
        raise ValueError(f"unknown build method {method!r}")
    if client is None:
        client = _client_from_env()
    if not force and _stale(client, variant) is None:
        log(f"{tag} is already built (agent {agent_hash()}): skipped (force rebuilds it)")
        return tag
    with _build_lock(log):
        if not force and _stale(client, variant) is None:  # another process built it
            log(f"{tag} was built meanwhile (agent {agent_hash()}): skipped")
            return tag
        old_ids = [image.id for ref in _ALL_TAGS if (image := _get_image(client, ref)) and image.id]
        started = time.monotonic()
        if variant == "default" or force or _stale(client, "default") is not None:
            _build_default(client, method=method, force=force, log=log)
        if variant == "full":
            _build_full(client, force=force, log=log)
        _remove_superseded(client, old_ids, log)
        built = _get_image(client, tag)
        size = _human_size(int(built.attrs.get("Size", 0))) if built is not None else "?"
        log(f"{tag} built in {time.monotonic() - started:.1f}s ({size})")
    return tag


_ALL_TAGS = (FULL_IMAGE, FULL_ROOTFS_IMAGE, DEFAULT_IMAGE, ROOTFS_IMAGE, BASE_IMAGE)


def _stale(client: docker.DockerClient, variant: Variant) -> str | None:
    """Why a variant's sandbox image needs building, or None when it is up to date."""
    image = _get_image(client, image_for(variant))
    if image is None:
        return "is missing"
    have_agent = image.labels.get(AGENT_HASH_LABEL)
    if have_agent != agent_hash():
        return f"has agent {have_agent}, want {agent_hash()}"
    have_packages = image.labels.get(PACKAGES_LABEL)
    if have_packages != packages_hash(variant):
        return f"has packages {have_packages}, want {packages_hash(variant)}"
    return None


def _rootfs_current(client: docker.DockerClient, tag: str, variant: Variant) -> bool:
    image = _get_image(client, tag)
    return image is not None and image.labels.get(PACKAGES_LABEL) == packages_hash(variant)


def _build_default(
    client: docker.DockerClient,
    *,
    method: BuildMethod,
    force: bool,
    log: Callable[[str], None],
) -> None:
    if not force and _rootfs_current(client, ROOTFS_IMAGE, "default"):
        log(
            f"{DEFAULT_IMAGE} {_stale(client, 'default')}: "
            f"rebuilding only the agent layer on {ROOTFS_IMAGE}"
        )
        with _Steps(1, log)(f"agent layer -> {DEFAULT_IMAGE}"):
            _build_thin_layer(client, log, base=ROOTFS_IMAGE, tag=DEFAULT_IMAGE, kind="sandbox")
        return
    chosen = method
    if chosen == "auto":
        chosen = "dockerfile" if _registry_answers(client, log) else "offline"
    if chosen == "offline":
        _build_offline(client, log)
    else:
        _build_with_dockerfile(client, log, force=force)


def _build_full(client: docker.DockerClient, *, force: bool, log: Callable[[str], None]) -> None:
    if not force and _rootfs_current(client, FULL_ROOTFS_IMAGE, "full"):
        log(
            f"{FULL_IMAGE} {_stale(client, 'full')}: "
            f"rebuilding only the agent layer on {FULL_ROOTFS_IMAGE}"
        )
        steps = _Steps(1, log)
    else:
        steps = _Steps(2, log)
        with steps(f"full packages ({', '.join(FULL_PACKAGES)}) -> {FULL_ROOTFS_IMAGE}"):
            _docker_build(
                client,
                log,
                context=_tar_context({"Dockerfile": full_layer_dockerfile(ROOTFS_IMAGE).encode()}),
                tag=FULL_ROOTFS_IMAGE,
                labels={VERSION_LABEL: __version__},
                nocache=force,
                network_mode="host",
                fix=(
                    f"The full variant installs {', '.join(FULL_PACKAGES)} from the Debian "
                    "mirror named in the rootfs' apt sources; check that this host reaches it."
                ),
            )
    with steps(f"agent layer -> {FULL_IMAGE}"):
        _build_thin_layer(client, log, base=FULL_ROOTFS_IMAGE, tag=FULL_IMAGE, kind="sandbox-full")


# --------------------------------------------------------------------------- helpers


if sys.platform == "win32":

    @contextlib.contextmanager
    def _build_lock(log: Callable[[str], None]) -> Iterator[None]:
        """No cross-process lock on Windows."""
        yield

else:

    @contextlib.contextmanager
    def _build_lock(log: Callable[[str], None]) -> Iterator[None]:
        """Serialise builds of this host's processes (e.g. parallel test workers)."""
        path = Path(tempfile.gettempdir()) / "e2b-tools-image-build.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:
            yield  # no lock file possible: build unserialised
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"waiting for another image build to finish (lock {path}) ...")
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


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


def _remove_superseded(
    client: docker.DockerClient, old_ids: list[str], log: Callable[[str], None]
) -> None:
    """Drop the images a rebuild replaced, unless something still uses them."""
    current = {image.id for ref in _ALL_TAGS if (image := _get_image(client, ref))}
    for image_id in old_ids:
        if image_id in current:
            continue
        try:
            client.images.remove(image_id)
            log(f"removed superseded image {image_id[:19]}")
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            log(f"kept superseded image {image_id[:19]} ({_one_line(exc, 120)})")


# ------------------------------------------------------------------- registry probe


def _registry_answers(client: docker.DockerClient, log: Callable[[str], None]) -> bool:
    log(f"checking for a container registry (pulling {REGISTRY_BASE_IMAGE}) ...")
    repo, tag = parse_repository_tag(REGISTRY_BASE_IMAGE)
    try:
        client.images.pull(repo, tag=tag)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        log(f"      no registry ({_one_line(exc, 140)}): building offline with debootstrap")
        return False
    log("      registry answers: building from images/Dockerfile")
    return True


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
    context: bytes,
    tag: str,
    target: str | None = None,
    labels: dict[str, str] | None = None,
    nocache: bool = False,
    pull: bool = False,
    network_mode: str | None = None,
    fix: str,
) -> None:
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    last_progress = time.monotonic()
    try:
        stream = client.api.build(
            fileobj=io.BytesIO(context),
            custom_context=True,
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
        for chunk in stream:
            if not isinstance(chunk, dict):
                continue
            error = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message")
            if error:
                raise ImageBuildError(
                    _with_tail(f"building {tag} failed: {str(error).strip()}\n{fix}", tail)
                )
            text = chunk.get("stream")
            if not isinstance(text, str):
                continue
            for line in text.splitlines():
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
    except ImageBuildError:
        raise
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
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
    files = {"Dockerfile": thin_layer_dockerfile(base, kind=kind).encode()}
    files.update({f"{AGENT_PACKAGE}/{name}": data for name, data in agent_files().items()})
    _docker_build(
        client,
        log,
        context=_tar_context(files, dirs=[AGENT_PACKAGE]),
        tag=tag,
        fix="The agent layer needs no network; check that the engine has disk space.",
    )


# -------------------------------------------------------------- Dockerfile method


def _packaged_dockerfile() -> bytes:
    return importlib.resources.files(__name__).joinpath("Dockerfile").read_bytes()


def _build_with_dockerfile(
    client: docker.DockerClient, log: Callable[[str], None], *, force: bool
) -> None:
    context = _tar_context({"Dockerfile": _packaged_dockerfile()})
    fix = (
        "The Dockerfile build needs the registry (for debian:bookworm-slim) and the Debian "
        "mirror; without a registry use --method offline."
    )
    steps = _Steps(3, log)
    for title, target, tag, kind in (
        ("base image (debian:bookworm-slim + python3)", "base", BASE_IMAGE, "base"),
        ("sandbox packages and user", "rootfs", ROOTFS_IMAGE, "sandbox-rootfs"),
    ):
        with steps(f"{title} -> {tag}"):
            _docker_build(
                client,
                log,
                context=context,
                tag=tag,
                target=target,
                labels={
                    IMAGE_KIND_LABEL: kind,
                    VERSION_LABEL: __version__,
                    **({PACKAGES_LABEL: packages_hash("default")} if target == "rootfs" else {}),
                },
                nocache=force,
                pull=force and target == "base",
                fix=fix,
            )
    with steps(f"agent layer -> {DEFAULT_IMAGE}"):
        _build_thin_layer(client, log)


# ----------------------------------------------------------------- offline method


def _mirror() -> str:
    return os.environ.get("E2B_TOOLS_DEBIAN_MIRROR", "http://deb.debian.org/debian").rstrip("/")


def _security_mirror() -> str:
    default = "http://deb.debian.org/debian-security"
    return os.environ.get("E2B_TOOLS_DEBIAN_SECURITY_MIRROR", default).rstrip("/")


def _build_offline(client: docker.DockerClient, log: Callable[[str], None]) -> None:
    steps = _Steps(6, log)
    with steps("check root and debootstrap"):
        debootstrap = _ensure_debootstrap(log)
    workdir = Path(tempfile.mkdtemp(prefix="e2b-tools-rootfs-", dir="/var/tmp"))
    root = workdir / "rootfs"
    try:
        with steps(f"debootstrap {DEBIAN_SUITE} (minbase + python3) from {_mirror()}"):
            _run(
                [
                    debootstrap,
                    "--variant=minbase",
                    "--include=python3",
                    DEBIAN_SUITE,
                    str(root),
                    _mirror(),
                ],
                log,
                what="debootstrap",
                fix=f"Check that {_mirror()} is reachable (or set E2B_TOOLS_DEBIAN_MIRROR).",
            )
            root.chmod(0o755)
        with steps(f"import {BASE_IMAGE}"):
            _import_tree(
                client,
                root,
                BASE_IMAGE,
                log,
                kind="base",
                cmd=["python3"],
                exclude=[f"./{path}/*" for path in (*_SLIM_PATHS, "var/cache/apt")],
            )
        with steps("install sandbox packages and user (apt-get in chroot)"):
            _provision(root, log)
        with steps(f"slim the tree and import {ROOTFS_IMAGE}"):
            for path in _SLIM_PATHS:
                _empty_dir(root / path)
            _import_tree(
                client,
                root,
                ROOTFS_IMAGE,
                log,
                kind="sandbox-rootfs",
                cmd=["bash"],
                labels={PACKAGES_LABEL: packages_hash("default")},
            )
    finally:
        _remove_tree(workdir, log)
    with steps(f"agent layer -> {DEFAULT_IMAGE}"):
        _build_thin_layer(client, log)


def _is_debian_like() -> bool:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return False
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip("\"'")
    ids = {fields.get("ID", ""), *fields.get("ID_LIKE", "").split()}
    return bool(ids & {"debian", "ubuntu"})


def _find_debootstrap() -> str | None:
    found = shutil.which("debootstrap")
    if found:
        return found
    for candidate in ("/usr/sbin/debootstrap", "/sbin/debootstrap"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _ensure_debootstrap(log: Callable[[str], None]) -> str:
    hint = (
        "Build on a host that can reach a container registry (--method dockerfile), "
        "or run as root on Debian/Ubuntu with debootstrap installed."
    )
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise ImageBuildError(f"the offline build needs root (debootstrap, chroot). {hint}")
    found = _find_debootstrap()
    if found:
        log(f"      using {found}")
        return found
    if not (_is_debian_like() and shutil.which("apt-get")):
        raise ImageBuildError(f"debootstrap is not installed and this host has no apt. {hint}")
    log("      debootstrap is missing: installing it with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    fix = f"Install debootstrap by hand (apt-get install debootstrap). {hint}"
    _run(["apt-get", "update", "-q"], log, what="apt-get update", fix=fix, env=env)
    _run(
        [
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "debootstrap",
            "debian-archive-keyring",
        ],
        log,
        what="apt-get install debootstrap",
        fix=fix,
        env=env,
    )
    found = _find_debootstrap()
    if not found:
        raise ImageBuildError(f"debootstrap is still missing after apt-get install. {hint}")
    return found


def _run(
    cmd: Sequence[str],
    log: Callable[[str], None],
    *,
    what: str,
    fix: str,
    env: dict[str, str] | None = None,
) -> None:
    """Run a command, log a condensed progress line every few seconds, raise on failure."""
    log(f"      $ {_clip(shlex.join(cmd), 150)}")
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    count = [0]
    try:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        raise ImageBuildError(f"{what}: cannot run {cmd[0]} ({exc}). {fix}") from exc

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if line:
                tail.append(line)
                count[0] += 1

    reader = threading.Thread(target=read, name=f"e2b-tools {what}", daemon=True)
    reader.start()
    started = last = time.monotonic()
    try:
        while True:
            try:
                returncode = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if now - last >= _PROGRESS_EVERY:
                last = now
                latest = tail[-1] if tail else ""
                log(f"      {now - started:4.0f}s {count[0]:5d} lines | {_clip(latest, 90)}")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        reader.join(timeout=5)
    if returncode != 0:
        raise ImageBuildError(_with_tail(f"{what} failed (exit status {returncode}). {fix}", tail))


def _chroot_env() -> dict[str, str]:
    return {
        "PATH": _PATH,
        "HOME": "/root",
        "LC_ALL": "C",
        "DEBIAN_FRONTEND": "noninteractive",
        "DEBCONF_NONINTERACTIVE_SEEN": "true",
    }


def _provision(root: Path, log: Callable[[str], None]) -> None:
    """apt-get the sandbox packages into the tree and add the sandbox user."""
    (root / "etc/apt/sources.list").write_text(
        f"deb {_mirror()} {DEBIAN_SUITE} main\n"
        f"deb {_mirror()} {DEBIAN_SUITE}-updates main\n"
        f"deb {_security_mirror()} {DEBIAN_SUITE}-security main\n"
    )
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# no daemons may start during the image build\nexit 101\n")
    policy.chmod(0o755)
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    with contextlib.suppress(OSError):
        shutil.copyfile("/etc/resolv.conf", resolv)

    proc_dir = root / "proc"
    proc_dir.mkdir(exist_ok=True)
    fix_net = (
        f"Check that {_mirror()} and {_security_mirror()} are reachable from this host "
        "(or set E2B_TOOLS_DEBIAN_MIRROR / E2B_TOOLS_DEBIAN_SECURITY_MIRROR)."
    )
    apt = ["apt-get", "-q", "-o", "Dpkg::Use-Pty=0", "-o", "Acquire::Retries=3"]

    def chroot(args: list[str], what: str, fix: str = fix_net) -> None:
        _run(["chroot", str(root), *args], log, what=what, fix=fix, env=_chroot_env())

    mounted = False
    try:
        _run(
            ["mount", "-t", "proc", "proc", str(proc_dir)],
            log,
            what="mount /proc in the tree",
            fix="The offline build must run as root where mount is allowed.",
        )
        mounted = True
        chroot([*apt, "update"], "apt-get update")
        chroot([*apt, "-y", "upgrade"], "apt-get upgrade")
        chroot(
            [*apt, "install", "-y", "--no-install-recommends", *SANDBOX_PACKAGES],
            "apt-get install of the sandbox packages",
        )
        chroot([*apt, "clean"], "apt-get clean")
        uid = str(SANDBOX_UID)
        chroot(["groupadd", "--gid", uid, SANDBOX_USER], "groupadd", fix="")
        chroot(
            [
                "useradd",
                "--uid",
                uid,
                "--gid",
                uid,
                "--home-dir",
                SANDBOX_HOME,
                "--create-home",
                "--shell",
                "/bin/bash",
                SANDBOX_USER,
            ],
            "useradd",
            fix="",
        )
        chroot(["chown", "-R", f"{uid}:{uid}", SANDBOX_HOME], "chown home", fix="")
    finally:
        if mounted:
            _umount(proc_dir, log)
        policy.unlink(missing_ok=True)
        resolv.unlink(missing_ok=True)


def _umount(path: Path, log: Callable[[str], None]) -> None:
    for args in (["umount", str(path)], ["umount", "-l", str(path)]):
        if not os.path.ismount(path):
            return
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log(f"      {shlex.join(args)} failed: {_one_line(result.stderr, 160)}")


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) > 1:
            point = fields[1].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _remove_tree(workdir: Path, log: Callable[[str], None]) -> None:
    """Delete the temporary tree, never while anything is still mounted inside it."""
    for point in _mounts_under(workdir):
        _umount(Path(point), log)
    left = _mounts_under(workdir)
    if left:
        log(f"      NOT removing {workdir}: still mounted: {', '.join(left)}")
        return
    started = time.monotonic()
    try:
        shutil.rmtree(workdir)
    except OSError as exc:
        log(f"      could not remove {workdir}: {_one_line(exc, 160)}")
        return
    log(f"      removed {workdir} in {time.monotonic() - started:.1f}s")


def _empty_dir(path: Path) -> None:
    if not path.is_dir() or path.is_symlink():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _import_tree(
    client: docker.DockerClient,
    root: Path,
    tag: str,
    log: Callable[[str], None],
    *,
    kind: str,
    cmd: list[str],
    exclude: Sequence[str] = (),
    labels: dict[str, str] | None = None,
) -> None:
    """Stream ``tar`` of the tree into the engine's import API, a MiB at a time."""
    all_labels = {IMAGE_KIND_LABEL: kind, VERSION_LABEL: __version__, **(labels or {})}
    changes = [
        f"ENV PATH={_PATH}",
        "ENV LANG=C.UTF-8",
        "LABEL " + " ".join(f"{key}={value}" for key, value in all_labels.items()),
        f"CMD {json.dumps(cmd)}",
    ]
    excludes = [f"--exclude={pattern}" for pattern in ("./proc/*", "./sys/*", "./dev/*", *exclude)]
    args = ["tar", "-C", str(root), "--numeric-owner", "-cf", "-", *excludes, "."]
    repository, image_tag = parse_repository_tag(tag)
    fix = "Check the engine's disk space (docker system df) and the output above."
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
        )
        sent = [0]

        def chunks() -> Iterator[bytes]:
            assert proc.stdout is not None
            last = time.monotonic()
            while data := proc.stdout.read(1 << 20):
                sent[0] += len(data)
                if time.monotonic() - last >= _PROGRESS_EVERY:
                    last = time.monotonic()
                    log(f"      {sent[0] / 1e6:6.0f} MB sent to the engine")
                yield data

        try:
            with _long_api_timeout(client):
                result: Any = client.api.import_image_from_stream(
                    chunks(), repository=repository, tag=image_tag, changes=changes
                )
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise ImageBuildError(f"importing {tag} failed: {_one_line(exc)}. {fix}") from exc
        finally:
            if proc.poll() is None:
                proc.kill()
            returncode = proc.wait()
        errors.seek(0)
        tar_errors = errors.read().decode(errors="replace").strip().splitlines()[-_TAIL_LINES:]
    if returncode != 0:
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(tag)
        raise ImageBuildError(
            _with_tail(
                f"tar of {root} failed (exit status {returncode}) while importing {tag}", tar_errors
            )
        )
    for line in str(result).splitlines():
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict) and message.get("error"):
                raise ImageBuildError(f"importing {tag} failed: {message['error']}. {fix}")
    if not image_exists(tag, client):
        raise ImageBuildError(
            f"importing {tag} produced no image ({_clip(str(result), 200)}). {fix}"
        )
    log(f"      imported {sent[0] / 1e6:.0f} MB as {tag}")
