"""The suite's own layout: pytest (without packages) cannot collect two test modules
with the same file name, and a clean clone then fails before running anything."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


def test_test_module_names_are_unique() -> None:
    root = Path(__file__).resolve().parents[1]
    names = Counter(
        p.name
        for p in root.rglob("test_*.py")
        # E2B's vendored tests keep upstream's names: they run in a pytest of their own.
        if "e2b_upstream" not in p.relative_to(root).parts
    )
    assert [name for name, count in names.items() if count > 1] == []
