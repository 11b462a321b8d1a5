"""Shared fixtures. Tests run against a real Docker Engine; nothing is mocked.

Every sandbox a fixture makes is killed afterwards, and its id is printed when the test
failed. The session ends by checking that no labelled container is left behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator

import docker
import pytest
import pytest_asyncio

from e2b_tools import AsyncSandbox, Sandbox
from e2b_tools.backends.docker import LABEL_SANDBOX, DockerBackend
from e2b_tools.backends.egress import LABEL_EGRESS, OUT_NETWORK

_SESSION_START = time.time()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests that take a fixture needing the engine are marked, so `-m "not docker"`
    # runs only the pure-logic ones.
    engine_fixtures = {
        "docker_client",
        "image",
        "sandbox",
        "async_sandbox",
        "base_image",
        "full_image",
    }
    for item in items:
        if engine_fixtures & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"no Docker Engine answers ({exc}); run scripts/ensure-docker.sh")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def image(docker_client: docker.DockerClient) -> str:
    """The default sandbox image, built if missing (a no-op when up to date)."""
    from e2b_tools.images import build_image

    return build_image(client=docker_client, log=lambda line: None)


@pytest.fixture(scope="session")
def full_image(docker_client: docker.DockerClient) -> str:
    """The full variant (Java, Go, Rust, Ruby, R), built if missing (`make test` builds it
    first, with progress shown)."""
    from e2b_tools.images import build_image

    return build_image(variant="full", client=docker_client, log=lambda line: None)


@pytest.fixture(scope="session")
def base_image(image: str) -> str:
    """The offline base image: Debian with python3 only and no agent."""
    from e2b_tools.images import BASE_IMAGE

    return BASE_IMAGE


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _report_failure(request: pytest.FixtureRequest, sandbox_id: str) -> None:
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n[e2b-tools] test failed; its sandbox was {sandbox_id}")


@pytest.fixture
def sandbox(image: str, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    sbx = Sandbox.create(timeout=600)
    try:
        yield sbx
    finally:
        _report_failure(request, sbx.sandbox_id)
        sbx.kill()


@pytest_asyncio.fixture
async def async_sandbox(image: str, request: pytest.FixtureRequest) -> AsyncIterator[AsyncSandbox]:
    sbx = await AsyncSandbox.create(timeout=600)
    try:
        yield sbx
    finally:
        _report_failure(request, sbx.sandbox_id)
        await sbx.kill()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any labelled container made during the run outlived the tests.

    Containers older than the run are someone else's (a demo, another process) and are
    left alone, and a run of pure-logic tests only does not look at the engine at all.
    """
    if not any(item.get_closest_marker("docker") for item in session.items):
        return
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException:
        return
    try:
        if os.environ.get("E2B_TOOLS_TESTS_CONCURRENT"):
            # Other test sessions share the engine: their fresh containers are not ours
            # to remove (development only; CI runs one session and checks).
            print("\n[e2b-tools] E2B_TOOLS_TESTS_CONCURRENT: left-behind check skipped")
        else:
            _check_left_behind(session, client)
    finally:
        client.close()


def _check_left_behind(session: pytest.Session, client: docker.DockerClient) -> None:
    deadline = time.monotonic() + 15
    while True:
        left = [
            c
            for c in client.api.containers(all=True, filters={"label": LABEL_SANDBOX})
            if c["Created"] >= int(_SESSION_START) - 1
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # auto-removal of just-killed containers is asynchronous
    # The egress proxy is shared by design; the suite removes it with the networks that
    # sandboxes which ended at their deadline left for the next clean-up.
    DockerBackend(client).cleanup(min_age=0)
    left += [
        c
        for c in client.api.containers(all=True, filters={"label": LABEL_EGRESS})
        if c["Created"] >= int(_SESSION_START) - 1
    ]
    networks = client.api.networks(filters={"label": LABEL_EGRESS})
    left_networks = [n["Name"] for n in networks if n["Name"] != OUT_NETWORK]
    if left:
        names = ", ".join(c["Names"][0] for c in left)
        print(f"\n[e2b-tools] {len(left)} labelled container(s) left behind: {names}")
        for c in left:
            client.api.remove_container(c["Id"], force=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif left_networks:
        print(f"\n[e2b-tools] sandbox network(s) left behind: {', '.join(left_networks)}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        print("\n[e2b-tools] no labelled container or sandbox network left behind")
