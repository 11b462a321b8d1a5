"""The AutoGPT-style adapter: specs, and a dispatcher that returns text for the model
(engine failures raise: see test_error_rule.py)."""

from __future__ import annotations

import json
import re

import pytest

from e2b_tools import InvalidArgumentError
from e2b_tools.tools import Toolkit
from e2b_tools_autogpt import ToolDispatcher


@pytest.fixture
def dispatcher(image: str) -> ToolDispatcher:
    with ToolDispatcher(budget=2000) as d:
        yield d  # type: ignore[misc]


def test_specs_shapes() -> None:
    d = ToolDispatcher()
    openai = d.specs("openai")
    assert [s["function"]["name"] for s in openai] == [
        "run_code",
        "run_shell",
        "read_file",
        "write_file",
        "list_files",
    ]
    params = openai[0]["function"]["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ["code"]
    assert params["additionalProperties"] is False
    anthropic = d.specs("anthropic")
    assert anthropic[1]["name"] == "run_shell"
    assert anthropic[1]["input_schema"]["required"] == ["command"]
    json.dumps(openai + anthropic)  # plain JSON
    with pytest.raises(ValueError):
        d.specs("cohere")  # type: ignore[arg-type]


def test_dispatch_json_and_dicts(dispatcher: ToolDispatcher) -> None:
    assert dispatcher.dispatch("run_code", '{"code": "6 * 7"}') == "[result]\n42"
    assert dispatcher.dispatch("run_shell", {"command": "echo hi"}) == "hi\n[exit code: 0]"


def test_dispatch_errors_are_text(dispatcher: ToolDispatcher) -> None:
    assert "no tool named 'rm_rf'" in dispatcher.dispatch("rm_rf", "{}")
    assert "not valid JSON" in dispatcher.dispatch("run_code", "{code: 1")
    assert "must be a JSON object" in dispatcher.dispatch("run_code", "[1]")
    assert "Field required" in dispatcher.dispatch("run_code", "{}")


def test_name_prefix_in_specs_and_dispatch(image: str) -> None:
    with ToolDispatcher(budget=2000, name_prefix="sbx_") as d:
        names = [s["function"]["name"] for s in d.specs("openai")]
        assert names == [
            "sbx_run_code",
            "sbx_run_shell",
            "sbx_read_file",
            "sbx_write_file",
            "sbx_list_files",
        ]
        assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", n) for n in names)
        assert d.dispatch("sbx_run_code", '{"code": "6 * 7"}') == "[result]\n42"
        assert "no tool named 'run_code'" in d.dispatch("run_code", '{"code": "1"}')
        assert "Invalid arguments for sbx_run_shell" in d.dispatch("sbx_run_shell", "{}")
    with pytest.raises(InvalidArgumentError, match="name_prefix"):
        ToolDispatcher(name_prefix="a b")
    with pytest.raises(InvalidArgumentError, match="to the Toolkit you give"):
        ToolDispatcher(Toolkit(), name_prefix="sbx_")


def test_artifacts_are_kept_when_the_call_fails(dispatcher: ToolDispatcher) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\n1 / 0"
    out = dispatcher.dispatch("run_code", {"code": code})
    assert "ZeroDivisionError" in out and "figure-1.png" in out
    assert [a.mime_type for a in dispatcher.artifacts] == ["image/png"]
