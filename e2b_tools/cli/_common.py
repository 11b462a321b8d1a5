"""What every command shares: the failure type, the engine and backend, output helpers."""

from __future__ import annotations

import importlib
import json
import socket
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

import click
import docker
import docker.errors

from e2b_tools._exceptions import SandboxError
from e2b_tools.backends import Backend

F = TypeVar("F", bound=Callable[..., Any])


class CLIError(SandboxError):
    """A failure reported as one line on stderr with exit status 1."""


def get_backend() -> Backend:
    """The backend the commands use (tests point it at another one)."""
    from e2b_tools.backends.docker import default_backend

    return default_backend()


def docker_client() -> docker.DockerClient:
    """A client for the Docker Engine from the environment, or a :class:`CLIError`."""
    from e2b_tools.backends.docker import ENGINE_TIMEOUT

    try:
        # A hung engine fails the first call fast; builds then get the SDK's usual 60 s.
        client = docker.from_env(timeout=int(max(1, ENGINE_TIMEOUT)))
        client.api.timeout = 60
        return client
    except docker.errors.DockerException as exc:
        raise CLIError(
            f"no Docker Engine answers ({one_line(str(exc))}); "
            "start one (on Linux: `sudo systemctl start docker`) or set DOCKER_HOST"
        ) from exc


def one_line(text: str) -> str:
    """A message as one line: its summary (before any ``---`` detail), spaces collapsed."""
    return " ".join(text.split("\n---", 1)[0].split())


def this_host() -> str:
    """The host name that the owner label of sandboxes made here starts with."""
    return socket.gethostname()


def owner_host(owner: str) -> str:
    """The host part of an owner label (``host:pid``)."""
    return owner.rpartition(":")[0] if ":" in owner else owner


def echo_json(value: Any) -> None:
    """Write ``value`` as indented JSON on stdout (the ``--json`` output)."""
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def json_option(help_text: str = "print JSON for scripts instead of a table") -> Callable[[F], F]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def metadata_option(action: str) -> Callable[[F], F]:
    return click.option(
        "--metadata",
        "-m",
        "metadata",
        multiple=True,
        metavar="KEY=VALUE",
        callback=_parse_metadata,
        help=f"{action} only sandboxes whose metadata has KEY=VALUE (repeatable)",
    )


def _parse_metadata(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", ctx=ctx, param=param)
        out[key] = val
    return out


def write_out(text: str) -> None:
    """Stream a chunk of the sandbox's stdout to ours, as it comes."""
    sys.stdout.write(text)
    sys.stdout.flush()


def write_err(text: str) -> None:
    """Stream a chunk of the sandbox's stderr to ours, as it comes."""
    sys.stderr.write(text)
    sys.stderr.flush()


def human_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``, ``3d04h``; negative values are ``-``."""
    if seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def load_extra(module: str, needs: tuple[str, ...], missing: str) -> ModuleType:
    """Import an optional adapter by name (the core never imports an adapter by an
    import statement); :class:`CLIError` with ``missing`` when it, or one of the
    top-level packages in ``needs`` that it imports, is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if str(exc.name).split(".")[0] not in (module, *needs):
            raise
        raise CLIError(missing) from exc
