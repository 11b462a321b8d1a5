"""Per-call latency and cold start of e2b-tools beside Docker-based peers, in one run.

On the same engine, image and minute it measures (p50/p95/min over N calls, like
``bench/bench.py``):

  raw          docker create+start, exec_run('true')      (the engine's own floor)
  e2b-tools    cold create -> first result, run_code('x = 1'), commands.run('true')
  llm-sandbox  SandboxSession (Docker backend): open -> first run(), run('x = 1'),
               execute_command('true')
  autogen      DockerCommandLineCodeExecutor: start -> first block, a python block
               'x = 1', an sh block 'true'
  langchain    ShellToolMiddleware with DockerExecutionPolicy: first tool call (it
               starts the container), shell 'true', shell "python3 -c 'x = 1'"

A peer that is not installed is skipped with a line saying so; one that fails is
reported and the run goes on. Every container a peer starts carries this run's label or
name prefix and is removed at the end, whatever happened. The peers run their own
defaults, except where the offline machine needs otherwise (each is said where it is
set up): no image is ever pulled, they all get the project's image.

Usage: pip install -r bench/requirements-peers.txt   (a throwaway venv, not .venv)
       python bench/peers.py [--rounds 5] [--calls 300] [--peer-calls 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

import docker
from timings import summary

from bench import _time
from e2b_tools import Sandbox
from e2b_tools.images import DEFAULT_IMAGE, build_image

Row = tuple[str, dict[str, float]]
RUN_LABEL = "e2b-tools-peers.run"
WARM = 5


class Run:
    """What every peer shares: the engine, the image, the sample sizes and this run's
    label and name prefix, by which whatever a peer started is found and removed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.client = docker.from_env()
        self.image: str = DEFAULT_IMAGE
        self.rounds: int = args.rounds
        self.calls: int = args.calls
        self.peer_calls: int = args.peer_calls
        self.run_id = uuid.uuid4().hex[:8]
        self.prefix = f"e2b-tools-peers-{self.run_id}"
        self.labels = {RUN_LABEL: self.run_id}
        self._names = 0

    def name(self, peer: str) -> str:
        """A fresh container name under this run's prefix."""
        self._names += 1
        return f"{self.prefix}-{peer}-{self._names}"

    def sweep(self) -> int:
        """Force-remove every container of this run (by label or name); how many."""
        api = self.client.api
        mine = [{"label": f"{RUN_LABEL}={self.run_id}"}, {"name": self.prefix}]
        found = {c["Id"] for f in mine for c in api.containers(all=True, filters=f)}
        for cid in found:
            try:
                api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass
        return len(found)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _ok(exit_code: int | None, what: str) -> None:
    """Time only calls that work: a peer whose call fails is reported, not measured."""
    if exit_code != 0:
        raise RuntimeError(f"{what} exited {exit_code}")


def _cold(rounds: int, once: Callable[[], Callable[[], None]]) -> list[float]:
    """Time ``once()`` (start and first result) ``rounds`` times; the cleanup it returns
    runs outside the timing."""
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        cleanup = once()
        out.append(time.perf_counter() - t)
        cleanup()
    return out


def raw_baseline(run: Run) -> list[Row]:
    """The engine's floor, as ``bench/bench.py`` measures it: create+start of
    ``sleep infinity`` and one ``exec_run('true')`` in a running container."""
    api = run.client.api

    def create_start() -> Callable[[], None]:
        cid = api.create_container(run.image, command=["sleep", "infinity"], labels=run.labels)
        api.start(cid["Id"])
        return lambda: api.remove_container(cid["Id"], force=True)

    create_start()()  # warm the engine and page cache once, as bench.py does
    rows = [("raw          docker create+start", summary(_cold(run.rounds, create_start)))]
    cid = api.create_container(run.image, command=["sleep", "infinity"], labels=run.labels)
    api.start(cid["Id"])
    try:
        container = run.client.containers.get(cid["Id"])
        for _ in range(WARM):
            container.exec_run("true")
        rows.append(
            (
                "raw          exec_run('true')",
                summary(_time(lambda: container.exec_run("true"), run.peer_calls)),
            )
        )
    finally:
        api.remove_container(cid["Id"], force=True)
    return rows


def ours(run: Run) -> list[Row]:
    """e2b-tools: the long-lived agent, one JSON line each way per call."""

    def cold() -> Callable[[], None]:
        sbx = Sandbox.create()
        sbx.run_code("x = 1")
        return sbx.kill

    rows = [("e2b-tools    cold create -> first result", summary(_cold(run.rounds, cold)))]
    with Sandbox.create() as sbx:
        for _ in range(20):
            sbx.run_code("x = 1")
            sbx.commands.run("true")
        rows.append(
            (
                "e2b-tools    run_code('x = 1')",
                summary(_time(lambda: sbx.run_code("x = 1"), run.calls)),
            )
        )
        rows.append(
            (
                "e2b-tools    commands.run('true')",
                summary(_time(lambda: sbx.commands.run("true"), run.peer_calls * 2)),
            )
        )
    return rows


