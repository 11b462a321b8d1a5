"""One rule for failures in every adapter (``docs/errors.md``).

What the model can act on comes back as tool text; a Docker Engine that does not
answer, or a missing image, raises to the caller (the operator) with the address tried
and the fix. Each adapter is checked against an engine address where nothing listens
(a loopback port nothing listens on), and against a missing image on the real
engine.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from helpers import quiet_crewai_import

from e2b_tools import (
    EngineUnavailableError,
    ImageNotFoundError,
    InvalidArgumentError,
    SandboxConfig,
)
from e2b_tools.backends.docker import DockerBackend
from e2b_tools.tools import Toolkit

MISSING_IMAGE = "e2b-tools/no-such-image:0"
FIX = "set DOCKER_HOST to an engine that answers"


@pytest.fixture
def dead_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """DOCKER_HOST naming a loopback port where nothing listens; yields the address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    monkeypatch.setenv("DOCKER_HOST", address)
    yield address


def _dead_toolkit(**kwargs: Any) -> Toolkit:
    # A backend of its own: the process-wide default one may already hold a client
    # for the real engine.
    return Toolkit(backend=DockerBackend(), **kwargs)


def _check_engine_error(exc: BaseException, address: str) -> None:
    assert isinstance(exc, EngineUnavailableError)
    assert address in str(exc) and FIX in str(exc)


# -- core --------------------------------------------------------------------------------
def test_core_raises_engine_errors_and_keeps_model_errors_as_text(dead_engine: str) -> None:
    with _dead_toolkit() as kit:
        bad = kit.get("run_shell").run(cmd="ls")  # no sandbox needed to refuse it
        assert bad.is_error and "command: Field required" in bad.text
        with pytest.raises(EngineUnavailableError) as caught:
            kit.get("run_code").run(code="1")
        _check_engine_error(caught.value, dead_engine)


@pytest.mark.asyncio
async def test_core_arun_raises_engine_errors(dead_engine: str) -> None:
    async with _dead_toolkit() as kit:
        with pytest.raises(EngineUnavailableError) as caught:
            await kit.get("list_files").arun()
        _check_engine_error(caught.value, dead_engine)


def test_core_raises_a_missing_image(image: str) -> None:
    with (
        Toolkit(config=SandboxConfig(image=MISSING_IMAGE)) as kit,
        pytest.raises(ImageNotFoundError, match="pull or build it first"),
    ):
        kit.get("run_code").run(code="1")


# -- LangChain ---------------------------------------------------------------------------
def _call(name: str, args: dict[str, Any], call_id: str = "c1") -> dict[str, Any]:
    return {"name": name, "args": args, "id": call_id, "type": "tool_call"}


def test_langchain_raises_engine_errors_despite_handle_tool_error(dead_engine: str) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.messages import ToolMessage

    from e2b_tools_langchain import RunCodeTool

    kit = _dead_toolkit()
    try:
        tool = RunCodeTool(toolkit=kit)
        assert tool.handle_tool_error is True
        refused = tool.invoke(_call("run_code", {"cod": "1"}))
        assert isinstance(refused, ToolMessage) and refused.status == "error"
        assert "code: Field required" in str(refused.content)
        with pytest.raises(EngineUnavailableError) as caught:
            tool.invoke(_call("run_code", {"code": "1"}))
        _check_engine_error(caught.value, dead_engine)
    finally:
        kit.close()


def test_langchain_agent_loop_hands_engine_errors_to_the_caller(dead_engine: str) -> None:
    pytest.importorskip("langchain")
    from langchain.agents import create_agent
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    from e2b_tools_langchain import RunCodeTool

    class ScriptedModel(GenericFakeChatModel):
        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

    kit = _dead_toolkit()
    try:
        script = [AIMessage(content="", tool_calls=[_call("run_code", {"code": "1"})])]
        model = ScriptedModel(messages=iter(script))
        agent = create_agent(model, tools=[RunCodeTool(toolkit=kit)])
        with pytest.raises(EngineUnavailableError) as caught:
            agent.invoke({"messages": [{"role": "user", "content": "compute"}]})
        _check_engine_error(caught.value, dead_engine)
    finally:
        kit.close()


