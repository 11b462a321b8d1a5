"""The E2B compatibility suite: E2B's documented Python snippets, re-typed as tests in
which only the import changed (``from e2b_tools import ...``).

Every test carries a record of where its snippet comes from and what it covers::

    @pytest.mark.e2b(feature="files: read", call="sbx.files.read(path)", source=URL)

``scripts/e2b_compat_table.py`` reads these records (they travel as JUnit properties)
to write ``docs/e2b-compatibility.md``. A deliberate difference (E2B's cloud, the
public internet) is ``xfail(strict=True, reason=...)``; any other failure is a feature
the library still lacks.

Sandboxes run on the real engine and are killed by the tests or their fixtures. The
tests take none of the fixtures that mark a test ``docker``: that marker switches on the
repository-wide end-of-run check, which removes every labelled container made during
the run, other users' included. This suite's own check looks only at the sandboxes this
process created (their owner label); in a run of the whole suite the repository-wide
check covers them as well.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from e2b_tools import Sandbox
from e2b_tools.backends.docker import LABEL_OWNER, LABEL_SANDBOX

COMPAT_DIR = Path(__file__).resolve().parent
MARKER = "e2b"
RECORD_KEYS = ("feature", "call", "source")
# A deliberate difference's reason starts with its kind: "offline by default: ...".
DIFFERENCE_KINDS = ("offline by default", "hardened by default", "E2B cloud only")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``e2b`` marker (the suite runs with ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(feature, call, source): an E2B snippet of the compatibility suite: the "
        "feature it covers, the E2B call it makes and where it is documented",
    )


def _in_suite(item: pytest.Item) -> bool:
    return COMPAT_DIR in Path(str(item.path)).parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check every snippet's record and attach it to the item as JUnit properties."""
    for item in items:
        if not _in_suite(item):
            continue
        marker = item.get_closest_marker(MARKER)
        missing = [k for k in RECORD_KEYS if not (marker and marker.kwargs.get(k))]
        if missing:
            raise pytest.UsageError(
                f"{item.nodeid}: an E2B compat test needs "
                f"@pytest.mark.{MARKER}({', '.join(f'{k}=...' for k in RECORD_KEYS)}); "
                f"missing {', '.join(missing)}"
            )
        assert marker is not None
        for key in RECORD_KEYS:
            item.user_properties.append((f"e2b_{key}", str(marker.kwargs[key])))
        xfail = item.get_closest_marker("xfail")
        if xfail is not None:
            reason = str(xfail.kwargs.get("reason", ""))
            if not xfail.kwargs.get("strict") or reason.partition(":")[0] not in DIFFERENCE_KINDS:
                raise pytest.UsageError(
                    f"{item.nodeid}: xfail marks only a deliberate difference, as "
                    f"xfail(strict=True, reason='<kind>: why'), kind one of {DIFFERENCE_KINDS}; "
                    "never hide a bug with xfail"
                )
            item.user_properties.append(("e2b_difference", reason))


def _failed(request: pytest.FixtureRequest) -> bool:
    rep = getattr(request.node, "rep_call", None)  # set by tests/conftest.py
    return bool(rep is not None and rep.failed)


@pytest.fixture(scope="module")
def _module_sandbox() -> Iterator[Sandbox]:
    """The sandbox behind :func:`sbx`, made once per module and killed after it."""
    sbx = Sandbox.create(timeout=600, metadata={"sandbox_test_id": f"compat_{uuid.uuid4().hex}"})
    try:
        yield sbx
    finally:
        sbx.kill()


@pytest.fixture
def sbx(_module_sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """One sandbox shared by the snippets of a module (E2B's tests call it ``sandbox``)."""
    yield _module_sandbox
    if _failed(request):
        print(f"\n[e2b-compat] test failed; its sandbox is {_module_sandbox.sandbox_id}")


@pytest.fixture
def sandbox_test_id() -> str:
    """A fresh metadata value to find a test's own sandboxes with (as E2B's suite does)."""
    return f"test_{uuid.uuid4().hex}"


def _owned_containers(client: docker.DockerClient) -> list[dict[str, Any]]:
    owner = f"{socket.gethostname()}:{os.getpid()}"
    found = client.api.containers(all=True, filters={"label": [LABEL_SANDBOX]})
    return [c for c in found if (c.get("Labels") or {}).get(LABEL_OWNER) == owner]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a sandbox this process created is still there.

    Skipped when the repository-wide check runs (any test marked ``docker``).
    """
    items = [item for item in session.items if _in_suite(item)]
    if not items or any(item.get_closest_marker("docker") for item in session.items):
        return

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        return
    try:
        deadline = time.monotonic() + 15
        left = _owned_containers(client)
        while left and time.monotonic() < deadline:
            time.sleep(0.5)  # auto-removal of just-killed containers is asynchronous
            left = _owned_containers(client)
        if left:
            names = ", ".join(str(c["Names"][0]) for c in left)
            print(f"\n[e2b-compat] {len(left)} sandbox(es) left behind: {names}")
            for c in left:
                client.api.remove_container(c["Id"], force=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            print("\n[e2b-compat] no sandbox of this run left behind")
    finally:
        client.close()
