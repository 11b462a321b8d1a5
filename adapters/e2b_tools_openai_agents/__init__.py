"""e2b-tools for the OpenAI Agents SDK: a sandbox client for ``SandboxAgent``.

The SDK's own client/session interface (as its Docker and E2B clients implement it),
backed by e2b-tools sandboxes on your Docker Engine: ``exec`` is one JSON line to the
sandbox's agent, files are streamed in chunks, the manifest root is the sandbox's
writable workspace, and a serialized session resumes with ``AsyncSandbox.connect``.

Example:
    >>> from agents import RunConfig, Runner
    >>> from agents.sandbox import SandboxAgent, SandboxRunConfig
    >>> from e2b_tools_openai_agents import E2BToolsSandboxClient
    >>> agent = SandboxAgent(name="dev", instructions="Use the shell.")  # doctest: +SKIP
    >>> result = await Runner.run(agent, "How many files?", run_config=RunConfig(  # doctest: +SKIP
    ...     sandbox=SandboxRunConfig(client=E2BToolsSandboxClient())))
"""

from __future__ import annotations

try:
    import agents.sandbox  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "e2b_tools_openai_agents needs the OpenAI Agents SDK (0.20 or later): "
        "pip install 'e2b-tools[openai-agents]'"
    ) from exc

from ._client import E2BToolsSandboxClient, E2BToolsSandboxClientOptions
from ._session import BACKEND_ID, E2BToolsSandboxSession, E2BToolsSandboxSessionState

__all__ = [
    "BACKEND_ID",
    "E2BToolsSandboxClient",
    "E2BToolsSandboxClientOptions",
    "E2BToolsSandboxSession",
    "E2BToolsSandboxSessionState",
]
