"""e2b-tools for LangChain: a ``BaseToolkit`` and ``BaseTool``s backed by one sandbox.

Example:
    >>> from e2b_tools_langchain import SandboxToolkit
    >>> with SandboxToolkit() as toolkit:  # doctest: +SKIP
    ...     tools = toolkit.get_tools()          # bind to a chat model / agent
    ...     tools[0].invoke({"code": "6 * 7"})
    '[result]\\n42'

For Deep Agents, :class:`E2BToolsSandbox` (``pip install 'e2b-tools[deepagents]'``) is a
sandbox backend that runs a deep agent's file and shell tools in a sandbox; it is
imported on first use, so this package does not load Deep Agents otherwise.

Tools use ``response_format="content_and_artifact"``: invoked with a ``ToolCall``, they
return a ``ToolMessage`` whose ``artifact`` is a list of artifacts (charts as base64
PNG), so images never enter the model's context as text. Failures (bad arguments,
errors in the code, non-zero exits) come back as a ``ToolMessage`` with
``status="error"`` and readable text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForToolRun,
        CallbackManagerForToolRun,
    )
    from langchain_core.tools import BaseTool, BaseToolkit, ToolException
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "e2b_tools_langchain needs LangChain: pip install 'e2b-tools[langchain]'"
    ) from exc

from pydantic import ConfigDict, Field, PrivateAttr

from e2b_tools import AsyncSandbox, AsyncSandboxPool, Sandbox, SandboxConfig, SandboxPool
from e2b_tools.tools import (
    DEFAULT_BUDGET,
    DEFAULT_IDLE_TIMEOUT,
    Toolkit,
    ToolOutput,
    derive_tool_classes,
)

if TYPE_CHECKING:
    from .deepagents import E2BToolsSandbox

__all__ = [
    "E2BToolsSandbox",
    "ListFilesTool",
    "ReadFileTool",
    "RunCodeTool",
    "RunShellTool",
    "SandboxToolkit",
    "WriteFileTool",
]


def __getattr__(name: str) -> Any:
    # Deep Agents is a large optional dependency: load its backend only when asked for.
    if name == "E2BToolsSandbox":
        from .deepagents import E2BToolsSandbox

        return E2BToolsSandbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _SandboxTool(BaseTool):
    """A LangChain tool delegating to one e2b-tools tool of a shared :class:`Toolkit`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    core_name: ClassVar[str]
    name: str = ""
    description: str = ""
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool = True
    toolkit: Toolkit = Field(default_factory=Toolkit, exclude=True)
    """The toolkit (and so the sandbox) this tool uses; shared by a toolkit's tools."""

    def _output(self, output: ToolOutput) -> tuple[str, list[dict[str, Any]]]:
        if output.is_error:
            raise ToolException(output.text)
        return output.text, [a.model_dump() for a in output.artifacts]

    def _run(
        self, run_manager: CallbackManagerForToolRun | None = None, **kwargs: Any
    ) -> tuple[str, list[dict[str, Any]]]:
        return self._output(self.toolkit.get(self.core_name).run(kwargs))

    async def _arun(
        self, run_manager: AsyncCallbackManagerForToolRun | None = None, **kwargs: Any
    ) -> tuple[str, list[dict[str, Any]]]:
        return self._output(await self.toolkit.get(self.core_name).arun(kwargs))


# One class per core tool, in the core's order; a tool added to the core appears here,
# in every toolkit's tools and as a module attribute (for imports and pickling).
_TOOLS: dict[str, type[_SandboxTool]] = derive_tool_classes(_SandboxTool, "LangChain", __name__)
_TOOL_CLASSES: tuple[type[_SandboxTool], ...] = tuple(_TOOLS.values())
for _cls in _TOOL_CLASSES:
    globals().setdefault(_cls.__name__, _cls)
del _cls

# Explicit names for the tools of ``__all__``, so type checkers see them too.
RunCodeTool = _TOOLS["run_code"]
RunShellTool = _TOOLS["run_shell"]
ReadFileTool = _TOOLS["read_file"]
WriteFileTool = _TOOLS["write_file"]
ListFilesTool = _TOOLS["list_files"]


class SandboxToolkit(BaseToolkit):
    """The sandbox tools for LangChain, sharing one sandbox (created on first use).

    Args:
        sandbox: Use this sandbox instead of creating one (it is not killed on close).
        budget: Characters per tool result (default about 2,000 tokens).
        config: Settings for the sandbox the toolkit creates.
        tools: Names of the tools to include (default: all five).
        idle_timeout: Seconds without a call after which the sandbox created here goes
            away (each call extends it; default 15 minutes).
        max_lifetime: Hard cap on that sandbox's lifetime in seconds (default: none).
        pool: Take the sandbox from this warm pool instead of creating one (it is
            still killed on close; the pool's config rules, so no ``config=`` with it).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _core: Toolkit = PrivateAttr()

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._core = Toolkit(
            sandbox,
            budget=budget,
            config=config,
            tools=tools,
            idle_timeout=idle_timeout,
            max_lifetime=max_lifetime,
            pool=pool,
        )

    @property
    def core(self) -> Toolkit:
        """The framework-neutral toolkit underneath."""
        return self._core

    def get_tools(self) -> list[BaseTool]:
        """The LangChain tools, all bound to this toolkit's sandbox."""
        names = {t.name for t in self._core.tools()}
        # Each tool is described for this toolkit's sandbox (network, image, workspace).
        return [
            cls(toolkit=self._core, description=self._core.get(cls.core_name).description)
            for cls in _TOOL_CLASSES
            if cls.core_name in names
        ]

    def close(self) -> None:
        """Kill the sandbox if the toolkit created it."""
        self._core.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self._core.aclose()

    def __enter__(self) -> SandboxToolkit:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
