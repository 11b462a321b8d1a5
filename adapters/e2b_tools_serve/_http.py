"""HTTP plumbing of the control plane: E2B's error body, the guard in front of every
route (no ``Origin``, the API key), bounded JSON bodies, JSON 404/405/500 replies.

Every error is ``{"code": int, "message": str}`` JSON (the SDK reads ``message``), never
HTML, never a hang.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ._settings import ServeSettings

log = logging.getLogger("e2b_tools.serve")


class ApiError(Exception):
    """A request that fails with an HTTP status and E2B's error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """E2B's error reply: ``{"code": status, "message": message}``."""
    return JSONResponse({"code": status, "message": message}, status_code=status, headers=headers)


def gone_message(sandbox_id: str) -> str:
    """E2B's words for an unknown or gone sandbox (the SDKs look for "was not found")."""
    return f"The sandbox {sandbox_id} was not found"


def not_found(sandbox_id: str) -> ApiError:
    """404 for an unknown sandbox on the control plane."""
    return ApiError(404, gone_message(sandbox_id))


async def json_body(request: Request, limit: int, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object, read at most ``limit`` bytes far.

    Raises:
        ApiError: 413 over the limit, 400 when it is not a JSON object (an empty body
            is ``{}`` unless ``required``).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body over {limit} bytes")
    if not body.strip():
        if required:
            raise ApiError(400, "request body must be a JSON object")
        return {}
    try:
        value = json.loads(bytes(body))
    except (ValueError, RecursionError):
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "request body must be a JSON object")
    return value


class Guard:
    """ASGI middleware in front of every route: a request with an ``Origin`` header
    gets 403 (no browser page may drive sandboxes: CSRF, DNS rebinding), one without
    the right ``X-API-KEY`` gets 401."""

    def __init__(self, app: ASGIApp, settings: ServeSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if "origin" in headers:
            reply = error_response(
                403, "requests from web pages (with an Origin header) are refused"
            )
        elif not self.settings.key_matches(_text(headers.get("x-api-key"))):
            reply = error_response(
                401,
                "Invalid API key: pass the key e2b-tools serve printed (E2B_API_KEY), "
                "as the X-API-KEY header",
            )
        else:
            await self.app(scope, receive, send)
            return
        await reply(scope, receive, send)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no route, wrong method) as E2B's JSON, naming the route."""
    assert isinstance(exc, HTTPException)
    route = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        return error_response(404, f"no such route: {route} (not served by e2b-tools serve)")
    if exc.status_code == 405:
        return error_response(405, f"method not allowed: {route}", dict(exc.headers or {}))
    return error_response(exc.status_code, f"{exc.detail}: {route}")


async def api_error(request: Request, exc: Exception) -> Response:
    """An :class:`ApiError` as its reply."""
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message)


async def server_error(request: Request, exc: Exception) -> Response:
    """Anything else: logged with its traceback, a one-line JSON 500 to the client."""
    log.exception("%s %s failed", request.method, request.url.path)
    return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
