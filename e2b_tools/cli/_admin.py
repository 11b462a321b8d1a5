"""Commands on the installation: ``gc``, ``image build``, ``version``, ``mcp``, ``bench``."""

from __future__ import annotations

import contextlib
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from e2b_tools._version import __version__
from e2b_tools.images import VARIANTS, build_custom_image, build_image

from ._common import CLIError, docker_client, echo_json, get_backend, json_option, load_extra

# ------------------------------------------------------------------------------ gc


@click.command("gc", short_help="Remove expired and orphaned sandboxes.")
@click.option("--dry-run", "-n", is_flag=True, help="list what would be removed; remove nothing")
@click.option("--all", "all_sandboxes", is_flag=True, help="every sandbox, running or not")
@click.option("--yes", "-y", is_flag=True, help="with --all: do not ask for confirmation")
@json_option('print {"removed": [...], "dry_run": ...} as JSON')
def gc(dry_run: bool, all_sandboxes: bool, yes: bool, as_json: bool) -> int:
    """Remove sandboxes nobody will use again.

    By default: labelled containers that are not running (created but never started,
    or exited) and running ones past their deadline whose agent does not answer or
    agrees the deadline passed; then the networks of sandboxes that are gone, and the
    egress proxy once no sandbox needs it. --all removes every sandbox container,
    running or not, after asking (--yes skips the question).
    """
    from e2b_tools._gc import gc as collect

    if all_sandboxes and not dry_run and not yes:
        count = len(get_backend().list_containers(True))
        if not sys.stdin.isatty():
            raise CLIError(f"--all would remove {count} sandbox container(s); add --yes to confirm")
        click.confirm(
            f"Remove all {count} sandbox container(s), running or not?", abort=True, err=True
        )
    removed = collect(all_sandboxes=all_sandboxes, dry_run=dry_run, backend=get_backend())
    if as_json:
        echo_json({"removed": removed, "dry_run": dry_run})
        return 0
    for sandbox_id in removed:
        click.echo(f"{'would remove' if dry_run else 'removed'} {sandbox_id}")
    click.echo(f"{len(removed)} sandbox container(s) {'to remove' if dry_run else 'removed'}")
    return 0


# --------------------------------------------------------------------------- image


@click.group("image")
def image() -> None:
    """Manage the sandbox images."""


_STEP = re.compile(r"^\[(\d+)/(\d+)\] (.*?)(?: \.\.\.)?$")


class BuildDisplay:
    """Build progress: a rich bar per numbered step on a terminal, plain lines elsewhere.

    Every log line is printed (Dockerfile ``Step`` lines, the up-to-date notice); on a
    terminal the current step also shows as a bar with a spinner and elapsed time.
    """

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(highlight=False, soft_wrap=True)
        self.progress: Any = None
        self.task: Any = None

    @contextlib.contextmanager
    def live(self) -> Iterator[Callable[[str], None]]:
        if not self.console.is_terminal:
            yield lambda line: click.echo(line)
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        with self.progress:
            yield self.log

    def log(self, line: str) -> None:
        self.console.print(line, markup=False)
        match = _STEP.match(line)
        if match is None:
            return
        number, total, title = int(match[1]), int(match[2]), match[3]
        if self.task is None:
            self.task = self.progress.add_task(title, total=total)
        self.progress.update(self.task, description=title, completed=number - 1, total=total)


@image.command("build")
@click.option(
    "--variant",
    type=click.Choice(VARIANTS),
    default=None,
    help="which of our images to build (default: default)",
)
@click.option(
    "--method",
    type=click.Choice(("auto", "dockerfile", "offline")),
    default=None,
    help="how to build the base images (default: auto)",
)
@click.option(
    "--force",
    is_flag=True,
    help="rebuild even when up to date (with --dockerfile: without the layer cache)",
)
@click.option("--dockerfile", metavar="PATH", help="build this Dockerfile into a sandbox image")
@click.option(
    "--tag",
    metavar="NAME",
    help="tag of the custom image (default: e2b-tools/custom:<the Dockerfile's directory>)",
)
@click.option(
    "--context", metavar="DIR", help="build context, what COPY sees (default: its directory)"
)
def image_build(
    variant: str | None,
    method: str | None,
    force: bool,
    dockerfile: str | None,
    tag: str | None,
    context: str | None,
) -> int:
    """Build a sandbox image (skipped when up to date), or your own Dockerfile.

    The 'default' variant has Python, JavaScript, TypeScript, bash, C and C++; 'full'
    adds Java, Go, Rust, Ruby and R from the Debian mirror; 'slim' is Python and bash
    only, on the base image. --method 'dockerfile' builds the base images from
    debian:bookworm-slim and needs a container registry; 'offline' uses debootstrap and
    the Debian mirror and needs root on Debian/Ubuntu; 'auto' picks offline when no
    registry answers. With --dockerfile, build your own Dockerfile instead, typically
    'FROM e2b-tools/sandbox:<version>' plus RUN, ENV and COPY lines (docs/images.md).
    """
    if dockerfile is not None:
        for flag, value in (("--variant", variant), ("--method", method)):
            if value is not None:
                raise click.UsageError(
                    f"{flag} builds one of our images; it does not go with --dockerfile"
                )
    else:
        for flag, value in (("--tag", tag), ("--context", context)):
            if value is not None:
                raise click.UsageError(f"{flag} needs --dockerfile")
    display = BuildDisplay()
    client = docker_client()
    with display.live() as log:
        if dockerfile is not None:
            built = build_custom_image(
                dockerfile, tag=tag, context=context, nocache=force, client=client, log=log
            )
            log(f"use it with Sandbox.create(image={built!r})")
            return 0
        build_image(
            variant=variant or "default",  # type: ignore[arg-type]  # click.Choice checked it
            method=method or "auto",  # type: ignore[arg-type]
            force=force,
            client=client,
            log=log,
        )
    return 0


