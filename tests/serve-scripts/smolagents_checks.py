"""smolagents' ``E2BExecutor`` and a ``CodeAgent(executor_type="e2b")`` with a scripted
model (no LLM), unchanged against ``e2b-tools serve`` (Mode A env vars only); run by
``tests/engine/test_serve_integrations.py`` in the ``serve-pins/smolagents.txt`` venv.
The last output line is the JSON of what each step returned."""

from __future__ import annotations

import json
from typing import Any

from e2b_code_interpreter import Sandbox
from smolagents import ChatMessage, CodeAgent, Model
from smolagents.default_tools import FinalAnswerTool
from smolagents.monitoring import AgentLogger, LogLevel
from smolagents.remote_executors import E2BExecutor
from smolagents.utils import AgentError

out: dict[str, Any] = {}


def gone(sandbox_id: str) -> str:
    """How connecting to ``sandbox_id`` ends (it should be killed)."""
    try:
        Sandbox.connect(sandbox_id)
    except Exception as exc:
        return type(exc).__name__
    return "connected"


# `!pip install numpy`: numpy is in the image already, so no network is needed.
executor = E2BExecutor(additional_imports=["numpy"], logger=AgentLogger(level=LogLevel.OFF))
out["executor_id"] = executor.sandbox.sandbox_id
try:
    out["installed"] = list(executor.installed_packages)
    executor.send_variables({"x": 3, "names": ["a", "b"]})
    first = executor("print(names)\nx * 2")
    out["first"] = [first.output, first.logs, first.is_final_answer]
    out["numpy"] = executor("import numpy as np\nnp.arange(4).sum()").output
    figure = executor("import matplotlib.pyplot as plt\nfig = plt.figure()\nplt.plot([1])\nfig")
    out["figure"] = getattr(figure.output, "format", repr(figure.output))
    try:
        executor("x / 0")
        out["error"] = "no error"
    except AgentError as exc:
        out["error"] = "ZeroDivisionError" in str(exc)
    executor.send_tools({"final_answer": FinalAnswerTool()})
    answer = executor("final_answer({'total': x + 39})")
    out["final"] = [answer.output, answer.is_final_answer]
finally:
    executor.cleanup()
out["executor_after"] = gone(out["executor_id"])


class ScriptedModel(Model):
    """Answers with the given replies in turn, as a model would."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)

    def generate(self, messages: Any, *args: Any, **kwargs: Any) -> ChatMessage:
        return ChatMessage(role="assistant", content=self.replies.pop(0))


model = ScriptedModel(
    [
        "Thought: look first.\n<code>\nvalues = [3, 5, 7]\nprint('mean', sum(values) / 3)\n</code>",
        "Thought: answer.\n<code>\nwith open('/home/user/out.txt', 'w') as f:\n"
        "    f.write(str(sum(values) * base))\nfinal_answer(open('/home/user/out.txt').read())\n"
        "</code>",
    ]
)
with CodeAgent(tools=[], model=model, executor_type="e2b", verbosity_level=LogLevel.OFF) as agent:
    sandbox = agent.python_executor.sandbox
    out["agent_id"] = sandbox.sandbox_id
    out["agent_answer"] = agent.run("Sum the values, times base.", additional_args={"base": 2})
    out["agent_observed"] = "mean 5" in (agent.memory.steps[1].observations or "")
    out["agent_file"] = sandbox.files.read("/home/user/out.txt")
out["agent_after"] = gone(out["agent_id"])
print(json.dumps(out))
