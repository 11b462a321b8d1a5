"""``e2b-tools serve``: E2B's wire protocols for e2b-tools sandboxes (``docs/serve.md``).

A local server the real, unmodified E2B SDKs (``e2b``, ``e2b-code-interpreter``, Python
and JavaScript) and the integrations on them talk to, with e2b-tools sandboxes behind
it (``E2B_API_URL`` / ``E2B_SANDBOX_URL`` pointed at it). Three listeners share one
registry of sandboxes (``_app``: :func:`apps`, :func:`serve`):

- the REST control plane: ``_settings`` (:class:`ServeSettings`, tokens), ``_http``
  (error bodies, the key and ``Origin`` guard, bounded bodies), ``_registry`` (the
  server's sandboxes and their sessions), ``_control`` (the routes);
- the sandbox listener: ``_sandbox_app`` (which sandbox a request is for, its token or
  signed URL, the port, the user), ``_session`` (one sandbox's per-service state),
  ``_errors`` (e2b-tools errors as Connect codes and HTTP statuses);
- envd: ``_process`` and ``_process_table`` (the process service), ``_filesystem``
  (the filesystem service), ``_files_http`` (``/files``);
- the code interpreter: ``_interpreter`` (``/execute``, ``/contexts``);
- the Connect wire layer: ``_connect`` (framing, errors, header checks), ``_rpc``
  (unary, server- and client-streaming routes), ``_keepalive``, ``_protojson`` and
  ``_proto`` (proto3 JSON of envd's messages).
"""

from __future__ import annotations

from ._app import Apps, apps, control_app, is_loopback, serve, serve_async
from ._settings import API_KEY_PATTERN, ENVD_VERSION, ServeSettings, new_api_key

__all__ = [
    "API_KEY_PATTERN",
    "ENVD_VERSION",
    "Apps",
    "ServeSettings",
    "apps",
    "control_app",
    "is_loopback",
    "new_api_key",
    "serve",
    "serve_async",
]