# ------------------------------------------------------------------------- version


@click.command("version")
def version() -> int:
    """Print the e2b-tools version."""
    click.echo(__version__)
    return 0


# ----------------------------------------------------------------------------- mcp

MCP_MISSING = (
    "the MCP server is not installed: pip install 'e2b-tools[mcp]' (it brings the "
    "e2b_tools_mcp adapter and the mcp SDK)"
)


def _host_port(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT", ctx=ctx, param=param)
    return value


@click.command("mcp", short_help="Serve the sandbox tools over MCP.")
@click.option(
    "--http",
    metavar="HOST:PORT",
    callback=_host_port,
    help="serve over HTTP on HOST:PORT instead of stdio",
)
@click.option(
    "--name-prefix",
    default="",
    metavar="PREFIX",
    help="put PREFIX before every tool name (e.g. sbx_: sbx_run_code)",
)
def mcp(http: str | None, name_prefix: str) -> int:
    """Serve the sandbox tools over MCP (stdio by default, or --http HOST:PORT).

    e2b-tools mcp

    e2b-tools mcp --http 127.0.0.1:8765 --name-prefix sbx_
    """
    server = load_extra("e2b_tools_mcp", ("mcp",), MCP_MISSING)
    server.serve(http, name_prefix=name_prefix)
    return 0


# --------------------------------------------------------------------------- bench


def _p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def _p95_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1e3


@click.command("bench", short_help="Quick latency check beside raw Docker.")
@click.option(
    "--rounds", type=click.IntRange(min=1), default=3, show_default=True, help="cold starts"
)
@click.option(
    "--calls", type=click.IntRange(min=1), default=50, show_default=True, help="round trips"
)
@json_option("print the figures as JSON")
def bench(rounds: int, calls: int, as_json: bool) -> int:
    """A quick latency check: cold create and run_code round trip beside raw Docker.

    Times, on the default image: a bare `docker create` + `start` (the floor), a cold
    Sandbox.create() to its first run_code result, and run_code("x = 1") round trips.
    The full benchmark (JavaScript, commands, memory, the network proxy) is `make bench`
    in the source tree (bench/bench.py; docs/benchmark.md).
    """
    from e2b_tools._sync import Sandbox
    from e2b_tools.images import DEFAULT_IMAGE

    client = docker_client()
    api = client.api
    try:
        api.inspect_image(DEFAULT_IMAGE)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise CLIError(f"{DEFAULT_IMAGE} is not built; run `e2b-tools image build`") from exc
    labels = {"e2b-tools.bench": "1"}
    raw: list[float] = []
    for _ in range(rounds + 1):  # the first one warms the engine and the page cache
        started = time.perf_counter()
        cid = api.create_container(
            DEFAULT_IMAGE,
            command=["sleep", "infinity"],
            labels=labels,
            host_config=api.create_host_config(network_mode="none"),
        )["Id"]
        try:
            api.start(cid)
            raw.append(time.perf_counter() - started)
        finally:
            api.remove_container(cid, force=True)
    raw = raw[1:]
    cold: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        sbx = Sandbox.create(backend=get_backend())
        try:
            sbx.run_code("1")
            cold.append(time.perf_counter() - started)
        finally:
            sbx.kill()
    trips: list[float] = []
    with Sandbox.create(backend=get_backend()) as sbx:
        sbx.run_code("x = 0")
        for _ in range(calls):
            started = time.perf_counter()
            sbx.run_code("x = 1")
            trips.append(time.perf_counter() - started)
    rows = [
        ("raw docker create+start", _p50_ms(raw), None, len(raw)),
        ("cold Sandbox.create() -> first run_code", _p50_ms(cold), None, len(cold)),
        ('run_code("x = 1") round trip', _p50_ms(trips), _p95_ms(trips), len(trips)),
    ]
    if as_json:
        echo_json(
            {
                "image": DEFAULT_IMAGE,
                "rows": [
                    {"name": name, "p50_ms": round(p50, 2), "p95_ms": p95 and round(p95, 2), "n": n}
                    for name, p50, p95, n in rows
                ],
                "cold_over_raw": round(_p50_ms(cold) / _p50_ms(raw), 2),
            }
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold", title=f"on {DEFAULT_IMAGE}")
    for name in ("", "p50 ms", "p95 ms", "n"):
        table.add_column(name, justify="left" if not name else "right")
    for name, p50, p95, n in rows:
        table.add_row(name, f"{p50:.1f}", "" if p95 is None else f"{p95:.1f}", str(n))
    console = Console(highlight=False, soft_wrap=True)
    console.print(table)
    console.print(
        f"cold create is {_p50_ms(cold) / _p50_ms(raw):.1f}x a bare docker create+start. "
        "Full benchmark: `make bench` in the source tree (bench/bench.py, docs/benchmark.md)."
    )
    return 0
