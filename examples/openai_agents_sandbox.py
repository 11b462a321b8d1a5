"""An OpenAI Agents SDK ``SandboxAgent`` whose shell runs in an e2b-tools sandbox.

The sandbox client is ``E2BToolsSandboxClient``: the agent's ``exec_command`` tool, the
manifest's files and the SDK's workspace reads and writes all act on a hardened
container on your Docker Engine, never on this machine.

Offline (the default) a scripted model plays the model's part: it issues the tool calls
a model would (look at a file the manifest put in the workspace, write a Python script,
run it) and then answers; the tools run for real. With ``OPENAI_API_KEY`` set the agent
uses ``OPENAI_AGENTS_MODEL`` (default ``gpt-4o-mini``) instead.

Run: ``python examples/openai_agents_sandbox.py``
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from agents import Model, ModelResponse, RunConfig, Runner, Usage
from agents.items import ToolCallItem, ToolCallOutputItem
from agents.sandbox import Manifest, SandboxAgent, SandboxRunConfig
from agents.sandbox.entries import File
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from e2b_tools import AsyncSandbox, SandboxQuery
from e2b_tools_openai_agents import E2BToolsSandboxClient, E2BToolsSandboxClientOptions

LABEL = {"example": "openai_agents_sandbox"}
DATA = "city,temp\nOslo,4\nLisbon,19\nCairo,31\n"
SCRIPT = (
    "import csv\n"
    "rows = list(csv.DictReader(open('data/temps.csv')))\n"
    "hot = max(rows, key=lambda r: int(r['temp']))\n"
    "print(f\"hottest: {hot['city']} ({hot['temp']} C)\")\n"
)
TASK = "Which city in data/temps.csv is the hottest? Compute it with Python."


def _tool_call(call_id: str, cmd: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=f"fc_{call_id}",
        call_id=call_id,
        name="exec_command",
        arguments=json.dumps({"cmd": cmd}),
        type="function_call",
        status="completed",
    )


def _message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id="msg_final",
        content=[ResponseOutputText(text=text, type="output_text", annotations=[])],
        role="assistant",
        status="completed",
        type="message",
    )


class ScriptedModel(Model):
    """The SDK's ``Model`` interface, answering each turn from a fixed script."""

    def __init__(self, turns: list[list[Any]]) -> None:
        self._turns = list(turns)

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return ModelResponse(output=self._turns.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("the scripted model does not stream")


def scripted_model() -> ScriptedModel:
    heredoc = f"cat > hottest.py <<'EOF'\n{SCRIPT}EOF\necho wrote hottest.py"
    return ScriptedModel(
        [
            [_tool_call("call_1", "pwd && head -2 data/temps.csv")],
            [_tool_call("call_2", heredoc)],
            [_tool_call("call_3", "python3 hottest.py")],
            [_tool_call("call_4", "python3 -c 'import sys; sys.exit(3)'")],
            [_message("Cairo is the hottest city in data/temps.csv (31 C).")],
        ]
    )


async def main() -> None:
    model: Model | str = scripted_model()
    if os.environ.get("OPENAI_API_KEY"):
        model = os.environ.get("OPENAI_AGENTS_MODEL", "gpt-4o-mini")
    agent = SandboxAgent(
        name="analyst",
        instructions="Answer with the help of the shell in your sandbox.",
        model=model,
        default_manifest=Manifest(entries={"data/temps.csv": File(content=DATA.encode())}),
    )
    run_config = RunConfig(
        sandbox=SandboxRunConfig(
            client=E2BToolsSandboxClient(),
            options=E2BToolsSandboxClientOptions(metadata=LABEL, timeout=600),
        ),
        tracing_disabled=True,
    )
    print(f"[task] {TASK}")
    result = await Runner.run(agent, TASK, run_config=run_config)
    for item in result.new_items:
        if isinstance(item, ToolCallItem) and isinstance(item.raw_item, ResponseFunctionToolCall):
            cmd = json.loads(item.raw_item.arguments)["cmd"]
            print(f"[exec_command] {cmd.splitlines()[0]}")
        elif isinstance(item, ToolCallOutputItem):
            print("    " + str(item.output).strip().replace("\n", "\n    "))
    print(f"[answer] {result.final_output}")

    # The runner created the sandbox, so it removed it at the end of the run.
    left = await AsyncSandbox.list(query=SandboxQuery(metadata=LABEL)).next_items()
    print(f"[cleanup] sandboxes left: {len(left)}")


if __name__ == "__main__":
    asyncio.run(main())
