"""The MCP server: the sandbox tools and lifecycle tools, per client session."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
from pydantic import ValidationError

try:
    from mcp import types
    from mcp.server.lowlevel import Server
    from mcp.shared.exceptions import McpError
except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
    raise ImportError("e2b_tools_mcp needs the MCP SDK: pip install 'e2b-tools[mcp]'") from exc

from e2b_tools import EngineError, InvalidArgumentError, SandboxConfig, SandboxError, __version__
from e2b_tools.tools import (
    ALL_TOOLS,
    DEFAULT_BUDGET,
    DEFAULT_IDLE_TIMEOUT,
    Artifact,
    Toolkit,
    ToolOutput,
    check_name_prefix,
    validation_message,
)

DEFAULT_MAX_SANDBOXES = 8
"""Sandboxes one client session may have at once (its default one included)."""

_SANDBOX_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "description": (
        "Which of this session's sandboxes to use: an id from create_sandbox or "
        "list_sandboxes. Omit it to use the session's default sandbox (created on first use)."
    ),
}

_INSTRUCTIONS = (
    "Code sandboxes: run_code (Python and other languages, state persists), run_shell, "
    "read_file, write_file and list_files act on this session's default sandbox, "
    "created on first use. Call create_sandbox for more sandboxes and pass the id it "
    "returns as sandbox_id; list_sandboxes and kill_sandbox manage them. All sandboxes "
    "of a session are removed when the session ends."
)

# Hints for clients (the MCP spec's tool annotations); the lifecycle tools' are below.
_HINTS: dict[str, types.ToolAnnotations] = {
    "run_code": types.ToolAnnotations(title="Run code"),
    "run_shell": types.ToolAnnotations(title="Run a shell command"),
    "read_file": types.ToolAnnotations(title="Read a file", readOnlyHint=True),
    "write_file": types.ToolAnnotations(title="Write a file", destructiveHint=True),
    "list_files": types.ToolAnnotations(title="List files", readOnlyHint=True),
}


_LIFECYCLE = ("create_sandbox", "list_sandboxes", "kill_sandbox")
_TOOL_NAMES = re.compile(
    r"\b(" + "|".join([tool.name for tool in ALL_TOOLS] + list(_LIFECYCLE)) + r")\b"
)


def _renamer(name_prefix: str) -> Callable[[str], str]:
    """Rewrites the tool names in the server's own texts to the names clients see."""
    if not name_prefix:
        return lambda text: text
    return lambda text: _TOOL_NAMES.sub(lambda m: name_prefix + m.group(1), text)


def _engine_failure(exc: EngineError) -> McpError:
    """An engine failure as a JSON-RPC error: the client's operator must act on it,
    no tool call by the model can (``docs/errors.md``)."""
    return McpError(
        types.ErrorData(
            code=types.INTERNAL_ERROR,
            message=f"e2b-tools could not reach a working Docker Engine: {exc}",
            data={"error": type(exc).__name__},
        )
    )


class _Refused(Exception):
    """A tool call this session may not make; the text is for the model."""


