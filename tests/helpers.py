"""Small things several test modules share (``tests/`` is on ``sys.path``)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Lists every process's command line inside a sandbox, without ps.
PROCS = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"


@contextlib.contextmanager
def quiet_crewai_import(prefix: str) -> Iterator[None]:
    """Import crewai (and crewai-tools) inside this: no telemetry, tracing or version
    check, and a throwaway ``HOME`` for what it writes on import."""
    os.environ.update(
        CREWAI_DISABLE_TELEMETRY="true",
        OTEL_SDK_DISABLED="true",
        CREWAI_DISABLE_TRACKING="true",
        CREWAI_TRACING_ENABLED="false",
        CREWAI_DISABLE_VERSION_CHECK="true",
        CREWAI_TESTING="true",
    )
    home = os.environ.get("HOME")
    os.environ["HOME"] = tempfile.mkdtemp(prefix=prefix)
    try:
        with warnings.catch_warnings():
            # crewai's own import emits an ImportWarning about its lazy submodules, and
            # crewai-tools imports a module crewai has since moved.
            warnings.simplefilter("ignore", ImportWarning)
            warnings.filterwarnings("ignore", "crewai.utilities.lock_store", DeprecationWarning)
            yield
    finally:
        if home is not None:
            os.environ["HOME"] = home


def start_in_sandbox(sbx: Any, script: str, ready_file: str, seconds: float = 20.0) -> str:
    """Run ``script`` (Python) in the background in a blocking sandbox and return what it
    writes to ``ready_file`` once it is there (a server announcing its ports)."""
    sbx.files.write(f"{ready_file}.py", script)
    sbx.commands.run(f"python3 {ready_file}.py", background=True)
    deadline = time.monotonic() + seconds
    while not sbx.files.exists(ready_file):
        assert time.monotonic() < deadline, f"{ready_file}.py in the sandbox did not start"
        time.sleep(0.05)
    return str(sbx.files.read(ready_file))


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, tmp_path: Path) -> str:
    """Run ``examples/<name>`` as a user would: its own process, offline (no OpenAI
    key, no package index of ours), with a scratch HOME; returns its stdout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OPENAI_") and k != "E2B_TOOLS_INDEX_URL"
    }
    # CrewAI and others write settings and databases under HOME; keep them out of it.
    env.update(
        HOME=str(tmp_path),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        CREWAI_STORAGE_DIR="e2b-tools-tests",
    )
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


SDK_REQUIREMENTS = Path(__file__).resolve().parent / "e2b-sdk-requirements.txt"


def e2b_sdk_python() -> Path:
    """The python of a side venv holding the latest real E2B SDKs
    (``e2b-sdk-requirements.txt``); see :func:`side_python`.

    The SDK's own dependencies (connectrpc, protobuf) pin versions the project's venv
    must not be tied to, so it lives apart and the tests drive it as a subprocess.
    """
    return side_python(SDK_REQUIREMENTS)


def side_python(requirements: Path, timeout: float = 900) -> Path:
    """The python of a side venv made from ``requirements`` under ``build/sdk-venvs/``
    on first use, kept while the file is unchanged (its digest names the venv)."""
    import hashlib

    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    venv = SDK_REQUIREMENTS.parents[1] / "build" / "sdk-venvs" / f"{requirements.stem}-{digest}"
    python = venv / "bin" / "python"
    ready = venv / ".installed"
    if not ready.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-qq", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(requirements)], check=True, timeout=timeout)
        ready.touch()
    return python


def kill_all_served(client: Any, auth: dict[str, str]) -> None:
    """Kill every sandbox an ``e2b-tools serve`` control plane lists, running or paused
    (``client``: an httpx client or starlette's TestClient on the server)."""
    for state in ("running", "paused"):
        listed = client.get("/v2/sandboxes", params={"state": state}, headers=auth)
        for item in listed.json():
            client.delete(f"/sandboxes/{item['sandboxID']}", headers=auth)


@dataclasses.dataclass(frozen=True)
class Served:
    """The URLs of an ``e2b-tools serve`` running for a test."""

    api: str
    """The control plane (``E2B_API_URL``)."""
    sandbox: str
    """envd and the interpreter by header (``E2B_SANDBOX_URL``)."""
    interpreter: str
    """The interpreter's own listener (E2B's debug port 49999)."""
    sandboxes: Any
    """The server's ``Sandboxes`` registry."""


@contextlib.contextmanager
def serving(
    settings: Any,
    *,
    start_wait: float = 10.0,
    stop_wait: float = 15.0,
    kill_wait: float = 60.0,
    interpreter_port: int = 0,
) -> Iterator[Served]:
    """``e2b-tools serve`` for ``settings``: its three listeners under uvicorn on one
    event loop in a thread, on ephemeral loopback ports (the interpreter's own on
    ``interpreter_port`` when given: E2B's debug mode needs 49999). Kills every
    sandbox the server lists (and its debug mode's shared one) after."""
    import asyncio
    import threading

    import httpx
    import uvicorn

    from e2b_tools_serve import apps

    served_apps = apps(settings)
    socks = []
    for port in (0, 0, interpreter_port):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        socks.append(sock)
    urls = [f"http://127.0.0.1:{sock.getsockname()[1]}" for sock in socks]
    servers = [
        uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        for app in (served_apps.control, served_apps.sandbox, served_apps.interpreter)
    ]
    loop = asyncio.new_event_loop()

    async def main() -> None:
        try:
            await asyncio.gather(
                *(s.serve(sockets=[k]) for s, k in zip(servers, socks, strict=True))
            )
        finally:
            await served_apps.sandboxes.aclose()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_wait
        while not all(s.started for s in servers) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert all(s.started for s in servers), "uvicorn did not start"
        yield Served(urls[0], urls[1], urls[2], served_apps.sandboxes)
    finally:
        with httpx.Client(base_url=urls[0], timeout=kill_wait) as http:
            kill_all_served(http, {"X-API-KEY": settings.api_key})
        for server in servers:
            server.should_exit = True
        thread.join(stop_wait + kill_wait)
        assert not thread.is_alive(), "e2b-tools serve did not stop"
        loop.close()
        for sock in socks:
            sock.close()


def run_e2b_sdk(
    served: Served,
    script: str,
    key: str,
    timeout: float,
    *,
    python: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``script`` with the real E2B SDK (``python``: a side venv's, default the
    latest SDK's) against a serve, with ``E2B_API_URL``, ``E2B_SANDBOX_URL`` and
    ``E2B_API_KEY`` set (plus ``env``); returns the JSON object its last output line
    holds."""
    import json
    import textwrap

    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "E2B_API_URL": served.api,
        "E2B_SANDBOX_URL": served.sandbox,
        "E2B_API_KEY": key,
        "PYTHONFAULTHANDLER": "1",  # a crash of the SDK shows its stacks
        **(env or {}),
    }
    # Once the script has run to its end, leave without the interpreter's teardown: the
    # async E2B SDK's native HTTP client (pyqwest) aborts the process there now and
    # then ("Fatal Python error: Aborted", no Python frame), after all its work is done.
    ending = "\nimport os as _os, sys as _sys\n_sys.stdout.flush()\n_os._exit(0)\n"
    done = subprocess.run(
        [str(python or e2b_sdk_python()), "-c", textwrap.dedent(script) + ending],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (
        f"the SDK script exited {done.returncode}\n--- stderr ---\n{done.stderr}"
        f"\n--- stdout ---\n{done.stdout[-4000:]}"
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
