"""The ``dockerfile`` build method: ``images/Dockerfile`` from a container registry.

Also the registry probe that the ``auto`` method uses to choose between this method and
:mod:`.offline`.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable

import docker
import docker.errors
import requests.exceptions
from docker.utils import parse_repository_tag

from e2b_tools._version import __version__

from .common import _build_thin_layer, _docker_build, _one_line, _Steps, _tar_context, packages_hash
from .names import (
    BASE_IMAGE,
    DEFAULT_IMAGE,
    IMAGE_KIND_LABEL,
    PACKAGES_LABEL,
    REGISTRY_BASE_IMAGE,
    ROOTFS_IMAGE,
    VERSION_LABEL,
)

_PACKAGE = __name__.rpartition(".")[0]
"""``e2b_tools.images``: the package whose data holds ``Dockerfile``."""


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


def _packaged_dockerfile() -> bytes:
    return importlib.resources.files(_PACKAGE).joinpath("Dockerfile").read_bytes()


def _build_with_dockerfile(
    client: docker.DockerClient, log: Callable[[str], None], *, force: bool, base_only: bool = False
) -> None:
    """Build the base, rootfs and agent layer (``base_only``: just the base image)."""
    context = _tar_context({"Dockerfile": _packaged_dockerfile()})
    fix = (
        "The Dockerfile build needs the registry (for debian:bookworm-slim) and the Debian "
        "mirror; without a registry use --method offline."
    )
    stages = [
        ("base image (debian:bookworm-slim + python3)", "base", BASE_IMAGE, "base"),
        ("sandbox packages and user", "rootfs", ROOTFS_IMAGE, "sandbox-rootfs"),
    ]
    if base_only:
        del stages[1:]
    steps = _Steps(len(stages) + (0 if base_only else 1), log)
    for title, target, tag, kind in stages:
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
    if base_only:
        return
    with steps(f"agent layer -> {DEFAULT_IMAGE}"):
        _build_thin_layer(client, log)
