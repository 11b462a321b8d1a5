"""Everything above the container, without an engine: the real agent runs as a local
subprocess (``tests/local_backend.py``, no isolation), and the sandbox API, the tool
layer and each adapter's translation run against it in seconds.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from local_backend import LocalBackend

from e2b_tools import (
    AsyncSandbox,
    CommandExitError,
    InvalidArgumentError,
    NotFoundError,
    Sandbox,
    SandboxFileError,
    SandboxTimeoutError,
    SaveOutput,
)
from e2b_tools.tools import Toolkit

# -- sandbox API --------------------------------------------------------------------


def test_code_commands_and_files(local_sandbox: Sandbox) -> None:
    local_sandbox.run_code("x = 41")
    assert local_sandbox.run_code("x + 1").text == "42"
    failed = local_sandbox.run_code("1 / 0")
    assert failed.error is not None and failed.error.name == "ZeroDivisionError"
    assert local_sandbox.commands.run("echo hi").stdout == "hi\n"
    with pytest.raises(CommandExitError) as info:
        local_sandbox.commands.run("echo out; exit 3")
    assert info.value.exit_code == 3 and info.value.stdout == "out\n"
    local_sandbox.files.write("dir/a.txt", "é" * 10)
    assert local_sandbox.files.read("dir/a.txt") == "é" * 10
    local_sandbox.files.write("dir/a.txt", "!", append=True)
    assert local_sandbox.files.read("dir/a.txt").endswith("é!")
    assert [e.name for e in local_sandbox.files.list("dir")] == ["a.txt"]
    with pytest.raises(NotFoundError) as missing:
        local_sandbox.files.read("nope.txt")
    assert missing.value.kind == "not_found" and missing.value.path.endswith("nope.txt")
    with pytest.raises(SandboxFileError) as is_dir:
        local_sandbox.files.read("dir")
    assert is_dir.value.kind == "is_directory"
    assert local_sandbox.is_alive()


def test_timeouts_say_what_happened_to_state(local_sandbox: Sandbox) -> None:
    local_sandbox.run_code("kept = 1")
    with pytest.raises(SandboxTimeoutError) as info:
        local_sandbox.run_code("import time\ntime.sleep(30)", timeout=0.5)
    assert info.value.state_kept is True
    assert local_sandbox.run_code("kept").text == "1"
    with pytest.raises(SandboxTimeoutError) as command:
        local_sandbox.commands.run("sleep 30", timeout=0.5)
    assert command.value.state_kept is None and command.value.result is not None


def test_saved_output_and_languages(local_sandbox: Sandbox) -> None:
    result = local_sandbox.commands.run(
        "seq 1 2000", save_output=SaveOutput(path="out/seq.log", threshold=100)
    )
    assert result.saved_output is not None and result.saved_output.lines == 2000
    assert "python" in local_sandbox.languages
    with pytest.raises(InvalidArgumentError, match="not available"):
        local_sandbox.run_code("x", language="cobol")


@pytest.mark.asyncio
async def test_cancel_stops_the_code(backend: LocalBackend) -> None:
    sbx = await AsyncSandbox.create(backend=backend, timeout=60)
    try:
        busy = asyncio.ensure_future(sbx.run_code("while True:\n    pass", timeout=None))
        await asyncio.sleep(0.5)
        busy.cancel()
        with pytest.raises(asyncio.CancelledError):
            await busy
        assert (await asyncio.wait_for(sbx.run_code("2 + 2"), 1.0)).text == "4"
    finally:
        await sbx.kill()


def test_a_killed_sandbox_is_gone(backend: LocalBackend) -> None:
    from e2b_tools import SandboxGoneError

    sbx = Sandbox.create(backend=backend, timeout=60)
    sbx.kill()
    with pytest.raises(SandboxGoneError, match="killed"):
        sbx.run_code("1")
    assert not sbx.is_alive()


# -- tool layer ---------------------------------------------------------------------


def test_tools_shape_output_and_report_errors(local_sandbox: Sandbox) -> None:
    with Toolkit(local_sandbox, budget=600) as kit:
        out = kit.get("run_code").run(code="print('x' * 5000)")
        assert "[output]" in out.text and "saved" in out.text and not out.is_error
        shell = kit.get("run_shell").run(command="echo hi; exit 4")
        assert shell.is_error and "[exit code: 4]" in shell.text
        bad = kit.get("read_file").run(path="../../etc/passwd")
        assert bad.is_error and "outside the workspace" in bad.text
        missing = kit.get("read_file").run({"path": "missing.txt"})
        assert missing.is_error and missing.text.startswith("Not found")
        wrote = kit.get("write_file").run(path="notes.md", content="a\n")
        appended = kit.get("write_file").run(path="notes.md", content="b\n", append=True)
        assert wrote.text.startswith("Wrote") and appended.text.startswith("Appended")
        assert "notes.md" in kit.get("list_files").run().text
        invalid = kit.get("run_code").run(code="")
        assert invalid.is_error and "Invalid arguments" in invalid.text
        slow = kit.get("run_code").run(code="import time; time.sleep(5)", timeout=0.5)
        assert slow.is_error and "session state was kept" in slow.text


# -- each adapter's translation -----------------------------------------------------


def test_autogpt_dispatch(local_sandbox: Sandbox) -> None:
    from e2b_tools_autogpt import ToolDispatcher

    dispatcher = ToolDispatcher(sandbox=local_sandbox)
    names = [s["function"]["name"] for s in dispatcher.specs("openai")]
    assert "run_code" in names
    assert "42" in dispatcher.dispatch("run_code", json.dumps({"code": "6 * 7"}))
    assert "Unknown tool" in dispatcher.dispatch("nope", "{}") or "nope" in dispatcher.dispatch(
        "nope", "{}"
    )


def test_langchain_tools(local_sandbox: Sandbox) -> None:
    pytest.importorskip("langchain_core")
    from e2b_tools_langchain import SandboxToolkit

    tools = {t.name: t for t in SandboxToolkit(local_sandbox).get_tools()}
    assert "42" in tools["run_code"].invoke({"code": "6 * 7"})
    assert "hi" in tools["run_shell"].invoke({"command": "echo hi"})


def test_crewai_tools(local_sandbox: Sandbox) -> None:
    pytest.importorskip("crewai")
    from e2b_tools_crewai import SandboxTools

    tools = {t.name: t for t in SandboxTools(local_sandbox).all()}
    assert "42" in tools["run_code"].run(code="6 * 7")


def test_deepagents_backend(local_sandbox: Sandbox) -> None:
    pytest.importorskip("deepagents")
    from e2b_tools_langchain.deepagents import E2BToolsSandbox

    backend = E2BToolsSandbox(sandbox=local_sandbox, workdir=local_sandbox.config.workdir)
    workspace = local_sandbox.run_code("import os; os.getcwd()").text.strip("'")
    assert backend.execute("echo hi").output == "hi\n"
    assert backend.write(f"{workspace}/poem.txt", "roses\nviolets\n").error is None
    read = backend.read(f"{workspace}/poem.txt")
    assert read.error is None and "violets" in str(read.file_data)
    missing = backend.download_files([f"{workspace}/missing.txt", f"{workspace}"])
    assert [r.error for r in missing] == ["file_not_found", "is_directory"]


# -- lifetimes that follow use ------------------------------------------------------


def test_a_used_sandbox_stays_and_an_idle_one_goes(backend: LocalBackend) -> None:
    import time

    with Toolkit(idle_timeout=2.0, backend=backend) as kit:
        run = kit.get("run_code")
        assert not run.run(code="kept = 'yes'").is_error
        for _ in range(3):  # 4.5 s in all, well past the first 2 s deadline
            time.sleep(1.5)
            out = run.run(code="kept")
            assert "[result]\nyes" in out.text and "Note:" not in out.text, out.text
        time.sleep(3.5)  # idle past the deadline (the agent ends the sandbox)
        out = run.run(code="1 + 1")
        assert "idle for more than 2s" in out.text and "[result]\n2" in out.text, out.text


def test_max_lifetime_caps_a_busy_sandbox(backend: LocalBackend) -> None:
    import time

    with Toolkit(idle_timeout=30.0, max_lifetime=1.5, backend=backend) as kit:
        run = kit.get("run_code")
        run.run(code="x = 1")
        time.sleep(2.0)
        out = run.run(code="2")
        assert "maximum lifetime of 1.5s" in out.text, out.text


def test_lifetime_settings_are_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="idle_timeout"):
        Toolkit(idle_timeout=0)


# -- descriptions that are true of the sandbox ----------------------------------------


def test_tool_descriptions_follow_the_sandbox_configuration() -> None:
    from e2b_tools import SandboxConfig
    from e2b_tools_autogpt import ToolDispatcher

    default = Toolkit()
    run_code = default.get("run_code").description
    assert "No network access." in run_code and "pandas" in run_code
    assert "/home/user" in default.get("read_file").description
    config = SandboxConfig(network="full", workdir="/srv/work", image="acme/tools:1")
    kit = Toolkit(config=config)
    described = kit.get("run_code").description
    assert "No network access" not in described and "the public internet" in described
    assert "HTTPS_PROXY" in described  # how to use it
    allowlist = SandboxConfig(network={"allow_out": ["pypi.internal.example"]})
    assert "only pypi.internal.example" in Toolkit(config=allowlist).get("run_shell").description
    assert "pandas" not in described and "acme/tools:1" in described
    assert "/srv/work" in kit.get("write_file").description
    specs = ToolDispatcher(kit).specs("anthropic")
    assert any("acme/tools:1" in spec["description"] for spec in specs)
    langchain = pytest.importorskip("e2b_tools_langchain")
    tools = langchain.SandboxToolkit(config=config).get_tools()
    assert all("/srv/work" in t.description for t in tools if t.name != "run_shell")