class _ClientSandboxes:
    """The sandboxes of one client session, each behind its own :class:`Toolkit`.

    The default sandbox's toolkit is created on first use; those of ``create_sandbox``
    are keyed by the id their sandbox had when it was created (a toolkit replaces a
    sandbox that died; the old id keeps naming it).
    """

    def __init__(self, new_toolkit: Callable[[], Toolkit], max_sandboxes: int) -> None:
        self._new_toolkit = new_toolkit
        self._max = max_sandboxes
        self._default: Toolkit | None = None
        self._named: dict[str, Toolkit] = {}
        self._starting = 0
        self._closed = False

    # -- lookup ----------------------------------------------------------------------
    def _count(self) -> int:
        started = self._default is not None and self._default.session.sandbox is not None
        return len(self._named) + self._starting + (1 if started else 0)

    def _check_room(self) -> None:
        if self._closed:
            raise _Refused("Error: this session has ended; reconnect to get a new sandbox.")
        if self._count() >= self._max:
            raise _Refused(
                f"Error: this session already has {self._max} sandboxes, the most it may "
                "have at once. Kill one with kill_sandbox (list_sandboxes shows them) and "
                "call again."
            )

    def _entries(self) -> list[tuple[str, Toolkit, bool]]:
        """(id, toolkit, is_default) of the sandboxes that exist, default first."""
        out: list[tuple[str, Toolkit, bool]] = []
        if self._default is not None and self._default.session.sandbox is not None:
            out.append((self._default.session.sandbox.sandbox_id, self._default, True))
        out.extend((key, kit, False) for key, kit in self._named.items())
        return out

    def _find(self, sandbox_id: str) -> tuple[str, Toolkit, bool]:
        for key, kit, is_default in self._entries():
            current = kit.session.sandbox
            if sandbox_id == key or (current is not None and sandbox_id == current.sandbox_id):
                return key, kit, is_default
        # The same answer whether or not the id exists elsewhere: nothing leaks.
        known = ", ".join(key for key, _, _ in self._entries()) or "none yet"
        raise _Refused(
            f"Error: this session has no sandbox {sandbox_id!r} (its sandboxes: {known}). "
            "Use an id from create_sandbox or list_sandboxes, or omit sandbox_id to use "
            "the default sandbox."
        )

    def toolkit(self, sandbox_id: str | None) -> Toolkit:
        """The toolkit a tool call targets."""
        if sandbox_id is not None:
            return self._find(sandbox_id)[1]
        if self._default is None or self._default.session.sandbox is None:
            self._check_room()
        if self._default is None:
            self._default = self._new_toolkit()
        return self._default

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, toolkit: Toolkit) -> None:
        """Create the toolkit's sandbox if it has none yet.

        Shielded: a sandbox whose creation began is always registered (and so killed
        when the session ends), even if the call that asked for it was cancelled.
        """
        if toolkit.session.sandbox is not None:
            return
        with anyio.CancelScope(shield=True):
            await toolkit.session.call(toolkit.session.get())
            if self._closed:
                await toolkit.aclose()

    async def create(self) -> str:
        """A new sandbox of this session; returns its id."""
        self._check_room()
        toolkit = self._new_toolkit()
        self._starting += 1
        try:
            with anyio.CancelScope(shield=True):
                sbx = await toolkit.session.call(toolkit.session.get())
                if self._closed:
                    await toolkit.aclose()
                    raise _Refused("Error: this session ended while the sandbox was starting.")
                self._named[sbx.sandbox_id] = toolkit
        finally:
            self._starting -= 1
        return sbx.sandbox_id

    async def kill(self, sandbox_id: str) -> str:
        """Kill one of this session's sandboxes; returns the id it was known by."""
        key, toolkit, is_default = self._find(sandbox_id)
        if is_default:
            self._default = None  # the next call without sandbox_id starts a new one
        else:
            del self._named[key]
        with anyio.CancelScope(shield=True):
            await toolkit.aclose()
        return key

    async def describe(self) -> list[dict[str, Any]]:
        """This session's sandboxes, for ``list_sandboxes``."""
        rows: list[dict[str, Any]] = []
        for key, kit, is_default in self._entries():
            sbx = kit.session.sandbox
            try:
                alive = sbx is not None and await kit.session.call(sbx.is_alive())
            except SandboxError:
                alive = False
            row: dict[str, Any] = {"sandbox_id": key, "default": is_default, "running": alive}
            if sbx is not None and sbx.sandbox_id != key:
                row["current_sandbox_id"] = sbx.sandbox_id
            rows.append(row)
        return rows

    async def aclose(self) -> None:
        """Kill every sandbox of the session (concurrently). Idempotent."""
        self._closed = True
        toolkits = [kit for _, kit, _ in self._entries()]
        if self._default is not None and self._default not in toolkits:
            toolkits.append(self._default)
        self._default = None
        self._named.clear()

        async def close(toolkit: Toolkit) -> None:
            try:
                await toolkit.aclose()
            except Exception:  # one failure must not keep the others alive
                pass

        async with anyio.create_task_group() as tg:
            for toolkit in toolkits:
                tg.start_soon(close, toolkit)


def _content(output: ToolOutput) -> list[types.ContentBlock]:
    content: list[types.ContentBlock] = [types.TextContent(type="text", text=output.text)]
    content.extend(_artifact(a) for a in output.artifacts)
    return content


def _artifact(artifact: Artifact) -> types.ContentBlock:
    if artifact.mime_type.startswith("image/"):
        return types.ImageContent(type="image", data=artifact.data, mimeType=artifact.mime_type)
    return types.EmbeddedResource(
        type="resource",
        resource=types.BlobResourceContents(
            uri=f"sandbox:///{artifact.name}",  # type: ignore[arg-type]  # pydantic coerces
            mimeType=artifact.mime_type,
            blob=artifact.data,
        ),
    )


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], isError=True)


def _ok(text: str, structured: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structuredContent=structured
    )


