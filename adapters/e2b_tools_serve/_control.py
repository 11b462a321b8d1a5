"""E2B's REST control plane (``/sandboxes``, ``/v2/sandboxes``): create, get, list,
kill, timeout, connect, pause/resume, metrics; the routes not served answer 501."""

from __future__ import annotations

import datetime as dt
import math
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from e2b_tools import AsyncSandbox, SandboxInfo, SandboxMetrics, SandboxQuery, SandboxState

from ._http import ApiError, error_response, json_body
from ._registry import Sandboxes
from ._settings import ENVD_VERSION, HIDDEN_KEYS, ServeSettings

CLIENT_ID = "e2b-tools"
CPU_COUNT = 1
MEMORY_MB = 1024
"""What create gives every sandbox (``AsyncSandbox.create``'s defaults)."""


def _rfc3339(value: dt.datetime | None) -> str:
    value = value or dt.datetime.now(dt.timezone.utc)
    if value.tzinfo is None:
        value = value.astimezone()
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _user_metadata(info: SandboxInfo) -> dict[str, str]:
    return {k: v for k, v in info.metadata.items() if k not in HIDDEN_KEYS}


def _strings(body: dict[str, Any], key: str) -> dict[str, str]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ApiError(400, f"{key} must be an object of strings")
    return value


def _optional_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise ApiError(400, f"{key} must be a boolean")
    return value


