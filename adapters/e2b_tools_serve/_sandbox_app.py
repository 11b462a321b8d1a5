"""The sandbox listener: the requests E2B's SDKs send to a sandbox (envd on port 49983,
the code interpreter on 49999), resolved to one of the server's sandboxes and checked
before any handler runs.

Which sandbox a request is for, in this order (``docs/serve.md``):

1. the ``E2b-Sandbox-Id`` header (every SDK since ``e2b`` 2.7 sends it); the fixed id
   ``debug_sandbox_id`` (``E2B_DEBUG=true`` clients), or no id, token nor signature
   at all, means the server's one shared sandbox, only when
   ``ServeSettings.debug_sandbox`` is on (else 401/502);
2. else the ``X-Access-Token`` header (old code interpreters in debug mode): the
   sandbox whose token it is;
3. else, for ``/files`` with a ``signature`` (a pre-signed URL), the sandbox whose
   token signs it.

Which service: the ``E2b-Sandbox-Port`` header (49983 envd, 49999 the interpreter,
anything else 502 "port is not open"), else the listener's own port.

What is checked: no ``Origin`` header (403: no web page may drive a sandbox); the
sandbox is one of this server's and running (else 502 "was not found", E2B's proxy
answer); the ``X-Access-Token`` is the sandbox's (401), except for ``/health``, a
pre-signed ``/files`` URL (its signature is checked instead) and the interpreter's
``/contexts`` calls, which E2B's SDKs send without a token: there the 20-character
random sandbox id is what a caller must know.

Handlers find the sandbox on ``request.state.session`` (:class:`Session`) and the user
E2B's ``Authorization: Basic`` header names on ``request.state.user``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ._http import ApiError, api_error, error_response, http_error, server_error
from ._registry import Sandboxes
from ._session import Session

ENVD_PORT = 49983
INTERPRETER_PORT = 49999
DEBUG_SANDBOX_ID = "debug_sandbox_id"
"""The id E2B's SDKs (2.31 and later) use in debug mode without creating a sandbox."""

