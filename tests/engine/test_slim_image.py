"""The slim variant: the base image (python3 only) plus the sandbox user and the baked
agent, built on the real Docker Engine (plus unit tests of its Dockerfile text)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import docker
import pytest

from e2b_tools import InvalidArgumentError, Sandbox
from e2b_tools._bundle import AGENT_HASH_LABEL, agent_hash, baked_command
from e2b_tools.backends.docker import LABEL_SANDBOX
from e2b_tools.cli import main
from e2b_tools.images import (
    BASE_ID_LABEL,
    BASE_IMAGE,
    IMAGE_KIND_LABEL,
    PACKAGES_LABEL,
    SLIM_IMAGE,
    build_image,
    packages_hash,
    slim_dockerfile,
    thin_layer_dockerfile,
)
from e2b_tools.images.common import _agent_context, _docker_build

# Building slim takes seconds once the base exists; building the base first takes minutes.
engine = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def slim(docker_client: docker.DockerClient) -> str:
    return build_image(variant="slim", client=docker_client, log=lambda line: None)


@pytest.fixture(scope="module")
def slim_sandbox(slim: str) -> Iterator[Sandbox]:
    sbx = Sandbox.create(image=slim, timeout=600)
    try:
        yield sbx
    finally:
        sbx.kill()


# --------------------------------------------------------------------- real images


@engine
def test_slim_image_is_the_base_plus_the_agent_layer(
    docker_client: docker.DockerClient, slim: str
) -> None:
    assert slim == SLIM_IMAGE
    image = docker_client.images.get(SLIM_IMAGE)
    base = docker_client.images.get(BASE_IMAGE)
    assert image.labels[AGENT_HASH_LABEL] == agent_hash()
    assert image.labels[IMAGE_KIND_LABEL] == "sandbox-slim"
    assert image.labels[PACKAGES_LABEL] == packages_hash("slim")
    assert image.labels[BASE_ID_LABEL] == base.id
    config = image.attrs["Config"]
    assert config["Cmd"] == baked_command()
    assert config["User"] == "1000:1000"
    assert config["WorkingDir"] == "/home/user"
    assert {"PIP_USER=1", "HOME=/home/user", "MPLBACKEND=Agg", "PYTHONUNBUFFERED=1"} <= set(
        config["Env"]
    )
    assert any(env.startswith("PATH=/home/user/.local/bin:") for env in config["Env"])
    # Layered on the base image itself, not on a copy of it.
    base_layers = base.attrs["RootFS"]["Layers"]
    assert image.attrs["RootFS"]["Layers"][: len(base_layers)] == base_layers


@engine
def test_slim_is_a_fraction_of_the_default_image(
    docker_client: docker.DockerClient, slim: str, image: str
) -> None:
    slim_size = docker_client.images.get(slim).attrs["Size"]
    base_size = docker_client.images.get(BASE_IMAGE).attrs["Size"]
    default_size = docker_client.images.get(image).attrs["Size"]
    assert slim_size - base_size < 2_000_000  # the user and the agent's sources
    assert slim_size * 10 < default_size


@engine
def test_sandbox_on_slim_runs_python_and_bash_only(
    docker_client: docker.DockerClient, slim_sandbox: Sandbox
) -> None:
    assert slim_sandbox.languages == ["python", "bash"]
    execution = slim_sandbox.run_code(
        "import os, sys\nprint(os.getcwd(), sys.version_info[0])\n6*7"
    )
    assert execution.error is None
    assert execution.logs.stdout == ["/home/user 3\n"]
    assert execution.text == "42"
    assert slim_sandbox.run_code("echo $((6*7))", language="bash").logs.stdout == ["42\n"]
    with pytest.raises(InvalidArgumentError, match=r"available: python, bash \["):
        slim_sandbox.run_code("1", language="javascript")

    out = slim_sandbox.commands.run(
        "id -un; python --version; for c in node gcc pip3 git curl; do command -v $c; done; true"
    )
    assert out.stdout.splitlines()[0] == "user"
    assert re.fullmatch(r"Python 3\.\d+\.\d+", out.stdout.splitlines()[1])
    assert len(out.stdout.splitlines()) == 2  # none of the default image's tools

    # The agent baked into the image runs, not an injected copy.
    (container,) = docker_client.containers.list(
        filters={"label": f"{LABEL_SANDBOX}={slim_sandbox.sandbox_id}"}
    )
    assert container.attrs["Config"]["Cmd"] == baked_command()


@engine
def test_second_slim_build_is_skipped(docker_client: docker.DockerClient, slim: str) -> None:
    before = docker_client.images.get(SLIM_IMAGE).id
    lines: list[str] = []
    assert build_image(variant="slim", client=docker_client, log=lines.append) == SLIM_IMAGE
    assert any("skipped" in line for line in lines), lines
    assert docker_client.images.get(SLIM_IMAGE).id == before


@engine
def test_slim_built_on_another_base_is_rebuilt(
    docker_client: docker.DockerClient, slim: str
) -> None:
    # As if the base image had been rebuilt since: the label names another base.
    _docker_build(
        docker_client,
        lambda line: None,
        context=_agent_context(slim_dockerfile(BASE_IMAGE)),
        tag=SLIM_IMAGE,
        labels={BASE_ID_LABEL: "sha256:" + "0" * 64},
        network_mode="none",
        fix="",
    )
    lines: list[str] = []
    assert build_image(variant="slim", client=docker_client, log=lines.append) == SLIM_IMAGE
    assert any("was built on another" in line for line in lines), lines
    base = docker_client.images.get(BASE_IMAGE)
    assert docker_client.images.get(SLIM_IMAGE).labels[BASE_ID_LABEL] == base.id


@engine
def test_cli_builds_the_slim_variant(slim: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "build", "--variant", "slim"]) == 0
    assert f"{SLIM_IMAGE} is already built" in capsys.readouterr().out


# ------------------------------------------------------------------------- texts


def test_slim_dockerfile_adds_the_user_then_the_thin_layer() -> None:
    text = slim_dockerfile("some/base:1", agent_hash="abc123", packages="p1", version="9.9.9")
    first, _, rest = text.partition("FROM slim-rootfs\n")
    lines = first.splitlines()
    assert lines[0] == "FROM some/base:1 AS slim-rootfs"
    assert "USER 0:0" in lines
    run = " ".join(first.replace("\\\n", " ").split())
    assert "groupadd --gid 1000 user" in run
    assert "useradd --uid 1000 --gid 1000 --home-dir /home/user --create-home" in run
    assert "ln -sf /usr/bin/python3 /usr/local/bin/python" in run
    assert lines[-1] == f'LABEL {PACKAGES_LABEL}="p1"'
    thin = thin_layer_dockerfile(
        "slim-rootfs", agent_hash="abc123", version="9.9.9", kind="sandbox-slim"
    )
    assert "FROM slim-rootfs\n" + rest == thin
    assert sum(line.startswith("RUN ") for line in text.splitlines()) == 1
    assert f'{PACKAGES_LABEL}="{packages_hash("slim")}"' in slim_dockerfile("x")
