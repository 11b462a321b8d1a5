"""Placeholder: filled in by issue 15's work."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    """This service's routes."""
    return []
