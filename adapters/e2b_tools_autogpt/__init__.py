"""e2b-tools for hand-written tool loops (AutoGPT-style, OpenAI or Anthropic APIs).

Give the model :func:`ToolDispatcher.specs` and route each tool call it makes through
:func:`ToolDispatcher.dispatch`, which returns a string for the model: results, and
errors the model can act on (unknown tool, malformed JSON, bad arguments, errors in the
code, timeouts) as readable text. A failure of the Docker Engine
(``e2b_tools.EngineError``) raises from ``dispatch`` to your loop: no retry by the
model fixes it (``docs/errors.md``).

Example:
    >>> from e2b_tools_autogpt import ToolDispatcher
    >>> with ToolDispatcher() as tools:  # doctest: +SKIP
    ...     specs = tools.specs("openai")       # pass as `tools=` to chat.completions
    ...     tools.dispatch("run_code", '{"code": "6 * 7"}')
    '[result]\\n42'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from e2b_tools import (
    AsyncSandbox,
    AsyncSandboxPool,
    InvalidArgumentError,
    Sandbox,
    SandboxConfig,
    SandboxPool,
)
from e2b_tools.tools import DEFAULT_BUDGET, DEFAULT_IDLE_TIMEOUT, Artifact, Toolkit, ToolOutput

SpecFormat = Literal["openai", "anthropic"]

__all__ = ["SpecFormat", "ToolDispatcher"]


class ToolDispatcher:
    """The sandbox tools as JSON-schema specs plus a name -> result dispatcher.

    Args:
        toolkit: Tools to expose (default: a new :class:`~e2b_tools.tools.Toolkit`,
            which creates its sandbox on the first call).
        sandbox: Use this sandbox instead of creating one (ignored with ``toolkit``).
        budget: Characters per tool result.
        config: Settings for the sandbox the toolkit creates.
        idle_timeout: Seconds without a call after which the sandbox created here goes
            away (each call extends it; default 15 minutes).
        max_lifetime: Hard cap on that sandbox's lifetime in seconds (default: none).
        pool: Take the sandbox from this warm pool instead of creating one (still
            killed on close; the pool's config rules; ignored with ``toolkit``).
        name_prefix: Put before every tool name (``"sbx_"``: ``sbx_read_file``...);
            with ``toolkit``, give it to the toolkit instead.

    Example:
        >>> [s["name"] for s in ToolDispatcher(name_prefix="sbx_").specs("anthropic")][:2]
        ['sbx_run_code', 'sbx_run_shell']
    """

    def __init__(
        self,
        toolkit: Toolkit | None = None,
        *,
        sandbox: Sandbox | AsyncSandbox | None = None,
        budget: int = DEFAULT_BUDGET,
        config: SandboxConfig | None = None,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_lifetime: float | None = None,
        pool: SandboxPool | AsyncSandboxPool | None = None,
        name_prefix: str = "",
    ) -> None:
        if toolkit is not None and name_prefix:
            raise InvalidArgumentError(
                "pass name_prefix= to the Toolkit you give, not to ToolDispatcher: the "
                "toolkit names its tools"
            )
        self.toolkit = toolkit or Toolkit(
            sandbox,
            budget=budget,
            config=config,
            idle_timeout=idle_timeout,
            max_lifetime=max_lifetime,
            pool=pool,
            name_prefix=name_prefix,
        )
        self.artifacts: list[Artifact] = []
        """Artifacts (e.g. charts) produced by dispatched calls, oldest first."""

    def specs(self, format: SpecFormat = "openai") -> list[dict[str, Any]]:
        """Tool specs for ``tools=`` of the OpenAI or Anthropic APIs."""
        out: list[dict[str, Any]] = []
        for tool in self.toolkit.tools():
            schema = tool.json_schema()
            if format == "openai":
                out.append(
                    {
                        "type": "function",
                        "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": schema,
                        },
                    }
                )
            elif format == "anthropic":
                out.append(
                    {"name": tool.name, "description": tool.description, "input_schema": schema}
                )
            else:
                raise ValueError(f"format must be 'openai' or 'anthropic', not {format!r}")
        return out

    def _parse(self, name: str, arguments: str | Mapping[str, Any] | None) -> dict[str, Any] | str:
        known = [t.name for t in self.toolkit.tools()]
        if name not in known:
            return f"Error: there is no tool named {name!r}. Available tools: {', '.join(known)}."
        if arguments is None or arguments == "":
            return {}
        if isinstance(arguments, Mapping):
            return dict(arguments)
        try:
            parsed = json.loads(arguments)
        except (TypeError, ValueError) as exc:
            return (
                f"Error: the arguments for {name} are not valid JSON ({exc}). Send a JSON "
                "object matching the tool's parameters."
            )
        if not isinstance(parsed, dict):
            kind = type(parsed).__name__
            return f"Error: the arguments for {name} must be a JSON object, not {kind}."
        return parsed

    async def adispatch(self, name: str, arguments: str | Mapping[str, Any] | None = None) -> str:
        """Run one tool call and return text for the model.

        Artifacts (charts) go to :attr:`artifacts`, also from a call that failed.

        Raises:
            EngineError: The Docker Engine failed; the operator must act.
        """
        parsed = self._parse(name, arguments)
        if isinstance(parsed, str):
            return parsed
        output: ToolOutput = await self.toolkit.get(name).arun(parsed)
        self.artifacts.extend(output.artifacts)
        return output.text

    def dispatch(self, name: str, arguments: str | Mapping[str, Any] | None = None) -> str:
        """Blocking :meth:`adispatch`."""
        parsed = self._parse(name, arguments)
        if isinstance(parsed, str):
            return parsed
        output = self.toolkit.get(name).run(parsed)
        self.artifacts.extend(output.artifacts)
        return output.text

    def close(self) -> None:
        """Kill the sandbox if the toolkit created it."""
        self.toolkit.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self.toolkit.aclose()

    def __enter__(self) -> ToolDispatcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
