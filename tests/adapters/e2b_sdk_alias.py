"""E2B's SDK module names, bound to e2b-tools for the length of a test.

Integrations written for E2B import its SDK themselves (``from e2b import Sandbox``,
``from e2b_code_interpreter import Sandbox``) instead of taking a sandbox object.
``alias_e2b_sdk`` registers both names in ``sys.modules`` as plain aliases of
``e2b_tools``' public API (its ``__all__``, which carries E2B's names), so the
integration's own code creates and drives sandboxes on the local Docker Engine and can
never reach E2B's cloud. Nothing is re-implemented or patched here: a name E2B has and
e2b-tools lacks stays missing, and the integration fails as it would on the library.
"""

from __future__ import annotations

import sys
from types import ModuleType

import pytest

import e2b_tools

E2B_SDK_MODULES = ("e2b", "e2b_code_interpreter")


def e2b_tools_as(name: str) -> ModuleType:
    """A module called ``name`` whose attributes are e2b_tools' public names."""
    module = ModuleType(name, f"{name}: e2b_tools' public API under E2B's module name")
    module.__dict__.update({attr: getattr(e2b_tools, attr) for attr in e2b_tools.__all__})
    return module


def alias_e2b_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bind ``e2b`` and ``e2b_code_interpreter`` to e2b_tools until the test ends.

    Submodules of a real E2B SDK, had one been imported, are hidden as well, so no import
    inside the test can load E2B's own client.
    """
    for loaded in list(sys.modules):
        if loaded.partition(".")[0] in E2B_SDK_MODULES:
            monkeypatch.delitem(sys.modules, loaded)
    for name in E2B_SDK_MODULES:
        monkeypatch.setitem(sys.modules, name, e2b_tools_as(name))
