"""The server's sandboxes, on ``e2b_tools.AsyncSandbox``: the ones it made or attached
to stay attached (one object per id, on the server's event loop); any other of its own
(found by the owner label, e.g. after a restart) is reached by id. A sandbox without
this server's owner label is treated as unknown.

Errors leave as :class:`ApiError`: an unknown or gone sandbox is 404 "was not found",
a bad argument 400, a missing image 404, an absent engine 503.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from e2b_tools import (
    AsyncSandbox,
    EngineUnavailableError,
    ImageNotFoundError,
    InvalidArgumentError,
    SandboxError,
    SandboxGoneError,
    SandboxInfo,
    SandboxMetrics,
    SandboxNotFoundError,
    SandboxQuery,
    SandboxState,
)

from ._http import ApiError, gone_message, not_found
from ._session import Session
from ._settings import OWNER_KEY, SHARED_KEY, TEMPLATE_KEY, ServeSettings

LIVE_STATES = (SandboxState.RUNNING.value, SandboxState.PAUSED.value)


@contextlib.contextmanager
def mapped(sandbox_id: str | None = None) -> Iterator[None]:
    """e2b-tools errors as the control plane's replies."""
    try:
        yield
    except (SandboxNotFoundError, SandboxGoneError):
        if sandbox_id is None:
            raise ApiError(404, "sandbox not found") from None
        raise not_found(sandbox_id) from None
    except ImageNotFoundError as exc:
        raise ApiError(404, f"template not found: {exc}") from None
    except InvalidArgumentError as exc:
        raise ApiError(400, str(exc)) from None
    except EngineUnavailableError as exc:
        raise ApiError(503, f"the Docker Engine does not answer: {exc}") from None
    except SandboxError as exc:
        raise ApiError(500, str(exc)) from None


