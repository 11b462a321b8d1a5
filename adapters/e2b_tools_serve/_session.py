"""One sandbox as envd's and the code interpreter's handlers see it.

The sandbox listener's guard resolves every request to a :class:`Session` (on
``request.state.session``) before a handler runs; a handler never looks sandboxes up
itself. A session lives as long as the server keeps the sandbox attached and holds the
per-sandbox state of the services (the process table, for instance), closed with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from e2b_tools import AsyncSandbox

from ._http import gone_message

T = TypeVar("T")
log = logging.getLogger("e2b_tools.serve")


class Session:
    """A sandbox served to envd and interpreter requests.

    Attributes:
        sandbox_id: The sandbox's id.
        sandbox: The attached ``AsyncSandbox`` (use it from the server's loop only).
        access_token: Its ``envdAccessToken`` (HMAC of the server secret and the id).
    """

    def __init__(self, sandbox_id: str, sandbox: AsyncSandbox, access_token: str) -> None:
        self.sandbox_id = sandbox_id
        self.sandbox = sandbox
        self.access_token = access_token
        self._services: dict[str, Any] = {}
        self.closed = False
        self.gone = False

    def service(self, key: str, factory: Callable[[Session], T]) -> T:
        """The session's ``key`` service, made by ``factory(session)`` on first use.

        A service with an async ``aclose()`` is closed with the session (when the
        sandbox is killed, expires or the server stops).
        """
        try:
            return self._services[key]  # type: ignore[no-any-return]
        except KeyError:
            made = self._services[key] = factory(self)
            return made

    def gone_message(self) -> str:
        """E2B's words for a sandbox that is gone (the SDKs look for "was not found")."""
        return gone_message(self.sandbox_id)

    def cut_message(self) -> str:
        """E2B's words for a stream the sandbox's end cut short: deliberately not "was
        not found", so the SDKs probe ``/health`` (which then says the sandbox is gone)
        and report it killed while the request was in flight."""
        return f"the connection to sandbox {self.sandbox_id} ended before the stream completed"

    def mark_gone(self) -> None:
        """Tell the server the sandbox was found gone (killed, expired): the next
        request re-checks it instead of trusting this session."""
        self.gone = True

    async def aclose(self) -> None:
        """Close every service (errors are logged, never raised)."""
        self.closed = True
        services, self._services = self._services, {}
        for key, svc in services.items():
            closer = getattr(svc, "aclose", None)
            if closer is None:
                continue
            try:
                await closer()
            except Exception:
                log.exception("closing the %s service of sandbox %s", key, self.sandbox_id)
