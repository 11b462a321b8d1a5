"""How a sandbox meets the outside: its egress policy and log, and servers inside it
reached from this machine (``get_host``). :class:`ReachMethods` is a base of
:class:`~e2b_tools._sandbox.AsyncSandbox`, which supplies the attributes."""

from __future__ import annotations

import asyncio
import builtins
from typing import TYPE_CHECKING, cast

from ._config import (
    Network,
    NetworkPolicy,
    SandboxConfig,
    proxied_policy,
    resolve_network,
    settings_error,
    split_network,
)
from ._exceptions import InvalidArgumentError
from ._file_urls import file_urls_of
from ._models import NetworkDecision
from ._ports import PortForwards
from .backends import Backend

if TYPE_CHECKING:
    from ._commands import Username
    from ._sandbox import AsyncSandbox


class ReachMethods:
    """Network policy, egress log and port forwarding (of
    :class:`~e2b_tools._sandbox.AsyncSandbox`)."""

    _backend: Backend
    _config: SandboxConfig
    _container_id: str
    _sandbox_id: str
    _ports: PortForwards

    def get_host(self, port: int) -> str:
        """The address on this machine of a server on ``port`` inside the sandbox.

        ``"127.0.0.1:<n>"``: E2B's ``get_host``; use ``http://`` (E2B's hosts are
        ``https://``). Works with the network off: the connections travel over the
        sandbox's own channel. Listens on the loopback only, until ``kill()``; any
        local process can connect.

        Example:
            >>> host = sbx.get_host(8000)  # doctest: +SKIP
            >>> urllib.request.urlopen(f"http://{host}/").read()  # doctest: +SKIP
        """
        return self._ports.host(port)

    @property
    def traffic_access_token(self) -> str | None:
        """The secret that ``get_host`` connections must present, or None.

        E2B's token for ``network={"allow_public_traffic": False}``: each connection
        through :meth:`get_host` must send it in the ``e2b-traffic-access-token`` header
        of its first request (else ``403``). ``None`` when public traffic is allowed
        (the default).

        Example:
            >>> sbx.traffic_access_token is None  # doctest: +SKIP
            True
        """
        return self._config.ingress.traffic_access_token

    def download_url(
        self,
        path: str,
        user: Username | None = None,
        use_signature_expiration: int | None = None,
    ) -> str:
        """A signed URL that downloads the file at ``path`` with a plain ``GET``.

        E2B's ``download_url``; here the URL is
        ``http://127.0.0.1:<n>/files?path=...&signature=...``, served by this process
        on the loopback until ``kill()`` (any local process can use it; the signature
        limits it to reading this one file). ``path`` resolves as in ``files.read``.

        Args:
            path: The file; relative paths are under the workspace.
            user: E2B's; only the sandbox's user (see :meth:`AsyncCommands.run`).
            use_signature_expiration: Seconds the URL stays valid (``None``: until
                ``kill()``).

        Example:
            >>> url = sbx.download_url("report.csv", use_signature_expiration=60)  # doctest: +SKIP
            >>> urllib.request.urlopen(url).read()  # doctest: +SKIP
        """
        return file_urls_of(cast("AsyncSandbox", self)).url(
            "read", path, user, use_signature_expiration
        )

    def upload_url(
        self,
        path: str | None = None,
        user: Username | None = None,
        use_signature_expiration: int | None = None,
    ) -> str:
        """A signed URL that writes the file at ``path`` from a ``POST``.

        E2B's ``upload_url``: send ``multipart/form-data`` with the file in a part named
        ``file`` (``requests.post(url, files={"file": f})``) or a raw
        ``application/octet-stream`` body; the answer is E2B's JSON list of the written
        entries. Without ``path`` each part goes to its file name under the workspace.
        Served by this process on the loopback until ``kill()``; bodies are spooled to
        a host temporary file, up to 1 GiB (``_file_urls.MAX_UPLOAD``).

        Args:
            path: The file to write (parents are created, as ``files.write`` does).
            user: E2B's; only the sandbox's user (see :meth:`AsyncCommands.run`).
            use_signature_expiration: Seconds the URL stays valid (``None``: until
                ``kill()``).

        Example:
            >>> url = sbx.upload_url("data.csv")  # doctest: +SKIP
            >>> requests.post(url, files={"file": open("data.csv", "rb")})  # doctest: +SKIP
        """
        return file_urls_of(cast("AsyncSandbox", self)).url(
            "write", path, user, use_signature_expiration
        )

    async def _close_file_urls(self) -> None:
        """Stop serving the file URLs (at ``kill()``); later ones are refused."""
        await file_urls_of(cast("AsyncSandbox", self)).close()

    async def update_network(self, network: Network | dict[str, builtins.list[str]]) -> None:
        """Replace the sandbox's network policy, from its next connection on.

        Works for sandboxes created with a policy or ``"full"``; ``"none"`` is fixed for
        the sandbox's life (it has no network to change). Connections already open
        stay open. ``allow_public_traffic`` and ``mask_request_host`` are fixed at
        create (as in E2B) and kept.

        Example:
            >>> await sbx.update_network({"allow_out": ["pypi.example"]})  # doctest: +SKIP
        """
        if split_network(network)[1]:
            raise InvalidArgumentError(
                "allow_public_traffic and mask_request_host are fixed at create; "
                "update_network takes allow_out and deny_out"
            )
        try:
            net = resolve_network(network)
        except ValueError as exc:
            raise InvalidArgumentError(f"invalid network policy: {settings_error(exc)}") from None
        policy = proxied_policy(net) or NetworkPolicy()
        await asyncio.to_thread(
            self._backend.set_network, self._container_id, self._sandbox_id, policy
        )
        self._config = self._config.model_copy(update={"network": net})

    async def network_log(self, limit: int = 100) -> builtins.list[NetworkDecision]:
        """The egress proxy's last ``limit`` decisions on this sandbox's requests, oldest
        first: what was allowed or denied, and by which rule."""
        entries = await asyncio.to_thread(
            self._backend.network_log, self._container_id, self._sandbox_id, limit
        )
        return [NetworkDecision.model_validate(entry) for entry in entries]
