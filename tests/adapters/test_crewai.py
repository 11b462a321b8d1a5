"""CrewAI adapter: tools are real crewai tools sharing one sandbox."""

from __future__ import annotations

import sys
from pathlib import Path

import docker
import pytest
from helpers import quiet_crewai_import

# CrewAI reads these at import: no telemetry or version checks, and its settings files
# go to a scratch HOME instead of the real one (restored right after the import).
with quiet_crewai_import("e2b-tools-crewai-"):
    # Skip without the crewai extra; imported here, after the settings above.
    pytest.importorskip("crewai")
    from e2b_tools_crewai import SandboxTools


def test_tools_share_a_sandbox_and_keep_artifacts(image: str) -> None:
    from crewai.tools import BaseTool

    with SandboxTools(budget=2000) as sandbox_tools:
        tools = {t.name: t for t in sandbox_tools.all()}
        assert all(isinstance(t, BaseTool) for t in tools.values())
        assert set(tools) == {"run_code", "run_shell", "read_file", "write_file", "list_files"}
        assert tools["run_code"].args_schema.model_json_schema()["required"] == ["code"]
        assert tools["run_code"].run(code="shared = 7") == "(no output)"
        assert tools["run_shell"].run(command="echo hi") == "hi\n[exit code: 0]"
        assert tools["run_code"].run(code="shared * 6") == "[result]\n42"
        tools["run_code"].run(
            code="import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.savefig('p.png')"
        )
        out = tools["read_file"].run(path="p.png")
        assert "returned as an artifact" in out
        assert sandbox_tools.artifacts[0].mime_type == "image/png"
        assert "Invalid arguments" in tools["run_shell"].run(cmd="oops")


def test_libraries_used_installs_when_the_policy_allows(
    image: str, docker_client: docker.DockerClient
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    from local_index import serve_local_index

    from e2b_tools import SandboxConfig

    code = "import tinypkg\nprint('value', tinypkg.VALUE)"
    with serve_local_index(docker_client, image, aliases=["pypi.test"]) as index:
        envs = {"PIP_INDEX_URL": index.index_url, "PIP_TRUSTED_HOST": "pypi.test"}
        allowed = SandboxConfig(network={"allow_out": ["pypi.test"]}, envs=envs)
        with SandboxTools(config=allowed) as tools:
            run_code = next(t for t in tools.all() if t.name == "run_code")
            assert "libraries_used" in run_code.args_schema.model_fields
            out = run_code.run(code=code, libraries_used=["tinypkg"])
            assert out.startswith("[libraries_used] installed tinypkg.") and "value 42" in out
        closed = SandboxConfig(network={"allow_out": ["other.test"]}, envs=envs)
        with SandboxTools(config=closed) as tools:
            run_code = next(t for t in tools.all() if t.name == "run_code")
            out = run_code.run(code=code, libraries_used=["tinypkg"])
            assert "installing tinypkg failed" in out
            assert "Blocked by the network policy: pypi.test:8080" in out
            assert "ModuleNotFoundError" in out  # the code still ran, and says why
    with SandboxTools() as tools:
        run_code = next(t for t in tools.all() if t.name == "run_code")
        out = run_code.run(code="print('ran')", libraries_used=["tinypkg", "x; rm -rf ~"])
        assert "not package names" in out and "ran" in out
        out = run_code.run(code="print('ran')", libraries_used=["tinypkg"])
        assert "no network access" in out and "ran" in out


def test_name_prefix_and_artifacts_of_a_failed_call(image: str) -> None:
    with SandboxTools(budget=2000, name_prefix="sbx_", tools=["run_code", "read_file"]) as tools:
        by_name = {t.name: t for t in tools.all()}
        assert sorted(by_name) == ["sbx_read_file", "sbx_run_code"]
        assert "libraries_used" in by_name["sbx_run_code"].args_schema.model_fields
        code = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\n1 / 0"
        out = by_name["sbx_run_code"].run(code=code)
        assert "ZeroDivisionError" in out and "figure-1.png" in out
        assert [a.mime_type for a in tools.artifacts] == ["image/png"]
        assert "Invalid arguments for sbx_read_file" in by_name["sbx_read_file"].run(p="x")
