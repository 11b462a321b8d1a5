"""e2b-tools for CrewAI: ``crewai`` tools sharing one sandbox per :class:`SandboxTools`.

Example:
    >>> from crewai import Agent
    >>> from e2b_tools_crewai import SandboxTools
    >>> with SandboxTools() as sandbox_tools:  # doctest: +SKIP
    ...     analyst = Agent(role="Analyst", goal="...", backstory="...",
    ...                     tools=sandbox_tools.all())

CrewAI tools return text, so images the tools produce (charts) are kept on
:attr:`SandboxTools.artifacts` instead of being put into the model's context, also
those made by a call that then failed.

Errors follow ``docs/errors.md``: what the model can act on is the tool's text; a
failure of the Docker Engine (``e2b_tools.EngineError``) raises from the tool. CrewAI
catches exceptions of tools itself: it retries the call, then tells the model the tool
failed, and emits a ``ToolUsageErrorEvent`` carrying the exception on its event bus;
listen there, or call a tool once before kicking off the crew, to see it.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, ClassVar

try:
    from crewai.tools import BaseTool
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError("e2b_tools_crewai needs CrewAI: pip install 'e2b-tools[crewai]'") from exc

from pydantic import BaseModel, ConfigDict, Field

from e2b_tools import (
    AsyncSandbox,
    AsyncSandboxPool,
    Sandbox,
    SandboxConfig,
    SandboxError,
    SandboxPool,
)
from e2b_tools.tools import (
    DEFAULT_BUDGET,
    DEFAULT_IDLE_TIMEOUT,
    Artifact,
    RunCodeInput,
    Toolkit,
    derive_tool_classes,
)

__all__ = [
    "ListFilesTool",
    "ReadFileTool",
    "RunCodeTool",
    "RunShellTool",
    "SandboxTools",
    "WriteFileTool",
]


class _SandboxTool(BaseTool):
    """A CrewAI tool delegating to one e2b-tools tool of a shared :class:`Toolkit`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    core_name: ClassVar[str]
    name: str = ""
    description: str = ""
    toolkit: Toolkit = Field(exclude=True)
    """The toolkit (and so the sandbox) this tool uses."""
    artifacts: list[Artifact] = Field(default_factory=list, exclude=True)
    """Artifacts (charts) produced by this tool's calls."""

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run the tool; invalid arguments come back as text the model can act on."""
        try:
            return super().run(*args, **kwargs)
        except ValueError as exc:
            if "validation failed" not in str(exc):
                raise
            # CrewAI validated and refused the arguments; our tool explains the fix.
            return self._run(**kwargs)

    def _run(self, **kwargs: Any) -> str:
        output = self.toolkit.get(self.core_name).run(kwargs)
        self.artifacts.extend(output.artifacts)
        return output.text


# One class per core tool, in the core's order; a tool added to the core appears here,
# in every SandboxTools and as a module attribute (for imports, pickling and CrewAI's
# ``tool_type`` lookups).
_TOOLS: dict[str, type[_SandboxTool]] = derive_tool_classes(_SandboxTool, "CrewAI", __name__)
_TOOL_CLASSES: tuple[type[_SandboxTool], ...] = tuple(_TOOLS.values())
for _cls in _TOOL_CLASSES:
    if _cls.core_name != "run_code":  # defined below, with libraries_used
        globals().setdefault(_cls.__name__, _cls)
del _cls


class RunCodeWithLibrariesInput(RunCodeInput):
    """``run_code``'s arguments plus ``libraries_used``, as CrewAI's CodeInterpreterTool
    took them."""

    libraries_used: list[str] = Field(
        default_factory=list,
        max_length=50,
        description=(
            "Python packages to pip install before running the code (only when the "
            "sandbox's network policy allows the package index)."
        ),
    )


_REQUIREMENT = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._\-]*(\[[A-Za-z0-9._,\-]+\])?([<>=!~]=?[\w.*+!\-]+)*"
)


class RunCodeTool(_SandboxTool):
    """``run_code`` for CrewAI; ``libraries_used`` are installed with pip first."""

    core_name: ClassVar[str] = "run_code"
    name: str = "run_code"
    description: str = _TOOLS["run_code"].model_fields["description"].default
    args_schema: type[BaseModel] = RunCodeWithLibrariesInput

    def _run(self, **kwargs: Any) -> str:
        libraries = kwargs.pop("libraries_used", None) or []
        note = self._install(list(libraries)) if libraries else ""
        output = super()._run(**kwargs)
        return f"{note}\n\n{output}" if note else output

    def _install(self, libraries: list[str]) -> str:
        """Install ``libraries``; the text says what happened (empty on plain success)."""
        bad = [
            lib for lib in libraries if not isinstance(lib, str) or not _REQUIREMENT.fullmatch(lib)
        ]
        if bad:
            return (
                f"[libraries_used] not installed: {bad} are not package names "
                "(like pandas or numpy==2.1)."
            )
        names = ", ".join(libraries)
        config = self.toolkit.session.config
        if config.network == "none":
            return (
                f"[libraries_used] could not install {names}: this sandbox has no network "
                "access, so nothing can be installed. Use the packages already installed "
                "(`pip list` shows them)."
            )
        command = "pip install --quiet --disable-pip-version-check " + " ".join(
            shlex.quote(lib) for lib in libraries
        )
        result = self.toolkit.get("run_shell").run({"command": command, "timeout": 600})
        if not result.is_error:
            return f"[libraries_used] installed {names}."
        return (
            f"[libraries_used] installing {names} failed. {config.describe_network()} "
            f"{self._denials()}\npip said:\n{result.text[-1500:]}"
        ).strip()

    def _denials(self) -> str:
        sandbox = self.toolkit.session.sandbox
        if sandbox is None:
            return ""
        try:
            log = self.toolkit.session.call_sync(sandbox.network_log(limit=20))
        except SandboxError:
            return ""
        denied = sorted({f"{d.host}:{d.port} ({d.reason})" for d in log if not d.allowed})
        return f"Blocked by the network policy: {'; '.join(denied)}." if denied else ""


_TOOLS["run_code"] = RunCodeTool
_TOOL_CLASSES = tuple(_TOOLS.values())

# Explicit names for the tools of ``__all__``, so type checkers see them too.
RunShellTool = _TOOLS["run_shell"]
ReadFileTool = _TOOLS["read_file"]
WriteFileTool = _TOOLS["write_file"]
ListFilesTool = _TOOLS["list_files"]


class SandboxTools:
    """The sandbox tools for CrewAI agents, sharing one sandbox (created on first use).

    Args:
        sandbox: Use this sandbox instead of creating one (it is not killed on close).
        budget: Characters per tool result (default about 2,000 tokens).
        config: Settings for the sandbox created.
        tools: Names of the tools to include (default: all five).
        idle_timeout: Seconds without a call after which the sandbox created here goes
            away (each call extends it; default 15 minutes).
        max_lifetime: Hard cap on that sandbox's lifetime in seconds (default: none).
        pool: Take the sandbox from this warm pool instead of creating one (it is
            still killed on close; the pool's config rules, so no ``config=`` with it).
        name_prefix: Put before every tool name (``"sbx_"``: ``sbx_read_file``...).
    """

    def __init__(
        self,
        sandbox: Sandbox | AsyncSandbox | None = None,
        *,
        budget: int = DEFAULT_BUDGET,
        config: SandboxConfig | None = None,
        tools: list[str] | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_lifetime: float | None = None,
        pool: SandboxPool | AsyncSandboxPool | None = None,
        name_prefix: str = "",
    ) -> None:
        self.toolkit = Toolkit(
            sandbox,
            budget=budget,
            config=config,
            tools=tools,
            idle_timeout=idle_timeout,
            max_lifetime=max_lifetime,
            pool=pool,
            name_prefix=name_prefix,
        )
        names = {t.base_name for t in self.toolkit.tools()}
        # Each tool is named and described for this toolkit (prefix, network, image).
        self._tools = [
            cls(
                toolkit=self.toolkit,
                name=self.toolkit.get(cls.core_name).name,
                description=self.toolkit.get(cls.core_name).description,
            )
            for cls in _TOOL_CLASSES
            if cls.core_name in names
        ]

    def all(self) -> list[BaseTool]:
        """The CrewAI tools, all bound to this object's sandbox."""
        return list(self._tools)

    @property
    def artifacts(self) -> list[Artifact]:
        """Artifacts (e.g. charts) produced by any of the tools, in tool order."""
        return [a for tool in self._tools for a in tool.artifacts]

    def close(self) -> None:
        """Kill the sandbox if this object created it."""
        self.toolkit.close()

    def __enter__(self) -> SandboxTools:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
