"""Running the server: stdio, or streamable HTTP on ``HOST:PORT``."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from e2b_tools import InvalidArgumentError, SandboxConfig

from ._server import build_server

HTTP_PATH = "/mcp"
"""Where the streamable HTTP endpoint is served."""

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def serve(
    http: str | None = None, *, config: SandboxConfig | None = None, name_prefix: str = ""
) -> None:
    """Serve the sandbox tools over MCP until the client or a signal ends it.

    Args:
        http: ``None`` to serve over stdio (the client starts this process and talks
            over its stdin and stdout); ``"HOST:PORT"`` to serve streamable HTTP at
            ``http://HOST:PORT/mcp`` (``[::1]:8000`` for IPv6).
        config: Settings of the sandboxes (image, network, limits).
        name_prefix: Put before every tool name (``"sbx_"``: ``sbx_run_code``...).

    Every client session's sandboxes are killed when it ends, and all of them when the
    server stops (stdin closed, SIGINT, SIGTERM or SIGHUP).

    Raises:
        InvalidArgumentError: ``http`` is not ``HOST:PORT``, or a bad ``name_prefix``.

    Example:
        >>> from e2b_tools_mcp import serve
        >>> serve()  # doctest: +SKIP
        >>> serve("127.0.0.1:8000")  # doctest: +SKIP
    """
    server = build_server(config=config, name_prefix=name_prefix)
    if http is None:
        anyio.run(_serve_stdio, server)
    else:
        host, port = parse_address(http)
        _serve_http(server, host, port)


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[IPv6]:PORT``) as ``(host, port)``.

    Example:
        >>> parse_address("127.0.0.1:8000")
        ('127.0.0.1', 8000)
        >>> parse_address("[::1]:8000")
        ('::1', 8000)
    """
    host, sep, port_s = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_s)
    except ValueError:
        port = -1
    if not sep or not host or not 0 <= port <= 65535:
        raise InvalidArgumentError(
            f"--http takes HOST:PORT (like 127.0.0.1:8000, or [::1]:8000), not {address!r}"
        )
    return host, port


# -- stdio ------------------------------------------------------------------------------


class _DaemonStdin(anyio.AsyncFile[str]):
    """stdin, read line by line on a daemon thread, from its file descriptor.

    anyio reads files on worker threads that a shutdown (and the interpreter's exit)
    waits for, and after a signal stdin may stay open for ever. A daemon thread does
    not hold the exit up, provided it holds no lock of Python's buffered stdin then:
    it reads the descriptor itself. A newline byte never occurs inside a UTF-8
    sequence, so lines are split before they are decoded.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdin)
        self._lines: asyncio.Queue[str] | None = None

    async def readline(self) -> str:
        if self._lines is None:
            self._lines = asyncio.Queue()
            threading.Thread(
                target=self._pump,
                args=(asyncio.get_running_loop(), self._lines),
                name="e2b-tools-mcp-stdin",
                daemon=True,
            ).start()
        return await self._lines.get()

    def _pump(self, loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str]) -> None:
        fd = self.wrapped.fileno()
        pending = bytearray()
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""  # read as the end of input
            pending += chunk
            out: list[str] = []
            while (cut := pending.find(b"\n")) >= 0:
                out.append(pending[: cut + 1].decode("utf-8", "replace"))
                del pending[: cut + 1]
            if not chunk:
                out += [pending.decode("utf-8", "replace")] if pending else []
                out.append("")  # the end of input
            try:
                for line in out:
                    loop.call_soon_threadsafe(lines.put_nowait, line)
            except RuntimeError:  # the loop is closed: nobody reads any more
                return
            if not chunk:
                return


async def _serve_stdio(server: Server[Any, Any]) -> None:
    stdin = _DaemonStdin()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_cancel_on_signal, tg.cancel_scope)
        async with stdio_server(stdin=stdin) as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
        tg.cancel_scope.cancel()


async def _cancel_on_signal(scope: anyio.CancelScope) -> None:
    """Turn SIGINT, SIGTERM and SIGHUP into a cancellation, so sessions clean up."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        async for _ in signals:
            scope.cancel()
            return


# -- streamable HTTP -------------------------------------------------------------------


def _serve_http(server: Server[Any, Any], host: str, port: int) -> None:
    import uvicorn
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette
    from starlette.routing import Route
    from starlette.types import Receive, Scope, Send

    shown = f"[{host}]" if ":" in host else host
    if _is_loopback(host):
        # A page in the user's browser must not reach a local code runner through a
        # rebound DNS name: only loopback Host and Origin headers are accepted.
        hosts = sorted({"127.0.0.1", "localhost", "[::1]", shown})
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[f"{h}:*" for h in hosts],
            allowed_origins=[f"http://{h}:*" for h in hosts],
        )
    else:
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        print(
            f"e2b-tools mcp: serving on {host}, not a loopback address: anyone who can reach "
            "this port can run code in sandboxes (there is no authentication); put it behind "
            "an authenticating proxy or bind to 127.0.0.1",
            file=sys.stderr,
        )
    manager = StreamableHTTPSessionManager(app=server, security_settings=security)

    class _Endpoint:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # Leaving this cancels every session, whose own exit kills its sandboxes.
        async with manager.run():
            print(f"e2b-tools mcp: serving at http://{shown}:{port}{HTTP_PATH}", file=sys.stderr)
            yield

    app = Starlette(
        routes=[Route(HTTP_PATH, endpoint=_Endpoint(), methods=["GET", "POST", "DELETE"])],
        lifespan=lifespan,
    )
    # Open event streams would otherwise hold a shutdown up for as long as clients
    # keep them open.
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
