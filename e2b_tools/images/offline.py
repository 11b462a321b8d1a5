"""The ``offline`` build method: debootstrap a tree, ``docker import`` it, add the layer.

Needs root on a Debian/Ubuntu host and the Debian package mirror
(``E2B_TOOLS_DEBIAN_MIRROR``, ``E2B_TOOLS_DEBIAN_SECURITY_MIRROR``), no container
registry. The agent layer on top is the shared one from :mod:`.common`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.utils import parse_repository_tag

from e2b_tools._version import __version__

from .common import (
    _PROGRESS_EVERY,
    _TAIL_LINES,
    ImageBuildError,
    _build_thin_layer,
    _clip,
    _long_api_timeout,
    _one_line,
    _Steps,
    _with_tail,
    image_exists,
    packages_hash,
)
from .names import (
    BASE_IMAGE,
    BASE_PACKAGES,
    DEBIAN_SUITE,
    DEFAULT_IMAGE,
    IMAGE_KIND_LABEL,
    PACKAGES_LABEL,
    ROOTFS_IMAGE,
    SANDBOX_HOME,
    SANDBOX_PACKAGES,
    SANDBOX_UID,
    SANDBOX_USER,
    VERSION_LABEL,
)

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SLIM_PATHS = ("usr/share/doc", "usr/share/man", "usr/share/info", "var/lib/apt/lists")


def _mirror() -> str:
    return os.environ.get("E2B_TOOLS_DEBIAN_MIRROR", "http://deb.debian.org/debian").rstrip("/")


def _security_mirror() -> str:
    default = "http://deb.debian.org/debian-security"
    return os.environ.get("E2B_TOOLS_DEBIAN_SECURITY_MIRROR", default).rstrip("/")


def _build_offline(
    client: docker.DockerClient, log: Callable[[str], None], *, base_only: bool = False
) -> None:
    """Build the base, rootfs and agent layer (``base_only``: just the base image)."""
    steps = _Steps(3 if base_only else 6, log)
    with steps("check root and debootstrap"):
        debootstrap = _ensure_debootstrap(log)
    workdir = Path(tempfile.mkdtemp(prefix="e2b-tools-rootfs-", dir="/var/tmp"))
    root = workdir / "rootfs"
    try:
        with steps(f"debootstrap {DEBIAN_SUITE} (minbase + python3) from {_mirror()}"):
            _run(
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    DEBIAN_SUITE,
                    str(root),
                    _mirror(),
                ],
                log,
                what="debootstrap",
                fix=f"Check that {_mirror()} is reachable (or set E2B_TOOLS_DEBIAN_MIRROR).",
            )
            root.chmod(0o755)
        with steps(f"import {BASE_IMAGE}"):
            _import_tree(
                client,
                root,
                BASE_IMAGE,
                log,
                kind="base",
                cmd=["python3"],
                exclude=[f"./{path}/*" for path in (*_SLIM_PATHS, "var/cache/apt")],
            )
        if base_only:
            return
        with steps("install sandbox packages and user (apt-get in chroot)"):
            _provision(root, log)
        with steps(f"slim the tree and import {ROOTFS_IMAGE}"):
            for path in _SLIM_PATHS:
                _empty_dir(root / path)
            _import_tree(
                client,
                root,
                ROOTFS_IMAGE,
                log,
                kind="sandbox-rootfs",
                cmd=["bash"],
                labels={PACKAGES_LABEL: packages_hash("default")},
            )
    finally:
        _remove_tree(workdir, log)
    with steps(f"agent layer -> {DEFAULT_IMAGE}"):
        _build_thin_layer(client, log)


def _is_debian_like() -> bool:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return False
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip("\"'")
    ids = {fields.get("ID", ""), *fields.get("ID_LIKE", "").split()}
    return bool(ids & {"debian", "ubuntu"})


def _find_debootstrap() -> str | None:
    found = shutil.which("debootstrap")
    if found:
        return found
    for candidate in ("/usr/sbin/debootstrap", "/sbin/debootstrap"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _ensure_debootstrap(log: Callable[[str], None]) -> str:
    hint = (
        "Build on a host that can reach a container registry (--method dockerfile), "
        "or run as root on Debian/Ubuntu with debootstrap installed."
    )
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        raise ImageBuildError(f"the offline build needs root (debootstrap, chroot). {hint}")
    found = _find_debootstrap()
    if found:
        log(f"      using {found}")
        return found
    if not (_is_debian_like() and shutil.which("apt-get")):
        raise ImageBuildError(f"debootstrap is not installed and this host has no apt. {hint}")
    log("      debootstrap is missing: installing it with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    fix = f"Install debootstrap by hand (apt-get install debootstrap). {hint}"
    _run(["apt-get", "update", "-q"], log, what="apt-get update", fix=fix, env=env)
    _run(
        [
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            "debootstrap",
            "debian-archive-keyring",
        ],
        log,
        what="apt-get install debootstrap",
        fix=fix,
        env=env,
    )
    found = _find_debootstrap()
    if not found:
        raise ImageBuildError(f"debootstrap is still missing after apt-get install. {hint}")
    return found


def _run(
    cmd: Sequence[str],
    log: Callable[[str], None],
    *,
    what: str,
    fix: str,
    env: dict[str, str] | None = None,
) -> None:
    """Run a command, log a condensed progress line every few seconds, raise on failure."""
    log(f"      $ {_clip(shlex.join(cmd), 150)}")
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    count = [0]
    try:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        raise ImageBuildError(f"{what}: cannot run {cmd[0]} ({exc}). {fix}") from exc

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if line:
                tail.append(line)
                count[0] += 1

    reader = threading.Thread(target=read, name=f"e2b-tools {what}", daemon=True)
    reader.start()
    started = last = time.monotonic()
    try:
        while True:
            try:
                returncode = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if now - last >= _PROGRESS_EVERY:
                last = now
                latest = tail[-1] if tail else ""
                log(f"      {now - started:4.0f}s {count[0]:5d} lines | {_clip(latest, 90)}")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        reader.join(timeout=5)
    if returncode != 0:
        raise ImageBuildError(_with_tail(f"{what} failed (exit status {returncode}). {fix}", tail))


def _chroot_env() -> dict[str, str]:
    return {
        "PATH": _PATH,
        "HOME": "/root",
        "LC_ALL": "C",
        "DEBIAN_FRONTEND": "noninteractive",
        "DEBCONF_NONINTERACTIVE_SEEN": "true",
    }


def _provision(root: Path, log: Callable[[str], None]) -> None:
    """apt-get the sandbox packages into the tree and add the sandbox user."""
    (root / "etc/apt/sources.list").write_text(
        f"deb {_mirror()} {DEBIAN_SUITE} main\n"
        f"deb {_mirror()} {DEBIAN_SUITE}-updates main\n"
        f"deb {_security_mirror()} {DEBIAN_SUITE}-security main\n"
    )
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# no daemons may start during the image build\nexit 101\n")
    policy.chmod(0o755)
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    with contextlib.suppress(OSError):
        shutil.copyfile("/etc/resolv.conf", resolv)

    proc_dir = root / "proc"
    proc_dir.mkdir(exist_ok=True)
    fix_net = (
        f"Check that {_mirror()} and {_security_mirror()} are reachable from this host "
        "(or set E2B_TOOLS_DEBIAN_MIRROR / E2B_TOOLS_DEBIAN_SECURITY_MIRROR)."
    )
    apt = ["apt-get", "-q", "-o", "Dpkg::Use-Pty=0", "-o", "Acquire::Retries=3"]

    def chroot(args: list[str], what: str, fix: str = fix_net) -> None:
        _run(["chroot", str(root), *args], log, what=what, fix=fix, env=_chroot_env())

    mounted = False
    try:
        _run(
            ["mount", "-t", "proc", "proc", str(proc_dir)],
            log,
            what="mount /proc in the tree",
            fix="The offline build must run as root where mount is allowed.",
        )
        mounted = True
        chroot([*apt, "update"], "apt-get update")
        chroot([*apt, "-y", "upgrade"], "apt-get upgrade")
        chroot(
            [*apt, "install", "-y", "--no-install-recommends", *SANDBOX_PACKAGES],
            "apt-get install of the sandbox packages",
        )
        chroot([*apt, "clean"], "apt-get clean")
        uid = str(SANDBOX_UID)
        chroot(["groupadd", "--gid", uid, SANDBOX_USER], "groupadd", fix="")
        chroot(
            [
                "useradd",
                "--uid",
                uid,
                "--gid",
                uid,
                "--home-dir",
                SANDBOX_HOME,
                "--create-home",
                "--shell",
                "/bin/bash",
                SANDBOX_USER,
            ],
            "useradd",
            fix="",
        )
        chroot(["chown", "-R", f"{uid}:{uid}", SANDBOX_HOME], "chown home", fix="")
    finally:
        if mounted:
            _umount(proc_dir, log)
        policy.unlink(missing_ok=True)
        resolv.unlink(missing_ok=True)


def _umount(path: Path, log: Callable[[str], None]) -> None:
    for args in (["umount", str(path)], ["umount", "-l", str(path)]):
        if not os.path.ismount(path):
            return
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log(f"      {shlex.join(args)} failed: {_one_line(result.stderr, 160)}")


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) > 1:
            point = fields[1].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _remove_tree(workdir: Path, log: Callable[[str], None]) -> None:
    """Delete the temporary tree, never while anything is still mounted inside it."""
    for point in _mounts_under(workdir):
        _umount(Path(point), log)
    left = _mounts_under(workdir)
    if left:
        log(f"      NOT removing {workdir}: still mounted: {', '.join(left)}")
        return
    started = time.monotonic()
    try:
        shutil.rmtree(workdir)
    except OSError as exc:
        log(f"      could not remove {workdir}: {_one_line(exc, 160)}")
        return
    log(f"      removed {workdir} in {time.monotonic() - started:.1f}s")


def _empty_dir(path: Path) -> None:
    if not path.is_dir() or path.is_symlink():
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _import_tree(
    client: docker.DockerClient,
    root: Path,
    tag: str,
    log: Callable[[str], None],
    *,
    kind: str,
    cmd: list[str],
    exclude: Sequence[str] = (),
    labels: dict[str, str] | None = None,
) -> None:
    """Stream ``tar`` of the tree into the engine's import API, a MiB at a time."""
    all_labels = {IMAGE_KIND_LABEL: kind, VERSION_LABEL: __version__, **(labels or {})}
    changes = [
        f"ENV PATH={_PATH}",
        "ENV LANG=C.UTF-8",
        "LABEL " + " ".join(f"{key}={value}" for key, value in all_labels.items()),
        f"CMD {json.dumps(cmd)}",
    ]
    excludes = [f"--exclude={pattern}" for pattern in ("./proc/*", "./sys/*", "./dev/*", *exclude)]
    args = ["tar", "-C", str(root), "--numeric-owner", "-cf", "-", *excludes, "."]
    repository, image_tag = parse_repository_tag(tag)
    fix = "Check the engine's disk space (docker system df) and the output above."
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
        )
        sent = [0]

        def chunks() -> Iterator[bytes]:
            assert proc.stdout is not None
            last = time.monotonic()
            while data := proc.stdout.read(1 << 20):
                sent[0] += len(data)
                if time.monotonic() - last >= _PROGRESS_EVERY:
                    last = time.monotonic()
                    log(f"      {sent[0] / 1e6:6.0f} MB sent to the engine")
                yield data

        try:
            with _long_api_timeout(client):
                result: Any = client.api.import_image_from_stream(
                    chunks(), repository=repository, tag=image_tag, changes=changes
                )
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise ImageBuildError(f"importing {tag} failed: {_one_line(exc)}. {fix}") from exc
        finally:
            if proc.poll() is None:
                proc.kill()
            returncode = proc.wait()
        errors.seek(0)
        tar_errors = errors.read().decode(errors="replace").strip().splitlines()[-_TAIL_LINES:]
    if returncode != 0:
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(tag)
        raise ImageBuildError(
            _with_tail(
                f"tar of {root} failed (exit status {returncode}) while importing {tag}", tar_errors
            )
        )
    for line in str(result).splitlines():
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict) and message.get("error"):
                raise ImageBuildError(f"importing {tag} failed: {message['error']}. {fix}")
    if not image_exists(tag, client):
        raise ImageBuildError(
            f"importing {tag} produced no image ({_clip(str(result), 200)}). {fix}"
        )
    log(f"      imported {sent[0] / 1e6:.0f} MB as {tag}")
