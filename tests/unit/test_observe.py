"""Logging with sandbox ids on every record, and OpenTelemetry spans per sandbox call."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from local_backend import LocalBackend

from e2b_tools import NotFoundError, Sandbox

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("e2b_tools")]


def test_every_record_carries_the_sandbox_id(
    backend: LocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="e2b_tools")
    with Sandbox.create(backend=backend, timeout=60) as sbx:
        sbx.run_code("x = 1")
        sbx.run_code("1 / 0")  # an error in the code: logged as the error's name
        with pytest.raises(NotFoundError):
            sbx.files.read("/no/such/file")
        sbx.files.write("a.txt", "hi")
        assert sbx.files.read("a.txt") == "hi"
    records = _records(caplog)
    assert records, "no record from the e2b_tools loggers"
    assert {r.sandbox_id for r in records} == {sbx.sandbox_id}  # type: ignore[attr-defined]
    messages = [r.getMessage() for r in records]
    assert any(m.startswith("created from ") for m in messages), messages
    assert any(m.startswith("run_code ok in ") for m in messages), messages
    assert any(m.startswith("run_code ZeroDivisionError in ") for m in messages), messages
    assert any(m.startswith("read_file NotFoundError in ") for m in messages), messages
    assert any(m.startswith("write_file ok in ") for m in messages), messages
    assert messages[-1] == "killed"
    lifecycle = [r for r in records if r.levelno == logging.INFO]
    assert [r.getMessage().split()[0] for r in lifecycle] == ["created", "killed"]
    assert all(r.name == "e2b_tools.sandbox" for r in records)


def test_a_format_naming_sandbox_id_works_for_every_library_record(
    backend: LocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """A formatter using %(sandbox_id)s never fails on the library's records."""
    formatter = logging.Formatter("%(name)s [%(sandbox_id)s] %(message)s")
    caplog.set_level(logging.DEBUG, logger="e2b_tools")
    with Sandbox.create(backend=backend, timeout=60) as sbx:
        sbx.run_code("2 + 2")
    lines = [formatter.format(r) for r in _records(caplog)]
    assert lines and all(f"[{sbx.sandbox_id}]" in line for line in lines), lines


def test_nothing_is_logged_below_the_configured_level(
    backend: LocalBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="e2b_tools")
    with Sandbox.create(backend=backend, timeout=60) as sbx:
        for _ in range(20):
            sbx.run_code("x = 1")
    assert len(_records(caplog)) == 2  # created, killed: no per-call records


def _run(script: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PYTHONPATH": f"{TESTS}:{ROOT}", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_spans_per_sandbox_call_with_opentelemetry() -> None:
    """With a tracer provider set, each call is a CLIENT span under the caller's span
    (also through the blocking API, whose calls run on another thread), and a call
    that failed is a span in error."""
    out = _run(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
        from local_backend import LocalBackend
        from e2b_tools import Sandbox

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        tracer = trace.get_tracer("app")
        with LocalBackend() as backend:
            with tracer.start_as_current_span("agent step") as step:
                with Sandbox.create(backend=backend, timeout=60) as sbx:
                    sbx.run_code("x = 1")
                    sbx.run_code("raise ValueError('no')")
                    sbx.commands.run("true")
        spans = exporter.get_finished_spans()
        parent = step.get_span_context().span_id
        for s in spans:
            if s.name.startswith("e2b_tools "):
                print(
                    s.name,
                    s.kind.name,
                    s.status.status_code.name,
                    s.attributes["e2b_tools.sandbox_id"] == sbx.sandbox_id,
                    s.parent is not None and s.parent.span_id == parent,
                )
        """
    )
    lines = out.splitlines()
    assert "e2b_tools run_code CLIENT UNSET True True" in lines, out
    assert "e2b_tools run_code CLIENT ERROR True True" in lines, out
    assert any(line.startswith("e2b_tools command CLIENT UNSET True True") for line in lines), out


def test_no_opentelemetry_no_spans_and_no_error() -> None:
    """Without the package (import blocked), the library works and makes no span."""
    out = _run(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if it were not installed
        from local_backend import LocalBackend
        from e2b_tools import Sandbox
        from e2b_tools._observe import tracing_available

        with LocalBackend() as backend, Sandbox.create(backend=backend, timeout=60) as sbx:
            print(sbx.run_code("6 * 7").text, tracing_available())
        """
    )
    assert out.split() == ["42", "False"]
