"""E2B v2's sandbox listing: pages of :class:`SandboxInfo`, newest first, filtered by a
:class:`SandboxQuery`, resumable by token."""

from __future__ import annotations

import asyncio
import builtins

from ._exceptions import InvalidArgumentError
from ._inspect import mark_auto_paused
from ._models import SandboxInfo, SandboxQuery, SandboxState
from .backends import Backend
from .backends.docker import default_backend


class AsyncSandboxPaginator:
    """Pages of :meth:`AsyncSandbox.list`, newest sandbox first (E2B's paginator).

    Example:
        >>> paginator = AsyncSandbox.list(limit=10)  # doctest: +SKIP
        >>> while paginator.has_next:  # doctest: +SKIP
        ...     for info in await paginator.next_items():
        ...         print(info.sandbox_id, info.state)
    """

    def __init__(
        self,
        query: SandboxQuery | None = None,
        limit: int | None = None,
        next_token: str | None = None,
        *,
        backend: Backend | None = None,
    ) -> None:
        if limit is not None and limit <= 0:
            raise InvalidArgumentError("limit must be > 0 or None")
        self.query = query
        self.limit = limit
        self._backend = backend
        self._next_token = next_token
        self._has_next = True

    @property
    def has_next(self) -> bool:
        """Whether :meth:`next_items` has another page to return."""
        return self._has_next

    @property
    def next_token(self) -> str | None:
        """Pass it as ``list(next_token=...)`` to go on from here later (None: done)."""
        return self._next_token

    async def next_items(self) -> builtins.list[SandboxInfo]:
        """The next page of sandboxes (at most ``limit``).

        Raises:
            InvalidArgumentError: No page is left (``has_next`` is False), or the
                ``next_token`` given is not one this paginator made.
        """
        if not self._has_next:
            raise InvalidArgumentError("no more sandboxes to list; check has_next first")
        backend = self._backend or default_backend()
        summaries = await asyncio.to_thread(backend.list_containers)
        infos = [backend.info_from_summary(s) for s in summaries]
        await asyncio.gather(
            *(mark_auto_paused(backend, s, i) for s, i in zip(summaries, infos, strict=True))
        )
        infos = sorted((i for i in infos if _matches(i, self.query)), key=_newest_first)
        if self._next_token:
            after = _token_key(self._next_token)
            infos = [i for i in infos if _newest_first(i) > after]
        page = infos[: self.limit] if self.limit else infos
        more = len(page) < len(infos)
        self._next_token = _token(page[-1]) if more else None
        self._has_next = more
        return page


def _newest_first(info: SandboxInfo) -> tuple[float, str]:
    started = info.started_at.timestamp() if info.started_at else 0.0
    return -started, info.sandbox_id


def _token(info: SandboxInfo) -> str:
    started, sandbox_id = _newest_first(info)
    return f"{-started!r}/{sandbox_id}"


def _token_key(token: str) -> tuple[float, str]:
    started, _, sandbox_id = token.partition("/")
    try:
        return -float(started), sandbox_id
    except ValueError:
        raise InvalidArgumentError(f"invalid next_token {token!r}") from None


def _matches(info: SandboxInfo, query: SandboxQuery | None) -> bool:
    if query is None:
        return info.state in (SandboxState.RUNNING, SandboxState.PAUSED)
    states = query.state or [SandboxState.RUNNING, SandboxState.PAUSED]
    if info.state not in states:
        return False
    if query.metadata and any(info.metadata.get(k) != v for k, v in query.metadata.items()):
        return False
    if query.template and query.template not in (info.template_id, info.name):
        return False
    if query.started_after is not None:
        after = query.started_after
        if after.tzinfo is None:
            after = after.astimezone()  # naive: local time, as E2B reads it
        if info.started_at is None or info.started_at < after:
            return False
    return True
