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
return a ``ToolMessage`` whose ``artifact`` is a list of LangChain standard content
blocks (charts as ``{"type": "image", "base64": ..., "mime_type": "image/png"}``), so
images stay out of the model's context unless ``images_in_content=True`` puts them
into the message content for a vision model. Failures the model can act on (bad
arguments, errors in the code, non-zero exits, timeouts) come back as a
``ToolMessage`` with ``status="error"``, readable text and the artifacts made before
the failure. Failures of the Docker Engine (``e2b_tools.EngineError``) raise to the
caller, whatever ``handle_tool_error`` says: the operator must fix those
(``docs/errors.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForToolRun,
        CallbackManagerForToolRun,
    )
    from langchain_core.messages import ToolMessage
    from langchain_core.messages.content import (
        ContentBlock,
        create_file_block,
        create_image_block,
        create_text_block,
    )
    from langchain_core.runnables import ensure_config
    from langchain_core.tools import BaseTool, BaseToolkit, ToolException
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError(
        "e2b_tools_langchain needs LangChain: pip install 'e2b-tools[langchain]'"
    ) from exc

from pydantic import ConfigDict, Field, PrivateAttr, ValidationError

from e2b_tools import (
    AsyncSandbox,
    AsyncSandboxPool,
    InvalidArgumentError,
    Sandbox,
    SandboxConfig,
    SandboxPool,
)
from e2b_tools.tools import (
    DEFAULT_BUDGET,
    DEFAULT_IDLE_TIMEOUT,
    Artifact,
    Toolkit,
    ToolOutput,
    derive_tool_classes,
    validation_message,
)

if TYPE_CHECKING:
    from .deepagents import E2BToolsSandbox

__all__ = [
    "DEEPAGENTS_FILE_TOOLS",
    "E2BToolsSandbox",
    "ListFilesTool",
    "ReadFileTool",
    "RunCodeTool",
    "RunShellTool",
    "SandboxToolkit",
    "ToolNameClashError",
    "WriteFileTool",
    "artifact_block",
]

DEEPAGENTS_FILE_TOOLS = frozenset(
    {"ls", "read_file", "write_file", "edit_file", "glob", "grep", "execute"}
)
"""The names of Deep Agents' built-in filesystem tools (its ``FilesystemMiddleware``)."""

# Where LangChain passes a tool call's id to ``_run`` (see ``_to_args_and_kwargs``).
_CALL_ID = "__e2b_tools_call_id"


