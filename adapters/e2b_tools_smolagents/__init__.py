"""e2b-tools for smolagents: a remote Python executor for ``CodeAgent``.

Example:
    >>> from smolagents import CodeAgent  # doctest: +SKIP
    >>> from e2b_tools_smolagents import E2BToolsExecutor
    >>> with E2BToolsExecutor() as executor:
    ...     agent = CodeAgent(tools=[], model=model, executor=executor)
    ...     agent.run("What is 6 * 7?")
    42

The agent's code runs in one stateful Python context of a sandbox on your Docker
Engine. Errors in the code reach the model as smolagents' own executors word them;
infrastructure failures (no engine, the sandbox gone) leave ``agent.run()`` as
:class:`SandboxInfrastructureError`, carrying the e2b-tools error. See
``docs/smolagents.md``.
"""

from __future__ import annotations

try:
    import smolagents  # type: ignore[import-untyped]  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "e2b_tools_smolagents needs smolagents: pip install 'e2b-tools[smolagents]'"
    ) from exc

from ._executor import INFRASTRUCTURE_ERRORS, E2BToolsExecutor, SandboxInfrastructureError
from ._packages import PackageInstallError

__all__ = [
    "INFRASTRUCTURE_ERRORS",
    "E2BToolsExecutor",
    "PackageInstallError",
    "SandboxInfrastructureError",
]