class Sandboxes:
    """The sandboxes of one server (use them from the server's event loop only)."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self._attached: dict[str, AsyncSandbox] = {}
        self._attaching: dict[str, asyncio.Lock] = {}
        self._sessions: dict[str, Session] = {}
        self._killing: set[str] = set()
        self._shared_lock = asyncio.Lock()
        self._shared_id: str | None = None

    @property
    def _backend(self) -> Any:
        return self.settings.backend

    def template_of(self, info: SandboxInfo) -> str:
        """The E2B template name the sandbox was made from."""
        return info.metadata.get(TEMPLATE_KEY) or info.template_id

    async def create(
        self,
        *,
        template: str,
        timeout: int,
        metadata: dict[str, str],
        envs: dict[str, str],
        allow_internet_access: bool | None,
        network: dict[str, Any] | None,
        auto_pause: bool,
    ) -> AsyncSandbox:
        """A new sandbox of ``template`` (404 "template not found" for an unknown one)."""
        try:
            image = self.settings.image_for(template)
        except KeyError:
            raise ApiError(
                404,
                f"template not found: {template!r} (templates served: "
                f"{', '.join(sorted(self.settings.templates))}; add one with "
                "e2b-tools serve --template NAME=IMAGE)",
            ) from None
        labels = {**metadata, OWNER_KEY: self.settings.owner, TEMPLATE_KEY: template}
        with mapped():
            sbx = await AsyncSandbox.create(
                image,
                timeout,
                labels,
                envs,
                network=network if network is not None else self.settings.network,
                allow_internet_access=allow_internet_access,
                backend=self._backend,
                lifecycle={"on_timeout": "pause"} if auto_pause else None,
            )
        self._attached[sbx.sandbox_id] = sbx
        return sbx

    async def info(self, sandbox_id: str) -> SandboxInfo:
        """What is known of one of this server's sandboxes, running or paused."""
        sbx = self._attached.get(sandbox_id)
        with mapped(sandbox_id):
            try:
                if sbx is not None:
                    info = await sbx.get_info()
                else:
                    info = await AsyncSandbox.get_info(sandbox_id, backend=self._backend)
            except (SandboxNotFoundError, SandboxGoneError):
                await self._drop(sandbox_id)
                raise
        if info.metadata.get(OWNER_KEY) != self.settings.owner or info.state not in LIVE_STATES:
            await self._drop(sandbox_id)
            raise not_found(sandbox_id)
        return info

    async def _drop(self, sandbox_id: str) -> None:
        """Forget a sandbox found gone, closing its object's channel (and removing what
        is left of it: a sandbox that is not running is never used again)."""
        await self._close_session(sandbox_id)
        sbx = self._attached.pop(sandbox_id, None)
        self._attaching.pop(sandbox_id, None)
        if sbx is not None:
            with contextlib.suppress(SandboxError):
                await sbx.kill()

    async def kill(self, sandbox_id: str) -> None:
        """Remove the sandbox (404 if it is not one of this server's)."""
        await self.info(sandbox_id)
        self._killing.add(sandbox_id)  # no new session while it goes down
        try:
            await self._close_session(sandbox_id)
            sbx = self._attached.pop(sandbox_id, None)
            self._attaching.pop(sandbox_id, None)
            with mapped(sandbox_id):
                if sbx is not None:
                    killed = await sbx.kill()
                else:
                    killed = await AsyncSandbox.kill(sandbox_id, backend=self._backend)
        finally:
            self._killing.discard(sandbox_id)
        if not killed:
            raise not_found(sandbox_id)

    async def set_timeout(self, sandbox_id: str, timeout: int) -> None:
        """Move the deadline to ``timeout`` seconds from now."""
        info = await self.info(sandbox_id)
        if info.state == SandboxState.PAUSED:
            raise ApiError(409, f"sandbox {sandbox_id} is paused; connect to resume it")
        sbx, _ = await self._attach(sandbox_id)
        with mapped(sandbox_id):
            await sbx.set_timeout(timeout)

    async def connect(self, sandbox_id: str, timeout: int | None) -> tuple[AsyncSandbox, bool]:
        """Attach to (and resume) the sandbox; True when it was paused."""
        info = await self.info(sandbox_id)
        resumed = info.state == SandboxState.PAUSED
        sbx, fresh = await self._attach(sandbox_id, timeout)
        if not fresh:
            with mapped(sandbox_id):
                await sbx.connect(timeout)
        return sbx, resumed

    async def pause(self, sandbox_id: str) -> None:
        """Freeze the sandbox (409 if it already is)."""
        info = await self.info(sandbox_id)
        if info.state == SandboxState.PAUSED:
            raise ApiError(409, f"sandbox {sandbox_id} is already paused")
        sbx, _ = await self._attach(sandbox_id)
        await self._close_session(sandbox_id)  # its streams end; requests get 502
        with mapped(sandbox_id):
            await sbx.pause()

    async def metrics(self, sandbox_id: str) -> list[SandboxMetrics]:
        """One sample of the sandbox's resource use."""
        await self.info(sandbox_id)
        with mapped(sandbox_id):
            return await AsyncSandbox.get_metrics(sandbox_id, backend=self._backend)

    async def page(
        self, query: SandboxQuery, limit: int | None, next_token: str | None
    ) -> tuple[list[SandboxInfo], str | None]:
        """One page of this server's sandboxes matching ``query``, and the next token."""
        wanted = {**(query.metadata or {}), OWNER_KEY: self.settings.owner}
        own = query.model_copy(update={"metadata": wanted})
        paginator = AsyncSandbox.list(own, limit, next_token, backend=self._backend)
        with mapped():
            items = await paginator.next_items()
        return items, paginator.next_token if paginator.has_next else None

    async def _attach(
        self, sandbox_id: str, timeout: int | None = None
    ) -> tuple[AsyncSandbox, bool]:
        """The attached object of the sandbox, one per id however many requests ask at
        once, and whether it was just made (by ``AsyncSandbox.connect`` with
        ``timeout``)."""
        async with self._attaching.setdefault(sandbox_id, asyncio.Lock()):
            sbx = self._attached.get(sandbox_id)
            if sbx is not None:
                return sbx, False
            with mapped(sandbox_id):
                sbx = await AsyncSandbox.connect(sandbox_id, timeout, backend=self._backend)
            self._attached[sandbox_id] = sbx
            return sbx, True

    # -- envd and interpreter requests ----------------------------------------------
    async def session(self, sandbox_id: str, *, verify: bool = False) -> Session:
        """The session of a running sandbox of this server, for envd and interpreter
        requests (never resumes a paused one).

        ``verify`` asks the engine even when a session is open (``/health``: a
        sandbox removed at its deadline is found gone at once).

        Raises:
            ApiError: 502 "The sandbox … was not found" (E2B's proxy answer, which the
                SDKs map to ``SandboxNotRunningException``) for an unknown, paused or
                gone sandbox, or one of another server.
        """
        if sandbox_id in self._killing:
            raise gone(sandbox_id)
        found = self._sessions.get(sandbox_id)
        if found is not None and not found.gone and not verify:
            return found
        try:
            info = await self.info(sandbox_id)
        except ApiError as exc:
            if exc.status == 404:
                raise gone(sandbox_id) from None
            raise
        if info.state != SandboxState.RUNNING:
            await self._close_session(sandbox_id)
            raise gone(sandbox_id)
        if found is not None and not found.gone:
            return found
        sbx, _ = await self._attach(sandbox_id)
        if sandbox_id in self._killing:  # a kill began while this request looked
            raise gone(sandbox_id)
        found = self._sessions.get(sandbox_id)
        if found is None or found.gone:
            if found is not None:
                await found.aclose()
            found = Session(sandbox_id, sbx, self.settings.access_token(sandbox_id))
            self._sessions[sandbox_id] = found
        return found

    async def shared_session(self) -> Session:
        """The one shared sandbox of E2B's debug mode (clients that address no
        sandbox), made on first use from the ``base`` template; killed when the server
        stops."""
        async with self._shared_lock:
            if self._shared_id is not None:
                try:
                    return await self.session(self._shared_id)
                except ApiError:
                    self._shared_id = None
            sbx = await self.create(
                template="base",
                timeout=self.settings.max_timeout,
                metadata={SHARED_KEY: "1"},
                envs={},
                allow_internet_access=None,
                network=None,
                auto_pause=False,
            )
            self._shared_id = sbx.sandbox_id
            return await self.session(sbx.sandbox_id)

    async def attached_ids(self) -> list[str]:
        """The ids of the sandboxes with a session now (no engine call)."""
        return list(self._sessions)

    async def owned_ids(self) -> list[str]:
        """The ids of this server's running sandboxes (attached first)."""
        known = list(self._sessions)
        with mapped():
            listed = await AsyncSandbox.list(
                SandboxQuery(
                    metadata={OWNER_KEY: self.settings.owner}, state=[SandboxState.RUNNING]
                ),
                backend=self._backend,
            ).next_items()
        return known + [i.sandbox_id for i in listed if i.sandbox_id not in known]

    async def _close_session(self, sandbox_id: str) -> None:
        session = self._sessions.pop(sandbox_id, None)
        if session is not None:
            await session.aclose()

    async def aclose(self) -> None:
        """Close every session (the sandboxes keep running until their deadline) and
        kill the debug mode's shared sandbox."""
        for sandbox_id in list(self._sessions):
            await self._close_session(sandbox_id)
        if self._shared_id is not None:
            with contextlib.suppress(ApiError):
                await self.kill(self._shared_id)
            self._shared_id = None


def gone(sandbox_id: str) -> ApiError:
    """502 for a sandbox envd requests cannot reach, worded as E2B's proxy does."""
    return ApiError(502, gone_message(sandbox_id))
