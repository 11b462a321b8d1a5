"""Names of the sandbox images: tags, labels, variants and package lists.

Data only, and cheap to import (no ``docker``): the runtime reads the tags from here, the
builders in the sibling modules read everything.

Three variants, ``default``, ``full`` and ``slim``, plus the user's own images
(:data:`CUSTOM_REPOSITORY`). Every image is tagged with the package version. The default
variant is three images:

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

The slim variant is one image on top of :data:`BASE_IMAGE`, built without network in
seconds once the base exists (either method makes the base; ``--variant slim`` makes
only the base when it is missing):

* :data:`SLIM_IMAGE`: the base plus the user ``user`` and a ``python`` link, then the same
  thin agent layer. Python and bash only: no Node, compilers, pip, git or curl.

Every rootfs carries a :data:`PACKAGES_LABEL` digest of its package lists, so changing a
list rebuilds the images that hold it, not just the agent layer. The slim image also
carries :data:`BASE_ID_LABEL`, so a rebuilt base rebuilds it.

Custom images (``e2b-tools image build --dockerfile``) start ``FROM`` one of ours and
inherit its labels, the agent-hash label included, so they keep the baked agent; they
are labelled ``e2b-tools.image=custom`` and tagged ``e2b-tools/custom:<name>`` unless
the user picks a tag.
"""

from __future__ import annotations

from typing import Literal

from e2b_tools._version import __version__

__all__ = [
    "BASE_ID_LABEL",
    "BASE_IMAGE",
    "BASE_PACKAGES",
    "CUSTOM_REPOSITORY",
    "DEBIAN_SUITE",
    "DEFAULT_IMAGE",
    "FULL_IMAGE",
    "FULL_PACKAGES",
    "FULL_ROOTFS_IMAGE",
    "IMAGE_KIND_LABEL",
    "PACKAGES_LABEL",
    "REGISTRY_BASE_IMAGE",
    "ROOTFS_IMAGE",
    "SANDBOX_ENV",
    "SANDBOX_HOME",
    "SANDBOX_PACKAGES",
    "SANDBOX_UID",
    "SANDBOX_USER",
    "SLIM_IMAGE",
    "VARIANTS",
    "VERSION_LABEL",
    "BuildMethod",
    "Variant",
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

SLIM_IMAGE = f"e2b-tools/sandbox-slim:{__version__}"
"""The slim variant: :data:`BASE_IMAGE` plus the sandbox user and the baked agent."""

CUSTOM_REPOSITORY = "e2b-tools/custom"
"""Repository of custom images built without ``--tag``: ``e2b-tools/custom:<name>``."""

IMAGE_KIND_LABEL = "e2b-tools.image"
"""Label naming which of our images an image is: ``base``, ``sandbox-rootfs``, ``sandbox``,
``sandbox-full-rootfs``, ``sandbox-full``, ``sandbox-slim`` or ``custom``."""

BASE_ID_LABEL = "e2b-tools.base-id"
"""Label of the slim image: the id of the :data:`BASE_IMAGE` it was built on."""

PACKAGES_LABEL = "e2b-tools.packages"
"""Label of a rootfs (inherited by its sandbox image): digest of its package lists."""

Variant = Literal["default", "full", "slim"]
VARIANTS: tuple[Variant, ...] = ("default", "full", "slim")
"""The image variants ``build_image`` and ``e2b-tools image build --variant`` know."""

VERSION_LABEL = "org.opencontainers.image.version"

BuildMethod = Literal["auto", "dockerfile", "offline"]

DEBIAN_SUITE = "bookworm"
REGISTRY_BASE_IMAGE = "debian:bookworm-slim"
"""What ``images/Dockerfile`` starts from; pulling it is also the registry probe."""

BASE_PACKAGES: tuple[str, ...] = ("python3",)
"""Debian packages the base image adds to debootstrap's minbase (all the slim image has)."""

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
    # What agents reach for: installing packages, fetching, version control.
    "python3-pip",
    "npm",
    "git",
    "curl",
    "wget",
    "unzip",
    # E2B's preinstalled Python libraries that Debian packages (docs/images.md).
    "python3-requests",
    "python3-aiohttp",
    "python3-bs4",
    "python3-gensim",
    "python3-imageio",
    "python3-joblib",
    "python3-nltk",
    "python3-opencv",
    "python3-openpyxl",
    "python3-plotly",
    "python3-pytest",
    "python3-docx",
    "python3-tz",
    "python3-skimage",
    "python3-sklearn",
    "python3-scipy",
    "python3-seaborn",
    "python3-soundfile",
    "python3-tornado",
    "python3-urllib3",
    "python3-xarray",
    "python3-xlrd",
    "python3-sympy",
    "python3-pydub",
    "python3-yaml",
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
    # pip and npm install for the user, into the workspace (the root is read-only).
    ("PIP_USER", "1"),
    ("PIP_BREAK_SYSTEM_PACKAGES", "1"),
    ("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    ("NPM_CONFIG_PREFIX", f"{SANDBOX_HOME}/.npm-global"),
    (
        "PATH",
        f"{SANDBOX_HOME}/.local/bin:{SANDBOX_HOME}/.npm-global/bin:"
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ),
)