class ToolNameClashError(InvalidArgumentError):
    """A sandbox tool shadows one of Deep Agents' built-in file tools.

    ``create_deep_agent(tools=SandboxToolkit().get_tools())`` replaces Deep Agents'
    ``read_file`` and ``write_file`` by the sandbox's while ``ls``, ``edit_file``,
    ``glob`` and ``grep`` keep working on Deep Agents' own files: the agent writes a
    file it can then neither list nor edit. The first call of a shadowing tool in a
    deep agent raises this, to the operator.
    """


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
    handle_validation_error: Any = True
    """``True``: arguments LangChain refuses come back as the tool layer's text, which
    says what to fix (``status="error"``); ``False`` raises them."""
    toolkit: Toolkit = Field(default_factory=Toolkit, exclude=True)
    """The toolkit (and so the sandbox) this tool uses; shared by a toolkit's tools."""
    images_in_content: bool = False
    """Put images into the message content (for a vision model) as well as into the
    artifact; by default they are only in the artifact, out of the model's context."""

    def model_post_init(self, context: Any, /) -> None:
        """Explain refused arguments in the tool layer's words (they name the fix)."""
        super().model_post_init(context)
        if self.handle_validation_error is True:
            self.handle_validation_error = self._explain

    def _explain(self, exc: ValidationError) -> str:
        return validation_message(self.name, exc)

    def _to_args_and_kwargs(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> tuple[tuple[str, ...], dict[str, Any]]:
        # An error result keeps its artifacts only as a whole ToolMessage, which needs
        # the call's id; LangChain knows it here and nowhere else in _run.
        args, kwargs = super()._to_args_and_kwargs(tool_input, tool_call_id)
        kwargs[_CALL_ID] = tool_call_id
        return args, kwargs

    def _check_deep_agent(self) -> None:
        # The config of the run calling this tool; a deep agent marks its runs.
        metadata = ensure_config().get("metadata") or {}
        if metadata.get("ls_integration") == "deepagents" and self.name in DEEPAGENTS_FILE_TOOLS:
            raise ToolNameClashError(
                f"the sandbox tool {self.name!r} replaces Deep Agents' own {self.name!r}, "
                "while its other file tools (ls, edit_file, glob, grep) still work on Deep "
                "Agents' files: the agent would see two different filesystems. Run all of "
                "Deep Agents' file tools in the sandbox with "
                "create_deep_agent(backend=E2BToolsSandbox(...)), or keep both sets apart "
                "with SandboxToolkit(name_prefix='sbx_')."
            )

    def _output(
        self, output: ToolOutput, call_id: str | None
    ) -> tuple[str | list[ContentBlock] | ToolMessage, list[ContentBlock] | None]:
        artifact = [artifact_block(a) for a in output.artifacts]
        content: str | list[ContentBlock] = output.text
        if self.images_in_content and output.artifacts:
            content = [create_text_block(output.text)]
            content += [
                create_image_block(base64=a.data, mime_type=a.mime_type)
                for a in output.artifacts
                if a.mime_type.startswith("image/")
            ]
        if not output.is_error:
            return content, artifact
        if call_id is None:  # a plain invoke returns content alone: only text to carry
            raise ToolException(output.text)
        # A ToolMessage returned whole keeps status="error" *and* the artifacts.
        message = ToolMessage(
            content=content,  # type: ignore[arg-type]  # ContentBlocks are valid content
            artifact=artifact,
            tool_call_id=call_id,
            name=self.name,
            status="error",
        )
        return message, None

    def _run(
        self,
        run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> tuple[str | list[ContentBlock] | ToolMessage, list[ContentBlock] | None]:
        call_id = kwargs.pop(_CALL_ID, None)
        self._check_deep_agent()
        return self._output(self.toolkit.get(self.core_name).run(kwargs), call_id)

    async def _arun(
        self,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> tuple[str | list[ContentBlock] | ToolMessage, list[ContentBlock] | None]:
        call_id = kwargs.pop(_CALL_ID, None)
        self._check_deep_agent()
        return self._output(await self.toolkit.get(self.core_name).arun(kwargs), call_id)


def artifact_block(artifact: Artifact) -> ContentBlock:
    """An artifact as a LangChain standard content block: an ``image`` block for
    images, a ``file`` block otherwise; its name is in ``extras["name"]``.

    Example:
        >>> from e2b_tools.tools import Artifact
        >>> block = artifact_block(Artifact(name="c.png", mime_type="image/png", data="iVBO"))
        >>> block["type"], block["mime_type"], block["base64"], block["extras"]
        ('image', 'image/png', 'iVBO', {'name': 'c.png'})
    """
    if artifact.mime_type.startswith("image/"):
        return create_image_block(
            base64=artifact.data, mime_type=artifact.mime_type, name=artifact.name
        )
    return create_file_block(base64=artifact.data, mime_type=artifact.mime_type, name=artifact.name)


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
        name_prefix: Put before every tool name (``"sbx_"``: ``sbx_read_file``...);
            needed to give these tools to a deep agent next to its own file tools.
        images_in_content: Also put images (charts) into the ``ToolMessage`` content,
            as standard image blocks after the text, so a vision model sees them
            (default: only in the artifact, out of the model's context).

    Example:
        >>> toolkit = SandboxToolkit(name_prefix="sbx_", tools=["run_code", "read_file"])
        >>> [tool.name for tool in toolkit.get_tools()]
        ['sbx_run_code', 'sbx_read_file']
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    _core: Toolkit = PrivateAttr()
    _images_in_content: bool = PrivateAttr(default=False)

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
        images_in_content: bool = False,
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
            name_prefix=name_prefix,
        )
        self._images_in_content = images_in_content

    @property
    def core(self) -> Toolkit:
        """The framework-neutral toolkit underneath."""
        return self._core

    def get_tools(self) -> list[BaseTool]:
        """The LangChain tools, all bound to this toolkit's sandbox."""
        names = {t.base_name for t in self._core.tools()}
        # Each tool is named and described for this toolkit (prefix, network, image).
        return [
            cls(
                toolkit=self._core,
                name=self._core.get(cls.core_name).name,
                description=self._core.get(cls.core_name).description,
                images_in_content=self._images_in_content,
            )
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
