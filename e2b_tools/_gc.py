"""Reaping sandboxes nobody will use again (``e2b-tools gc``)."""

from __future__ import annotations

import asyncio
import time

from ._inspect import agent_hello
from .backends import Backend
from .backends.docker import LABEL_END_AT, LABEL_SANDBOX, default_backend
from .backends.egress import PRUNE_AGE


async def _agent_deadline(backend: Backend, container_id: str, sandbox_id: str) -> float | None:
    """The deadline the agent itself holds (infinite once the deadline paused the
    sandbox: it waits to be resumed); None if it does not answer."""
    hello = await agent_hello(backend, container_id, sandbox_id)
    if hello is None:
        return None
    deadline = hello.get("deadline")
    if deadline is None or hello.get("auto_paused"):
        return float("inf")
    return float(deadline)


async def agc(
    *, all_sandboxes: bool = False, dry_run: bool = False, backend: Backend | None = None
) -> list[str]:
    """Remove orphaned sandbox containers; returns the ids of the sandboxes removed.

    Orphans are labelled containers that are not running (created but never started,
    or exited without being removed) and running ones past their deadline whose agent
    does not answer or agrees the deadline passed. Paused sandboxes are kept (their
    timeout clock is stopped while paused), and so are those their deadline paused
    (``on_timeout="pause"``). ``all_sandboxes=True`` removes every
    labelled container, running or not. Then the networks of sandboxes that are gone
    are removed, and the egress proxy once no sandbox needs it. ``dry_run=True``
    removes nothing and returns the ids that would be removed.
    """
    backend = backend or default_backend()
    removed: list[str] = []
    for summary in await asyncio.to_thread(backend.list_containers, True):
        labels = summary.get("Labels") or {}
        sandbox_id = labels.get(LABEL_SANDBOX, "")
        state = summary.get("State")
        # A paused sandbox's deadline clock is stopped (its agent holds how much time is
        # left, and cannot answer while frozen): it is kept until resumed or killed.
        doomed = all_sandboxes or state not in ("running", "paused")
        if not doomed and state == "running":
            end_at = float(labels.get(LABEL_END_AT) or "inf")
            if end_at < time.time():
                # set_timeout() may have moved the deadline: ask the agent.
                deadline = await _agent_deadline(backend, summary["Id"], sandbox_id)
                doomed = deadline is None or deadline < time.time()
        if doomed and (dry_run or await asyncio.to_thread(backend.kill, summary["Id"])):
            removed.append(sandbox_id or summary["Id"][:12])
    if not dry_run:
        await asyncio.to_thread(backend.cleanup, 0.0 if all_sandboxes else PRUNE_AGE)
    return removed


def gc(
    *, all_sandboxes: bool = False, dry_run: bool = False, backend: Backend | None = None
) -> list[str]:
    """Blocking :func:`agc`.

    Example:
        >>> from e2b_tools import gc
        >>> gc()  # doctest: +SKIP
        []
    """
    from ._sync import _run

    return _run(agc(all_sandboxes=all_sandboxes, dry_run=dry_run, backend=backend))
