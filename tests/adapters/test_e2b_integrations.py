"""Other projects' E2B integrations, run unchanged on e2b-tools sandboxes (issue 13).

crewai-tools' E2B tools and smolagents' ``E2BExecutor`` import E2B's SDK themselves
(``from e2b import Sandbox``, ``from e2b_code_interpreter import Sandbox``). The
``e2b_sdk`` fixture binds those module names to ``e2b_tools`` for the test
(``e2b_sdk_alias.py``: aliases only); the integration's own code then creates, drives and
kills sandboxes on the local Docker Engine. Each test checks that every sandbox it caused
is gone afterwards.

langchain-e2b is not tested here: every release so far requires ``deepagents<0.7`` (and
the real ``e2b``), which cannot be installed beside this project's ``deepagents>=0.7.32``.
``E2BToolsSandbox`` takes its place (``docs/deepagents.md``).

Where an integration needs something e2b-tools lacks, the test is a strict xfail naming
the gap: it starts passing, and then fails until unmarked, once the library closes it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from e2b_sdk_alias import alias_e2b_sdk
from helpers import quiet_crewai_import
from pydantic import SecretStr

from e2b_tools import (
    CommandExitException,
    Sandbox,
    SandboxNotFoundError,
    SandboxQuery,
    TimeoutException,
)

# CrewAI reads these at import: no telemetry or version checks, and its settings files
# go to a scratch HOME instead of the real one (restored right after the import).
with quiet_crewai_import("e2b-tools-crewai-tools-"):
    from crewai_tools import E2BExecTool, E2BFileTool, E2BPythonTool
    from crewai_tools.tools.e2b_sandbox_tool import E2BBaseTool

from smolagents import ChatMessage, CodeAgent, Model
from smolagents.default_tools import FinalAnswerTool
from smolagents.monitoring import AgentLogger, LogLevel
from smolagents.remote_executors import E2BExecutor
from smolagents.utils import AgentError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def e2b_sdk(image: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``e2b`` and ``e2b_code_interpreter`` are e2b_tools for this test, with no E2B
    credentials in the environment (the tools read ``E2B_API_KEY`` and ``E2B_DOMAIN``)."""
    alias_e2b_sdk(monkeypatch)
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    monkeypatch.delenv("E2B_DOMAIN", raising=False)
    # crewai-tools caches the Sandbox class it imported, per tool class: start from an
    # empty cache so it imports ours, and leave ours in no cache after the test.
    caches = (E2BBaseTool._sdk_cache, E2BPythonTool._ci_cache)
    for cache in caches:
        cache.clear()
    yield
    for cache in caches:
        cache.clear()


def assert_killed(sandbox_id: str) -> None:
    """The sandbox is gone (were it still running, connecting would succeed: kill it then)."""
    with pytest.raises(SandboxNotFoundError):
        Sandbox.connect(sandbox_id).kill()


# -- crewai-tools ------------------------------------------------------------------------
def test_crewai_exec_tool_uses_a_fresh_sandbox_per_call(e2b_sdk: None) -> None:
    tool = E2BExecTool(api_key=SecretStr("not-used"), domain="not-used.test")
    out = tool.run(
        command="echo hi; echo $E2B_SANDBOX_ID; pwd; echo $GREETING >&2",
        cwd="/tmp",
        envs={"GREETING": "hallo"},
        timeout=30,
    )
    assert out["exit_code"] == 0 and out["error"] is None
    hi, first_id, cwd = out["stdout"].splitlines()
    assert (hi, cwd, out["stderr"]) == ("hi", "/tmp", "hallo\n")
    assert_killed(first_id)

    # A failing command raises E2B's CommandExitException, carrying the output; the
    # sandbox is killed all the same.
    with pytest.raises(CommandExitException) as failed:
        tool.run(command="echo $E2B_SANDBOX_ID; echo no such thing >&2; exit 3")
    assert (failed.value.exit_code, failed.value.stderr) == (3, "no such thing\n")
    second_id = failed.value.stdout.strip()
    assert second_id != first_id
    assert_killed(second_id)

    with pytest.raises(TimeoutException):
        tool.run(command="sleep 10", timeout=1)