class Control:
    """The control-plane handlers of one server."""

    def __init__(self, settings: ServeSettings, sandboxes: Sandboxes) -> None:
        self.settings = settings
        self.sandboxes = sandboxes

    # -- helpers ------------------------------------------------------------------
    def _timeout(self, body: dict[str, Any], default: int | None) -> int | None:
        value = body.get("timeout")
        if value is None:
            return default
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise ApiError(400, "timeout must be a number of seconds")
        if not 0 < value <= self.settings.max_timeout:
            raise ApiError(400, f"timeout must be between 1 and {self.settings.max_timeout} s")
        return max(1, int(value))

    async def _body(self, request: Request, *, required: bool = False) -> dict[str, Any]:
        return await json_body(request, self.settings.max_body_bytes, required=required)

    def _created(self, sbx: AsyncSandbox, template: str, status: int) -> Response:
        return JSONResponse(
            {
                "sandboxID": sbx.sandbox_id,
                "templateID": template,
                "clientID": CLIENT_ID,
                "envdVersion": ENVD_VERSION,
                "envdAccessToken": self.settings.access_token(sbx.sandbox_id),
                "trafficAccessToken": None,
                "domain": None,
                "alias": template,
            },
            status_code=status,
        )

    def _listed(self, info: SandboxInfo) -> dict[str, Any]:
        return {
            "templateID": self.sandboxes.template_of(info),
            "alias": self.sandboxes.template_of(info),
            "sandboxID": info.sandbox_id,
            "clientID": CLIENT_ID,
            "startedAt": _rfc3339(info.started_at),
            "endAt": _rfc3339(info.end_at),
            "cpuCount": CPU_COUNT,
            "memoryMB": MEMORY_MB,
            "diskSizeMB": 0,
            "state": str(info.state),
            "envdVersion": ENVD_VERSION,
            "metadata": _user_metadata(info),
        }

    @staticmethod
    def _sandbox_id(request: Request) -> str:
        return str(request.path_params["sandbox_id"])

    # -- routes -------------------------------------------------------------------
    async def create(self, request: Request) -> Response:
        """``POST /sandboxes`` and ``POST /v2/sandboxes`` → 201."""
        body = await self._body(request, required=True)
        template = body.get("templateID")
        if not isinstance(template, str) or not template:
            raise ApiError(400, "templateID is required")
        for key in ("mcp", "volumeMounts"):
            if body.get(key):
                raise ApiError(501, f"{key} is not supported by e2b-tools serve")
        metadata = _strings(body, "metadata")
        if HIDDEN_KEYS & metadata.keys():
            raise ApiError(400, f"metadata keys {sorted(HIDDEN_KEYS)} are reserved")
        timeout = self._timeout(body, 300)
        assert timeout is not None
        sbx = await self.sandboxes.create(
            template=template,
            timeout=timeout,
            metadata=metadata,
            envs=_strings(body, "envVars"),
            allow_internet_access=_optional_bool(body, "allow_internet_access"),
            network=self._network(body.get("network")),
            auto_pause=bool(_optional_bool(body, "autoPause")),
        )
        return self._created(sbx, template, 201)

    @staticmethod
    def _network(value: object) -> dict[str, Any] | None:
        """E2B's ``network`` (``allowOut``/``denyOut``) as an e2b-tools policy."""
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ApiError(400, "network must be an object")
        unknown = set(value) - {"allowOut", "denyOut", "allowPublicTraffic", "maskRequestHost"}
        if unknown:
            raise ApiError(501, f"network settings not supported: {sorted(unknown)}")
        policy: dict[str, Any] = {}
        for key, name in (("allowOut", "allow_out"), ("denyOut", "deny_out")):
            rules = value.get(key)
            if rules is not None:
                if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
                    raise ApiError(400, f"network.{key} must be a list of strings")
                policy[name] = rules
        return policy or None

    async def get(self, request: Request) -> Response:
        """``GET /sandboxes/{id}`` → 200 detail / 404."""
        sandbox_id = self._sandbox_id(request)
        info = await self.sandboxes.info(sandbox_id)
        detail = self._listed(info)
        detail["envdAccessToken"] = self.settings.access_token(sandbox_id)
        detail["domain"] = None
        return JSONResponse(detail)

    async def list_sandboxes(self, request: Request) -> Response:
        """``GET /v2/sandboxes`` and ``GET /sandboxes`` → 200 ``[ListedSandbox]``."""
        params = request.query_params
        query = SandboxQuery(
            metadata=self._metadata_filter(params.get("metadata")),
            state=self._states(params.get("state"), v2=request.url.path.startswith("/v2/")),
            template=None,
        )
        limit: int | None = None
        if params.get("limit"):
            raw = params["limit"]
            if not raw.isdigit() or not 0 < int(raw) <= 10_000:
                raise ApiError(400, "limit must be an integer from 1 to 10000")
            limit = int(raw)
        items, token = await self.sandboxes.page(query, limit, params.get("nextToken") or None)
        template = params.get("template")
        listed = [self._listed(i) for i in items]
        if template:
            listed = [item for item in listed if item["templateID"] == template]
        headers = {"X-Next-Token": token} if token else None
        return JSONResponse(listed, headers=headers)

    @staticmethod
    def _metadata_filter(raw: str | None) -> dict[str, str] | None:
        if not raw:
            return None
        try:
            pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ApiError(400, "metadata must be URL-encoded key=value pairs") from None
        return dict(pairs)

    @staticmethod
    def _states(raw: str | None, *, v2: bool) -> list[SandboxState] | None:
        if not raw:
            return None if v2 else [SandboxState.RUNNING]
        try:
            return [SandboxState(part) for part in raw.split(",") if part]
        except ValueError:
            raise ApiError(400, f"state must be running and/or paused, not {raw!r}") from None

    async def kill(self, request: Request) -> Response:
        """``DELETE /sandboxes/{id}`` → 204 / 404."""
        await self.sandboxes.kill(self._sandbox_id(request))
        return Response(status_code=204)

    async def set_timeout(self, request: Request) -> Response:
        """``POST /sandboxes/{id}/timeout`` ``{timeout}`` → 204 / 404."""
        timeout = self._timeout(await self._body(request, required=True), None)
        if timeout is None:
            raise ApiError(400, "timeout is required")
        await self.sandboxes.set_timeout(self._sandbox_id(request), timeout)
        return Response(status_code=204)

    async def connect(self, request: Request) -> Response:
        """``POST /v2/sandboxes/{id}/connect`` and ``POST /sandboxes/{id}/connect``:
        200 running / 201 resumed / 404."""
        sandbox_id = self._sandbox_id(request)
        timeout = self._timeout(await self._body(request), None)
        sbx, resumed = await self.sandboxes.connect(sandbox_id, timeout)
        info = await self.sandboxes.info(sandbox_id)
        return self._created(sbx, self.sandboxes.template_of(info), 201 if resumed else 200)

    async def resume(self, request: Request) -> Response:
        """``POST /sandboxes/{id}/resume`` (deprecated by E2B): 201, 409 if running."""
        sandbox_id = self._sandbox_id(request)
        info = await self.sandboxes.info(sandbox_id)
        if info.state != SandboxState.PAUSED:
            raise ApiError(409, f"sandbox {sandbox_id} is already running")
        return await self.connect(request)

    async def pause(self, request: Request) -> Response:
        """``POST /sandboxes/{id}/pause`` → 204 / 404 / 409."""
        await self.sandboxes.pause(self._sandbox_id(request))
        return Response(status_code=204)

    async def metrics(self, request: Request) -> Response:
        """``GET /sandboxes/{id}/metrics`` → 200 ``[SandboxMetric]`` (one sample)."""
        samples = await self.sandboxes.metrics(self._sandbox_id(request))
        return JSONResponse([_metric(m) for m in samples])

    async def health(self, request: Request) -> Response:
        """``GET /health`` → 200 (behind the API key like every route)."""
        return JSONResponse({"status": "ok"})


