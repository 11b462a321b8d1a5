"""Building the sandbox images on the local Docker Engine.

This package re-exports the public names of its submodules:

* :mod:`.names`: tags, labels, variants and package lists (data only, no ``docker``
  import); its docstring describes the images.
* :mod:`.common`: :class:`ImageBuildError`, :func:`image_exists`, :func:`image_for`,
  :func:`packages_hash`, :func:`thin_layer_dockerfile`, :func:`slim_dockerfile` and the
  helpers both build paths use.
* :mod:`.build`: :func:`build_image` and :func:`full_layer_dockerfile` (the full variant).
* :mod:`.custom`: :func:`build_custom_image` (the user's Dockerfile) and
  :func:`custom_image_tag`.
* :mod:`.dockerfile`: the ``dockerfile`` method (``images/Dockerfile``, needs a registry).
* :mod:`.offline`: the ``offline`` method (debootstrap, ``docker import``, no registry).

To change a name for a test, patch it where it lives (``e2b_tools.images.names``).
"""

from __future__ import annotations

from .build import build_image, full_layer_dockerfile
from .common import (
    ImageBuildError,
    image_exists,
    image_for,
    packages_hash,
    slim_dockerfile,
    thin_layer_dockerfile,
)
from .custom import build_custom_image, custom_image_tag
from .dockerfile import _packaged_dockerfile as _packaged_dockerfile  # used by tests
from .names import (
    BASE_ID_LABEL,
    BASE_IMAGE,
    BASE_PACKAGES,
    CUSTOM_REPOSITORY,
    DEFAULT_IMAGE,
    FULL_IMAGE,
    FULL_PACKAGES,
    FULL_ROOTFS_IMAGE,
    IMAGE_KIND_LABEL,
    PACKAGES_LABEL,
    ROOTFS_IMAGE,
    SANDBOX_PACKAGES,
    SLIM_IMAGE,
    VARIANTS,
    BuildMethod,
    Variant,
)

# Names of this module before the split that ``*`` never exported: kept importable.
from .names import DEBIAN_SUITE as DEBIAN_SUITE
from .names import REGISTRY_BASE_IMAGE as REGISTRY_BASE_IMAGE
from .names import SANDBOX_ENV as SANDBOX_ENV
from .names import SANDBOX_HOME as SANDBOX_HOME
from .names import SANDBOX_UID as SANDBOX_UID
from .names import SANDBOX_USER as SANDBOX_USER
from .names import VERSION_LABEL as VERSION_LABEL

__all__ = [
    "BASE_ID_LABEL",
    "BASE_IMAGE",
    "BASE_PACKAGES",
    "CUSTOM_REPOSITORY",
    "DEFAULT_IMAGE",
    "FULL_IMAGE",
    "FULL_PACKAGES",
    "FULL_ROOTFS_IMAGE",
    "IMAGE_KIND_LABEL",
    "PACKAGES_LABEL",
    "ROOTFS_IMAGE",
    "SANDBOX_PACKAGES",
    "SLIM_IMAGE",
    "VARIANTS",
    "BuildMethod",
    "ImageBuildError",
    "Variant",
    "build_custom_image",
    "build_image",
    "custom_image_tag",
    "full_layer_dockerfile",
    "image_exists",
    "image_for",
    "packages_hash",
    "slim_dockerfile",
    "thin_layer_dockerfile",
]