def llm_sandbox(run: Run) -> list[Row]:
    """llm-sandbox's Docker backend: each ``run`` copies the code in (``put_archive``)
    and ``docker exec``s a fresh interpreter; ``execute_command`` is one ``exec_run``.

    ``skip_environment_setup=True``: its default setup creates a venv in the container
    and upgrades pip from the package index, which this offline machine cannot reach.
    ``command``/``init``: the project image's own command is the agent, which would
    exit without an attached stdin, and ``init`` lets ``close`` stop ``sleep`` at once.
    """
    from llm_sandbox import SandboxSession

    def session() -> Any:
        return SandboxSession(
            lang="python",
            image=run.image,
            skip_environment_setup=True,
            runtime_configs={
                "command": ["sleep", "infinity"],
                "init": True,
                "labels": run.labels,
                "name": run.name("llm-sandbox"),
            },
        )

    def cold() -> Callable[[], None]:
        s = session()
        s.open()
        _ok(s.run("x = 1").exit_code, "llm-sandbox run")
        return s.close

    rows = [("llm-sandbox  cold open -> first run()", summary(_cold(run.rounds, cold)))]
    with session() as s:
        for _ in range(WARM):
            _ok(s.run("x = 1").exit_code, "llm-sandbox run")
            _ok(s.execute_command("true").exit_code, "llm-sandbox execute_command")
        rows.append(
            ("llm-sandbox  run('x = 1')", summary(_time(lambda: s.run("x = 1"), run.peer_calls)))
        )
        rows.append(
            (
                "llm-sandbox  execute_command('true')",
                summary(_time(lambda: s.execute_command("true"), run.peer_calls)),
            )
        )
    return rows


def autogen(run: Run) -> list[Row]:
    """AutoGen's ``DockerCommandLineCodeExecutor``: each block is written to a bind-mounted
    work dir and run by ``exec_run(["timeout", ..., "python", file])``.

    The work dir is made world-readable: the image runs as uid 1000 and a private
    temporary directory of this (root) process would not be readable from inside.
    Containers are removed by name (``stop`` would wait 10 s: ``/bin/sh`` as PID 1
    ignores SIGTERM), then ``stop()`` finds nothing left to stop.
    """
    from autogen_core import CancellationToken
    from autogen_core.code_executor import CodeBlock
    from autogen_ext.code_executors.docker import DockerCommandLineCodeExecutor

    api = run.client.api
    python = [CodeBlock(language="python", code="x = 1")]
    shell = [CodeBlock(language="sh", code="true")]

    async def start(work_dir: str) -> Any:
        executor = DockerCommandLineCodeExecutor(
            image=run.image, container_name=run.name("autogen"), work_dir=work_dir
        )
        await executor.start()
        return executor

    async def stop(executor: Any) -> None:
        try:
            api.remove_container(executor.container_name, force=True)
        except docker.errors.NotFound:
            pass
        await executor.stop()

    async def timed(fn: Callable[[], Any], n: int) -> list[float]:
        out = []
        for _ in range(n):
            t = time.perf_counter()
            await fn()
            out.append(time.perf_counter() - t)
        return out

    async def main(work_dir: str) -> list[Row]:
        token = CancellationToken()
        cold: list[float] = []
        for _ in range(run.rounds):
            t = time.perf_counter()
            executor = await start(work_dir)
            try:
                _ok((await executor.execute_code_blocks(python, token)).exit_code, "autogen")
                cold.append(time.perf_counter() - t)
            finally:
                await stop(executor)
        rows = [("autogen      cold start -> first block", summary(cold))]
        executor = await start(work_dir)
        try:
            for _ in range(WARM):
                _ok((await executor.execute_code_blocks(python, token)).exit_code, "autogen")
                _ok((await executor.execute_code_blocks(shell, token)).exit_code, "autogen")
            for name, blocks in (("python block 'x = 1'", python), ("sh block 'true'", shell)):
                samples = await timed(
                    lambda b=blocks: executor.execute_code_blocks(b, token), run.peer_calls
                )
                rows.append((f"autogen      {name}", summary(samples)))
        finally:
            await stop(executor)
        return rows

    work_dir = tempfile.mkdtemp(prefix="e2b-tools-peers-")
    os.chmod(work_dir, 0o755)
    try:
        return asyncio.run(main(work_dir))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def langchain(run: Run) -> list[Row]:
    """LangChain's ``ShellToolMiddleware`` with ``DockerExecutionPolicy``: one persistent
    ``bash`` in ``docker run -i --rm --network none``, fed commands on stdin, called
    through the tool it gives the agent (as the agent's tool node would)."""
    from langchain.agents.middleware import DockerExecutionPolicy, ShellToolMiddleware
    from langchain.tools import ToolRuntime

    def middleware() -> tuple[Any, dict[str, Any]]:
        policy = DockerExecutionPolicy(
            image=run.image,
            extra_run_args=["--label", f"{RUN_LABEL}={run.run_id}", "--name", run.name("lc")],
        )
        return ShellToolMiddleware(execution_policy=policy), {"messages": []}

    def call(mw: Any, state: dict[str, Any], command: str) -> Any:
        runtime = ToolRuntime(
            state=state,
            context=None,
            config={},
            stream_writer=lambda chunk: None,
            tool_call_id="bench",
            store=None,
        )
        message = mw.tools[0].invoke({"command": command, "runtime": runtime})
        _ok(message.artifact.get("exit_code"), f"langchain shell: {message.content}")
        return message

    def cold() -> Callable[[], None]:
        mw, state = middleware()
        call(mw, state, "true")  # the first call starts the container
        return lambda: mw.after_agent(state, None)

    rows = [("langchain    cold first call (docker run)", summary(_cold(run.rounds, cold)))]
    mw, state = middleware()
    try:
        for _ in range(WARM):
            call(mw, state, "true")
        for command in ("true", "python3 -c 'x = 1'"):
            samples = _time(lambda c=command: call(mw, state, c), run.peer_calls)
            rows.append((f"langchain    shell {command!r}", summary(samples)))
    finally:
        mw.after_agent(state, None)
    return rows


