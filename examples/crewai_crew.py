"""A CrewAI crew whose analyst works in an e2b-tools sandbox.

Offline (the default) the model's replies are replayed from
``examples/cassettes/crewai_crew.yaml``; the tools run for real in a sandbox. With
``OPENAI_API_KEY`` set (and optionally ``OPENAI_BASE_URL``, ``OPENAI_MODEL``) the crew
talks to a real model.

Run: ``python examples/crewai_crew.py``
"""

from __future__ import annotations

import logging
import os
import sys

# CrewAI reads these when it is imported: no telemetry, no version check, no prompts.
for _name, _value in {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "CREWAI_TESTING": "true",
}.items():
    os.environ.setdefault(_name, _value)

from crewai import LLM, Agent, Crew, Process, Task  # noqa: E402

from e2b_tools_crewai import SandboxTools  # noqa: E402

TASK = (
    "Compute the average of the numbers 2, 4, 6 and 8 by running Python in the "
    "sandbox, and report it in one sentence."
)


def build_crew(tools: SandboxTools, llm: LLM) -> Crew:
    analyst = Agent(
        role="Data analyst",
        goal="Answer questions about numbers exactly, by running code",
        backstory="You never guess: you compute in your Python sandbox.",
        llm=llm,
        tools=tools.all(),
        max_iter=4,
        verbose=False,
    )
    task = Task(description=TASK, expected_output="One sentence with the number.", agent=analyst)
    return Crew(agents=[analyst], tasks=[task], process=Process.sequential, verbose=False)


def main() -> int:
    from replay import CASSETTES, live_model, replayer

    logging.getLogger("crewai.llms.base_llm").setLevel(logging.ERROR)  # token-count notes

    with SandboxTools(budget=2000) as tools:
        if live_model():
            llm = LLM(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
            result = build_crew(tools, llm).kickoff()
        else:
            llm = LLM(model="gpt-4o-mini", api_key="sk-offline", max_retries=0)
            with replayer().use_cassette(str(CASSETTES / "crewai_crew.yaml")) as cassette:
                result = build_crew(tools, llm).kickoff()
                assert cassette.all_played, "the model's replies were not all used"
        calls = tools.toolkit.session.sandbox
        print(f"sandbox used: {calls.sandbox_id if calls else 'none'}")
    print(f"crew answer: {result.raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
