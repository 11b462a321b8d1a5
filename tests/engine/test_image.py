"""The image builder, against the real Docker Engine (plus unit tests of its texts)."""

from __future__ import annotations

import hashlib
import json
import re

import docker
import docker.errors
import pytest

import e2b_tools.images as images
from e2b_tools._bundle import (
    AGENT_HASH_LABEL,
    AGENT_PACKAGE,
    BAKED_AGENT_ROOT,
    agent_files,
    agent_hash,
    baked_command,
)
from e2b_tools._version import __version__
from e2b_tools.cli import main
from e2b_tools.images import (
    BASE_IMAGE,
    BASE_PACKAGES,
    DEFAULT_IMAGE,
    FULL_IMAGE,
    FULL_PACKAGES,
    IMAGE_KIND_LABEL,
    PACKAGES_LABEL,
    ROOTFS_IMAGE,
    SANDBOX_PACKAGES,
    SLIM_IMAGE,
    _packaged_dockerfile,
    build_image,
    full_layer_dockerfile,
    image_exists,
    image_for,
    packages_hash,
    thin_layer_dockerfile,
)

TEST_LABELS = {"e2b-tools.test": "1"}

# A first build from scratch takes minutes; the Makefile normally builds before tests.
engine = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def client(docker_client: docker.DockerClient) -> docker.DockerClient:
    return docker_client


@pytest.fixture(scope="module")
def built(client: docker.DockerClient) -> str:
    lines: list[str] = []
    return build_image(client=client, log=lines.append)


def run(client: docker.DockerClient, image: str, *cmd: str) -> str:
    out = client.containers.run(
        image,
        list(cmd),
        remove=True,
        network_mode="none",
        labels=TEST_LABELS,
        stdout=True,
        stderr=True,
    )
    assert isinstance(out, bytes)
    return out.decode().strip()


# --------------------------------------------------------------------- real images


@engine
def test_default_image_is_labelled_with_the_agent_hash(
    client: docker.DockerClient, built: str
) -> None:
    assert built == DEFAULT_IMAGE
    image = client.images.get(DEFAULT_IMAGE)
    assert image.labels[AGENT_HASH_LABEL] == agent_hash()
    assert image.labels[IMAGE_KIND_LABEL] == "sandbox"
    assert image.labels[PACKAGES_LABEL] == packages_hash("default")
    assert image.labels["org.opencontainers.image.version"] == __version__
    config = image.attrs["Config"]
    assert config["Cmd"] == baked_command()
    assert config["User"] == "1000:1000"
    assert config["WorkingDir"] == "/home/user"
    assert {"MPLBACKEND=Agg", "HOME=/home/user", "LANG=C.UTF-8", "PYTHONUNBUFFERED=1"} <= set(
        config["Env"]
    )
    assert image_exists(ROOTFS_IMAGE, client)
    assert not image_exists("e2b-tools/no-such-image:0", client)


@engine
def test_runs_as_user_1000_in_its_home(client: docker.DockerClient, built: str) -> None:
    out = run(
        client, built, "bash", "-c", 'id -u; id -un; id -g; pwd; echo "$HOME"; stat -c %u:%g .'
    )
    assert out.splitlines() == ["1000", "user", "1000", "/home/user", "/home/user", "1000:1000"]


@engine
def test_python_data_stack_with_agg_backend(client: docker.DockerClient, built: str) -> None:
    code = (
        "import numpy, pandas, matplotlib, IPython; import matplotlib; "
        "print(matplotlib.get_backend())"
    )
    # MPLBACKEND=Agg; matplotlib reports the backend name lower-cased.
    assert run(client, built, "python3", "-c", code).splitlines()[-1].lower() == "agg"


