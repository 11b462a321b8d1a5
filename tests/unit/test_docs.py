"""Docs that are generated from code stay in step with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_tools_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_tools_doc.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    committed = (ROOT / "docs" / "tools.md").read_text()
    assert committed == gen.render(), "docs/tools.md is stale: run python scripts/gen_tools_doc.py"
    languages = (ROOT / "docs" / "languages.md").read_text()
    assert languages == gen.render_languages(), "docs/languages.md is stale: run make docs"


def test_docs_name_only_existing_files() -> None:
    readme = (ROOT / "README.md").read_text()
    for line in readme.splitlines():
        if line.startswith("- `docs/"):
            page = line.split("`")[1]
            assert (ROOT / page).is_file(), page
