"""The AutoGPT-style adapter: specs and a dispatcher that never raises."""

from __future__ import annotations

import json

import pytest

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
