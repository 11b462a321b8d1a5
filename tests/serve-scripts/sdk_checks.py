"""One E2B SDK client session against ``e2b-tools serve``, run unchanged by any pinned
``e2b`` + ``e2b-code-interpreter`` side venv (``tests/engine/test_serve_pinned_sdks.py``).

Set ``SERVE_CHECK_MODE`` to ``A`` (``E2B_API_URL`` + ``E2B_SANDBOX_URL``) or ``D`` (the
same plus ``E2B_DEBUG=true``) and ``SERVE_CHECK_TAG`` to a value marking this run's
sandboxes in their metadata. Every check is recorded, failed or not, as its value or
``"ERR <Exception>: <message>"``; the last output line is the JSON of all of them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from e2b import CommandExitException, Sandbox, SandboxQuery
from e2b_code_interpreter import Sandbox as CodeSandbox

MODE, TAG = os.environ["SERVE_CHECK_MODE"], os.environ["SERVE_CHECK_TAG"]
BLOB = bytes(range(256)) * 64 + b"\x00\xff\r\n"
out: dict[str, Any] = {"versions": [version("e2b"), version("e2b-code-interpreter")]}


def check(name: str, fn: Callable[[], Any]) -> Any:
    """Record ``fn()`` (or its exception) under ``name``."""
    try:
        out[name] = fn()
    except Exception as exc:
        out[name] = f"ERR {type(exc).__name__}: {str(exc)[:300]}"
    return out[name]


def exit_code() -> list[Any]:
    try:
        sbx.commands.run("echo out; echo err >&2; exit 3")
    except CommandExitException as exc:
        return [exc.exit_code, exc.stdout, exc.stderr]
    return ["no exception"]


def background_kill() -> list[Any]:
    handle = sbx.commands.run("sleep 120", background=True)
    listed = handle.pid in [p.pid for p in sbx.commands.list()]
    killed = handle.kill()
    time.sleep(0.3)
    return [listed, killed, handle.pid in [p.pid for p in sbx.commands.list()]]


def stdin_line() -> str:
    handle = sbx.commands.run("head -n 1", background=True, stdin=True)
    sbx.commands.send_stdin(handle.pid, "hello stdin\n")
    return str(handle.wait().stdout)


def close_stdin() -> str:
    if not hasattr(sbx.commands, "close_stdin"):
        return "n/a"  # e2b 2.20 has no close_stdin
    handle = sbx.commands.run("wc -c", background=True, stdin=True)
    sbx.commands.send_stdin(handle.pid, "abcde")
    sbx.commands.close_stdin(handle.pid)
    return str(handle.wait().stdout).strip()


def files() -> list[Any]:
    sbx.files.write("/home/user/dir/blob.bin", BLOB)
    sbx.files.write("notes.txt", "héllo\n")
    names = sorted(e.name for e in sbx.files.list("/home/user/dir"))
    return [
        bytes(sbx.files.read("/home/user/dir/blob.bin", format="bytes")) == BLOB,
        sbx.files.read("/home/user/notes.txt"),
        names,
        sbx.files.exists("/home/user/dir/nope"),
    ]


def run_code() -> list[Any]:
    first = sbx.run_code("x = 41\nprint('side', flush=True)\nx + 1")
    second = sbx.run_code("x + 2")
    failed = sbx.run_code("1 / 0")
    return [
        first.text,
        first.logs.stdout,
        second.text,
        failed.error.name if failed.error else None,
    ]


def gone(sandbox_id: str) -> str:
    try:
        Sandbox.connect(sandbox_id)
    except Exception as exc:
        return type(exc).__name__
    return "connected"


try:
    sbx = CodeSandbox.create(timeout=300, metadata={"tag": TAG})
except Exception as exc:
    out["create"] = f"ERR {type(exc).__name__}: {exc}"
    print(json.dumps(out))
    sys.exit(0)
out["id"] = sbx.sandbox_id
out["jupyter_url"] = sbx._jupyter_url
check("echo", lambda: sbx.commands.run("echo $FOO; pwd", envs={"FOO": "bar"}, cwd="/tmp").stdout)
check("exit_code", exit_code)
check("background_kill", background_kill)
check("stdin_line", stdin_line)
check("close_stdin", close_stdin)
check("files", files)
if MODE == "D" or out["jupyter_url"].startswith("http://"):
    check("run_code", run_code)
if MODE == "A":
    query = SandboxQuery(metadata={"tag": TAG})
    check("listed", lambda: [s.sandbox_id for s in Sandbox.list(query=query).next_items()])
check("killed", sbx.kill)
check("running_after_kill", sbx.is_running)
if MODE == "A":
    check("connect_after_kill", lambda: gone(out["id"]))
print(json.dumps(out))
