"""The ``e2b-tools`` command line.

Each command group registers itself in :data:`_REGISTRARS` with a function that adds its
subparsers; every leaf parser sets ``handler`` to a function taking the parsed arguments
and returning an exit code. To add a command, write ``_add_<name>(subparsers)`` and list
it there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import docker
import docker.errors

from e2b_tools._exceptions import SandboxError
from e2b_tools._version import __version__
from e2b_tools.images import VARIANTS, build_custom_image, build_image

Handler = Callable[[argparse.Namespace], int]


class CLIError(SandboxError):
    """A failure reported as one line on stderr with exit status 1."""


def _log(line: str) -> None:
    print(line, flush=True)


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
            f"no Docker Engine answers ({' '.join(str(exc).split())}); "
            "start one (on Linux: `sudo systemctl start docker`) or set DOCKER_HOST"
        ) from exc


# ------------------------------------------------------------------------ version


def _cmd_version(args: argparse.Namespace) -> int:
    print(__version__)
    return 0


def _add_version(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("version", help="print the e2b-tools version")
    parser.set_defaults(handler=_cmd_version)


# -------------------------------------------------------------------------- image


def _cmd_image_build(args: argparse.Namespace) -> int:
    if args.dockerfile is not None:
        tag = build_custom_image(
            args.dockerfile,
            tag=args.tag,
            context=args.context,
            nocache=args.force,
            client=docker_client(),
            log=_log,
        )
        _log(f"use it with Sandbox.create(image={tag!r})")
        return 0
    build_image(
        variant=args.variant or "default",
        method=args.method or "auto",
        force=args.force,
        client=docker_client(),
        log=_log,
    )
    return 0


def _check_image_build_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.dockerfile is not None:
        for flag, value in (("--variant", args.variant), ("--method", args.method)):
            if value is not None:
                parser.error(f"{flag} builds one of our images; it does not go with --dockerfile")
    else:
        for flag, value in (("--tag", args.tag), ("--context", args.context)):
            if value is not None:
                parser.error(f"{flag} needs --dockerfile")


def _add_image(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    image = subparsers.add_parser("image", help="manage the sandbox images")
    image.set_defaults(handler=_help_of(image))
    actions = image.add_subparsers(title="image commands", metavar="COMMAND")
    build = actions.add_parser(
        "build",
        help="build a sandbox image (skipped when up to date), or your own Dockerfile",
        description=(
            "Build a sandbox image and the images under it. The 'default' variant has "
            "Python, JavaScript, TypeScript, bash, C and C++; 'full' adds Java, Go, Rust, "
            "Ruby and R from the Debian mirror; 'slim' is Python and bash only, on the "
            "base image, and builds in seconds once that exists. 'dockerfile' builds the "
            "base images from debian:bookworm-slim and needs a container registry; "
            "'offline' uses debootstrap and the Debian mirror and needs root on "
            "Debian/Ubuntu; 'auto' picks offline when no registry answers. "
            "With --dockerfile, build your own Dockerfile instead, typically "
            "'FROM e2b-tools/sandbox:<version>' plus RUN, ENV and COPY lines "
            "(see docs/images.md)."
        ),
    )
    build.add_argument(
        "--variant",
        choices=VARIANTS,
        default=None,
        help="which of our images to build (default: default)",
    )
    build.add_argument(
        "--method",
        choices=("auto", "dockerfile", "offline"),
        default=None,
        help="how to build the base images (default: auto)",
    )
    build.add_argument(
        "--force",
        action="store_true",
        help="rebuild even when up to date (with --dockerfile: without the layer cache)",
    )
    custom = build.add_argument_group("custom images")
    custom.add_argument(
        "--dockerfile",
        metavar="PATH",
        help="build this Dockerfile into a sandbox image",
    )
    custom.add_argument(
        "--tag",
        metavar="NAME",
        help=(
            "tag of the custom image (default: e2b-tools/custom:<name of the Dockerfile's "
            "directory>)"
        ),
    )
    custom.add_argument(
        "--context",
        metavar="DIR",
        help="build context, what COPY sees (default: the Dockerfile's directory)",
    )

    def handle(args: argparse.Namespace) -> int:
        _check_image_build_args(build, args)
        return _cmd_image_build(args)

    build.set_defaults(handler=handle)


# ----------------------------------------------------------------------------- gc


def _cmd_gc(args: argparse.Namespace) -> int:
    from e2b_tools._gc import gc

    try:
        removed = gc(all_sandboxes=args.all)
    except SandboxError as exc:
        raise CLIError(str(exc)) from exc
    for sandbox_id in removed:
        print(f"removed {sandbox_id}")
    print(f"{len(removed)} sandbox container(s) removed")
    return 0


def _add_gc(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "gc",
        help="remove orphaned sandbox containers",
        description=(
            "Remove labelled sandbox containers that are not running, and running ones "
            "past their deadline whose agent does not answer. --all removes every "
            "labelled sandbox container, running or not."
        ),
    )
    parser.add_argument("--all", action="store_true", help="remove every sandbox container")
    parser.set_defaults(handler=_cmd_gc)


# ------------------------------------------------------------------------- parser


_REGISTRARS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_gc,
    _add_image,
    _add_version,
]


def _help_of(parser: argparse.ArgumentParser) -> Handler:
    def show_help(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return show_help


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``e2b-tools`` command."""
    parser = argparse.ArgumentParser(
        prog="e2b-tools",
        description="Self-hosted E2B-style code sandboxes on your own Docker Engine.",
    )
    parser.add_argument("--version", action="version", version=f"e2b-tools {__version__}")
    parser.set_defaults(handler=_help_of(parser))
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in _REGISTRARS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``e2b-tools`` command.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 1 on a reported failure, 2 on a usage error.
    """
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except SandboxError as exc:
        print(f"e2b-tools: error: {exc}", file=sys.stderr)
        return 1
    except docker.errors.DockerException as exc:
        print(f"e2b-tools: error: Docker Engine: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("e2b-tools: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
