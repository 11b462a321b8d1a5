"""``build_custom_image``: the user's own Dockerfile, typically ``FROM`` one of our images.

A custom image inherits the labels of the image it starts from, the agent-hash label
included, so sandboxes on it run the agent baked into that image rather than injecting
it. Before building, the ``FROM`` images are checked: one of ours that is missing is an
error naming the ``e2b-tools image build`` to run first (the engine would otherwise try
to pull it from a registry and fail obscurely).
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from e2b_tools._bundle import AGENT_HASH_LABEL, agent_hash

from .common import (
    ImageBuildError,
    _client_from_env,
    _docker_build,
    _get_image,
    _human_size,
    _Steps,
    image_for,
)
from .names import (
    BASE_IMAGE,
    CUSTOM_REPOSITORY,
    FULL_ROOTFS_IMAGE,
    IMAGE_KIND_LABEL,
    ROOTFS_IMAGE,
    SANDBOX_HOME,
    VARIANTS,
)

__all__ = ["build_custom_image", "custom_image_tag"]

_TAG_CHARS = re.compile(r"[^a-z0-9_.-]+")


def custom_image_tag(dockerfile: str | Path) -> str:
    """The tag :func:`build_custom_image` gives an image when none is asked for.

    ``e2b-tools/custom:<name>``, where ``<name>`` is the Dockerfile's directory name when
    the file is called ``Dockerfile``, else the file name without a ``Dockerfile.`` prefix
    or a ``.Dockerfile`` suffix; lower-cased, other characters than letters, digits,
    ``_``, ``.`` and ``-`` replaced by ``-``.

    Args:
        dockerfile: Path of the Dockerfile.

    Returns:
        The image reference.

    Example:
        >>> custom_image_tag("/src/ml-tools/Dockerfile")
        'e2b-tools/custom:ml-tools'
        >>> custom_image_tag("images/Dockerfile.ML")
        'e2b-tools/custom:ml'
    """
    path = Path(dockerfile).absolute()
    name = path.name
    lowered = name.lower()
    if lowered == "dockerfile":
        name = path.parent.name
    elif lowered.startswith("dockerfile."):
        name = name[len("dockerfile.") :]
    elif lowered.endswith(".dockerfile"):
        name = name[: -len(".dockerfile")]
    # A tag starts with a letter, digit or "_" and has at most 128 characters.
    name = _TAG_CHARS.sub("-", name.lower()).lstrip(".-")[:128] or "latest"
    return f"{CUSTOM_REPOSITORY}:{name}"


def build_custom_image(
    dockerfile: str | Path,
    *,
    tag: str | None = None,
    context: str | Path | None = None,
    nocache: bool = False,
    client: docker.DockerClient | None = None,
    log: Callable[[str], None] = print,
) -> str:
    """Build the user's Dockerfile into a sandbox image.

    Start it ``FROM`` one of our images (``e2b-tools/sandbox:<version>``, or the slim or
    full variant) so it keeps the baked agent; add ``RUN``, ``ENV`` and ``COPY`` as in any
    Dockerfile. The sandbox mounts a fresh workspace over ``/home/user``, so put files
    elsewhere (``/opt``, ``/usr/local``). The engine's layer cache applies: a rebuild of
    an unchanged Dockerfile takes a second.

    Args:
        dockerfile: Path of the Dockerfile.
        tag: Image reference to tag the result with; defaults to
            :func:`custom_image_tag` (``e2b-tools/custom:<directory name>``).
        context: Build context directory (what ``COPY`` sees; its ``.dockerignore``
            applies); defaults to the Dockerfile's directory.
        nocache: Build every step again, ignoring the layer cache.
        client: Docker client; defaults to ``docker.from_env()``.
        log: Receives progress lines.

    Returns:
        The tag that was built: pass it as ``Sandbox.create(image=...)``.

    Raises:
        ImageBuildError: The Dockerfile or context is missing, a ``FROM`` image of ours
            is not built, or a build step failed (the message ends with its output).

    Example:
        >>> tag = build_custom_image("my-image/Dockerfile")  # doctest: +SKIP
        >>> Sandbox.create(image=tag)  # doctest: +SKIP
    """
    path = Path(dockerfile).expanduser().absolute()
    if not path.is_file():
        why = "is a directory" if path.is_dir() else "does not exist"
        raise ImageBuildError(f"Dockerfile {str(dockerfile)!r} {why}; pass the path of a file")
    root = path.parent if context is None else Path(context).expanduser().absolute()
    if not root.is_dir():
        raise ImageBuildError(f"build context {str(context)!r} is not a directory")
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ImageBuildError(f"cannot read Dockerfile {str(dockerfile)!r}: {exc}") from exc
    tag = tag or custom_image_tag(path)
    if client is None:
        client = _client_from_env()

    stages = _stages(text)
    pulled = _check_from_images(client, stages, path)
    fixes: list[str] = []
    if pulled:
        fixes.append(
            f"{', '.join(pulled)} is not on this engine, so the build pulls it from a "
            "registry: `docker pull` it or build it first."
        )
    fixes.append(f"Fix the failing step in {path} (its output ends this message).")
    for base, instructions in stages:
        image = _get_image(client, base) if base else None
        if image is None:
            continue
        notes, runs_as = _advice(instructions, image.attrs.get("Config") or {})
        for note in notes:
            log(f"note: {note}")
        if runs_as is not None:
            fixes.append(
                f"The RUN steps on {base} run as user {runs_as} (our images end with "
                "USER 1000:1000): put `USER root` before steps that install packages or "
                "write outside /tmp and /home/user, and `USER 1000:1000` after them."
            )
    started = time.monotonic()
    with _Steps(1, log)(f"build {path} (context {root}) -> {tag}"):
        _docker_build(
            client,
            log,
            context=root,
            dockerfile=str(path),
            tag=tag,
            labels={IMAGE_KIND_LABEL: "custom"},
            nocache=nocache,
            fix=" ".join(fixes),
        )
    built = _get_image(client, tag)
    labels = built.labels if built is not None else {}
    size = _human_size(int(built.attrs.get("Size", 0))) if built is not None else "?"
    log(f"{tag} built in {time.monotonic() - started:.1f}s ({size})")
    baked = labels.get(AGENT_HASH_LABEL)
    if baked is None:
        log(
            "note: the image has no baked agent (its FROM is not an e2b-tools sandbox "
            "image), so sandboxes inject it at start; the image needs python3 (3.8+)"
        )
    elif baked != agent_hash():
        log(
            f"note: the image bakes agent {baked}, this e2b-tools has {agent_hash()}: "
            "sandboxes inject the current agent at start. Run `e2b-tools image build` "
            "(with the --variant you start from), then build this image again"
        )
    return tag


_Instruction = tuple[str, str]
"""A Dockerfile instruction: its upper-cased keyword and the rest of the line."""


def _instructions(text: str) -> list[_Instruction]:
    """The instructions of a Dockerfile, comments dropped and continuations joined."""
    kept = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    joined = re.sub(r"\\[ \t]*\r?\n", " ", kept)
    out: list[_Instruction] = []
    for line in joined.splitlines():
        words = line.split(None, 1)
        if words:
            out.append((words[0].upper(), words[1].strip() if len(words) > 1 else ""))
    return out


def _stages(text: str) -> list[tuple[str, list[_Instruction]]]:
    """Each stage's ``FROM`` image and instructions.

    The image is ``""`` when the stage starts from an earlier stage, from ``scratch`` or
    from a reference whose ``ARG`` has no default.
    """
    args: dict[str, str] = {}
    names: set[str] = set()
    stages: list[tuple[str, list[_Instruction]]] = []
    for keyword, rest in _instructions(text):
        if keyword == "ARG" and not stages and rest:
            name, _, default = rest.split()[0].partition("=")
            args[name] = default.strip("\"'")
        elif keyword == "FROM":
            words = [word for word in rest.split() if not word.startswith("--")]
            ref = words[0] if words else ""
            ref = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), ref)
            if ref.lower() in names or ref == "scratch" or "$" in ref:
                ref = ""
            if len(words) >= 3 and words[1].upper() == "AS":
                names.add(words[2].lower())
            stages.append((ref, []))
        elif stages:
            stages[-1][1].append((keyword, rest))
    return stages


_WORKSPACES = (SANDBOX_HOME, "/tmp")
"""Directories every sandbox mounts a fresh tmpfs over (see ``DockerBackend``)."""


def _under_workspace(path: str) -> str | None:
    for workspace in _WORKSPACES:
        if path == workspace or path.startswith(workspace + "/"):
            return workspace
    return None


def _advice(
    instructions: list[_Instruction], config: dict[str, Any]
) -> tuple[list[str], str | None]:
    """Notes on steps whose result a sandbox would not see, and the user RUN steps run as.

    Args:
        instructions: One stage's instructions.
        config: The ``Config`` of the image the stage starts from.

    Returns:
        The notes, and the non-root user of the first ``RUN`` (None when it runs as root).
    """
    user = str(config.get("User") or "")
    workdir = str(config.get("WorkingDir") or "/")
    env = dict(str(item).partition("=")[::2] for item in config.get("Env") or [])
    notes: list[str] = []
    first_run_as: str | None = None
    seen_run = False
    for keyword, rest in instructions:
        if keyword == "USER":
            user = rest.split()[0] if rest else ""
        elif keyword == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, rest.strip("\"'")))
        elif keyword == "RUN":
            if not seen_run and user.partition(":")[0] not in ("", "0", "root"):
                first_run_as = user
            seen_run = True
            if (
                env.get("PIP_USER") == "1"
                and re.search(r"\bpip3?\s+install\b", rest)
                and "PIP_USER=0" not in rest
            ):
                notes.append(
                    "`pip install` in a RUN step installs into ~/.local (the image sets "
                    "PIP_USER=1), which each sandbox covers with a fresh workspace; install "
                    "for every sandbox as root with `RUN PIP_USER=0 pip install ...`"
                )
            prefix = env.get("NPM_CONFIG_PREFIX", "")
            if (
                _under_workspace(prefix)
                and re.search(r"\bnpm\s+(install|i|add)\b.*\s(-g|--global)\b", rest)
                and "--prefix" not in rest
            ):
                notes.append(
                    f"`npm install -g` in a RUN step installs into {prefix}, which each "
                    "sandbox covers with a fresh workspace; install for every sandbox as "
                    "root with `RUN npm install -g --prefix /usr/local ...`"
                )
        elif keyword in ("COPY", "ADD"):
            words = [word for word in rest.split() if not word.startswith("--")]
            if rest.startswith("["):
                with contextlib.suppress(ValueError):
                    words = [str(word) for word in json.loads(rest)]
            if len(words) < 2:
                continue
            dest = posixpath.normpath(posixpath.join(workdir, words[-1]))
            workspace = _under_workspace(dest)
            if workspace:
                notes.append(
                    f"{keyword} to {dest} is hidden at run time: each sandbox mounts a fresh "
                    f"workspace over {workspace}; copy to another directory (e.g. /opt) "
                    "and upload to the workspace with files.write if code needs it there"
                )
    return notes, first_run_as


def _ours() -> dict[str, str]:
    """Our image tags, each with the ``e2b-tools image build`` command that makes it."""
    commands = {
        image_for(variant): "e2b-tools image build"
        + ("" if variant == "default" else f" --variant {variant}")
        for variant in VARIANTS
    }
    commands[BASE_IMAGE] = commands[image_for("slim")]
    commands[ROOTFS_IMAGE] = commands[image_for("default")]
    commands[FULL_ROOTFS_IMAGE] = commands[image_for("full")]
    return commands


def _check_from_images(
    client: docker.DockerClient, stages: list[tuple[str, list[_Instruction]]], path: Path
) -> list[str]:
    """Fail on a missing image of ours; return the other missing ones (to be pulled)."""
    ours = _ours()
    pulled: list[str] = []
    for ref, _ in stages:
        if not ref or ref in pulled or _get_image(client, ref) is not None:
            continue
        if ref in ours:
            raise ImageBuildError(
                f"{path} starts FROM {ref}, which is not built yet; run `{ours[ref]}` first"
            )
        if ref.startswith("e2b-tools/"):
            known = ", ".join(image_for(variant) for variant in VARIANTS)
            raise ImageBuildError(
                f"{path} starts FROM {ref}, which is not on this engine; our images are "
                f"{known} (build them with `e2b-tools image build [--variant ...]`), "
                "custom ones are built with `e2b-tools image build --dockerfile`"
            )
        pulled.append(ref)
    return pulled
