"""The server's ASGI app: :func:`control_app` builds the control plane from a
:class:`ServeSettings`; :func:`serve` runs it with uvicorn.

Layers, outside in: starlette's error middleware (a JSON 500), the :class:`Guard`
(``Origin`` → 403, ``X-API-KEY`` → 401), the router (JSON 404/405, 501 stubs).
"""

from __future__ import annotations

import ipaddress

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from ._control import Control, routes
from ._http import ApiError, Guard, api_error, http_error, server_error
from ._registry import Sandboxes
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


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(settings: ServeSettings, host: str = "127.0.0.1", port: int = 3000) -> None:
    """Run the control plane with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(
        control_app(settings),
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