def _lifecycle_tools(rename: Callable[[str], str]) -> list[types.Tool]:
    sandbox_id = {**_SANDBOX_ID_SCHEMA, "description": "Id of the sandbox to kill."}
    tools = [
        types.Tool(
            name="create_sandbox",
            description=(
                "Start another sandbox for this session and return its id. Pass the id as "
                "sandbox_id to run_code, run_shell, read_file, write_file or list_files to "
                "work in it; each sandbox has its own files, variables and processes. "
                "Not needed for a single sandbox: the tools create the default one on "
                "first use. Kill sandboxes you no longer need with kill_sandbox."
            ),
            inputSchema={"type": "object", "properties": {}, "additionalProperties": False},
            annotations=types.ToolAnnotations(title="Create a sandbox", destructiveHint=False),
        ),
        types.Tool(
            name="list_sandboxes",
            description=(
                "List this session's sandboxes: their ids, which one is the default, and "
                "whether each is running."
            ),
            inputSchema={"type": "object", "properties": {}, "additionalProperties": False},
            annotations=types.ToolAnnotations(title="List sandboxes", readOnlyHint=True),
        ),
        types.Tool(
            name="kill_sandbox",
            description=(
                "Kill one of this session's sandboxes and everything in it. Killing the "
                "default sandbox is allowed: the next call without sandbox_id starts a "
                "fresh one."
            ),
            inputSchema={
                "type": "object",
                "properties": {"sandbox_id": sandbox_id},
                "required": ["sandbox_id"],
                "additionalProperties": False,
            },
            annotations=types.ToolAnnotations(
                title="Kill a sandbox", destructiveHint=True, idempotentHint=True
            ),
        ),
    ]
    return [
        tool.model_copy(
            update={"name": rename(tool.name), "description": rename(tool.description or "")}
        )
        for tool in tools
    ]


def _check_no_arguments(name: str, arguments: dict[str, Any]) -> None:
    if arguments:
        raise _Refused(
            f"Invalid arguments for {name}: it takes no arguments, got {sorted(arguments)}. "
            "Call it with {}."
        )


