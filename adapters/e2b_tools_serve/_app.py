"""The server's ASGI apps and how they are run.

:func:`control_app` is the REST control plane; :func:`apps` builds it with the sandbox
listener (envd, and the interpreter by ``E2b-Sandbox-Port``) and the interpreter's own
listener, all on one :class:`Sandboxes`; :func:`serve` runs the three with uvicorn on
one event loop.

Control-plane layers, outside in: starlette's error middleware (a JSON 500), the
:class:`Guard` (``Origin`` → 403, ``X-API-KEY`` → 401), the router (JSON 404/405, 501
stubs). The sandbox listeners' checks are in ``_sandbox_app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from ._control import Control, routes
from ._http import ApiError, Guard, api_error, http_error, server_error
from ._registry import Sandboxes
from ._sandbox_app import ENVD_PORT, INTERPRETER_PORT, sandbox_app
from ._settings import ServeSettings


def control_app(settings: ServeSettings, sandboxes: Sandboxes | None = None) -> Starlette:
    """The REST control plane (E2B's ``/sandboxes`` and ``/v2/sandboxes``) as an app.

    Example:
        >>> from e2b_tools_serve import ServeSettings, control_app
        >>> app = control_app(ServeSettings(api_key="e2b_" + "0" * 40))
    """
    control = Control(settings, sandboxes or Sandboxes(settings))
    app = Starlette(
        routes=routes(control),
        middleware=[Middleware(Guard, settings=settings)],
        exception_handlers={
            HTTPException: http_error,
            ApiError: api_error,
            Exception: server_error,
        },
    )
    app.state.sandboxes = control.sandboxes
    return app


@dataclass(frozen=True)
class Apps:
    """The three apps of one server, sharing one registry of sandboxes."""

    sandboxes: Sandboxes
    control: ASGIApp
    """``E2B_API_URL``: the REST control plane."""
    sandbox: ASGIApp
    """``E2B_SANDBOX_URL``: envd, and the interpreter for ``E2b-Sandbox-Port: 49999``."""
    interpreter: ASGIApp
    """Port 49999 of E2B's debug mode: the interpreter for requests without the header."""


def apps(settings: ServeSettings) -> Apps:
    """Every app of a server for ``settings``.

    Example:
        >>> from e2b_tools_serve import ServeSettings, apps
        >>> served = apps(ServeSettings(api_key="e2b_" + "0" * 40))
    """
    sandboxes = Sandboxes(settings)
    return Apps(
        sandboxes=sandboxes,
        control=control_app(settings, sandboxes),
        sandbox=sandbox_app(sandboxes, ENVD_PORT),
        interpreter=sandbox_app(sandboxes, INTERPRETER_PORT),
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for ``host``:``port``; ``localhost`` binds 127.0.0.1 and, when
    the machine has IPv6, ::1 too (``localhost`` may resolve to either).

    Raises:
        OSError: The port is taken (the message names it).
    """
    hosts = ["127.0.0.1", "::1"] if host == "localhost" else [host.strip("[]")]
    sockets: list[socket.socket] = []
    for index, address in enumerate(hosts):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            if index:  # no IPv6 here: 127.0.0.1 alone is enough
                continue
            raise
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            sock.close()
            if index and exc.errno in (99, 97):  # ::1 not configured
                continue
            for other in sockets:
                other.close()
            raise OSError(
                exc.errno, f"cannot listen on {address} port {port}: {exc.strerror}"
            ) from None
        sock.listen(128)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


async def serve_async(
    settings: ServeSettings,
    host: str = "localhost",
    port: int = 3000,
    envd_port: int = ENVD_PORT,
    interpreter_port: int | None = INTERPRETER_PORT,
) -> None:
    """Run the server's listeners until cancelled or interrupted: the control plane on
    ``port``, the sandbox listener on ``envd_port``, the interpreter's own listener on
    ``interpreter_port`` (``None``: none). Sandboxes keep running after it stops, but
    for the debug mode's shared one."""
    import uvicorn

    served = apps(settings)
    plan = [(served.control, port), (served.sandbox, envd_port)]
    if interpreter_port is not None:
        plan.append((served.interpreter, interpreter_port))
    bound = [(app, bind(host, p)) for app, p in plan]
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="info",
                server_header=False,
                proxy_headers=False,
                timeout_graceful_shutdown=5,
                lifespan="off",
            )
        )
        for app, _ in bound
    ]
    try:
        await asyncio.gather(
            *(s.serve(sockets=socks) for s, (_, socks) in zip(servers, bound, strict=True))
        )
    finally:
        await served.sandboxes.aclose()
        for _, socks in bound:
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.close()


def serve(
    settings: ServeSettings,
    host: str = "localhost",
    port: int = 3000,
    envd_port: int = ENVD_PORT,
    interpreter_port: int | None = INTERPRETER_PORT,
) -> None:
    """:func:`serve_async` in a new event loop, until interrupted."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_async(settings, host, port, envd_port, interpreter_port))