def test_crewai_tool_settings_reach_the_sandbox(e2b_sdk: None, image: str) -> None:
    tool = E2BExecTool(
        persistent=True,
        template=image,
        envs={"FROM_TOOL": "yes"},
        metadata={"suite": "test_e2b_integrations"},
        sandbox_timeout=120,
    )
    try:
        out = tool.run(command="echo $FROM_TOOL; echo $E2B_SANDBOX_ID")
        from_tool, sandbox_id = out["stdout"].split()
        assert from_tool == "yes"
        # persistent=True: the next call runs in the same sandbox.
        assert tool.run(command="echo $E2B_SANDBOX_ID")["stdout"].strip() == sandbox_id
        listed = Sandbox.list(SandboxQuery(metadata={"suite": "test_e2b_integrations"}))
        (info,) = [i for i in listed.next_items() if i.sandbox_id == sandbox_id]
        assert info.image == image
        assert info.end_at is not None and info.started_at is not None
        assert 100 < (info.end_at - info.started_at).total_seconds() <= 125
    finally:
        tool.close()
    assert_killed(sandbox_id)


def test_crewai_python_tool_keeps_state_in_a_persistent_sandbox(e2b_sdk: None) -> None:
    tool = E2BPythonTool(persistent=True)
    try:
        out = tool.run(code="import os\nx = 41\nprint('out')\nx + 1")
        assert (out["text"], out["stdout"], out["stderr"]) == ("42", ["out\n"], [])
        assert out["error"] is None
        (result,) = out["results"]
        assert result["is_main_result"] and result["text"] == "42"
        assert out["execution_count"] == 1
        sandbox_id = tool.run(code="print(os.environ['E2B_SANDBOX_ID'])")["stdout"][0].strip()

        with pytest.raises(TimeoutException):
            tool.run(code="import time\ntime.sleep(10)", timeout=1)
        assert tool.run(code="x")["text"] == "41"  # interrupted, state kept

        frame = tool.run(code="import pandas as pd\npd.DataFrame({'a': [x]})")
        assert "<table" in frame["results"][0]["html"]

        chart = tool.run(code="import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
        assert base64.b64decode(chart["results"][0]["png"]).startswith(PNG_MAGIC)

        failed = tool.run(code="x / 0")
        assert failed["error"]["name"] == "ZeroDivisionError"
        assert failed["error"]["value"] == "division by zero"
        assert "x / 0" in failed["error"]["traceback"]

        with_env = tool.run(code="print(os.environ['RUN_ENV'])", envs={"RUN_ENV": "set"})
        assert with_env["stdout"] == ["set\n"]
        js = tool.run(code="console.log(6 * 7)", language="javascript")
        assert js["stdout"] == ["42\n"] and js["error"] is None
    finally:
        tool.close()
    assert_killed(sandbox_id)


def test_crewai_file_tool_on_a_sandbox_it_does_not_own(e2b_sdk: None, sandbox: Sandbox) -> None:
    tool = E2BFileTool(sandbox_id=sandbox.sandbox_id)

    def files(action: str, path: str, **kwargs: Any) -> Any:
        return tool.run(action=action, path=path, **kwargs)

    path = "/home/user/notes/todo.txt"
    assert files("write", path, content="héllo") == {
        "status": "written",
        "path": path,
        "bytes": 6,
    }
    appended = files("append", path, content=" wörld")
    assert (appended["appended_bytes"], appended["total_bytes"]) == (7, 13)
    assert files("read", path) == {"path": path, "encoding": "utf-8", "content": "héllo wörld"}
    assert sandbox.files.read(path) == "héllo wörld"

    info = files("info", path)
    assert (info["name"], info["path"], info["size"]) == ("todo.txt", path, 13)
    assert info["type"] == "file"
    assert info["permissions"] == "-rw-r--r--" and info["owner"] == "user"
    assert info["modified_time"].startswith("20")  # ISO 8601, from a datetime

    assert files("mkdir", "/home/user/notes/sub") == {
        "status": "created",
        "path": "/home/user/notes/sub",
        "created": True,
    }
    sandbox.files.write("/home/user/notes/sub/deep.txt", "d")
    listing = files("list", "/home/user/notes", depth=2)
    assert [(e["path"], e["type"]) for e in listing["entries"]] == [
        ("/home/user/notes/sub", "dir"),
        ("/home/user/notes/sub/deep.txt", "file"),
        ("/home/user/notes/todo.txt", "file"),
    ]

    blob = bytes(range(256)) * 4
    encoded = base64.b64encode(blob).decode()
    files("write", "/home/user/blob.bin", content=encoded, binary=True)
    assert sandbox.files.read("/home/user/blob.bin", format="bytes") == blob
    assert files("read", "/home/user/blob.bin", binary=True)["content"] == encoded

    assert files("exists", path) == {"path": path, "exists": True}
    assert files("delete", "/home/user/notes")["status"] == "deleted"
    assert files("exists", path)["exists"] is False
    # A sandbox the tool attached to by id stays the caller's.
    assert sandbox.is_running()


def test_crewai_file_tool_reads_a_binary_file_without_binary_flag(
    e2b_sdk: None, sandbox: Sandbox
) -> None:
    sandbox.files.write("/home/user/blob.bin", b"\xff\xfe\x00")
    out = E2BFileTool(sandbox_id=sandbox.sandbox_id).run(action="read", path="/home/user/blob.bin")
    assert out["path"] == "/home/user/blob.bin", out
    assert out["content"] == "\ufffd\ufffd\x00", out  # as E2B: U+FFFD for bytes not UTF-8


def test_crewai_tool_attaches_by_id_with_e2b_credentials_set(
    e2b_sdk: None, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2B_API_KEY", "not-used")
    tool = E2BExecTool(sandbox_id=sandbox.sandbox_id)
    assert tool.run(command="echo $E2B_SANDBOX_ID")["stdout"].strip() == sandbox.sandbox_id


# -- smolagents --------------------------------------------------------------------------
def test_smolagents_executor_runs_code_in_the_sandbox(e2b_sdk: None, image: str) -> None:
    executor = E2BExecutor(
        additional_imports=["numpy"],  # `!pip install numpy`: already in the image
        logger=AgentLogger(level=LogLevel.OFF),
        template=image,
        timeout=600,
    )
    sandbox_id = executor.sandbox.sandbox_id
    try:
        assert executor.installed_packages == ["numpy"]
        executor.send_variables({"x": 3, "names": ["a", "b"]})
        out = executor("print(names)\nx * 2")
        assert (out.output, out.logs, out.is_final_answer) == ("6", "['a', 'b']\n", False)
        assert executor("import numpy as np\nnp.arange(4).sum()").output == "6"

        figure = executor("import matplotlib.pyplot as plt\nfig = plt.figure()\nplt.plot([1])\nfig")
        assert figure.output.format == "PNG"  # a PIL image, decoded from the result's png

        with pytest.raises(AgentError, match="ZeroDivisionError"):
            executor("x / 0")

        # The final answer comes back as a (BaseException) error the tool raises.
        executor.send_tools({"final_answer": FinalAnswerTool()})
        answer = executor("final_answer({'total': x + 39})")
        assert (answer.output, answer.is_final_answer) == ({"total": 42}, True)
    finally:
        executor.cleanup()
    assert_killed(sandbox_id)


class ScriptedModel(Model):
    """Answers with the given replies in turn, as a model would."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)

    def generate(self, messages: Any, *args: Any, **kwargs: Any) -> ChatMessage:
        return ChatMessage(role="assistant", content=self.replies.pop(0))


def test_smolagents_code_agent_runs_on_an_e2b_tools_sandbox(e2b_sdk: None) -> None:
    model = ScriptedModel(
        [
            "Thought: look at the data first.\n<code>\nimport statistics\n"
            "values = [3, 5, 7]\nprint('mean', statistics.mean(values))\n</code>",
            "Thought: write the result to a file and answer.\n<code>\n"
            "with open('/home/user/out.txt', 'w') as f:\n    f.write(str(sum(values) * base))\n"
            "final_answer(open('/home/user/out.txt').read())\n</code>",
        ]
    )
    with CodeAgent(
        tools=[],
        model=model,
        executor_type="e2b",
        executor_kwargs={"timeout": 600},
        verbosity_level=LogLevel.OFF,
    ) as agent:
        sandbox = agent.python_executor.sandbox
        assert isinstance(sandbox, Sandbox)
        assert agent.run("Sum the values, times base.", additional_args={"base": 2}) == "30"
        assert "mean 5" in agent.memory.steps[1].observations
        assert sandbox.files.read("/home/user/out.txt") == "30"
    assert_killed(sandbox.sandbox_id)
