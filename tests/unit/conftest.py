"""Fixtures of the engine-free tests: the local backend (the real agent as a
subprocess) and a sandbox on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from local_backend import LocalBackend

from e2b_tools import Sandbox


@pytest.fixture(scope="module")
def backend() -> Iterator[LocalBackend]:
    """One local backend per test module (a module may narrow it to one per test)."""
    with LocalBackend() as local:
        yield local


@pytest.fixture
def local_sandbox(backend: LocalBackend) -> Iterator[Sandbox]:
    """A sandbox on the local backend, killed after the test."""
    sbx = Sandbox.create(backend=backend, timeout=120)
    try:
        yield sbx
    finally:
        sbx.kill()
