"""A LangChain Deep Agent whose file and shell tools run in an e2b-tools sandbox.

The backend is ``E2BToolsSandbox``: ``ls``, ``read_file``, ``write_file``, ``edit_file``,
``glob``, ``grep`` and ``execute`` all act on the sandbox, never on this machine.

Offline (the default) a scripted chat model plays the model's part, issuing the tool
calls a model would; the tools run for real. With ``OPENAI_API_KEY`` set the agent uses
``DEEPAGENTS_MODEL`` (default ``openai:gpt-4o-mini``; ``pip install langchain-openai``,
or the provider package the model string names).

Run: ``python examples/deepagents_agent.py``
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from deepagents import create_deep_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

from e2b_tools_langchain import E2BToolsSandbox

TASK = (
    "/home/user/data/poem.txt is in the sandbox. Write a Python script that counts its "
    "words (case-insensitive), run it, and tell me the three most common words."
)
POEM = b"""The sea is calm tonight.
The tide is full, the moon lies fair
Upon the straits; on the French coast the light
Gleams and is gone; the cliffs of England stand,
Glimmering and vast, out in the tranquil bay.
"""
SCRIPT_PATH = "/home/user/wordcount.py"
SCRIPT = """import collections, re

words = re.findall(r"[a-z']+", open("/home/user/data/poem.txt").read().lower())
for word, n in collections.Counter(words).most_common(3):
    print(f"{word} {n}")
"""


class ScriptedChatModel(GenericFakeChatModel):
    """Plays back scripted AI messages and accepts ``bind_tools`` like a real model."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


def _call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage(
        content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}]
    )


def scripted_model() -> BaseChatModel:
    script = [
        _call("ls", {"path": "/home/user/data"}, "c1"),
        _call("write_file", {"file_path": SCRIPT_PATH, "content": SCRIPT}, "c2"),
        _call("execute", {"command": f"python3 {SCRIPT_PATH}"}, "c3"),
        _call("grep", {"pattern": "the", "path": "/home/user/data"}, "c4"),
        AIMessage(content="The three most common words are 'the' (8), 'is' (3) and 'and' (2)."),
    ]
    return ScriptedChatModel(messages=iter(script))


def real_model() -> BaseChatModel | str:
    return os.environ.get("DEEPAGENTS_MODEL", "openai:gpt-4o-mini")


def main() -> int:
    model = real_model() if os.environ.get("OPENAI_API_KEY") else scripted_model()
    # The one line that differs from langchain_e2b: E2BSandbox(sandbox=...) becomes this.
    with E2BToolsSandbox.create(timeout=600) as backend:
        print(f"sandbox {backend.id}")
        [upload] = backend.upload_files([("/home/user/data/poem.txt", POEM)])
        print(f"uploaded {upload.path}: {upload.error or 'ok'}")
        agent = create_deep_agent(
            model=model,
            system_prompt="You are a careful data assistant working in a Linux sandbox.",
            backend=backend,
        )
        state = agent.invoke({"messages": [{"role": "user", "content": TASK}]})
        for message in state["messages"]:
            if isinstance(message, ToolMessage):
                print(f"[{message.name}] " + str(message.content).strip().replace("\n", "\n    "))
        print(f"\nagent answer: {state['messages'][-1].content}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