@engine
def test_node_typescript_and_bash(client: docker.DockerClient, built: str) -> None:
    assert run(client, built, "node", "-e", "console.log(1+1)") == "2"
    assert re.fullmatch(r"Version \d+\.\d+\.\d+", run(client, built, "tsc", "--version"))
    assert run(client, built, "bash", "-c", "echo ${BASH_VERSION%%.*}").isdigit()


@engine
def test_compilers_python_and_ps_are_installed(client: docker.DockerClient, built: str) -> None:
    out = run(
        client,
        built,
        "bash",
        "-c",
        "gcc --version; g++ --version; python --version; ps -o comm= -p 1",
    )
    assert out.splitlines()[0].startswith("gcc")
    assert "g++" in out
    assert "Python 3." in out  # `python` is python3, as models often assume
    assert out.splitlines()[-1] == "ps"


@engine
def test_agent_is_baked_readable_and_current(client: docker.DockerClient, built: str) -> None:
    script = (
        "import hashlib, json, os, stat, sys\n"
        "d = sys.argv[1]\n"
        "out = {}\n"
        "for n in os.listdir(d):\n"
        "    p = os.path.join(d, n)\n"
        "    with open(p, 'rb') as f:\n"
        "        digest = hashlib.sha256(f.read()).hexdigest()\n"
        "    out[n] = [digest, stat.S_IMODE(os.stat(p).st_mode)]\n"
        "print(json.dumps(out))\n"
    )
    agent_dir = f"{BAKED_AGENT_ROOT}/{AGENT_PACKAGE}"
    baked = json.loads(run(client, built, "python3", "-c", script, agent_dir))
    expected = {name: hashlib.sha256(data).hexdigest() for name, data in agent_files().items()}
    assert {name: digest for name, (digest, _) in baked.items()} == expected
    assert all(mode & 0o444 == 0o444 for _, mode in baked.values())


@engine
def test_base_image_has_python3_but_not_numpy(client: docker.DockerClient, built: str) -> None:
    assert client.images.get(BASE_IMAGE).labels[IMAGE_KIND_LABEL] == "base"
    code = (
        "import importlib.util, sys; print(sys.version_info[0], importlib.util.find_spec('numpy'))"
    )
    assert run(client, BASE_IMAGE, "python3", "-c", code) == "3 None"


@engine
def test_second_build_is_skipped(client: docker.DockerClient, built: str) -> None:
    before = client.images.get(DEFAULT_IMAGE).id
    lines: list[str] = []
    assert build_image(client=client, log=lines.append) == DEFAULT_IMAGE
    assert any("skipped" in line for line in lines), lines
    assert client.images.get(DEFAULT_IMAGE).id == before


@engine
def test_cli_image_build_is_skipped_when_up_to_date(
    built: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["image", "build"]) == 0
    assert "skipped" in capsys.readouterr().out


# ------------------------------------------------------------------------- texts


def test_variants_and_their_tags() -> None:
    assert image_for("default") == DEFAULT_IMAGE
    assert image_for("full") == FULL_IMAGE
    assert image_for("slim") == SLIM_IMAGE
    with pytest.raises(ValueError, match="known: default, full, slim"):
        image_for("tiny")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown image variant"):
        build_image(variant="tiny")  # type: ignore[arg-type]


def test_packages_hash_follows_the_package_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    default, full, slim = packages_hash("default"), packages_hash("full"), packages_hash("slim")
    assert len(default) == 12 and len({default, full, slim}) == 3
    monkeypatch.setattr(images.names, "FULL_PACKAGES", (*FULL_PACKAGES, "scala"))
    assert packages_hash("default") == default
    assert packages_hash("full") != full
    monkeypatch.setattr(images.names, "SANDBOX_PACKAGES", (*SANDBOX_PACKAGES, "vim"))
    assert packages_hash("default") != default
    assert packages_hash("slim") == slim
    monkeypatch.setattr(images.names, "BASE_PACKAGES", (*BASE_PACKAGES, "bash-completion"))
    assert packages_hash("slim") != slim


