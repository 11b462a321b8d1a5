"""Tool descriptions that say what is true of the sandbox a toolkit uses.

A description is a template filled with facts of the sandbox's configuration: its
workspace, whether it has a network, and what its image is known to carry. A model
is never told "no network" for a sandbox that has one, or "pandas is installed" for an
image nobody described.
"""

from __future__ import annotations

from .. import SandboxConfig
from ..images.names import DEFAULT_IMAGE, FULL_IMAGE


def facts(config: SandboxConfig) -> dict[str, str]:
    """The placeholders of the tool templates: ``workspace``, ``network``, ``packages``."""
    if config.image in (None, DEFAULT_IMAGE):
        packages = "numpy, pandas and matplotlib are installed"
    elif config.image == FULL_IMAGE:
        packages = (
            "numpy, pandas and matplotlib are installed, and Java, Go, Rust, Ruby and R "
            "programs run too"
        )
    else:
        packages = (
            f"the image is {config.image}: check what is installed before relying on a package"
        )
    return {
        "workspace": config.workdir,
        "network": config.describe_network(),
        "packages": packages,
    }
