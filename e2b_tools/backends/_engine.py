"""What every Docker-facing module of the backend shares: labels, the engine timeout,
retries of infra calls and the translation of the SDK's exceptions."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import docker
import docker.errors
import requests.exceptions
import tenacity

from .._exceptions import EngineUnavailableError, SandboxError, SandboxNotFoundError

LABEL_SANDBOX = "e2b-tools.sandbox"
"""Every container this package creates carries this label (value: the sandbox id)."""
LABEL_OWNER = "e2b-tools.owner"
LABEL_VERSION = "e2b-tools.version"
LABEL_END_AT = "e2b-tools.end_at"
LABEL_CREATED_AT = "e2b-tools.created_at"
"""When the sandbox was created (Unix time, microseconds): the engine's own list gives
whole seconds, too coarse to put two sandboxes made in a row in order."""
LABEL_METADATA = "e2b-tools.metadata"
LABEL_CONFIG = "e2b-tools.config"
"""The sandbox's configuration as JSON, environment variables left out (``connect()``
restores the rest)."""
NAME_PREFIX = "e2b-tools-"


ENGINE_TIMEOUT = float(os.environ.get("E2B_TOOLS_ENGINE_TIMEOUT") or 10.0)
"""Seconds a control call (create, start, inspect, list, remove) waits for the engine's
answer; set ``E2B_TOOLS_ENGINE_TIMEOUT`` to change it. Image builds have their own."""


def engine_address() -> str:
    """The engine address the Docker SDK uses (``DOCKER_HOST`` or the default socket)."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _engine_help(exc: BaseException | None = None) -> str:
    if exc is not None and "permission denied" in str(exc).lower():
        return (
            f"this user may not use the Docker Engine at {engine_address()} (permission "
            "denied on its socket); add the user to the `docker` group and log in again, "
            "run a rootless Docker Engine and point DOCKER_HOST at its socket, or set "
            "DOCKER_HOST to an engine this user may use"
        )
    return (
        f"the Docker Engine at {engine_address()} did not answer; start it (on Linux: "
        "`sudo systemctl start docker`; elsewhere: Docker Desktop) or set DOCKER_HOST to "
        "an engine that answers"
    )


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, requests.exceptions.Timeout) or "timed out" in str(exc).lower()


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.ConnectionError):
        # A refused or reset connection may be an engine (re)starting; one that accepted
        # and then said nothing is hung, and asking again only waits longer.
        return not _timed_out(exc)
    if isinstance(exc, docker.errors.APIError) and not isinstance(exc, docker.errors.NotFound):
        code = exc.status_code or 0
        return code >= 500
    return False


# Infra calls that are safe to repeat: engine connection errors and 5xx, a few times
# within a few seconds.
retry_infra = tenacity.retry(
    retry=tenacity.retry_if_exception(_retryable),
    stop=tenacity.stop_after_attempt(4) | tenacity.stop_after_delay(5),
    wait=tenacity.wait_exponential(multiplier=0.1, max=2),
    reraise=True,
)


@contextlib.contextmanager
def map_docker_errors(sandbox_id: str | None = None) -> Iterator[None]:
    """Translate the SDK's exceptions into this package's, in one place."""
    try:
        yield
    except SandboxError:
        raise
    except docker.errors.NotFound as exc:
        raise SandboxNotFoundError(
            f"not found on the Docker Engine: {exc.explanation}", sandbox_id=sandbox_id
        ) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        how = f"no answer within {ENGINE_TIMEOUT:g}s" if _timed_out(exc) else str(exc)
        raise EngineUnavailableError(f"{_engine_help(exc)} ({how})", sandbox_id=sandbox_id) from exc
    except docker.errors.DockerException as exc:
        raise SandboxError(f"Docker Engine error: {exc}", sandbox_id=sandbox_id) from exc