def test_full_layer_dockerfile() -> None:
    text = full_layer_dockerfile("some/rootfs:1", packages="abc")
    stage = _stages(text)[0]
    assert stage[0] == "FROM some/rootfs:1"
    assert "USER 0:0" in stage
    run_line = next(line for line in stage if line.startswith("RUN "))
    listed = run_line.split("--no-install-recommends", 1)[1].split(";", 1)[0].split()
    assert tuple(listed) == FULL_PACKAGES
    assert "rm -rf /var/lib/apt/lists/*" in run_line
    assert f'{PACKAGES_LABEL}="abc"' in stage[-1]
    assert f'{PACKAGES_LABEL}="{packages_hash("full")}"' in full_layer_dockerfile("x")


def test_cli_rejects_an_unknown_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "build", "--variant", "tiny"]) == 2
    assert "'tiny' is not one of 'default', 'full', 'slim'" in capsys.readouterr().err


def test_thin_layer_dockerfile() -> None:
    text = thin_layer_dockerfile("some/rootfs:1", agent_hash="abc123", version="9.9.9")
    lines = text.splitlines()
    assert lines[0] == "FROM some/rootfs:1"
    assert f"COPY {AGENT_PACKAGE}/ {BAKED_AGENT_ROOT}/{AGENT_PACKAGE}/" in lines
    assert "USER 1000:1000" in lines
    assert "WORKDIR /home/user" in lines
    assert f"CMD {json.dumps(baked_command())}" in lines
    label = next(line for line in lines if line.startswith("LABEL "))
    assert f'{AGENT_HASH_LABEL}="abc123"' in label
    assert 'org.opencontainers.image.version="9.9.9"' in label
    assert 'e2b-tools.image="sandbox"' in label
    env = next(line for line in lines if line.startswith("ENV "))
    assert env.split()[1:7] == [
        "LANG=C.UTF-8",
        "HOME=/home/user",
        "MPLBACKEND=Agg",
        "PYTHONUNBUFFERED=1",
        "PIP_USER=1",
        "PIP_BREAK_SYSTEM_PACKAGES=1",
    ]
    assert "PATH=/home/user/.local/bin:/home/user/.npm-global/bin:" in env
    assert not any(line.startswith("RUN") for line in lines)


def test_thin_layer_dockerfile_defaults_to_the_current_agent() -> None:
    assert f'{AGENT_HASH_LABEL}="{agent_hash()}"' in thin_layer_dockerfile("x")
    assert f'"{__version__}"' in thin_layer_dockerfile("x")


def _stages(dockerfile: str) -> list[list[str]]:
    """Instructions (continuations joined, comments dropped) grouped by stage."""
    text = re.sub(r"\\\n", " ", dockerfile)
    stages: list[list[str]] = []
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_packaged_dockerfile_last_stage_is_the_thin_layer() -> None:
    stages = _stages(_packaged_dockerfile().decode())
    last = [line for line in stages[-1] if not line.startswith("ARG ")]
    generated = thin_layer_dockerfile(
        "rootfs", agent_hash="${AGENT_HASH}", version="${E2B_TOOLS_VERSION}"
    )
    assert last == [" ".join(line.split()) for line in generated.splitlines()]


def test_packaged_dockerfile_stages_and_packages() -> None:
    stages = _stages(_packaged_dockerfile().decode())
    assert [stage[0] for stage in stages] == [
        "FROM debian:bookworm-slim AS base",
        "FROM base AS rootfs",
        "FROM rootfs",
    ]
    run_line = next(line for line in stages[1] if line.startswith("RUN "))
    listed = run_line.split("--no-install-recommends", 1)[1].split(";", 1)[0].split()
    assert tuple(listed) == SANDBOX_PACKAGES
    assert "groupadd --gid 1000 user" in run_line
    assert "useradd --uid 1000 --gid 1000 --home-dir /home/user" in run_line
    assert "--shell /bin/bash user" in run_line
