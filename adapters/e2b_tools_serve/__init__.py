"""``e2b-tools serve``: E2B's wire protocols for e2b-tools sandboxes (issue 15, in progress).

The goal is a local server the real, unmodified E2B SDKs (``e2b``,
``e2b-code-interpreter``, JS ``e2b``) talk to, with e2b-tools sandboxes behind it
(``E2B_API_URL`` / ``E2B_SANDBOX_URL`` pointed at it). The server itself (routes,
listeners, backend) does not exist yet. What exists so far is its wire layer, with
no dependency beyond the standard library and no knowledge of any backend:

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

The modules are private until the server that uses them lands; nothing is exported.
"""

from __future__ import annotations

__all__: list[str] = []
