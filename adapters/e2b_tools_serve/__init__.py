"""``e2b-tools serve``: E2B's wire protocols for e2b-tools sandboxes (issue 15, in progress).

A local server the real, unmodified E2B SDKs (``e2b``, ``e2b-code-interpreter``) talk
to, with e2b-tools sandboxes behind it (``E2B_API_URL`` / ``E2B_SANDBOX_URL`` pointed at
it). Served today: the REST control plane (create, get, list, kill, timeout, connect,
pause/resume, metrics; see ``docs/serve.md``). Not yet: envd's process and filesystem
services and the code interpreter, whose wire layer is here already:

- ``_connect``: Connect protocol framing with the JSON codec: envelopes, an
  incremental memory-bounded envelope decoder, the end-stream message, ``ConnectError``
  and the code to HTTP status table, request header checks (content type, timeout,
  protocol version, compression) and ready-made unary error and 415 replies;
- ``_keepalive``: the ``Keepalive-Ping-Interval`` header and a wrapper that adds a
  keepalive message to a streaming response after each idle interval;
- ``_protojson``: proto3 JSON mapping primitives (typed, hostile-input-safe field
  readers; base64, int64 and timestamp writers);
- ``_proto``: builders and readers for the messages of envd's ``process.Process``
  and ``filesystem.Filesystem`` services.

The control plane: ``_settings`` (:class:`ServeSettings`, tokens), ``_http`` (error
bodies, the key and ``Origin`` guard, bounded bodies), ``_registry`` (the server's
sandboxes on ``e2b_tools.AsyncSandbox``), ``_control`` (the routes), ``_app``
(:func:`control_app`, :func:`serve`).
"""

from __future__ import annotations

from ._app import Apps, apps, control_app, is_loopback, serve, serve_async
from ._settings import ENVD_VERSION, ServeSettings, new_api_key

__all__ = [
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
