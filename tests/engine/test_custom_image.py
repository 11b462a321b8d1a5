"""Custom images: the user's Dockerfile on top of ours, built on the real Docker Engine
(plus unit tests of the tag and Dockerfile parsing)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from e2b_tools import Sandbox
from e2b_tools._bundle import AGENT_HASH_LABEL, agent_hash, baked_command
from e2b_tools.backends.docker import LABEL_SANDBOX, DockerBackend
from e2b_tools.cli import main
from e2b_tools.images import (
    DEFAULT_IMAGE,
    IMAGE_KIND_LABEL,
    ImageBuildError,
    build_custom_image,
    custom_image_tag,
)
from e2b_tools.images import common as images_common
from e2b_tools.images.custom import _advice, _stages

ROOT = Path(__file__).resolve().parents[2]
TEST_LABELS = {"e2b-tools.test": "1"}
TAG_PREFIX = f"e2b-tools/custom:test-{os.getpid()}"


def docs_dockerfile() -> str:
    """The runnable example of docs/images.md, on this version's default image."""
    text = (ROOT / "docs" / "images.md").read_text()
    match = re.search(r"```dockerfile\n(FROM e2b-tools/sandbox:\S+\n.*?)```", text, re.S)
    assert match, "docs/images.md lost its runnable Dockerfile example"
    rest = match.group(1).partition("\n")[2]
    return f"FROM {DEFAULT_IMAGE}\n{rest}"


@pytest.fixture
def remove_images(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Tags to remove when the test ends."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        try:
            docker_client.images.remove(tag)
        except docker.errors.ImageNotFound:
            pass


@pytest.fixture(scope="module")
def hello_image(
    image: str, docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[str]]]:
    """The docs' example built with the default tag: (tag, progress lines)."""
    folder = tmp_path_factory.mktemp("custom") / f"hello-{os.getpid()}"
    folder.mkdir()
    (folder / "Dockerfile").write_text(docs_dockerfile())
    (folder / "data.csv").write_text("x,y\n1,2\n")
    lines: list[str] = []
    tag = build_custom_image(folder / "Dockerfile", client=docker_client, log=lines.append)
    try:
        yield tag, lines
    finally:
        docker_client.images.remove(tag)