CONNECT_PREFIXES = ("/process.", "/filesystem.")
CONNECT_CODES = {400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied"}
"""Refusals of the guard as Connect codes, for envd's RPC paths (E2B's proxy answers
502 with its own JSON body, which the SDKs read as it is)."""
USERS = (None, "user")
"""The E2B users a request may name: the default one. ``root`` (or any other) is
refused, as ``e2b_tools.Sandbox.commands.run(user=...)`` refuses it: commands, files
and code run as the sandbox's unprivileged user, and root stays out of their reach."""


def file_signature(
    path: str, operation: str, user: str | None, token: str, expiration: int | None
) -> str:
    """E2B's v1 signature of a pre-signed ``/files`` URL: ``v1_`` and the unpadded
    base64 of sha256(``path:operation:user:token[:expiration]``)."""
    raw = f"{path}:{operation}:{user or ''}:{token}"
    if expiration is not None:
        raw += f":{expiration}"
    digest = hashlib.sha256(raw.encode()).digest()
    return "v1_" + base64.b64encode(digest).rstrip(b"=").decode("ascii")


def signature_valid(query: dict[str, str], method: str, token: str, now: float) -> bool:
    """Whether a ``/files`` request's ``signature`` (and ``signature_expiration``, not
    past) was made with ``token`` for this path, operation and user."""
    given = query.get("signature", "")
    raw_exp = query.get("signature_expiration")
    expiration: int | None = None
    if raw_exp:
        if not raw_exp.isdigit():
            return False
        expiration = int(raw_exp)
        if expiration < now:
            return False
    operation = "read" if method in ("GET", "HEAD") else "write"
    expected = file_signature(
        query.get("path", ""), operation, query.get("username") or None, token, expiration
    )
    return hmac.compare_digest(given.encode(), expected.encode())


def basic_user(value: str | None) -> str | None:
    """The user of an ``Authorization: Basic base64(user:)`` header (``None`` without)."""
    if not value or not value.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(value[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] or None


class SandboxGuard:
    """ASGI middleware of the sandbox listener: resolves, checks and dispatches every
    request (see the module docstring)."""

    def __init__(
        self,
        sandboxes: Sandboxes,
        envd: ASGIApp,
        interpreter: ASGIApp,
        default_port: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sandboxes = sandboxes
        self.envd = envd
        self.interpreter = interpreter
        self.default_port = default_port
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (and websockets, refused there)
            await self.envd(scope, receive, send)
            return
        try:
            app = await self._admit(scope)
        except ApiError as exc:
            await self._refuse(scope, exc)(scope, receive, send)
            return
        await app(scope, receive, send)

    @staticmethod
    def _refuse(scope: Scope, exc: ApiError) -> Response:
        path = str(scope.get("path", ""))
        code = CONNECT_CODES.get(exc.status)
        if code is not None and path.startswith(CONNECT_PREFIXES):
            # A Connect client reads the code's name from the body.
            return JSONResponse({"code": code, "message": exc.message}, status_code=exc.status)
        return error_response(exc.status, exc.message)

    async def _admit(self, scope: Scope) -> ASGIApp:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if "origin" in headers:
            raise ApiError(403, "requests from web pages (with an Origin header) are refused")
        raw_port = headers.get("e2b-sandbox-port", "")
        port = int(raw_port) if raw_port.isdigit() else self.default_port
        path = str(scope.get("path", ""))
        query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        token = headers.get("x-access-token")
        signed = path == "/files" and "signature" in query and token is None
        sandbox_id = headers.get("e2b-sandbox-id")
        session = await self._session(sandbox_id, token, signed, query, scope)
        # E2B's debug-mode clients have no token: --debug-sandbox opens the shared one.
        shared = sandbox_id == DEBUG_SANDBOX_ID or not (sandbox_id or token or signed)
        if port not in (ENVD_PORT, INTERPRETER_PORT):
            raise ApiError(
                502, f"The sandbox {session.sandbox_id} is running but port is not open: {port}"
            )
        free = (
            shared
            or path == "/health"
            or (port == INTERPRETER_PORT and path.startswith("/contexts"))
        )
        if signed:
            if not signature_valid(query, scope["method"], session.access_token, self.clock()):
                raise _signature_refused(query, self.clock())
        elif not free and (
            token is None or not hmac.compare_digest(token.encode(), session.access_token.encode())
        ):
            raise ApiError(401, "missing or wrong X-Access-Token (the sandbox's envdAccessToken)")
        user = query.get("username") or basic_user(headers.get("authorization"))
        if user not in USERS:
            raise ApiError(
                400,
                f"user {user!r} is not available: e2b-tools sandboxes run commands, files "
                "and code as their one unprivileged user ('user'), and keep root out of "
                "its reach; drop user=",
            )
        state = scope.setdefault("state", {})
        state["session"] = session
        state["user"] = user
        return self.interpreter if port == INTERPRETER_PORT else self.envd

    async def _session(
        self,
        sandbox_id: str | None,
        token: str | None,
        signed: bool,
        query: dict[str, str],
        scope: Scope,
    ) -> Session:
        debug = self.sandboxes.settings.debug_sandbox
        if sandbox_id == DEBUG_SANDBOX_ID or not (sandbox_id or token or signed):
            if debug:
                return await self.sandboxes.shared_session()
            raise ApiError(
                401 if sandbox_id is None else 502,
                "the request names no sandbox (E2B's debug mode: start e2b-tools serve "
                "with --debug-sandbox to serve one shared sandbox to such clients)",
            )
        if sandbox_id:
            # /health is how SDKs ask whether a sandbox runs: ask the engine.
            verify = scope.get("path") == "/health"
            return await self.sandboxes.session(sandbox_id, verify=verify)
        # The attached sandboxes first; the engine's list only when none matches.
        for candidates in (self.sandboxes.attached_ids, self.sandboxes.owned_ids):
            for candidate in await candidates():
                expected = self.sandboxes.settings.access_token(candidate)
                if token is not None and hmac.compare_digest(token.encode(), expected.encode()):
                    return await self.sandboxes.session(candidate)
                if signed and signature_valid(query, scope["method"], expected, self.clock()):
                    return await self.sandboxes.session(candidate)
        if signed:
            raise _signature_refused(query, self.clock())
        raise ApiError(401, "no sandbox of this server has that access token")


def _signature_refused(query: dict[str, str], now: float) -> ApiError:
    """401 for a pre-signed URL that does not open the file, in envd's words."""
    expiration = query.get("signature_expiration", "")
    if expiration.isdigit() and int(expiration) < now:
        return ApiError(401, "signature is already expired")
    return ApiError(401, "invalid signature")


async def health(request: Request) -> Response:
    """``GET /health`` → 204 (envd's and the interpreter's, once the sandbox resolved)."""
    return Response(status_code=204)


def service_app(routes: list[BaseRoute]) -> Starlette:
    """One service (envd or the interpreter) behind the guard, with JSON errors."""
    return Starlette(
        routes=[Route("/health", health, methods=["GET"]), *routes],
        exception_handlers={
            HTTPException: http_error,
            ApiError: api_error,
            Exception: server_error,
        },
    )


def sandbox_app(sandboxes: Sandboxes, default_port: int = ENVD_PORT) -> ASGIApp:
    """The sandbox listener's app: envd and the interpreter behind :class:`SandboxGuard`.

    ``default_port`` is the service a request without ``E2b-Sandbox-Port`` reaches
    (49983 envd; the interpreter's own listener passes 49999).
    """
    from . import _files_http, _filesystem, _interpreter, _process

    envd = service_app([*_process.routes(), *_filesystem.routes(), *_files_http.routes()])
    interpreter = service_app(_interpreter.routes())
    return SandboxGuard(sandboxes, envd, interpreter, default_port)


def state_of(request: Request) -> tuple[Session, Any]:
    """The request's session and user (set by the guard)."""
    return request.state.session, request.state.user
