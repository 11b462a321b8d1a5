"""Layers meet only through public names (``docs/architecture.md``).

Walks every module's imports and attribute accesses and fails on a private name used
across a layer boundary: an adapter or the tool layer reaching into ``e2b_tools._*`` or
``sbx._*``, the core importing the tool layer or an adapter, or the in-sandbox agent
importing anything but the standard library and itself.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "e2b_tools"
TOOLS = CORE / "tools"
AGENT = CORE / "agent"
ADAPTERS = ROOT / "adapters"


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _layer(path: Path) -> str:
    if ADAPTERS in path.parents:
        return "adapter"
    if AGENT in path.parents:
        return "agent"
    if TOOLS in path.parents:
        return "tools"
    return "core"


def _package(path: Path) -> list[str]:
    base = ADAPTERS if ADAPTERS in path.parents else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    return parts if parts[-1] == "__init__" and parts.pop() is not None else parts[:-1]


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = _package(path)
    package = package[: len(package) - node.level + 1]
    return ".".join([*package, *([node.module] if node.module else [])])


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def _own_private_attributes(tree: ast.AST) -> set[str]:
    """Private attribute names a module defines itself (``self._x = ...``, methods)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return {n for n in names if n.startswith("_")}


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    layer = _layer(path)
    own_package = ".".join(_package(path))
    found: list[str] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            targets = [f"{module}.{alias.name}" for alias in node.names]
        for target in targets:
            top = target.split(".")[0]
            if layer == "agent":
                own = target.startswith("e2b_tools.agent") or top == "__future__"
                if not own and top not in sys.stdlib_module_names:
                    found.append(f"the agent imports {target} (standard library only)")
            elif layer == "core":
                if target.startswith(("e2b_tools.tools", "e2b_tools_")):
                    found.append(f"the core imports {target} (a layer above it)")
            elif target.startswith(own_package + "."):
                continue  # a layer's own modules, private or not
            elif top.startswith("e2b_tools") and _private(target):
                found.append(f"{layer} imports the private {target}")
    if layer in ("tools", "adapter"):
        own = _own_private_attributes(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                and node.attr not in own
            ):
                found.append(f"line {node.lineno}: {ast.unparse(node)} (a private attribute)")
    return found


MODULES = _modules(CORE) + _modules(ADAPTERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_layers_meet_through_public_names(path: Path) -> None:
    assert _problems(path) == []


def test_the_walk_sees_a_violation(tmp_path: Path) -> None:
    bad = TOOLS / "_layers_probe.py"
    bad.write_text("from .._sandbox import AsyncSandbox\nx = sbx._channel\n")
    try:
        problems = _problems(bad)
    finally:
        bad.unlink()
    assert any("e2b_tools._sandbox" in p for p in problems), problems
    assert any("sbx._channel" in p for p in problems), problems
