"""``build_image``: decide what is stale and build a variant's images in order.

The base and rootfs images of the default variant come from :mod:`.dockerfile` or
:mod:`.offline`; the full variant's package layer (:func:`full_layer_dockerfile`), the
slim image (:func:`slim_dockerfile`, on the base alone) and the agent layers are built
here on top of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors

from e2b_tools._bundle import AGENT_HASH_LABEL, agent_hash
from e2b_tools._version import __version__

from .common import (
    ImageBuildError,
    _agent_context,
    _build_thin_layer,
    _client_from_env,
    _docker_build,
    _get_image,
    _human_size,
    _one_line,
    _Steps,
    _tar_context,
    image_for,
    packages_hash,
    slim_dockerfile,
)
from .dockerfile import _build_with_dockerfile, _registry_answers
from .names import (
    BASE_ID_LABEL,
    BASE_IMAGE,
    DEFAULT_IMAGE,
    FULL_IMAGE,
    FULL_PACKAGES,
    FULL_ROOTFS_IMAGE,
    IMAGE_KIND_LABEL,
    PACKAGES_LABEL,
    ROOTFS_IMAGE,
    SLIM_IMAGE,
    VERSION_LABEL,
    BuildMethod,
    Variant,
)
from .offline import _build_offline

if sys.platform != "win32":
    import fcntl

__all__ = ["build_image", "full_layer_dockerfile"]


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
        variant: ``"default"`` (:data:`DEFAULT_IMAGE`), ``"full"`` (:data:`FULL_IMAGE`,
            the default rootfs plus Java, Go, Rust, Ruby and R; builds the default one
            first when needed) or ``"slim"`` (:data:`SLIM_IMAGE`, the base image with
            python3 and bash only; builds just the base first when it is missing).
        method: How to make the base images: ``"dockerfile"`` builds from
            ``debian:bookworm-slim`` (needs a registry), ``"offline"`` uses debootstrap
            and the Debian mirror (needs root on Debian/Ubuntu), ``"auto"`` picks offline
            when no registry answers. The full variant's extra layer always comes from
            the Debian mirror.
        force: Rebuild every image of the variant even when up to date (for ``"slim"``
            the base image too).
        client: Docker client; defaults to ``docker.from_env()``.
        log: Receives progress lines.

    Returns:
        The tag that was built (or found up to date).

    Raises:
        ImageBuildError: Something failed; the message says how to fix it.
        ValueError: Unknown variant or method.

    Example:
        >>> build_image(variant="slim", log=lambda line: None)  # doctest: +SKIP
        'e2b-tools/sandbox-slim:0.1.0'
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
        if variant == "slim":
            _build_slim(client, method=method, force=force, log=log)
        elif variant == "default" or force or _stale(client, "default") is not None:
            _build_default(client, method=method, force=force, log=log)
        if variant == "full":
            _build_full(client, force=force, log=log)
        _remove_superseded(client, old_ids, log)
        built = _get_image(client, tag)
        size = _human_size(int(built.attrs.get("Size", 0))) if built is not None else "?"
        log(f"{tag} built in {time.monotonic() - started:.1f}s ({size})")
    return tag


_ALL_TAGS = (SLIM_IMAGE, FULL_IMAGE, FULL_ROOTFS_IMAGE, DEFAULT_IMAGE, ROOTFS_IMAGE, BASE_IMAGE)


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
    if variant == "slim":
        base = _get_image(client, BASE_IMAGE)
        if base is None:
            return f"has no {BASE_IMAGE} under it"
        if image.labels.get(BASE_ID_LABEL) != base.id:
            return f"was built on another {BASE_IMAGE}"
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


def _build_slim(
    client: docker.DockerClient,
    *,
    method: BuildMethod,
    force: bool,
    log: Callable[[str], None],
) -> None:
    if force or _get_image(client, BASE_IMAGE) is None:
        chosen = method
        if chosen == "auto":
            chosen = "dockerfile" if _registry_answers(client, log) else "offline"
        log(f"building only the base image {BASE_IMAGE} ({chosen}) for {SLIM_IMAGE}")
        if chosen == "offline":
            _build_offline(client, log, base_only=True)
        else:
            _build_with_dockerfile(client, log, force=force, base_only=True)
    else:
        log(f"{SLIM_IMAGE} {_stale(client, 'slim')}: building it on {BASE_IMAGE}")
    base = _get_image(client, BASE_IMAGE)
    if base is None or not base.id:  # pragma: no cover - the builders check their result
        raise ImageBuildError(f"{BASE_IMAGE} is missing after building it")
    with _Steps(1, log)(f"sandbox user and agent layer -> {SLIM_IMAGE}"):
        _docker_build(
            client,
            log,
            context=_agent_context(slim_dockerfile(BASE_IMAGE)),
            tag=SLIM_IMAGE,
            labels={BASE_ID_LABEL: base.id},
            nocache=force,
            network_mode="none",
            fix=(
                f"The slim layer needs no network, only useradd from {BASE_IMAGE}; check "
                "the output above and that the engine has disk space."
            ),
        )


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


# ------------------------------------------------------------------ lock and cleanup


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
