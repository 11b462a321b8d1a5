"""A LangChain tool-calling agent loop on e2b-tools sandboxes.

Offline (the default) a scripted chat model plays the model's part, issuing the tool
calls a model would; the tools run for real in a sandbox. With ``OPENAI_API_KEY`` set
the loop uses ``langchain_openai.ChatOpenAI`` (``pip install langchain-openai``;
``OPENAI_BASE_URL`` and ``OPENAI_MODEL`` are honoured).

Run: ``python examples/langchain_agent.py``
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from e2b_tools_langchain import SandboxToolkit

QUESTION = "Which of the first 30 Fibonacci numbers are prime? Use the sandbox."


class ScriptedChatModel(GenericFakeChatModel):
    """Plays back scripted AI messages and accepts ``bind_tools`` like a real model."""

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)


def scripted_model() -> BaseChatModel:
    code = (
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        yield a\n"
        "        a, b = b, a + b\n\n"
        "def is_prime(k):\n    return k > 1 and all(k % d for d in range(2, int(k ** 0.5) + 1))\n\n"
        "primes = [f for f in fib(30) if is_prime(f)]\nprimes"
    )
    script = [
        AIMessage(
            content="",
            tool_calls=[
                {"name": "run_code", "args": {"code": code}, "id": "c1", "type": "tool_call"}
            ],
        ),
        AIMessage(
            content="",
            tool_calls=[
                {
                    "name": "write_file",
                    "args": {
                        "path": "fib_primes.txt",
                        "content": "2 3 5 13 89 233 1597 28657 514229\n",
                    },
                    "id": "c2",
                    "type": "tool_call",
                }
            ],
        ),
        AIMessage(
            content="The prime Fibonacci numbers among the first 30 are 2, 3, 5, 13, 89, "
            "233, 1597, 28657 and 514229 (saved to fib_primes.txt)."
        ),
    ]
    return ScriptedChatModel(messages=iter(script))


def real_model() -> BaseChatModel:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        sys.exit("OPENAI_API_KEY is set: pip install langchain-openai to use a real model")
    return ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))  # type: ignore[no-any-return]


def run_agent(
    model: BaseChatModel, toolkit: SandboxToolkit, question: str, max_steps: int = 8
) -> str:
    tools = {t.name: t for t in toolkit.get_tools()}
    bound = model.bind_tools(list(tools.values()))
    history: list[BaseMessage] = [HumanMessage(question)]
    for step in range(1, max_steps + 1):
        ai = bound.invoke(history)
        history.append(ai)
        if not isinstance(ai, AIMessage) or not ai.tool_calls:
            return str(ai.content)
        for call in ai.tool_calls:
            message = tools[call["name"]].invoke(call)
            assert isinstance(message, ToolMessage)
            print(f"[step {step}] {call['name']} -> {message.status}")
            print("    " + str(message.content).replace("\n", "\n    "))
            history.append(message)
    return "(stopped: too many steps)"


def main() -> int:
    model = real_model() if os.environ.get("OPENAI_API_KEY") else scripted_model()
    with SandboxToolkit(budget=2000) as toolkit:
        answer = run_agent(model, toolkit, QUESTION)
    print(f"\nagent answer: {answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
