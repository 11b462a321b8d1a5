"""crewai-tools' E2B tools (``E2BExecTool``, ``E2BFileTool``, ``E2BPythonTool``, with the
``e2b`` 2.20 + ``e2b-code-interpreter`` 2.6 they pin) called directly, as an agent's tool
call would (no LLM), unchanged against ``e2b-tools serve``. Run by
``tests/engine/test_serve_integrations.py`` in the ``serve-pins/crewai-tools.txt`` venv.

``SERVE_CHECK_PART``: ``commands`` (Mode A: exec and file tools) or ``python`` (Mode D,
``E2B_DEBUG=true``: the python tool; its interpreter URL is hard-coded otherwise). The
last output line is the JSON of each step."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from typing import Any

# No telemetry, tracing or version check; CrewAI's files go to a scratch HOME.
os.environ.update(
    CREWAI_DISABLE_TELEMETRY="true",
    OTEL_SDK_DISABLED="true",
    CREWAI_DISABLE_TRACKING="true",
    CREWAI_TRACING_ENABLED="false",
    CREWAI_DISABLE_VERSION_CHECK="true",
    CREWAI_TESTING="true",
    HOME=tempfile.mkdtemp(prefix="serve-crewai-"),
)

from crewai_tools import E2BExecTool, E2BFileTool, E2BPythonTool
from e2b import CommandExitException, Sandbox, TimeoutException

out: dict[str, Any] = {}


def gone(sandbox_id: str) -> str:
    """How connecting to ``sandbox_id`` ends (it should be killed)."""
    try:
        Sandbox.connect(sandbox_id)
    except Exception as exc:
        return type(exc).__name__
    return "connected"


def kind(value: Any) -> str:
    """A file type as text (the tool passes e2b 2.20's ``FileType`` enum through)."""
    return str(getattr(value, "value", value))


def commands() -> None:
    tool = E2BExecTool()
    ran = tool.run(
        command="echo hi; echo $GREETING >&2; pwd; echo $E2B_SANDBOX_ID",
        cwd="/tmp",
        envs={"GREETING": "hallo"},
        timeout=30,
    )
    out["exec"] = [ran["exit_code"], ran["stdout"].splitlines()[:2], ran["stderr"]]
    out["exec_after"] = gone(ran["stdout"].split()[-1])
    try:
        tool.run(command="echo no such thing >&2; exit 3")
        out["exit"] = "no exception"
    except CommandExitException as exc:
        out["exit"] = [exc.exit_code, exc.stderr]
    try:
        tool.run(command="sleep 10", timeout=1)
        out["timeout"] = "no exception"
    except (TimeoutException, Exception) as exc:
        out["timeout"] = type(exc).__name__

    files = E2BFileTool(persistent=True, metadata={"suite": "serve-crewai"})
    try:
        path = "/home/user/notes/todo.txt"
        out["write"] = files.run(action="write", path=path, content="héllo")
        out["append_new"] = files.run(action="append", path="/home/user/log.txt", content="a")
        try:
            files.run(action="append", path=path, content=" wörld")
            out["append"] = "ok"
        except Exception as exc:
            # The tool adds bytes to what e2b 2.20 reads (a bytearray) and writes the
            # bytearray, which e2b 2.20's write refuses: on E2B's own service too.
            out["append"] = f"{type(exc).__name__}: {exc}"
        out["read"] = files.run(action="read", path=path)["content"]
        blob = bytes(range(256)) * 4
        encoded = base64.b64encode(blob).decode()
        files.run(action="write", path="/home/user/blob.bin", content=encoded, binary=True)
        out["binary"] = (
            files.run(action="read", path="/home/user/blob.bin", binary=True)["content"] == encoded
        )
        info = files.run(action="info", path=path)
        out["info"] = [info["name"], info["size"], kind(info["type"])]
        out["mkdir"] = files.run(action="mkdir", path="/home/user/notes/sub")["created"]
        listing = files.run(action="list", path="/home/user/notes", depth=2)
        out["list"] = [(e["path"], kind(e["type"])) for e in listing["entries"]]
        out["exists"] = files.run(action="exists", path="/home/user/nope")["exists"]
        out["delete"] = files.run(action="delete", path="/home/user/notes")["status"]
        # The persistent sandbox's id, read through a tool attached to it by id.
        sandbox_id = files._persistent_sandbox.sandbox_id
        attached = E2BExecTool(sandbox_id=sandbox_id)
        out["attached"] = attached.run(command="test -e /home/user/blob.bin && echo yes")["stdout"]
    finally:
        files.close()
    out["files_after"] = gone(sandbox_id)


def python() -> None:
    tool = E2BPythonTool(persistent=True, sandbox_timeout=120)
    try:
        first = tool.run(code="import os\nx = 41\nprint('out')\nx + 1")
        out["first"] = [first["text"], first["stdout"], first["error"]]
        out["state"] = tool.run(code="x")["text"]
        failed = tool.run(code="x / 0")
        out["error"] = failed["error"]["name"]
        out["envs"] = tool.run(code="print(os.environ['RUN_ENV'])", envs={"RUN_ENV": "set"})[
            "stdout"
        ]
        out["id"] = tool._persistent_sandbox.sandbox_id
        out["inside_id"] = tool.run(code="os.environ['E2B_SANDBOX_ID']")["text"]
    finally:
        tool.close()


{"commands": commands, "python": python}[os.environ["SERVE_CHECK_PART"]]()
print(json.dumps(out))
