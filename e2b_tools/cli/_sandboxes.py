"""Commands on sandboxes: ``ls``, ``kill``, ``exec``, ``run``, ``logs``."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
import time
from typing import Any

import click

from e2b_tools._exceptions import CommandExitError, SandboxTimeoutError
from e2b_tools._models import Execution, Result
from e2b_tools._sync import Sandbox
from e2b_tools.backends.docker import LABEL_END_AT, LABEL_METADATA, LABEL_OWNER, LABEL_SANDBOX

from ._common import (
    CLIError,
    echo_json,
    get_backend,
    human_duration,
    json_option,
    metadata_option,
    one_line,
    owner_host,
    this_host,
    write_err,
    write_out,
)

TIMEOUT_EXIT = 124
"""Exit status of ``exec`` and ``run`` when the command or code ran past ``--timeout``
(as timeout(1) does)."""

# ------------------------------------------------------------------------------ ls


def sandbox_rows(*, all_states: bool = False) -> list[dict[str, Any]]:
    """One row per labelled container: what ``ls --json`` prints."""
    now = time.time()
    rows = []
    for summary in get_backend().list_containers(all_states):
        labels = summary.get("Labels") or {}
        try:
            metadata = json.loads(labels.get(LABEL_METADATA) or "{}")
        except ValueError:
            metadata = {}
        created = summary.get("Created")
        end_at = labels.get(LABEL_END_AT)
        rows.append(
            {
                "sandbox_id": labels.get(LABEL_SANDBOX, ""),
                "container_id": str(summary.get("Id", ""))[:12],
                "state": summary.get("State", ""),
                "image": summary.get("Image", ""),
                "created_at": _iso(created),
                "age_seconds": round(now - float(created), 1) if created else None,
                "end_at": _iso(float(end_at)) if end_at else None,
                "ttl_seconds": round(float(end_at) - now, 1) if end_at else None,
                "metadata": metadata if isinstance(metadata, dict) else {},
                "owner": labels.get(LABEL_OWNER, ""),
            }
        )
    rows.sort(key=lambda row: row["age_seconds"] or 0.0)
    return rows


def _iso(timestamp: float | None) -> str | None:
    if not timestamp:
        return None
    return dt.datetime.fromtimestamp(float(timestamp), dt.timezone.utc).isoformat()


def _matches(row: dict[str, Any], metadata: dict[str, str], mine: bool) -> bool:
    if mine and owner_host(row["owner"]) != this_host():
        return False
    return all(row["metadata"].get(k) == v for k, v in metadata.items())


@click.command("ls")
@click.option("--all", "-a", "all_states", is_flag=True, help="include sandboxes not running")
@click.option("--mine", is_flag=True, help="only sandboxes created on this host")
@metadata_option("list")
@json_option()
def ls(all_states: bool, mine: bool, metadata: dict[str, str], as_json: bool) -> int:
    """List sandboxes: id, age, time left, image, metadata, owner.

    TTL LEFT is the deadline given at creation; set_timeout() moves the real one
    (the agent enforces it, and `gc` asks the agent before removing).
    """
    rows = [r for r in sandbox_rows(all_states=all_states) if _matches(r, metadata, mine)]
    if as_json:
        echo_json(rows)
        return 0
    if not rows:
        click.echo("no sandboxes", err=True)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("ID", "AGE", "TTL LEFT", "IMAGE", "METADATA", "OWNER"):
        table.add_column(name, no_wrap=name in ("ID", "AGE", "TTL LEFT"), overflow="fold")
    if all_states:
        table.add_column("STATE")
    for row in rows:
        ttl = row["ttl_seconds"]
        cells = [
            row["sandbox_id"] or row["container_id"],
            human_duration(row["age_seconds"] or 0),
            "-" if ttl is None else (human_duration(ttl) if ttl >= 0 else "expired"),
            row["image"],
            ",".join(f"{k}={v}" for k, v in sorted(row["metadata"].items())) or "-",
            row["owner"] or "-",
        ]
        if all_states:
            cells.append(row["state"])
        table.add_row(*cells)
    # On a terminal the table fits its width; into a pipe or a file (grep, CI logs) each
    # row stays whole on one line, as `docker ps` does.
    width = None if sys.stdout.isatty() else 1000
    Console(soft_wrap=False, highlight=False, width=width).print(table)
    return 0


# ---------------------------------------------------------------------------- kill


@click.command("kill", short_help="Kill sandboxes by id, or all of this host's.")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option(
    "--all-mine",
    is_flag=True,
    help="kill every sandbox created on this host (owner label host:pid, any pid)",
)
@metadata_option("with --all-mine, kill")
def kill(ids: tuple[str, ...], all_mine: bool, metadata: dict[str, str]) -> int:
    """Kill sandboxes by id (a unique prefix is enough), or all of this host's.

    "Mine" means created on this host: the owner label of a sandbox is the host name and
    pid of the process that created it, so --all-mine matches the host part and kills
    the sandboxes of every process and user of this host that shares its Docker Engine
    (anyone who can reach the engine controls every container anyway). Narrow it with
    --metadata.
    """
    if bool(ids) == all_mine:
        raise click.UsageError("give sandbox IDs or --all-mine (not both)")
    if metadata and not all_mine:
        raise click.UsageError("--metadata goes with --all-mine")
    backend = get_backend()
    summaries = backend.list_containers(True)
    by_id = {(s.get("Labels") or {}).get(LABEL_SANDBOX, ""): s for s in summaries}
    targets: list[tuple[str, str]] = []
    failed = 0
    if all_mine:
        rows = [r for r in sandbox_rows(all_states=True) if _matches(r, metadata, True)]
        targets = [(r["sandbox_id"], by_id[r["sandbox_id"]]["Id"]) for r in rows]
        if not targets:
            click.echo(f"no sandboxes of this host ({this_host()}) to kill", err=True)
    for wanted in ids:
        found = [sid for sid in by_id if sid and sid.startswith(wanted)]
        if len(found) != 1:
            why = "no sandbox has this id" if not found else f"ambiguous: {', '.join(found)}"
            click.echo(f"e2b-tools: error: {wanted}: {why}", err=True)
            failed += 1
            continue
        targets.append((found[0], by_id[found[0]]["Id"]))
    for sandbox_id, container_id in targets:
        if backend.kill(container_id):
            click.echo(f"killed {sandbox_id}")
        else:
            click.echo(f"{sandbox_id} was already gone")
    return 1 if failed else 0


# ---------------------------------------------------------------------------- exec


def resolve_id(wanted: str) -> str:
    """The id of the running sandbox that ``wanted`` names (an id or a unique prefix)."""
    ids = [
        str((s.get("Labels") or {}).get(LABEL_SANDBOX, ""))
        for s in get_backend().list_containers(False)
    ]
    if wanted in ids:
        return wanted
    found = [sid for sid in ids if sid and sid.startswith(wanted)]
    if len(found) == 1:
        return found[0]
    if found:
        raise CLIError(f"{wanted!r} names several sandboxes: {', '.join(sorted(found))}")
    raise CLIError(f"no running sandbox has the id {wanted!r} (see `e2b-tools ls`)")


def _connect(sandbox_id: str) -> Sandbox:
    return Sandbox.connect(resolve_id(sandbox_id), backend=get_backend())


def _exit_status(code: int) -> int:
    # A process killed by signal N reports -N; shells say 128+N.
    return 128 - code if code < 0 else min(code, 255)


@click.command(
    "exec",
    context_settings={"ignore_unknown_options": True},
    short_help="Run a command in a sandbox; exit with its status.",
)
@click.argument("sandbox_id", metavar="ID")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--cwd", help="working directory (default: the workspace)")
@click.option("--env", "-e", "envs", multiple=True, metavar="KEY=VALUE", help="repeatable")
@click.option("--timeout", type=float, default=None, help="seconds before it is killed")
def exec_(
    sandbox_id: str,
    command: tuple[str, ...],
    cwd: str | None,
    envs: tuple[str, ...],
    timeout: float | None,
) -> int:
    """Run a command in a running sandbox; stream its output; exit with its status.

    One argument is a shell command line (pipes and $VARS work); several are one
    program and its arguments, quoted for you:

        e2b-tools exec 4f2a -- 'ls | wc -l'

        e2b-tools exec 4f2a -- python3 -c 'print(42)'
    """
    line = command[0] if len(command) == 1 else shlex.join(command)
    env = {}
    for item in envs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--env")
        env[key] = value
    sbx = _connect(sandbox_id)
    try:
        sbx.commands.run(
            line, cwd=cwd, envs=env, timeout=timeout, on_stdout=write_out, on_stderr=write_err
        )
    except CommandExitError as exc:
        return _exit_status(exc.exit_code)
    except SandboxTimeoutError as exc:
        click.echo(f"e2b-tools: error: {one_line(str(exc))}", err=True)
        return TIMEOUT_EXIT
    return 0


# ----------------------------------------------------------------------------- run


def _describe(result: Result) -> str:
    if result.text is not None and (result.is_main_result or not result.formats()[1:]):
        return result.text
    kinds = ", ".join(result.formats()) or "empty"
    return f"[display: {kinds}]"


def _print_execution(execution: Execution) -> None:
    for result in execution.results:
        click.echo(_describe(result))
    if execution.error is not None:
        error = execution.error
        text = error.traceback.rstrip() or f"{error.name}: {error.value}"
        click.echo(text, err=True)
    if execution.saved_output is not None:
        click.echo(f"[whole output saved in the sandbox: {execution.saved_output.path}]", err=True)


@click.command("run", short_help="Run code in a new or an existing sandbox.")
@click.argument("code", required=False)
@click.option("--language", "-l", default="python", show_default=True, help="e.g. js, bash, c")
@click.option(
    "--file", "-f", "file", type=click.File("r"), help="read the code from a file (-: stdin)"
)
@click.option("--sandbox", "-s", "sandbox_id", metavar="ID", help="run in this sandbox (kept)")
@click.option("--image", help="image of the new sandbox (default: e2b-tools/sandbox)")
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="seconds for the code"
)
@json_option("print the whole execution as JSON (no streaming)")
def run(
    code: str | None,
    language: str,
    file: Any,
    sandbox_id: str | None,
    image: str | None,
    timeout: float,
    as_json: bool,
) -> int:
    """Run code in a new sandbox (killed after) or an existing one (--sandbox).

    Streams stdout and stderr, then prints results (the last expression's value,
    displays) and the error's traceback. Exit status: 0, 1 if the code raised (or a
    stateless program failed), 124 past --timeout.

        e2b-tools run 'import sys; sys.version'

        e2b-tools run -l js -f script.js --sandbox 4f2a
    """
    if code is not None and file is not None:
        raise click.UsageError("give CODE or --file, not both")
    if code is None:
        if file is None and sys.stdin.isatty():
            raise click.UsageError("give CODE, --file PATH, or code on stdin")
        code = (file or sys.stdin).read()
    if image is not None and sandbox_id is not None:
        raise click.UsageError("--image makes a new sandbox; it does not go with --sandbox")
    assert code is not None
    sbx = _connect(sandbox_id) if sandbox_id else Sandbox.create(image, backend=get_backend())
    try:
        try:
            execution = sbx.run_code(
                code,
                language,
                timeout=timeout,
                on_stdout=None if as_json else write_out,
                on_stderr=None if as_json else write_err,
            )
        except SandboxTimeoutError as exc:
            if as_json and exc.execution is not None:
                echo_json(exc.execution.model_dump(mode="json", by_alias=True))
            elif exc.execution is not None:
                _print_execution(exc.execution)
            click.echo(f"e2b-tools: error: {one_line(str(exc))}", err=True)
            return TIMEOUT_EXIT
    finally:
        if not sandbox_id:
            sbx.kill()
    if as_json:
        echo_json(execution.model_dump(mode="json", by_alias=True))
    else:
        _print_execution(execution)
    return 1 if execution.error is not None else 0


# ---------------------------------------------------------------------------- logs


@click.command("logs", short_help="Print a sandbox agent's own log.")
@click.argument("sandbox_id", metavar="ID")
@click.option(
    "--lines",
    "-n",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="how many of the latest lines (0: all the agent keeps, up to 1000)",
)
@json_option('print {"lines": [...]} as JSON')
def logs(sandbox_id: str, lines: int, as_json: bool) -> int:
    """Print the sandbox agent's own log (start, connections, deadline changes, failures).

    The agent keeps its last 1000 lines in memory; the container has no other log.
    Output of your code and commands is not in it.
    """
    found = _connect(sandbox_id).agent_log(lines or None)
    if as_json:
        echo_json({"sandbox_id": sandbox_id, "lines": found})
    else:
        for line in found:
            click.echo(line)
    return 0
