"""e2b-tools as an MCP server: the sandbox tools for any Model Context Protocol client.

``e2b-tools mcp`` (or ``python -m e2b_tools_mcp``) serves over stdio; with
``--http HOST:PORT`` it serves streamable HTTP at ``http://HOST:PORT/mcp``.

Each client session has its own sandboxes: a default one, created on its first tool
call, and any it makes with ``create_sandbox``. A session sees and touches only its
own, and all of them are killed when the session ends (stdin closed, the HTTP session
deleted or expired, the server stopped). The five tools are the tool layer's
(:data:`e2b_tools.tools.ALL_TOOLS`): same descriptions, argument schemas, output
shaping and error texts, plus an optional ``sandbox_id``. A failure the model can act
on comes back as a tool result with ``isError`` set; a failure of the Docker Engine
(``e2b_tools.EngineError``) as a JSON-RPC error naming the engine address and the
fix, for the client to show its user (``docs/errors.md``).

Example:
    >>> from e2b_tools_mcp import build_server
    >>> server = build_server()
    >>> server.name
    'e2b-tools'
"""

from __future__ import annotations

from ._serve import serve
from ._server import DEFAULT_MAX_SANDBOXES, build_server

__all__ = ["DEFAULT_MAX_SANDBOXES", "build_server", "serve"]