PEERS: list[tuple[str, Callable[[Run], list[Row]]]] = [
    ("llm-sandbox", llm_sandbox),
    ("autogen", autogen),
    ("langchain", langchain),
]


@contextmanager
def _guard(what: str, notes: list[str]) -> Iterator[None]:
    """Keep the run going past one peer: a missing package is a skip, anything else a
    failure line."""
    try:
        yield
    except ImportError as exc:
        notes.append(
            f"skip  {what}: not installed ({exc.name or exc}); "
            "pip install -r bench/requirements-peers.txt"
        )
    except Exception as exc:
        notes.append(f"FAIL  {what}: {type(exc).__name__}: {str(exc)[:300]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="cold starts to time, per peer")
    parser.add_argument("--calls", type=int, default=300, help="e2b-tools run_code calls")
    parser.add_argument("--peer-calls", type=int, default=50, help="calls per peer row")
    args = parser.parse_args()
    if min(args.rounds, args.calls, args.peer_calls) < 1:
        parser.error("--rounds, --calls and --peer-calls must be at least 1")

    build_image(log=lambda line: None)
    run = Run(args)
    rows: list[Row] = []
    notes: list[str] = []
    started = datetime.now(timezone.utc)
    try:
        with _guard("raw docker", notes):
            rows += raw_baseline(run)
        with _guard("e2b-tools", notes):
            rows += ours(run)
        for what, measure in PEERS:
            with _guard(what, notes):
                rows += measure(run)
    finally:
        left = run.sweep()
    took = datetime.now(timezone.utc) - started

    engine = run.client.version()
    versions = ", ".join(
        f"{dist} {_version(dist)}"
        for dist in ("e2b-tools", "llm-sandbox", "autogen-ext", "autogen-core", "langchain")
    )
    print(
        f"\npeers benchmark, {started:%Y-%m-%d %H:%M} UTC, {took.total_seconds():.0f} s; "
        f"image {run.image}"
    )
    print(
        f"Docker Engine {engine['Version']} (docker-py {_version('docker')}), "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]}"
    )
    print(f"versions: {versions}")
    print(f"{'measure':44} {'p50 ms':>9} {'p95 ms':>9} {'min ms':>9} {'n':>5}")
    for name, s in rows:
        print(f"{name:44} {s['p50']:9.2f} {s['p95']:9.2f} {s['min']:9.2f} {s['n']:5d}")
    for note in notes:
        print(note)
    print(f"containers of this run still there at the end, removed: {left}")
    _print_ratios(dict(rows))


def _print_ratios(rows: dict[str, dict[str, float]]) -> None:
    """Each peer's per-call p50 over ours: shell calls over ``commands.run('true')`` (both
    start a process), the others over ``run_code('x = 1')``."""
    code = rows.get("e2b-tools    run_code('x = 1')")
    shell = rows.get("e2b-tools    commands.run('true')")
    if code is None or shell is None:
        return
    print("\nper call, p50 over e2b-tools' p50 (shell 'true' rows over commands.run):")
    for name, s in rows.items():
        if name.startswith("e2b-tools") or "cold" in name or "create+start" in name:
            continue
        ours, what = (shell, "commands.run") if "true" in name else (code, "run_code")
        print(f"  {name:44} {s['p50'] / ours['p50']:7.1f}x {what}")


if __name__ == "__main__":
    main()
