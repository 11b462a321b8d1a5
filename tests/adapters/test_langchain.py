"""LangChain adapter: the standard tool suites, and an agent loop with a fake model."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

pytest.importorskip("langchain_core")  # the langchain extra: pip install 'e2b-tools[langchain]'
pytest.importorskip("langchain_tests")  # LangChain's standard test suites (the dev extra)

from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

from e2b_tools import InvalidArgumentError
from e2b_tools.tools import Toolkit
from e2b_tools_langchain import (
    ListFilesTool,
    ReadFileTool,
    RunCodeTool,
    RunShellTool,
    SandboxToolkit,
    WriteFileTool,
)

# The standard suites' async tests carry no marker; anyio runs them on asyncio.
pytestmark = pytest.mark.anyio

_shared: dict[str, Toolkit] = {}


def _toolkit() -> Toolkit:
    if "kit" not in _shared:
        _shared["kit"] = Toolkit(budget=2000)
    return _shared["kit"]


@pytest.fixture(autouse=True, scope="module")
def _close_shared_toolkit(image: str) -> Iterator[None]:
    yield
    kit = _shared.pop("kit", None)
    if kit is not None:
        kit.close()


_EXAMPLES: dict[type[BaseTool], dict[str, Any]] = {
    RunCodeTool: {"code": "sum(range(10))"},
    RunShellTool: {"command": "echo standard"},
    WriteFileTool: {"path": "std/example.txt", "content": "hello"},
    ReadFileTool: {"path": "std/example.txt"},
    ListFilesTool: {"path": ".", "depth": 2},
}


def _suite(base: type, tool_cls: type[BaseTool]) -> type:
    class Suite(base):  # type: ignore[misc, valid-type]
        @property
        def tool_constructor(self) -> type[BaseTool]:
            return tool_cls

        @property
        def tool_constructor_params(self) -> dict[str, Any]:
            kit = _toolkit()
            kit.get("write_file").run(path="std/example.txt", content="hello")
            return {"toolkit": kit}

        @property
        def tool_invoke_params_example(self) -> dict[str, Any]:
            return _EXAMPLES[tool_cls]

    Suite.__name__ = f"Test{tool_cls.__name__}{base.__name__}"
    return Suite


for _cls in _EXAMPLES:
    for _base in (ToolsUnitTests, ToolsIntegrationTests):
        _suite_cls = _suite(_base, _cls)
        globals()[_suite_cls.__name__] = _suite_cls
del _cls, _base, _suite_cls


class ToolCallingFakeChatModel(GenericFakeChatModel):
    """A scripted chat model that accepts ``bind_tools`` like a real provider."""

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)


def _call(name: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def _script() -> list[AIMessage]:
    csv = "city,temp\nOslo,4\nRome,18\nCairo,29\n"
    plot = (
        "import pandas as pd, matplotlib.pyplot as plt\n"
        "df = pd.read_csv('temps.csv')\n"
        "df.plot.bar(x='city', y='temp')\nplt.savefig('temps.png')\n"
        "df.temp.mean()"
    )
    return [
        AIMessage(
            content="",
            tool_calls=[_call("write_file", {"path": "temps.csv", "content": csv}, "c1")],
        ),
        AIMessage(content="", tool_calls=[_call("run_code", {"code": plot}, "c2")]),
        AIMessage(
            content="",
            tool_calls=[
                _call("read_file", {"path": "temps.png"}, "c3"),
                _call("run_shell", {"command": "ls temps.*"}, "c4"),
                _call("run_code", {"code": "undefined_name"}, "c5"),
            ],
        ),
        AIMessage(content="The mean temperature is 17 degrees; the chart is temps.png."),
    ]


def _check_history(history: list[BaseMessage]) -> None:
    tool_msgs = [m for m in history if isinstance(m, ToolMessage)]
    assert [m.tool_call_id for m in tool_msgs] == ["c1", "c2", "c3", "c4", "c5"]
    assert "Wrote /home/user/temps.csv" in str(tool_msgs[0].content)
    assert "[result]\n17.0" in str(tool_msgs[1].content)
    assert tool_msgs[2].artifact[0]["mime_type"] == "image/png"
    assert "temps.csv\ntemps.png" in str(tool_msgs[3].content)
    assert tool_msgs[4].status == "error"
    assert "NameError" in str(tool_msgs[4].content)
    assert isinstance(history[-1], AIMessage) and not history[-1].tool_calls


def test_agent_loop_with_a_tool_calling_model(image: str) -> None:
    with SandboxToolkit(budget=3000) as toolkit:
        tools = {t.name: t for t in toolkit.get_tools()}
        model = ToolCallingFakeChatModel(messages=iter(_script())).bind_tools(list(tools.values()))
        history: list[BaseMessage] = [HumanMessage("Plot temps.csv and give the mean.")]
        for _ in range(6):
            ai = model.invoke(history)
            history.append(ai)
            if not ai.tool_calls:
                break
            for call in ai.tool_calls:
                message = tools[call["name"]].invoke(call)
                assert isinstance(message, ToolMessage)
                history.append(message)
        _check_history(history)


async def test_async_agent_loop(image: str) -> None:
    toolkit = SandboxToolkit(budget=3000)
    try:
        tools = {t.name: t for t in toolkit.get_tools()}
        model = ToolCallingFakeChatModel(messages=iter(_script())).bind_tools(list(tools.values()))
        history: list[BaseMessage] = [HumanMessage("Plot temps.csv and give the mean.")]
        for _ in range(6):
            ai = await model.ainvoke(history)
            history.append(ai)
            if not ai.tool_calls:
                break
            for call in ai.tool_calls:
                history.append(await tools[call["name"]].ainvoke(call))
        _check_history(history)
    finally:
        await toolkit.aclose()


_CHART_THEN_RAISE = (
    "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()\nraise ValueError('late')"
)


def test_a_chart_survives_an_error_as_a_standard_image_block(image: str) -> None:
    with SandboxToolkit(budget=3000, tools=["run_code"]) as toolkit:
        (run_code,) = toolkit.get_tools()
        message = run_code.invoke(_call("run_code", {"code": _CHART_THEN_RAISE}, "c1"))
    assert isinstance(message, ToolMessage)
    assert message.status == "error"
    assert "ValueError: late" in str(message.content)
    assert "[image figure-1.png returned as an artifact]" in str(message.content)
    (block,) = message.artifact
    assert block["type"] == "image" and block["mime_type"] == "image/png"
    assert block["extras"] == {"name": "figure-1.png"}
    assert base64.b64decode(block["base64"]).startswith(b"\x89PNG")
    assert isinstance(message.content, str)  # images stay out of the context by default


async def test_images_in_content_show_the_chart_to_the_model(image: str) -> None:
    toolkit = SandboxToolkit(budget=3000, tools=["run_code"], images_in_content=True)
    try:
        (run_code,) = toolkit.get_tools()
        code = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"
        message = await run_code.ainvoke(_call("run_code", {"code": code}, "c1"))
        failed = await run_code.ainvoke(_call("run_code", {"code": _CHART_THEN_RAISE}, "c2"))
    finally:
        await toolkit.aclose()
    for msg, status in ((message, "success"), (failed, "error")):
        assert isinstance(msg, ToolMessage) and msg.status == status
        text, picture = msg.content
        assert isinstance(text, dict) and isinstance(picture, dict)
        assert text["type"] == "text" and "figure-1.png" in text["text"]
        assert picture["type"] == "image" and picture["mime_type"] == "image/png"
        assert picture["base64"] == msg.artifact[0]["base64"]
        assert "extras" not in picture  # only standard keys go to the provider


def test_name_prefix_names_every_tool_and_the_tools_they_mention(image: str) -> None:
    with SandboxToolkit(budget=2000, name_prefix="sbx_") as toolkit:
        tools = {t.name: t for t in toolkit.get_tools()}
        assert sorted(tools) == [
            "sbx_list_files",
            "sbx_read_file",
            "sbx_run_code",
            "sbx_run_shell",
            "sbx_write_file",
        ]
        assert convert_to_openai_tool(tools["sbx_run_shell"])["function"]["name"] == "sbx_run_shell"
        assert "page with sbx_read_file" in tools["sbx_run_shell"].description
        out = tools["sbx_run_shell"].invoke(_call("sbx_run_shell", {"command": "seq 1 5000"}, "c1"))
        assert "sbx_read_file(path=" in str(out.content)
        refused = tools["sbx_read_file"].invoke(_call("sbx_read_file", {"path": 1}, "c2"))
        assert refused.status == "error"
        assert "Invalid arguments for sbx_read_file" in str(refused.content)
    with pytest.raises(InvalidArgumentError, match="letters, digits"):
        SandboxToolkit(name_prefix="my tools.")
    with pytest.raises(InvalidArgumentError, match="at most"):
        SandboxToolkit(name_prefix="x" * 60)
