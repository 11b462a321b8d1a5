"""The ``e2b-tools`` command line (click, with rich tables and progress).

One command per function, grouped by module: :mod:`._sandboxes` (``ls``, ``kill``,
``exec``, ``run``, ``logs``), :mod:`._shell` (``shell``), :mod:`._doctor` (``doctor``),
:mod:`._admin` (``gc``, ``image build``, ``version``, ``mcp``, ``bench``), :mod:`._serve`
(``serve``). To add a
command, write it there and list it in :data:`COMMANDS`. Exit status: 0 ok, 1 a failure
reported in one line on stderr, 2 a usage error; ``exec`` and ``shell`` exit with the
status of what they ran. See ``docs/cli.md``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
import docker.errors

from e2b_tools._exceptions import SandboxError
from e2b_tools._version import __version__

from ._admin import bench, gc, image, mcp, version
from ._common import CLIError, docker_client, one_line
from ._doctor import doctor
from ._sandboxes import exec_, kill, logs, ls, run
from ._serve import serve
from ._shell import shell

__all__ = ["COMMANDS", "CLIError", "cli", "docker_client", "main"]


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(
    __version__, "--version", prog_name="e2b-tools", message="%(prog)s %(version)s"
)
def cli() -> None:
    """Self-hosted E2B-style code sandboxes on your own Docker Engine.

    Exit status: 0 ok, 1 failure (one line on stderr), 2 usage error.
    """


COMMANDS: list[click.Command] = [
    bench,
    doctor,
    exec_,
    gc,
    image,
    kill,
    logs,
    ls,
    mcp,
    run,
    serve,
    shell,
    version,
]
for _command in COMMANDS:
    cli.add_command(_command)


def _fail(message: str) -> int:
    click.echo(f"e2b-tools: error: {one_line(message)}", err=True)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``e2b-tools`` command.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 1 on a reported failure, 2 on a usage error
        (``exec``, ``run`` and ``shell`` return the status of what they ran).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = cli.main(args=args, prog_name="e2b-tools", standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        return 2
    except click.Abort:
        click.echo("e2b-tools: aborted", err=True)
        return 1
    except click.ClickException as exc:
        return _fail(exc.format_message())
    except SandboxError as exc:
        return _fail(str(exc))
    except docker.errors.DockerException as exc:
        return _fail(f"Docker Engine: {exc}")
    except KeyboardInterrupt:
        click.echo("e2b-tools: interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0