def build_server(
    *,
    config: SandboxConfig | None = None,
    budget: int = DEFAULT_BUDGET,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    max_lifetime: float | None = None,
    max_sandboxes: int = DEFAULT_MAX_SANDBOXES,
    tools: Sequence[str] | None = None,
    name: str = "e2b-tools",
    name_prefix: str = "",
) -> Server[Any, Any]:
    """The MCP server (the SDK's low-level ``Server``), ready for any transport.

    Each run of the server (one stdio process, or one streamable HTTP session) gets
    its own sandboxes, killed when the run ends.

    Args:
        config: Settings of the sandboxes the server creates (image, network, limits);
            the tool descriptions say what is true of them.
        budget: Characters per tool result (default about 2,000 tokens).
        idle_timeout: Seconds without a call after which a sandbox goes away (each call
            extends it; default 15 minutes), even if its session is still open.
        max_lifetime: Hard cap on a sandbox's lifetime in seconds (default: none).
        max_sandboxes: Sandboxes a session may have at once, its default one included.
        tools: Names of the sandbox tools to offer (default: all five); the lifecycle
            tools are always offered.
        name: The server's name, as clients show it.
        name_prefix: Put before every tool name, the lifecycle tools' too (``"sbx_"``:
            ``sbx_run_code``, ``sbx_create_sandbox``...); texts name them so too.

    A failure of the Docker Engine (``e2b_tools.EngineError``: no engine answers, the
    image is missing) is answered with a JSON-RPC error (``INTERNAL_ERROR``) whose
    message names the engine address and the fix, for the client to show its user;
    everything else is a tool result, with ``isError`` when the call failed.

    Example:
        >>> server = build_server(max_sandboxes=2, tools=["run_code"])
        >>> server.name
        'e2b-tools'
    """
    if max_sandboxes < 1:
        raise InvalidArgumentError("max_sandboxes must be at least 1")
    check_name_prefix(name_prefix)
    rename = _renamer(name_prefix)
    sandbox_config = config or SandboxConfig()

    def new_toolkit() -> Toolkit:
        return Toolkit(
            config=sandbox_config,
            budget=budget,
            tools=tools,
            idle_timeout=idle_timeout,
            max_lifetime=max_lifetime,
            name_prefix=name_prefix,
        )

    # Descriptions and schemas come from a toolkit that never starts a sandbox.
    prototype = new_toolkit()
    listed: list[types.Tool] = []
    for tool in prototype.tools():
        schema = tool.json_schema()
        sandbox_id_schema = {
            **_SANDBOX_ID_SCHEMA,
            "description": rename(_SANDBOX_ID_SCHEMA["description"]),
        }
        schema["properties"] = {**schema.get("properties", {}), "sandbox_id": sandbox_id_schema}
        listed.append(
            types.Tool(
                name=tool.name,
                description=tool.description,
                inputSchema=schema,
                annotations=_HINTS.get(tool.base_name),
            )
        )
    sandbox_tools = {t.name for t in listed}
    listed.extend(_lifecycle_tools(rename))
    create_name, list_name, kill_name = (rename(n) for n in _LIFECYCLE)

    @contextlib.asynccontextmanager
    async def session_lifespan(_: Server[Any, Any]) -> AsyncIterator[_ClientSandboxes]:
        sandboxes = _ClientSandboxes(new_toolkit, max_sandboxes)
        try:
            yield sandboxes
        finally:
            # Runs when the session ends, also when it is cancelled (server shutdown).
            with anyio.move_on_after(60, shield=True):
                await sandboxes.aclose()

    server: Server[Any, Any] = Server(
        name,
        version=__version__,
        instructions=rename(_INSTRUCTIONS),
        lifespan=session_lifespan,
    )

    async def list_tools() -> list[types.Tool]:
        return list(listed)

    async def call_tool(tool_name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        sandboxes: _ClientSandboxes = server.request_context.lifespan_context
        arguments = dict(arguments or {})
        try:
            if tool_name in sandbox_tools:
                sandbox_id = arguments.pop("sandbox_id", None)
                if sandbox_id is not None and not isinstance(sandbox_id, str):
                    raise _Refused(
                        f"Invalid arguments for {tool_name}:\n- sandbox_id: must be a string "
                        "(an id from create_sandbox or list_sandboxes)\nFix them and call again."
                    )
                try:  # refused arguments need no sandbox (nor an engine)
                    prototype.get(tool_name).input_model.model_validate(arguments)
                except ValidationError as exc:
                    return _error(validation_message(tool_name, exc))
                toolkit = sandboxes.toolkit(sandbox_id)
                try:
                    await sandboxes.start(toolkit)
                except EngineError:
                    raise
                except SandboxError as exc:
                    return _error(f"Could not start a sandbox: {exc.message}")
                output = await toolkit.get(tool_name).arun(arguments)
                return types.CallToolResult(content=_content(output), isError=output.is_error)
            if tool_name == create_name:
                _check_no_arguments(tool_name, arguments)
                try:
                    new_id = await sandboxes.create()
                except EngineError:
                    raise
                except SandboxError as exc:
                    return _error(f"Could not start a sandbox: {exc.message}")
                return _ok(
                    rename(
                        f"Created sandbox {new_id}. Pass sandbox_id={new_id!r} to the tools to "
                        "use it; kill it with kill_sandbox when you are done."
                    ),
                    {"sandbox_id": new_id},
                )
            if tool_name == list_name:
                _check_no_arguments(tool_name, arguments)
                rows = await sandboxes.describe()
                return _ok(rename(_render_list(rows)), {"sandboxes": rows})
            if tool_name == kill_name:
                target = arguments.pop("sandbox_id", None)
                if not isinstance(target, str) or arguments:
                    raise _Refused(
                        "Invalid arguments for kill_sandbox: pass exactly one argument, "
                        "sandbox_id (a string from create_sandbox or list_sandboxes)."
                    )
                killed = await sandboxes.kill(target)
                return _ok(f"Killed sandbox {killed}.", {"sandbox_id": killed})
            known = ", ".join(t.name for t in listed)
            return _error(f"Error: there is no tool named {tool_name!r}. Available tools: {known}.")
        except _Refused as exc:
            return _error(rename(str(exc)))
        except EngineError:
            raise  # answered as a protocol error by handle_call_tool below
        except SandboxError as exc:
            return _error(f"Sandbox error: {exc.message}")
        except Exception as exc:  # never a crash
            return _error(f"Internal error in {tool_name}: {type(exc).__name__}: {exc}")

    async def handle_call_tool(request: types.CallToolRequest) -> types.ServerResult:
        # Our own request handler: the SDK's turns every exception into a tool result
        # for the model, and an engine failure is for the client's operator instead.
        try:
            result = await call_tool(request.params.name, request.params.arguments or {})
        except EngineError as exc:
            raise _engine_failure(exc) from exc
        return types.ServerResult(result)

    # The tool layer validates arguments itself, with messages a model can act on.
    server.list_tools()(list_tools)  # type: ignore[no-untyped-call]  # the SDK leaves it bare
    server.request_handlers[types.CallToolRequest] = handle_call_tool
    return server


def _render_list(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return (
            "This session has no sandbox yet: the first tool call creates the default one, "
            "create_sandbox makes more."
        )
    lines = []
    for row in rows:
        notes = ["default"] if row["default"] else []
        notes.append("running" if row["running"] else "stopped; its next call starts a new one")
        if "current_sandbox_id" in row:
            notes.append(f"replaced by {row['current_sandbox_id']}")
        lines.append(f"{row['sandbox_id']} ({', '.join(notes)})")
    return "\n".join(lines)
