"""Logging with sandbox ids, and OpenTelemetry spans when ``opentelemetry-api`` is there.

Every record of the ``e2b_tools`` loggers carries a ``sandbox_id`` attribute (``None``
when no one sandbox is concerned), so a handler or formatter can use it::

    logging.basicConfig(format="%(asctime)s %(name)s [%(sandbox_id)s] %(message)s")
    logging.getLogger("e2b_tools").setLevel(logging.DEBUG)

Levels: ``INFO`` for a sandbox's life (created, connected, paused, killed), ``WARNING``
for what went wrong on the side (a pool refill failing, a watch dropping events),
``DEBUG`` for each call to a sandbox's agent with its duration. The library adds no
handler (the ``NullHandler`` of a library), so nothing prints unless the application
configures logging.

Tracing: with ``opentelemetry-api`` importable, each call to a sandbox's agent is a
``CLIENT`` span named ``e2b_tools <op>`` (``e2b_tools run_code``, ``e2b_tools
read_file``...), with the sandbox id, the operation and, for code and commands, the
error name or exit code. The spans go wherever the application's tracer provider sends
them; without a provider (or without the package) they cost nothing noticeable.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, MutableMapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:
    _Adapter = logging.LoggerAdapter

_otel_trace: ModuleType | None
try:  # optional: tracing only when the application has OpenTelemetry's API
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - exercised in a subprocess without it
    _otel_trace = None

ROOT_LOGGER = "e2b_tools"
"""The name of the library's root logger; every logger it uses is below it."""

logging.getLogger(ROOT_LOGGER).addHandler(logging.NullHandler())


class SandboxLogger(_Adapter):
    """A logger whose records all carry ``sandbox_id`` (``None`` when not about one).

    ``extra={"sandbox_id": ...}`` on a call overrides the bound id for that record.
    """

    def __init__(self, logger: logging.Logger, sandbox_id: str | None = None) -> None:
        super().__init__(logger, {"sandbox_id": sandbox_id})

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        extra: Mapping[str, object] | None = kwargs.get("extra")
        base = self.extra or {}
        kwargs["extra"] = {**base, **extra} if extra else base
        return msg, kwargs

    @property
    def sandbox_id(self) -> str | None:
        """The sandbox this logger's records are about."""
        value = (self.extra or {}).get("sandbox_id")
        return value if isinstance(value, str) else None

    def bind(self, sandbox_id: str | None) -> SandboxLogger:
        """The same logger, its records about ``sandbox_id``."""
        return SandboxLogger(self.logger, sandbox_id)


def get_logger(name: str = "", sandbox_id: str | None = None) -> SandboxLogger:
    """The library's logger ``e2b_tools.<name>`` (``e2b_tools`` itself for ``""``)."""
    full = f"{ROOT_LOGGER}.{name}" if name else ROOT_LOGGER
    return SandboxLogger(logging.getLogger(full), sandbox_id)


_tracer: Any = None


def tracing_available() -> bool:
    """Whether ``opentelemetry-api`` is importable (spans are made then)."""
    return _otel_trace is not None


@contextlib.contextmanager
def call_span(op: str, sandbox_id: str, **attributes: str | int | bool) -> Iterator[Any]:
    """A ``CLIENT`` span around one call to a sandbox's agent (or nothing, without
    OpenTelemetry). The span records an exception that escapes and ends in error."""
    if _otel_trace is None or isinstance(
        _otel_trace.get_tracer_provider(), _otel_trace.ProxyTracerProvider
    ):
        yield None  # no tracing, or no provider set yet: its spans would record nothing
        return
    global _tracer
    if _tracer is None:
        # A proxy until the application sets a provider, then its tracer: cacheable.
        _tracer = _otel_trace.get_tracer(ROOT_LOGGER, __version__)
    tracer = _tracer
    attrs: dict[str, str | int | bool] = {
        "e2b_tools.sandbox_id": sandbox_id,
        "e2b_tools.op": op,
        **attributes,
    }
    with tracer.start_as_current_span(
        f"e2b_tools {op}", kind=_otel_trace.SpanKind.CLIENT, attributes=attrs
    ) as span:
        yield span


def mark_failed(span: Any, description: str) -> None:
    """Set an error status on a span from :func:`call_span` (a no-op without one)."""
    if span is not None and _otel_trace is not None:
        span.set_status(_otel_trace.Status(_otel_trace.StatusCode.ERROR, description))
