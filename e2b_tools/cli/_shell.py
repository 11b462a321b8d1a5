"""``e2b-tools shell``: an interactive shell in a sandbox, on a real TTY.

It is a ``docker exec`` with a TTY, as the sandbox user in the workspace, wired to the
local terminal in raw mode. It does not go through the agent: the shell and what it
starts run outside the agent's process guards (no per-call timeout, not killed with a
call), though still inside the container's limits (memory, pids, CPU, capabilities,
network) and removed with it at its deadline.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import termios
import time
import tty
from collections.abc import Iterator
from typing import Any, cast

import click
import docker

from e2b_tools._config import SandboxConfig
from e2b_tools.backends.docker import LABEL_CONFIG

from ._common import CLIError, docker_client, get_backend
from ._sandboxes import resolve_id

DEFAULT_SHELL = "if command -v bash >/dev/null 2>&1; then exec bash -i; else exec sh -i; fi"


@click.command(
    "shell",
    context_settings={"ignore_unknown_options": True},
    short_help="Interactive shell in a sandbox, on a real TTY.",
)
@click.argument("sandbox_id", metavar="ID")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def shell(sandbox_id: str, command: tuple[str, ...]) -> int:
    """Open an interactive shell (or COMMAND) in a running sandbox, on a real TTY.

    Runs as the sandbox user in the workspace; exits with the shell's status. It is a
    `docker exec`, outside the agent's process guards: nothing times it out but the
    sandbox's own deadline.

        e2b-tools shell 4f2a

        e2b-tools shell 4f2a -- python3
    """
    if not (_is_tty(sys.stdin) and _is_tty(sys.stdout)):
        raise CLIError(
            "shell needs a terminal on stdin and stdout; for a non-interactive command "
            "use `e2b-tools exec ID -- CMD`"
        )
    sandbox_id = resolve_id(sandbox_id)
    info = get_backend().find(sandbox_id)
    labels = info["Config"].get("Labels") or {}
    try:
        config = SandboxConfig.model_validate_json(labels.get(LABEL_CONFIG) or "")
    except ValueError:  # made by an older version: the defaults
        config = SandboxConfig()
    argv = list(command) or ["/bin/sh", "-c", DEFAULT_SHELL]
    client = docker_client()
    try:
        return _interact(client.api, str(info["Id"]), argv, config)
    finally:
        client.close()


def _is_tty(stream: Any) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (OSError, ValueError):  # a stream without a descriptor (captured, closed)
        return False


def _interact(
    api: docker.APIClient, container_id: str, argv: list[str], config: SandboxConfig
) -> int:
    env = {"TERM": os.environ.get("TERM") or "xterm-256color"}
    exec_id = api.exec_create(
        container_id,
        argv,
        stdin=True,
        tty=True,
        user=config.user,
        workdir=config.workdir,
        environment=env,
    )["Id"]
    wrapped = api.exec_start(exec_id, tty=True, socket=True)
    sock = cast(socket.socket, getattr(wrapped, "_sock", wrapped))
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)

    def resize() -> None:
        columns, lines = os.get_terminal_size(stdout)
        with contextlib.suppress(docker.errors.APIError):
            api.exec_resize(exec_id, height=lines, width=columns)

    previous = signal.signal(signal.SIGWINCH, lambda *_: _poke(wake_w))
    try:
        resize()
        with _raw(stdin):
            _pump(sock, stdin, stdout, wake_r, resize)
    finally:
        signal.signal(signal.SIGWINCH, previous)
        for fd in (wake_r, wake_w):
            os.close(fd)
        sock.close()
        with contextlib.suppress(Exception):
            wrapped.close()
    return _exit_code(api, exec_id)


def _poke(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, b"w")


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _pump(sock: socket.socket, stdin: int, stdout: int, wake: int, resize: Any) -> None:
    """Copy the terminal to the exec and back until the exec's stream ends."""
    watched: list[Any] = [sock, stdin, wake]
    while True:
        readable, _, _ = select.select(watched, [], [])
        if wake in readable:
            os.read(wake, 64)
            resize()
        if sock in readable:
            try:
                data = sock.recv(1 << 16)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                return
            view = memoryview(data)
            while view:
                view = view[os.write(stdout, view) :]
        if stdin in readable:
            data = os.read(stdin, 1 << 16)
            if not data:  # the terminal went away
                watched.remove(stdin)
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                continue
            sock.sendall(data)


def _exit_code(api: docker.APIClient, exec_id: str) -> int:
    deadline = time.monotonic() + 5
    while True:
        state = api.exec_inspect(exec_id)
        if not state.get("Running") or time.monotonic() > deadline:
            code = state.get("ExitCode")
            return int(code) if code is not None else 1
        time.sleep(0.05)
