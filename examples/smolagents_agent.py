"""A smolagents ``CodeAgent`` whose code runs in an e2b-tools sandbox.

A scripted model plays the model's part, so the example runs offline: it writes the
code steps a model would (one of them fails, as models' code does), and the agent runs
each in the sandbox through :class:`~e2b_tools_smolagents.E2BToolsExecutor`. State
persists across steps, a tool defined here is called from the sandbox, the agent's
``additional_args`` arrive there as variables, the error reaches the model as text,
and ``final_answer(...)`` ends the run. Leaving the ``with`` block kills the sandbox.

For a real model, replace ``ScriptedModel`` with any smolagents model, e.g.
``OpenAIServerModel(model_id="gpt-4o-mini")``.

Run: ``python examples/smolagents_agent.py``
"""

from __future__ import annotations

import sys
from typing import Any

from smolagents import ChatMessage, CodeAgent, Model, tool
from smolagents.monitoring import LogLevel

from e2b_tools import Sandbox, SandboxNotFoundError
from e2b_tools_smolagents import E2BToolsExecutor

STEPS = [
    # Step 1: look at the data (sent in as a variable) and keep a result for later.
    "Thought: first look at the readings.\n<code>\n"
    "import statistics\n"
    "mean = statistics.mean(readings)\n"
    "print(f'{len(readings)} readings, mean {mean:.2f}')\n"
    "</code>",
    # Step 2: a mistake, as models make them; the traceback comes back as text.
    "Thought: now the spread.\n<code>\nspread = max(readings) - min(reading)\n</code>",
    # Step 3: fixed; the tool runs in the sandbox too, then the answer ends the run.
    "Thought: the name was wrong; fix it and convert with the tool.\n<code>\n"
    "spread = max(readings) - min(readings)\n"
    "print('spread', spread)\n"
    "final_answer(f'mean {to_fahrenheit(mean):.1f} F, spread {spread:.1f} C')\n"
    "</code>",
]


class ScriptedModel(Model):
    """Answers with the scripted steps in turn, as a model would."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)

    def generate(self, messages: Any, *args: Any, **kwargs: Any) -> ChatMessage:
        return ChatMessage(role="assistant", content=self.replies.pop(0))


@tool
def to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from degrees Celsius to degrees Fahrenheit.

    Args:
        celsius: The temperature in degrees Celsius.
    """
    return celsius * 9 / 5 + 32


def main() -> int:
    with (
        E2BToolsExecutor(step_timeout=60) as executor,
        CodeAgent(
            tools=[to_fahrenheit],
            model=ScriptedModel(STEPS),
            executor=executor,
            verbosity_level=LogLevel.OFF,
        ) as agent,
    ):
        assert executor.sandbox is not None
        sandbox_id = executor.sandbox.sandbox_id
        print(f"sandbox {sandbox_id}")
        answer = agent.run(
            "Summarise the temperature readings.",
            additional_args={"readings": [21.5, 23.0, 19.5, 22.0]},
        )
        for step in agent.memory.steps[1:]:
            number = getattr(step, "step_number", None)
            error = getattr(step, "error", None)
            if error:
                print(f"[step {number}] error shown to the model: {str(error).splitlines()[-1]}")
            else:
                logs = getattr(step, "observations", "") or ""
                printed = logs.split("Last output from code snippet:")[0]
                printed = printed.removeprefix("Execution logs:").strip().replace("\n", " | ")
                print(f"[step {number}] printed: {printed}")
        print(f"agent answer: {answer}")
    try:
        Sandbox.connect(sandbox_id)
        print("sandbox still running (unexpected)")
        return 1
    except SandboxNotFoundError:
        print("sandbox killed: no container left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