def _metric(sample: SandboxMetrics) -> dict[str, Any]:
    return {
        "timestamp": _rfc3339(sample.timestamp),
        "timestampUnix": int(sample.timestamp.timestamp()),
        "cpuCount": sample.cpu_count,
        "cpuUsedPct": sample.cpu_used_pct,
        "memUsed": sample.mem_used,
        "memTotal": sample.mem_total,
        "memCache": sample.mem_cache,
        "diskUsed": sample.disk_used,
        "diskTotal": sample.disk_total,
    }


NOT_SERVED = (
    ("/sandboxes/{sandbox_id}/fork", ["POST"]),
    ("/sandboxes/{sandbox_id}/snapshots", ["GET", "POST"]),
    ("/sandboxes/{sandbox_id}/refreshes", ["POST"]),
    ("/sandboxes/{sandbox_id}/network", ["PUT"]),
    ("/sandboxes/{sandbox_id}/logs", ["GET"]),
    ("/v2/sandboxes/{sandbox_id}/logs", ["GET"]),
    ("/sandboxes/metrics", ["GET"]),
    ("/snapshots", ["GET"]),
    ("/snapshots/{rest:path}", ["GET", "POST", "DELETE"]),
    ("/templates", ["GET", "POST"]),
    ("/templates/{rest:path}", ["GET", "POST", "PATCH", "DELETE"]),
    ("/v2/templates", ["GET", "POST"]),
    ("/v2/templates/{rest:path}", ["GET", "POST", "PATCH", "DELETE"]),
    ("/v3/templates", ["GET", "POST"]),
    ("/v3/templates/{rest:path}", ["GET", "POST", "PATCH", "DELETE"]),
    ("/volumes", ["GET", "POST"]),
    ("/volumes/{rest:path}", ["GET", "POST", "PATCH", "DELETE"]),
    ("/secrets", ["GET", "POST"]),
    ("/secrets/{rest:path}", ["GET", "POST", "PATCH", "DELETE"]),
)
"""E2B routes answered 501 (the SDK raises ``SandboxException`` with the message)."""


async def not_served(request: Request) -> Response:
    """501 naming the route."""
    route = f"{request.method} {request.url.path}"
    return error_response(501, f"{route} is not supported by e2b-tools serve")


def routes(control: Control) -> list[Route]:
    """The control plane's routes (served ones first, then the 501 ones)."""
    sid = "/sandboxes/{sandbox_id}"
    served = [
        Route("/health", control.health, methods=["GET"]),
        Route("/sandboxes", control.create, methods=["POST"]),
        Route("/v2/sandboxes", control.create, methods=["POST"]),
        Route("/sandboxes", control.list_sandboxes, methods=["GET"]),
        Route("/v2/sandboxes", control.list_sandboxes, methods=["GET"]),
        Route(sid, control.get, methods=["GET"]),
        Route(sid, control.kill, methods=["DELETE"]),
        Route(f"{sid}/timeout", control.set_timeout, methods=["POST"]),
        Route(f"{sid}/connect", control.connect, methods=["POST"]),
        Route(f"/v2{sid}/connect", control.connect, methods=["POST"]),
        Route(f"{sid}/pause", control.pause, methods=["POST"]),
        Route(f"{sid}/resume", control.resume, methods=["POST"]),
        Route(f"{sid}/metrics", control.metrics, methods=["GET"]),
    ]
    stubs = [Route(path, not_served, methods=methods) for path, methods in NOT_SERVED]
    # A fixed path (/sandboxes/metrics) must win over /sandboxes/{sandbox_id}.
    fixed = [route for route in stubs if "{" not in route.path]
    return fixed + served + [route for route in stubs if route not in fixed]
