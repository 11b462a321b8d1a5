"""A hand-written tool loop (AutoGPT style) with the OpenAI client and e2b-tools.

Offline (the default) the model's replies are replayed from
``examples/cassettes/autogpt_loop.yaml``; the tools run for real in a sandbox. With
``OPENAI_API_KEY`` set (and optionally ``OPENAI_BASE_URL``, ``OPENAI_MODEL``) the same
loop talks to a real model.

Run: ``python examples/autogpt_loop.py``
"""

from __future__ import annotations

import os
import sys
from typing import Any

from openai import OpenAI

from e2b_tools_autogpt import ToolDispatcher

SYSTEM = (
    "You are a data assistant with a Python sandbox. Use the tools to compute answers; "
    "never guess numbers. Reply with a short final answer when done."
)
TASK = "What is the median of 3, 1, 4, 1, 5, 9, 2, 6? Then check 1+...+100 with the shell."


def run_loop(
    client: OpenAI, tools: ToolDispatcher, task: str, model: str, max_steps: int = 8
) -> str:
    """Ask, run the tool calls the model makes, feed results back, until it answers."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": task},
    ]
    specs = tools.specs("openai")
    for step in range(1, max_steps + 1):
        reply = client.chat.completions.create(model=model, messages=messages, tools=specs)  # type: ignore[arg-type]
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            return message.content or ""
        for call in message.tool_calls:
            fn = call.function  # type: ignore[union-attr]
            result = tools.dispatch(fn.name, fn.arguments)
            print(f"[step {step}] {fn.name}({fn.arguments}) ->")
            print("    " + result.replace("\n", "\n    "))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return "(stopped: too many steps)"


def main() -> int:
    from replay import CASSETTES, live_model, replayer

    model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
    with ToolDispatcher(budget=2000) as tools:
        if live_model():
            answer = run_loop(OpenAI(), tools, TASK, model)
        else:
            client = OpenAI(
                api_key="sk-offline", base_url="https://api.openai.com/v1", max_retries=0
            )
            with replayer().use_cassette(str(CASSETTES / "autogpt_loop.yaml")) as cassette:
                answer = run_loop(client, tools, TASK, "gpt-4o-mini")
                assert cassette.all_played, "the model's replies were not all used"
    print(f"\nfinal answer: {answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