def test_langchain_toolkit_raises_a_missing_image(image: str) -> None:
    pytest.importorskip("langchain_core")
    from e2b_tools_langchain import SandboxToolkit

    with SandboxToolkit(config=SandboxConfig(image=MISSING_IMAGE)) as toolkit:
        tool = toolkit.get_tools()[0]
        with pytest.raises(ImageNotFoundError):
            tool.invoke(_call(tool.name, {"code": "1"}))


# -- Deep Agents -------------------------------------------------------------------------
def test_deepagents_backend_raises_engine_errors(dead_engine: str) -> None:
    pytest.importorskip("deepagents")
    from e2b_tools_langchain import E2BToolsSandbox

    with pytest.raises(EngineUnavailableError) as caught:
        E2BToolsSandbox.create(backend=DockerBackend())
    _check_engine_error(caught.value, dead_engine)


# -- CrewAI ------------------------------------------------------------------------------
def _crewai() -> Any:
    with quiet_crewai_import("e2b-tools-crewai-"):
        pytest.importorskip("crewai")
        import e2b_tools_crewai
    return e2b_tools_crewai


def test_crewai_tool_raises_engine_errors(dead_engine: str) -> None:
    crewai_adapter = _crewai()
    kit = _dead_toolkit()
    try:
        tool = crewai_adapter.RunShellTool(toolkit=kit)
        assert "Invalid arguments" in tool.run(cmd="oops")
        with pytest.raises(EngineUnavailableError) as caught:
            tool.run(command="echo hi")
        _check_engine_error(caught.value, dead_engine)
    finally:
        kit.close()


def test_crewai_tools_raise_a_missing_image(image: str) -> None:
    crewai_adapter = _crewai()
    with crewai_adapter.SandboxTools(config=SandboxConfig(image=MISSING_IMAGE)) as tools:
        run_code = next(t for t in tools.all() if t.name == "run_code")
        with pytest.raises(ImageNotFoundError):
            run_code.run(code="1")


# -- AutoGPT-style dispatcher --------------------------------------------------------------
def test_dispatcher_raises_engine_errors_and_returns_model_errors(dead_engine: str) -> None:
    from e2b_tools_autogpt import ToolDispatcher

    with ToolDispatcher(_dead_toolkit()) as tools:
        assert "not valid JSON" in tools.dispatch("run_code", "{code: 1")
        assert "Field required" in tools.dispatch("run_code", "{}")
        with pytest.raises(EngineUnavailableError) as caught:
            tools.dispatch("run_code", '{"code": "1"}')
        _check_engine_error(caught.value, dead_engine)


@pytest.mark.asyncio
async def test_dispatcher_adispatch_raises_a_missing_image(image: str) -> None:
    from e2b_tools_autogpt import ToolDispatcher

    tools = ToolDispatcher(config=SandboxConfig(image=MISSING_IMAGE))
    try:
        with pytest.raises(ImageNotFoundError):
            await tools.adispatch("run_shell", {"command": "true"})
    finally:
        await tools.aclose()


# -- MCP -----------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _mcp_session(env: dict[str, str], *args: str) -> AsyncIterator[Any]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "e2b_tools_mcp", *args], env=env
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@pytest.mark.asyncio
async def test_mcp_answers_engine_errors_as_protocol_errors(dead_engine: str) -> None:
    pytest.importorskip("mcp")
    from mcp.shared.exceptions import McpError

    async with _mcp_session(dict(os.environ), "--name-prefix", "sbx_") as session:
        names = [tool.name for tool in (await session.list_tools()).tools]
        assert names[0] == "sbx_run_code" and "sbx_kill_sandbox" in names
        refused = await session.call_tool("sbx_run_code", {})
        assert refused.isError and "code: Field required" in refused.content[0].text
        with pytest.raises(McpError) as caught:
            await session.call_tool("sbx_run_code", {"code": "1"})
        assert dead_engine in caught.value.error.message
        assert FIX in caught.value.error.message
        with pytest.raises(McpError):
            await session.call_tool("sbx_create_sandbox", {})
        # The session is still usable: the operator fixes the engine, the client retries.
        listed = await session.call_tool("sbx_list_sandboxes", {})
        assert not listed.isError and "sbx_create_sandbox makes more" in listed.content[0].text


def test_mcp_server_checks_its_name_prefix() -> None:
    pytest.importorskip("mcp")
    from e2b_tools_mcp import build_server

    with pytest.raises(InvalidArgumentError, match="name_prefix"):
        build_server(name_prefix="sbx.")
