"""Ours (not vendored; see NOTICE): E2B's own SDK tests, run unchanged against
``e2b-tools serve`` by ``tests/engine/test_serve_upstream.py``.

- The project's own pytest run (no ``e2b`` in its venv) collects nothing here.
- ``expected.txt`` names each test that cannot pass on ``e2b-tools serve`` and why:
  ``xfail`` lines become ``xfail(strict=True)`` (a fixed feature shows up as XPASS,
  which fails the run); ``xfail-out`` the same, for features outside "commands, files,
  code interpreter basics" (they count as not passing, as every other line does);
  ``flaky`` a race that fails only sometimes (``xfail(strict=False)``); ``skip`` lines
  are tests that cannot run at all.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "expected.txt"
KINDS = ("xfail", "xfail-out", "flaky", "skip")

if importlib.util.find_spec("e2b") is None:
    # The vendored files import the SDK; only the side venv's run collects them.
    collect_ignore_glob = ["*"]


def read_expected(path: Path = EXPECTED) -> dict[str, tuple[str, str]]:
    """``node id -> (kind, reason)`` from ``expected.txt``: lines of
    ``<kind> <node id> | <reason>`` (kind: one of :data:`KINDS`);
    ``#`` starts a comment line."""
    expected: dict[str, tuple[str, str]] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head, sep, reason = line.partition(" | ")
        kind, _, node = head.partition(" ")
        if not sep or kind not in KINDS or not node.strip() or not reason.strip():
            raise ValueError(f"{path.name}:{number}: want '<kind> <node id> | <reason>'")
        expected[node.strip()] = (kind, reason.strip())
    return expected


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests ``expected.txt`` names; a name that matches no test is an error,
    so the list cannot rot when upstream renames a test. Only in the run rooted here
    (this conftest is also loaded, and collects nothing, in the project's own run)."""
    if config.rootpath.resolve() != HERE:
        return
    expected = read_expected()
    seen = set()
    for item in items:
        entry = expected.get(item.nodeid)
        if entry is None:
            continue
        seen.add(item.nodeid)
        kind, reason = entry
        if kind in ("xfail", "xfail-out", "flaky"):
            item.add_marker(pytest.mark.xfail(reason=reason, strict=kind != "flaky"))
        else:
            item.add_marker(pytest.mark.skip(reason=reason))
    roots = [
        Path(config.invocation_params.dir, arg).resolve()
        for arg in map(str, config.args)
        if "::" not in arg
    ]

    def covered(node: str) -> bool:
        path = (HERE / node.split("::")[0]).resolve()
        return any(path == root or root in path.parents for root in roots)

    stale = [node for node in expected if node not in seen and covered(node)]
    if stale and not config.getoption("keyword") and not config.getoption("markexpr"):
        raise pytest.UsageError(f"expected.txt names tests that do not exist: {stale}")
