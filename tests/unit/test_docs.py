"""Docs that are generated from code stay in step with it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    """Load scripts/<name> (registered in sys.modules, as dataclasses need)."""
    module_name = f"_script_{Path(name).stem}"
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "scripts" / name)
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = gen
    spec.loader.exec_module(gen)
    return gen


def test_tools_reference_is_current() -> None:
    gen = _script("gen_tools_doc.py")
    committed = (ROOT / "docs" / "tools.md").read_text()
    assert committed == gen.render(), "docs/tools.md is stale: run python scripts/gen_tools_doc.py"
    languages = (ROOT / "docs" / "languages.md").read_text()
    assert languages == gen.render_languages(), "docs/languages.md is stale: run make docs"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.get_overloads is 3.11+")
def test_sync_api_is_current() -> None:
    gen = _script("gen_sync.py")
    committed = (ROOT / "e2b_tools" / "_sync.py").read_text()
    assert committed == gen.render(), "e2b_tools/_sync.py is stale: run make sync"


def test_docs_name_only_existing_files() -> None:
    readme = (ROOT / "README.md").read_text()
    for line in readme.splitlines():
        if line.startswith("- `docs/"):
            page = line.split("`")[1]
            assert (ROOT / page).is_file(), page