def write(folder: Path, dockerfile: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Dockerfile"
    path.write_text(dockerfile)
    return path


# --------------------------------------------------------------------- real images


def test_custom_image_gets_the_default_tag_and_inherits_the_agent(
    docker_client: docker.DockerClient, hello_image: tuple[str, list[str]]
) -> None:
    tag, lines = hello_image
    assert tag == f"e2b-tools/custom:hello-{os.getpid()}"
    steps = [line.strip() for line in lines if line.strip().startswith("Step ")]
    assert steps[0] == f"Step 1/{len(steps)} : FROM {DEFAULT_IMAGE}"
    assert any("RUN echo hello > /opt/marker" in step for step in steps)
    assert any(line.startswith(f"{tag} built in") for line in lines), lines
    assert not any(line.startswith("note:") for line in lines), lines
    labels = docker_client.images.get(tag).labels
    assert labels[AGENT_HASH_LABEL] == agent_hash()  # inherited from the FROM image
    assert labels[IMAGE_KIND_LABEL] == "custom"
    assert DockerBackend(docker_client).command_for(tag) == baked_command()


def test_sandbox_on_a_custom_image_sees_its_files_and_env(
    docker_client: docker.DockerClient, hello_image: tuple[str, list[str]]
) -> None:
    tag, _ = hello_image
    with Sandbox.create(image=tag, timeout=300) as sbx:
        code = (
            "import os\n"
            "print(open('/opt/marker').read().strip(), os.environ['FOO'])\n"
            "print(open('/opt/data/data.csv').read().splitlines()[1])"
        )
        execution = sbx.run_code(code)
        assert execution.error is None, execution.error
        assert "".join(execution.logs.stdout) == "hello bar\n1,2\n"
        assert sbx.commands.run("id -un; echo $FOO").stdout == "user\nbar\n"
        assert sbx.languages[:2] == ["python", "bash"]
        (container,) = docker_client.containers.list(
            filters={"label": f"{LABEL_SANDBOX}={sbx.sandbox_id}"}
        )
        assert container.attrs["Config"]["Cmd"] == baked_command()


def test_cli_builds_on_a_custom_image_with_a_context_and_a_tag(
    docker_client: docker.DockerClient,
    hello_image: tuple[str, list[str]],
    tmp_path: Path,
    remove_images: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, _ = hello_image
    dockerfile = write(tmp_path / "recipe", f"FROM {base}\nCOPY extra.txt /opt/extra.txt\n")
    context = tmp_path / "files"
    context.mkdir()
    (context / "extra.txt").write_text("from the context\n")
    tag = f"{TAG_PREFIX}-cli"
    remove_images.append(tag)
    argv = ["image", "build", "--dockerfile", str(dockerfile), "--context", str(context)]
    assert main([*argv, "--tag", tag]) == 0
    out = capsys.readouterr().out
    assert "Step 2/3 : COPY extra.txt /opt/extra.txt" in out
    assert f"use it with Sandbox.create(image={tag!r})" in out
    ran = docker_client.containers.run(
        tag,
        ["cat", "/opt/marker", "/opt/extra.txt"],
        remove=True,
        network_mode="none",
        labels=TEST_LABELS,
    )
    assert ran == b"hello\nfrom the context\n"


def test_failing_step_reports_its_output(
    docker_client: docker.DockerClient, image: str, tmp_path: Path
) -> None:
    dockerfile = write(
        tmp_path / "broken",
        f"FROM {DEFAULT_IMAGE}\nUSER root\nRUN echo step-output-before-failing; exit 3\n",
    )
    tag = f"{TAG_PREFIX}-broken"
    with pytest.raises(ImageBuildError) as caught:
        build_custom_image(dockerfile, tag=tag, client=docker_client, log=lambda line: None)
    message = str(caught.value)
    assert f"building {tag} failed: The command" in message
    assert "returned a non-zero code: 3" in message
    assert f"Fix the failing step in {dockerfile}" in message
    tail = message.split("--- last", 1)[1]
    assert "RUN echo step-output-before-failing; exit 3" in tail
    assert "\nstep-output-before-failing\n" in tail
    assert "USER root" not in message.split("---", 1)[0]  # the step ran as root
    assert "\x1b[" not in message
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(tag)


def test_step_as_the_sandbox_user_says_to_switch_to_root(
    docker_client: docker.DockerClient, image: str, tmp_path: Path
) -> None:
    dockerfile = write(tmp_path / "as-user", f"FROM {DEFAULT_IMAGE}\nRUN touch /opt/x\n")
    with pytest.raises(ImageBuildError, match="Permission denied") as caught:
        build_custom_image(
            dockerfile, tag=f"{TAG_PREFIX}-as-user", client=docker_client, log=lambda line: None
        )
    assert "run as user 1000:1000" in str(caught.value)
    assert "put `USER root` before steps" in str(caught.value)


def test_missing_from_image_of_ours_names_the_build_to_run(
    docker_client: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = "e2b-tools/sandbox-slim:0.0.0-never-built"
    monkeypatch.setattr(images_common, "SLIM_IMAGE", missing)
    dockerfile = write(tmp_path / "needs-slim", f"FROM {missing}\nENV A=1\n")
    with pytest.raises(ImageBuildError, match=r"run `e2b-tools image build --variant slim` first"):
        build_custom_image(dockerfile, client=docker_client, log=lambda line: None)

    other = write(tmp_path / "old", "FROM e2b-tools/sandbox:0.0.0-old\n")
    with pytest.raises(ImageBuildError, match=r"not on this engine; our images are"):
        build_custom_image(other, client=docker_client, log=lambda line: None)


def test_missing_foreign_from_image_says_it_is_pulled(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    dockerfile = write(tmp_path / "foreign", "FROM registry.invalid/nothing:1\nRUN true\n")
    with pytest.raises(ImageBuildError) as caught:
        build_custom_image(
            dockerfile, tag=f"{TAG_PREFIX}-foreign", client=docker_client, log=lambda line: None
        )
    assert "registry.invalid/nothing:1 is not on this engine, so the build pulls it" in str(
        caught.value
    )


def test_missing_dockerfile_or_context(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ImageBuildError, match="'nope/Dockerfile' does not exist"):
        build_custom_image("nope/Dockerfile")
    with pytest.raises(ImageBuildError, match="is a directory"):
        build_custom_image(tmp_path)
    dockerfile = write(tmp_path / "ok", "FROM scratch\n")
    with pytest.raises(ImageBuildError, match="build context '/no/such/dir' is not a directory"):
        build_custom_image(dockerfile, context="/no/such/dir")
    assert main(["image", "build", "--dockerfile", str(tmp_path / "missing")]) == 1
    assert "Dockerfile" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--tag", "x:1"], "--tag needs --dockerfile"),
        (["--context", "."], "--context needs --dockerfile"),
        (["--dockerfile", "D", "--variant", "slim"], "--variant builds one of our images"),
        (["--dockerfile", "D", "--method", "offline"], "--method builds one of our images"),
    ],
)
def test_cli_rejects_mixed_options(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["image", "build", *argv]) == 2
    assert says in capsys.readouterr().err


# ------------------------------------------------------------------------- texts


@pytest.mark.parametrize(
    ("path", "tag"),
    [
        ("/src/ml-tools/Dockerfile", "e2b-tools/custom:ml-tools"),
        ("/src/My Image/dockerfile", "e2b-tools/custom:my-image"),
        ("images/Dockerfile.ML", "e2b-tools/custom:ml"),
        ("images/data.Dockerfile", "e2b-tools/custom:data"),
        ("/.hidden/Dockerfile", "e2b-tools/custom:hidden"),
        ("/Dockerfile", "e2b-tools/custom:latest"),
    ],
)
def test_custom_image_tag(path: str, tag: str) -> None:
    assert custom_image_tag(path) == tag


def test_stages_resolve_args_and_skip_stage_names() -> None:
    text = (
        "# syntax comment\n"
        "ARG VER=0.1.0\n"
        "FROM --platform=linux/amd64 e2b-tools/sandbox:${VER} AS build\n"
        "RUN make \\\n"
        "  # a comment inside a continuation\n"
        "  && make install\n"
        "FROM build\n"
        "FROM scratch\n"
        "FROM $UNSET\n"
        "copy --chown=1000 a b\n"
    )
    stages = _stages(text)
    assert [ref for ref, _ in stages] == ["e2b-tools/sandbox:0.1.0", "", "", ""]
    assert [(kw, " ".join(rest.split())) for kw, rest in stages[0][1]] == [
        ("RUN", "make && make install")
    ]
    assert stages[-1][1] == [("COPY", "--chown=1000 a b")]


def test_advice_on_steps_a_sandbox_would_not_see() -> None:
    config = {
        "User": "1000:1000",
        "WorkingDir": "/home/user",
        "Env": ["PIP_USER=1", "NPM_CONFIG_PREFIX=/home/user/.npm-global"],
    }
    stage = _stages(
        "FROM x\n"
        "RUN pip install rich\n"
        "USER root\n"
        "RUN PIP_USER=0 pip install rich && npm install -g left-pad\n"
        "COPY a.txt .\n"
        'COPY ["b.txt", "/tmp/b.txt"]\n'
        "WORKDIR /opt/app\n"
        "COPY c.txt .\n"
    )[0][1]
    notes, runs_as = _advice(stage, config)
    assert runs_as == "1000:1000"
    assert len(notes) == 4, notes
    assert notes[0].startswith("`pip install` in a RUN step installs into ~/.local")
    assert notes[1].startswith("`npm install -g` in a RUN step installs into /home/user/")
    assert notes[2].startswith("COPY to /home/user is hidden at run time")
    assert notes[3].startswith("COPY to /tmp/b.txt is hidden at run time")
    assert _advice(_stages("FROM x\nUSER root\nRUN true\n")[0][1], config) == ([], None)
