"""Framework-neutral tools for LLM agents, bound to one sandbox.

Example:
    >>> from e2b_tools.tools import Toolkit
    >>> with Toolkit() as toolkit:  # doctest: +SKIP
    ...     out = toolkit.get("run_code").run(code="21 * 2")
    ...     out.text
    '[result]\\n42'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import (
    AsyncSandbox,
    AsyncSandboxPool,
    InvalidArgumentError,
    Sandbox,
    SandboxConfig,
    SandboxPool,
    UnknownToolError,
)
from ..backends import Backend
from ._derive import derive_tool_classes
from ._session import DEFAULT_IDLE_TIMEOUT, SandboxSession
from ._shape import (
    Shaped,
    clean,
    describe_binary,
    is_binary,
    looks_binary_text,
    shape,
    utf8_prefix,
)
from ._tools import (
    ALL_TOOLS,
    DEFAULT_BUDGET,
    OUTPUT_DIR,
    TOOL_NAME_PATTERN,
    Artifact,
    ListFiles,
    ListFilesInput,
    ReadFile,
    ReadFileInput,
    RunCode,
    RunCodeInput,
    RunShell,
    RunShellInput,
    SandboxTool,
    ToolOutput,
    WriteFile,
    WriteFileInput,
    validation_message,
)


class Toolkit:
    """The five sandbox tools sharing one sandbox.

    The sandbox is created on the first tool call (or pass ``sandbox=``), reused so
    state persists across calls, replaced if it dies (the model is told state was
    lost), and killed by :meth:`close` / the context manager if the toolkit made it.
    With ``pool=`` it is taken from a warm :class:`~e2b_tools.SandboxPool` instead of
    created cold (and so is a replacement), and killed on close all the same.

    Args:
        sandbox: An existing sandbox to use (it is not killed on close).
        budget: Characters per tool result (default about 2,000 tokens).
        config: Settings for the sandbox the toolkit creates.
        tools: Names of the tools to include (default: all).
        idle_timeout: Seconds without a call after which the toolkit's own sandbox
            goes away (each call moves its deadline; default 15 minutes; ``None``:
            the config's fixed ``timeout``).
        max_lifetime: Hard cap on that sandbox's lifetime in seconds (``None``: none).
        backend: Where the toolkit's sandbox runs (default: the Docker Engine).
        pool: Take the sandbox from this pool (its config and backend rule: passing
            ``sandbox=``, ``config=`` or ``backend=`` too is an error).
        name_prefix: Put before every tool name (``"sbx_"``: ``sbx_read_file``...), to
            keep the tools apart from another set with the same names (Deep Agents'
            ``read_file``, a second toolkit). Letters, digits, ``_`` and ``-``; the
            names stay valid for OpenAI's and Anthropic's tool APIs (64 characters).
            Descriptions and error texts name the other tools with the prefix too.

    Raises:
        InvalidArgumentError: A bad ``budget``, ``name_prefix`` or combination.
        UnknownToolError: A name in ``tools`` is not a tool.

    Example:
        >>> kit = Toolkit(name_prefix="sbx_", tools=["run_code", "read_file"])
        >>> [tool.name for tool in kit.tools()]
        ['sbx_run_code', 'sbx_read_file']
        >>> kit.get("read_file") is kit.get("sbx_read_file")
        True
    """

    def __init__(
        self,
        sandbox: Sandbox | AsyncSandbox | None = None,
        *,
        budget: int = DEFAULT_BUDGET,
        config: SandboxConfig | None = None,
        tools: Sequence[str] | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_lifetime: float | None = None,
        backend: Backend | None = None,
        pool: SandboxPool | AsyncSandboxPool | None = None,
        name_prefix: str = "",
    ) -> None:
        check_name_prefix(name_prefix)
        if budget < 500:
            raise InvalidArgumentError("budget must be at least 500 characters")
        self.session = SandboxSession(
            sandbox,
            config=config,
            idle_timeout=idle_timeout,
            max_lifetime=max_lifetime,
            backend=backend,
            pool=pool,
        )
        self.budget = budget
        known = {cls.name: cls for cls in ALL_TOOLS}
        names = list(tools) if tools is not None else list(known)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UnknownToolError(f"unknown tools {unknown}; available: {sorted(known)}")
        self.name_prefix = name_prefix
        self._tools: dict[str, SandboxTool[Any]] = {
            n: known[n](self.session, budget, name_prefix) for n in names
        }

    def tools(self) -> list[SandboxTool[Any]]:
        """The tools, in a stable order."""
        return list(self._tools.values())

    def get(self, name: str) -> SandboxTool[Any]:
        """One tool by the name the model sees (``sbx_run_code``) or its own name
        (``run_code``)."""
        if name in self._tools:
            return self._tools[name]
        for tool in self._tools.values():
            if tool.name == name:
                return tool
        available = sorted(tool.name for tool in self._tools.values())
        raise UnknownToolError(f"no tool {name!r}; available: {available}")

    def close(self) -> None:
        """Kill the sandbox if the toolkit created it."""
        self.session.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self.session.call(self.session.aclose())

    def __enter__(self) -> Toolkit:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Toolkit:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def check_name_prefix(name_prefix: str) -> None:
    """Raise :class:`~e2b_tools.InvalidArgumentError` unless every tool name with
    ``name_prefix`` is a valid tool name for OpenAI's and Anthropic's APIs.

    Example:
        >>> check_name_prefix("sbx_")
        >>> check_name_prefix("my tools.")
        Traceback (most recent call last):
        ...
        e2b_tools._exceptions.InvalidArgumentError: name_prefix 'my tools.' ...
    """
    if not isinstance(name_prefix, str):
        kind = type(name_prefix).__name__
        raise InvalidArgumentError(f"name_prefix must be a string, not {kind}")
    bad = [cls.name for cls in ALL_TOOLS if not TOOL_NAME_PATTERN.match(name_prefix + cls.name)]
    if bad:
        raise InvalidArgumentError(
            f"name_prefix {name_prefix!r} makes tool names that model APIs refuse (e.g. "
            f"{name_prefix + bad[0]!r}): use letters, digits, '_' and '-' only, at most "
            f"{64 - max(len(cls.name) for cls in ALL_TOOLS)} characters, such as 'sbx_'"
        )


__all__ = [
    "ALL_TOOLS",
    "DEFAULT_BUDGET",
    "DEFAULT_IDLE_TIMEOUT",
    "OUTPUT_DIR",
    "TOOL_NAME_PATTERN",
    "Artifact",
    "ListFiles",
    "ListFilesInput",
    "ReadFile",
    "ReadFileInput",
    "RunCode",
    "RunCodeInput",
    "RunShell",
    "RunShellInput",
    "SandboxSession",
    "SandboxTool",
    "Shaped",
    "ToolOutput",
    "Toolkit",
    "WriteFile",
    "WriteFileInput",
    "check_name_prefix",
    "clean",
    "derive_tool_classes",
    "describe_binary",
    "is_binary",
    "looks_binary_text",
    "shape",
    "utf8_prefix",
    "validation_message",
]
