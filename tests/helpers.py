"""Small things several test modules share (``tests/`` is on ``sys.path``)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator

# Lists every process's command line inside a sandbox, without ps.
PROCS = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"


@contextlib.contextmanager
def quiet_crewai_import(prefix: str) -> Iterator[None]:
    """Import crewai (and crewai-tools) inside this: no telemetry, tracing or version
    check, and a throwaway ``HOME`` for what it writes on import."""
    os.environ.update(
        CREWAI_DISABLE_TELEMETRY="true",
        OTEL_SDK_DISABLED="true",
        CREWAI_DISABLE_TRACKING="true",
        CREWAI_TRACING_ENABLED="false",
        CREWAI_DISABLE_VERSION_CHECK="true",
        CREWAI_TESTING="true",
    )
    home = os.environ.get("HOME")
    os.environ["HOME"] = tempfile.mkdtemp(prefix=prefix)
    try:
        with warnings.catch_warnings():
            # crewai's own import emits an ImportWarning about its lazy submodules, and
            # crewai-tools imports a module crewai has since moved.
            warnings.simplefilter("ignore", ImportWarning)
            warnings.filterwarnings("ignore", "crewai.utilities.lock_store", DeprecationWarning)
            yield
    finally:
        if home is not None:
            os.environ["HOME"] = home
