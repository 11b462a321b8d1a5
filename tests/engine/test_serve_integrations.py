"""The four E2B integrations, unchanged, against ``e2b-tools serve`` on the Docker Engine
(issue 15), each driven by a scripted call with no LLM in its own side venv
(``tests/serve-pins/``) by a script in ``tests/serve-scripts/``, with only environment
variables pointing it at the server:

- smolagents 1.26.0 (``E2BExecutor`` and ``CodeAgent(executor_type="e2b")``), langchain-e2b
  0.0.6 (``E2BSandbox``, ``AsyncE2BSandbox``) and openai-agents 0.24.0
  (``E2BSandboxClient``): Mode A (``E2B_API_URL``, ``E2B_SANDBOX_URL``, ``E2B_API_KEY``);
- crewai-tools 1.15.30: ``E2BExecTool`` and ``E2BFileTool`` in Mode A; ``E2BPythonTool``
  in Mode D (plus ``E2B_DEBUG=true``, the interpreter on port 49999), because its
  ``e2b-code-interpreter`` 2.6 hard-codes ``https://49999-<id>.<domain>`` otherwise.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import Served, run_e2b_sdk, serving, side_python

from e2b_tools_serve import ServeSettings

KEY = "e2b_" + "6d" * 20
AUTH = {"X-API-KEY": KEY}
TESTS = Path(__file__).resolve().parents[1]
DEBUG_PORT = 49999

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="the integrations' side venvs are built for Python 3.11+"
)


def settings_for(image: str) -> ServeSettings:
    """Both E2B templates (``base``, ``code-interpreter-v1``) on the test image."""
    return ServeSettings(api_key=KEY, templates={"base": image, "code-interpreter-v1": image})


def run_integration(served: Served, name: str, timeout: float = 600, **env: str) -> dict[str, Any]:
    """``serve-scripts/<name>_checks.py`` in the ``serve-pins/<name>.txt`` venv."""
    python = side_python(TESTS / "serve-pins" / f"{name.replace('_', '-')}.txt")
    script = (TESTS / "serve-scripts" / f"{name}_checks.py").read_text()
    return run_e2b_sdk(served, script, KEY, timeout, python=python, env=env)


def listed(served: Served) -> list[str]:
    """The ids of the sandboxes the server lists."""
    with httpx.Client(base_url=served.api, timeout=30) as http:
        return [s["sandboxID"] for s in http.get("/v2/sandboxes", headers=AUTH).json()]


GONE = "SandboxNotFoundException"


@pytest.mark.timeout(1200)
def test_smolagents_executor_and_code_agent(image: str) -> None:
    with serving(settings_for(image)) as served:
        out = run_integration(served, "smolagents")
        assert listed(served) == []
    assert out["installed"] == ["numpy"], out
    assert out["first"] == ["6", "['a', 'b']\n", False], out
    assert out["numpy"] == "6" and out["figure"] == "PNG", out
    assert out["error"] is True, out
    assert out["final"] == [{"total": 42}, True], out
    assert out["executor_after"] == GONE, out
    assert out["agent_answer"] == "30" and out["agent_observed"] is True, out
    assert out["agent_file"] == "30", out
    assert out["agent_after"] == GONE, out


@pytest.mark.timeout(1200)
def test_langchain_e2b_sandbox_backends(image: str) -> None:
    with serving(settings_for(image)) as served:
        out = run_integration(served, "langchain_e2b")
        assert listed(served) == []
    # stdout and stderr joined by a newline, as langchain-e2b does.
    assert out["execute"] == ["/home/user\n\nerr\n", 4], out
    assert out["timeout"][0] != 0 and "timed out" in out["timeout"][1], out
    assert out["write"] == ["/home/user/src/app.py", True], out
    assert "x = 1" in out["read"] and "y = 2" in out["read"], out
    assert out["edit"] == [None, 1, "x = 1\ny = 3\n"], out
    assert out["ls"] == ["/home/user/src/app.py"], out
    assert out["grep"] == ["/home/user/src/app.py"], out
    assert out["upload"] == [None, "invalid_path"], out
    assert out["download"] == [True, "file_not_found", "is_directory"], out
    assert out["killed"] is True, out
    assert out["async"][:3] == ["async\n", 0, "/home/user/async.txt"], out
    assert out["async"][3] == "héllo", out


@pytest.mark.timeout(1200)
def test_openai_agents_e2b_sandbox_client(image: str) -> None:
    with serving(settings_for(image)) as served:
        default = run_integration(served, "openai_agents")
        # The manifest's root option, under the sandbox user's home.
        out = run_integration(served, "openai_agents", SERVE_CHECK_ROOT="/home/user/workspace")
        assert listed(served) == []
    # The default root, /workspace, is outside what the sandbox user may write (E2B's
    # Files API would create it as root): the session says so and is still shut down.
    assert default["root"] == "/workspace", default
    assert "Read-only file system: /workspace" in " ".join(default["start"]), default
    assert default["after"] == GONE, default

    root = out["root"]
    assert "start" not in out, out
    assert out["exec"] == [f"{root}\n", "err\n", 3], out
    assert out["read"] is True and out["ls"] == "blob.bin\n", out
    assert out["missing"] == "WorkspaceReadNotFoundError", out
    assert out["running"] is True, out
    assert out["after"] == GONE, out


@pytest.mark.timeout(1200)
def test_crewai_tools_exec_and_file_tools(image: str) -> None:
    with serving(settings_for(image)) as served:
        out = run_integration(served, "crewai_tools", SERVE_CHECK_PART="commands")
        assert listed(served) == []
    assert out["exec"] == [0, ["hi", "/tmp"], "hallo\n"], out
    assert out["exec_after"] == GONE, out
    assert out["exit"] == [3, "no such thing\n"], out
    # ReadTimeout: serve loses the deadline race now and then (see
    # test_serve_pinned_sdks.test_e2b_2_20_command_timeouts_raise_timeout_exception).
    assert out["timeout"] in {"TimeoutException", "ReadTimeout"}, out
    assert out["write"] == {"status": "written", "path": "/home/user/notes/todo.txt", "bytes": 6}
    assert out["append_new"]["total_bytes"] == 1, out
    # crewai-tools' own bug with the e2b 2.20 it pins (a bytearray it cannot write back).
    assert out["append"].startswith("InvalidArgumentException: Unsupported data type"), out
    assert out["read"] == "héllo", out
    assert out["binary"] is True, out
    assert out["info"] == ["todo.txt", 6, "file"], out
    assert out["mkdir"] is True, out
    assert out["list"] == [
        ["/home/user/notes/sub", "dir"],
        ["/home/user/notes/todo.txt", "file"],
    ], out
    assert out["exists"] is False and out["delete"] == "deleted", out
    assert out["attached"] == "yes\n", out
    assert out["files_after"] == GONE, out


@pytest.mark.timeout(1200)
def test_crewai_tools_python_tool_in_debug_mode(image: str) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", DEBUG_PORT))
        except OSError:
            pytest.skip(f"port {DEBUG_PORT} (E2B's debug interpreter port) is taken")
    with serving(settings_for(image), interpreter_port=DEBUG_PORT) as served:
        out = run_integration(served, "crewai_tools", SERVE_CHECK_PART="python", E2B_DEBUG="true")
        left = listed(served)
    assert out["first"] == ["42", ["out\n"], None], out
    assert out["state"] == "41" and out["error"] == "ZeroDivisionError", out
    assert out["envs"] == ["set\n"], out
    assert out["inside_id"] == out["id"], out
    # e2b 2.20 skips kill in debug mode: the tool's close() leaves the sandbox to its
    # sandbox_timeout (or to serve).
    assert left == [out["id"]]
