"""What one ``e2b-tools serve`` instance is told: its key, secret, templates, network and
backend, and the values derived from them (access tokens, the ownership label)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from e2b_tools.backends import Backend

ENVD_VERSION = "0.6.2"
"""The envd version reported to SDKs: it turns on stdin, close_stdin, the default user,
octet-stream uploads and file metadata, and makes newer SDKs refuse watch events with
entry info (0.6.3) and watching network mounts (0.6.4) with a clear error instead of
the server ignoring them."""

DEFAULT_TEMPLATES = ("base", "code-interpreter-v1")
"""E2B's own templates: both run the default image unless ``templates`` says otherwise."""

OWNER_KEY = "e2b-tools-serve"
"""Metadata key that marks the sandboxes of one server secret (hidden from SDKs)."""
TEMPLATE_KEY = "e2b-tools-serve-template"
"""Metadata key holding the E2B template name a sandbox was created from (hidden)."""
SHARED_KEY = "e2b-tools-serve-shared"
"""Metadata key of the debug mode's shared sandbox (hidden)."""
HIDDEN_KEYS = frozenset({OWNER_KEY, TEMPLATE_KEY})

API_KEY_PATTERN = re.compile(r"^e2b_[0-9a-f]{16,128}$")
"""E2B's key shape (older JS SDKs check it client-side)."""


def new_api_key() -> str:
    """A fresh key of E2B's shape: ``e2b_`` and 40 hex digits."""
    return "e2b_" + secrets.token_hex(20)


@dataclass(frozen=True)
class ServeSettings:
    """Settings of one server (``e2b-tools serve`` builds them from its options).

    Example:
        >>> settings = ServeSettings(api_key="e2b_" + "0" * 40, secret=b"s" * 32)
        >>> settings.image_for("base") is None  # the default image
        True
    """

    api_key: str
    """The only ``X-API-KEY`` accepted (``e2b_`` + hex)."""
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    """Key of the HMAC that derives each sandbox's ``envdAccessToken``; keep it to find
    the sandboxes again after a restart."""
    templates: Mapping[str, str | None] = field(default_factory=dict)
    """E2B template name → image (``None``: the default image); ``base`` and
    ``code-interpreter-v1`` are added unless given."""
    network: Literal["none", "full"] = "none"
    """Network of a sandbox whose create request has no ``allow_internet_access``."""
    backend: Backend | None = None
    """Where sandboxes run (``None``: the Docker Engine of ``DOCKER_HOST``)."""
    max_body_bytes: int = 1 << 20
    """Largest control-plane request body (413 beyond)."""
    max_timeout: int = 24 * 3600
    """Largest sandbox lifetime a request may ask for, in seconds."""
    debug_sandbox: bool = False
    """Serve E2B's debug mode (``E2B_DEBUG=true`` with ``e2b`` 2.31 and later): one
    shared sandbox, made on first use, for requests that name no sandbox and carry no
    token. Off by default: any local process can then run code in that sandbox."""

    def __post_init__(self) -> None:
        if not API_KEY_PATTERN.match(self.api_key):
            raise ValueError("api_key must be 'e2b_' followed by 16 to 128 lowercase hex digits")
        if len(self.secret) < 16:
            raise ValueError("secret must be at least 16 bytes")
        merged: dict[str, str | None] = dict.fromkeys(DEFAULT_TEMPLATES)
        merged.update(self.templates)
        object.__setattr__(self, "templates", merged)

    def image_for(self, template: str) -> str | None:
        """The image of an E2B template name (``None``: the default image).

        Raises:
            KeyError: No such template.
        """
        return self.templates[template]

    def access_token(self, sandbox_id: str) -> str:
        """The sandbox's ``envdAccessToken``: HMAC-SHA256(secret, id), so a restarted
        server with the same secret derives the same token."""
        return hmac.new(self.secret, sandbox_id.encode(), hashlib.sha256).hexdigest()

    @property
    def owner(self) -> str:
        """Value of :data:`OWNER_KEY` on this server's sandboxes (a digest of the
        secret: servers with other secrets do not see them)."""
        return hmac.new(self.secret, b"owner", hashlib.sha256).hexdigest()[:16]

    def key_matches(self, given: str | None) -> bool:
        """Whether ``given`` is the API key (compared in constant time)."""
        return given is not None and hmac.compare_digest(given.encode(), self.api_key.encode())
