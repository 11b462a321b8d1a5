"""Sandbox configuration: what :meth:`Sandbox.create` turns its arguments into."""

from __future__ import annotations

import re
import secrets
from typing import Any, Literal, TypedDict

import pydantic
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    field_validator,
    model_validator,
)

from .agent import netpolicy

DEFAULT_TIMEOUT = 300.0
"""Default sandbox lifetime (TTL) in seconds, as in E2B."""
DEFAULT_CODE_TIMEOUT = 300.0
"""Default ``run_code`` timeout in seconds, as in E2B's code interpreter."""
DEFAULT_COMMAND_TIMEOUT = 60.0
"""Default ``commands.run`` timeout in seconds, as in E2B."""
DEFAULT_OUTPUT_LIMIT = 8 * 1024 * 1024
"""Characters of each output stream a result keeps (head + tail) to bound host memory."""

PROCESS_SHARE = 0.25
"""Share of ``memory`` the tmpfs mounts must leave to processes (the agent, code, tools)."""

NetworkMode = Literal["none", "full"]

ALL_TRAFFIC = netpolicy.ALL_TRAFFIC
"""Every IPv4 destination (``"0.0.0.0/0"``), as E2B spells it. As an ``allow_out`` rule it
opens the public internet only: host, private and metadata addresses need their own rule."""


class NetworkPolicy(BaseModel):
    """Which destinations a sandbox may reach, enforced by the egress proxy outside it.

    Rules are domain names (``example.com``, ``*.example.com`` for its subdomains), IP
    addresses or CIDR blocks, each with an optional ``:port``. An ``allow_out`` rule
    wins over a ``deny_out`` rule (as in E2B). Anything no rule matches is denied,
    unless the policy has only ``deny_out`` rules (then everything else public is
    allowed). See ``docs/network.md``.

    Example:
        >>> NetworkPolicy(allow_out=["pypi.example", "*.pypi.example:443"]).allow_out
        ['pypi.example', '*.pypi.example:443']
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_out: list[str] = Field(default_factory=list)
    """Destinations the sandbox may reach."""
    deny_out: list[str] = Field(default_factory=list)
    """Destinations it may not reach (an ``allow_out`` rule that also matches wins)."""

    @model_validator(mode="after")
    def _normalized(self) -> NetworkPolicy:
        normal = netpolicy.Policy.from_lists(self.allow_out, self.deny_out).to_dict()
        object.__setattr__(self, "allow_out", normal["allow_out"])
        object.__setattr__(self, "deny_out", normal["deny_out"])
        return self

    def rules(self) -> netpolicy.Policy:
        """The parsed rules the proxy applies."""
        return netpolicy.Policy.from_lists(self.allow_out, self.deny_out)


Network = NetworkMode | NetworkPolicy
"""What ``network=`` takes: ``"none"``, ``"full"`` or a :class:`NetworkPolicy` (or a dict
``{"allow_out": [...], "deny_out": [...]}``, E2B's spelling)."""

FULL_POLICY = NetworkPolicy(allow_out=[ALL_TRAFFIC])
"""The policy behind ``network="full"``: the public internet, nothing private."""


def proxied_policy(network: Network) -> NetworkPolicy | None:
    """The policy the egress proxy applies for ``network``; None for ``"none"``."""
    if network == "none":
        return None
    if network == "full":
        return FULL_POLICY
    assert isinstance(network, NetworkPolicy)
    return network


INGRESS_KEYS = ("allow_public_traffic", "mask_request_host")
"""Keys of E2B's ``network`` dict about traffic coming in (through ``get_host``)."""

PORT_VARIABLE = "${PORT}"
"""Placeholder of ``mask_request_host`` for the port inside the sandbox."""


class Ingress(BaseModel):
    """How connections through :meth:`Sandbox.get_host` reach the sandbox's ports: E2B's
    ``allow_public_traffic`` and ``mask_request_host``, set at create and fixed after.
    See ``docs/network.md``.

    Example:
        >>> Ingress(mask_request_host="localhost:${PORT}").host_for(8000)
        'localhost:8000'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_public_traffic: StrictBool = True
    """``False``: each connection's first HTTP request must carry the header
    ``e2b-traffic-access-token: <traffic_access_token>`` (else ``403``)."""
    mask_request_host: StrictStr | None = None
    """Host header given to every request, ``${PORT}`` replaced by the port inside the
    sandbox (e.g. ``"localhost:${PORT}"``); ``None`` keeps the client's."""
    traffic_access_token: str | None = Field(default=None, repr=False)
    """The secret behind ``allow_public_traffic=False``: made by ``create`` (one per
    sandbox), kept in the container's config label so ``connect`` finds it."""

    @field_validator("mask_request_host")
    @classmethod
    def _mask(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.count(PORT_VARIABLE) > 1:
            raise ValueError(f"mask_request_host may hold {PORT_VARIABLE} once, not {value!r}")
        if not re.fullmatch(r"[\x21-\x7e]+", value.replace(PORT_VARIABLE, "1")):
            raise ValueError(
                "mask_request_host must be a host like 'localhost:${PORT}' (printable "
                f"ASCII, no spaces), not {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _token(self) -> Ingress:
        if self.allow_public_traffic and self.traffic_access_token is not None:
            raise ValueError("traffic_access_token needs allow_public_traffic=False")
        return self

    def host_for(self, port: int) -> str | None:
        """The Host header for requests to ``port``; None: leave it as sent."""
        if self.mask_request_host is None:
            return None
        return self.mask_request_host.replace(PORT_VARIABLE, str(port))

    def issued(self) -> Ingress:
        """These settings with a fresh token when public traffic is not allowed."""
        token = None if self.allow_public_traffic else secrets.token_urlsafe(32)
        return self.model_copy(update={"traffic_access_token": token})


def split_network(network: Any) -> tuple[Any, dict[str, Any]]:
    """E2B's ``network`` dict as its egress part and its ingress keys
    (:data:`INGRESS_KEYS`). A dict of ingress keys only has no egress part: ``None``
    (the default egress applies, ``"none"`` here); anything else has no ingress keys."""
    if not isinstance(network, dict):
        return network, {}
    ingress = {key: network[key] for key in INGRESS_KEYS if key in network}
    egress = {key: value for key, value in network.items() if key not in INGRESS_KEYS}
    if ingress and not egress:
        return None, ingress
    return egress, ingress


def resolve_network(network: Any, allow_internet_access: bool | None = None) -> Network:
    """``network`` (a mode, a policy or E2B's dict) with E2B's ``allow_internet_access``
    folded in: ``True`` turns the default ``"none"`` into ``"full"``; ``False`` turns a
    mode into ``"none"`` and adds :data:`ALL_TRAFFIC` to a policy's ``deny_out``.
    Ingress keys of the dict are left out (see :func:`split_network`): a dict of them
    alone means ``"none"``."""
    network, _ = split_network(network)
    if network is None:
        network = "none"
    if isinstance(network, dict):
        network = NetworkPolicy.model_validate(network)
    if network not in ("none", "full") and not isinstance(network, NetworkPolicy):
        raise ValueError(
            f"network must be 'none', 'full' or a policy like "
            f"{{'allow_out': [...], 'deny_out': [...]}}, not {network!r}"
        )
    if allow_internet_access is None:
        return network  # type: ignore[no-any-return]
    if isinstance(network, NetworkPolicy):
        if allow_internet_access:
            return network
        return NetworkPolicy(allow_out=network.allow_out, deny_out=[*network.deny_out, ALL_TRAFFIC])
    if not allow_internet_access:
        return "none"
    return "full"


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: str | int) -> int:
    """Bytes in a size such as ``"512m"``, ``"1g"``, ``"100k"`` or ``1048576``.

    Example:
        >>> parse_size("512m")
        536870912
    """
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", str(value).lower())
        if match is None:
            raise ValueError(f"{value!r} is not a size (use bytes or a number with k, m or g)")
        size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if size <= 0:
        raise ValueError(f"{value!r} must be more than 0 bytes")
    return size


class SandboxConfig(BaseModel):
    """Everything that shapes one sandbox container. Every hardening default can be
    relaxed here; each field says what it protects.

    Example:
        >>> SandboxConfig(memory="2g", pids_limit=512).memory
        '2g'
    """

    model_config = ConfigDict(extra="forbid")

    image: str | None = None
    """Image to run; ``None`` means the default ``e2b-tools/sandbox:<version>``."""
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0)
    """Lifetime in seconds. The agent inside exits at this deadline even if the
    controlling process died, so nothing outlives it."""
    envs: dict[str, str] = Field(default_factory=dict)
    """Environment variables for everything run in the sandbox."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Free-form labels, returned by ``list`` and usable as its filter."""
    cpu: float | None = Field(default=1.0, gt=0)
    """CPU cores the sandbox may use (``None``: no limit)."""
    memory: str | int | None = "1g"
    """Memory limit (``"512m"``, ``"2g"`` or bytes); swap is capped at the same value so
    the limit is real. ``None``: no limit."""
    pids_limit: int | None = Field(default=256, gt=0)
    """Maximum processes and threads; stops fork bombs. ``None``: no limit."""
    network: Network = "none"
    """``"none"``: no network at all (default), fixed for the sandbox's life. A
    :class:`NetworkPolicy`: the sandbox sits on a network of its own with no route out,
    and an egress proxy forwards what the policy allows (HTTP and HTTPS through the
    usual proxy variables); :meth:`Sandbox.update_network` changes it later. ``"full"``:
    the same with every public address allowed. E2B's ingress keys in a dict
    (``allow_public_traffic``, ``mask_request_host``) go to :attr:`ingress`."""
    ingress: Ingress = Field(default_factory=Ingress)
    """Connections through ``get_host``: E2B's ``allow_public_traffic`` and
    ``mask_request_host`` (and the sandbox's token). Fixed for the sandbox's life."""
    read_only: bool = True
    """Read-only root filesystem; ``/tmp`` and the workspace stay writable (tmpfs)."""
    workdir: str = "/home/user"
    """Workspace directory: writable, the default cwd and ``HOME``."""
    workspace_size: str | int | None = None
    """Size cap of the workspace. It is a tmpfs, so its files use ``memory``; a full
    workspace gives the writer ``ENOSPC`` and the sandbox keeps running. ``None``: half
    of ``memory`` (512 MiB at the default 1 GiB; 1 GiB without a memory limit).
    ``workspace_size + tmp_size`` must leave a quarter of ``memory`` to processes."""
    tmp_size: str | int | None = None
    """Size cap of the ``/tmp`` tmpfs (its files use ``memory`` too). ``None``: an
    eighth of ``memory`` (128 MiB at 1 GiB; 256 MiB without a memory limit)."""
    user: str = "1000:1000"
    """User that code and commands run as; never root by default. The agent keeps real
    uid 0 so that code running as this user cannot signal, trace or impersonate it;
    ``"0:0"`` runs code as root and gives that protection up."""
    cap_drop_all: bool = True
    """Drop every Linux capability."""
    no_new_privileges: bool = True
    """Forbid gaining privileges through setuid binaries."""
    runtime: str | None = None
    """OCI runtime, e.g. ``"runsc"`` for gVisor when the engine has it."""
    on_timeout: Literal["kill", "pause"] = "kill"
    """At the deadline: ``"kill"`` removes the sandbox; ``"pause"`` freezes every process
    in it, memory and files kept, until :meth:`Sandbox.connect` resumes it (E2B's
    auto-pause; ``gc`` keeps it, ``kill`` removes it)."""
    auto_resume: bool = False
    """With ``on_timeout="pause"``: a paused sandbox's next use (a call from any host)
    resumes it, as E2B's ``auto_resume``."""
    interrupt_grace: float = Field(default=2.0, gt=0)
    """Seconds code gets to stop after KeyboardInterrupt before its context is killed."""
    output_limit: int = Field(default=DEFAULT_OUTPUT_LIMIT, gt=1024)
    """Characters per output stream kept in results (head and tail; the middle is
    dropped and counted). Streaming callbacks still see everything."""

    @model_validator(mode="before")
    @classmethod
    def _ingress_keys(cls, data: Any) -> Any:
        """E2B's ``network={"allow_public_traffic": ...}`` sets :attr:`ingress`."""
        if isinstance(data, dict) and isinstance(data.get("network"), dict):
            egress, ingress = split_network(data["network"])
            if ingress:
                current = data.get("ingress") or {}
                if isinstance(current, Ingress):  # its token, if any, goes: create issues one
                    current = current.model_dump(exclude={"traffic_access_token"})
                data = {
                    **data,
                    "network": "none" if egress is None else egress,
                    "ingress": {**current, **ingress},
                }
        return data

    @field_validator("network", mode="before")
    @classmethod
    def _network(cls, value: Any) -> Any:
        return resolve_network(value)

    def describe_network(self) -> str:
        """The network in a sentence or two, true of this configuration (for models)."""
        policy = proxied_policy(self.network)
        if policy is None:
            return "No network access."
        return (
            f"{netpolicy.describe(policy.rules())} HTTP and HTTPS go through a proxy "
            "(HTTP_PROXY/HTTPS_PROXY are set; pip, npm, git, curl and requests use them); "
            "a blocked request gets a 403 naming the rule, and direct sockets, UDP and DNS "
            "lookups do not work."
        )

    def tmpfs_sizes(self) -> tuple[int, int]:
        """Bytes of the workspace and of ``/tmp``, defaults resolved."""
        memory = parse_size(self.memory) if self.memory is not None else None
        workspace = (
            parse_size(self.workspace_size)
            if self.workspace_size is not None
            else (memory // 2 if memory else 1 << 30)
        )
        tmp = (
            parse_size(self.tmp_size)
            if self.tmp_size is not None
            else (memory // 8 if memory else 256 << 20)
        )
        return workspace, tmp

    @model_validator(mode="after")
    def _sizes_fit(self) -> SandboxConfig:
        workspace, tmp = self.tmpfs_sizes()
        if self.memory is None:
            return self
        memory = parse_size(self.memory)
        if memory - workspace - tmp < memory * PROCESS_SHARE:
            raise ValueError(
                f"the workspace ({workspace >> 20} MiB) and /tmp ({tmp >> 20} MiB) are held "
                f"in memory and would leave {max(0, memory - workspace - tmp) >> 20} MiB of "
                f"memory={self.memory} to processes, under a quarter of it; raise memory or "
                "lower workspace_size / tmp_size"
            )
        return self


def settings_error(exc: ValueError) -> str:
    """A validation error as short text: pydantic's field paths and messages only."""
    if not isinstance(exc, pydantic.ValidationError):
        return str(exc)
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def merge_config(
    base: SandboxConfig,
    image: str | None,
    timeout: float,
    envs: dict[str, str] | None,
    cpu: float | None,
    memory: str | int | None,
    network: Network,
    metadata: dict[str, str] | None,
    ingress: dict[str, Any] | None = None,
) -> SandboxConfig:
    """``base`` with :meth:`Sandbox.create`'s arguments applied (and validated), and a
    traffic access token of its own (see :meth:`Ingress.issued`)."""
    settings = {**base.ingress.model_dump(exclude={"traffic_access_token"}), **(ingress or {})}
    config = SandboxConfig.model_validate(
        {
            **base.model_dump(exclude={"ingress"}),
            "ingress": settings,
            "image": image if image is not None else base.image,
            "timeout": timeout,
            "envs": {**base.envs, **(envs or {})},
            "cpu": cpu,
            "memory": memory,
            "network": network,
            "metadata": {**base.metadata, **(metadata or {})},
        }
    )
    return config.model_copy(update={"ingress": config.ingress.issued()})


def lifecycle_settings(lifecycle: dict[str, Any]) -> dict[str, Any]:
    """:class:`SandboxConfig` fields for E2B's ``lifecycle`` argument: ``on_timeout``
    (``"kill"``, ``"pause"`` or ``{"action": ..., "keep_memory": ...}``) and
    ``auto_resume``. Raises ValueError on anything else."""
    unknown = set(lifecycle) - {"on_timeout", "auto_resume"}
    if unknown:
        raise ValueError(f"lifecycle takes on_timeout and auto_resume, not {sorted(unknown)}")
    action = lifecycle.get("on_timeout", "kill")
    if isinstance(action, dict):
        action = action.get("action", "kill")
    if action not in ("kill", "pause"):
        raise ValueError(f'lifecycle on_timeout must be "kill" or "pause", not {action!r}')
    auto_resume = lifecycle.get("auto_resume") or False
    if not isinstance(auto_resume, bool):
        raise ValueError("lifecycle auto_resume must be a bool")
    if auto_resume and action != "pause":
        raise ValueError('lifecycle auto_resume needs on_timeout "pause"')
    return {"on_timeout": action, "auto_resume": auto_resume}


class ConnectionOptions(TypedDict, total=False):
    """E2B's connection settings (its ``ApiParams``), accepted so E2B code runs unchanged,
    and unused: the sandbox runs on your engine, reached over a private channel (no API
    key, no domain, no access token, no HTTP request to bound)."""

    api_key: str | None
    access_token: str | None
    domain: str | None
    debug: bool | None
    request_timeout: float | None
    headers: dict[str, str] | None
    proxy: Any


def check_options(options: dict[str, Any]) -> None:
    """Refuse what is not one of E2B's connection settings (a TypeError, as Python
    refuses an unknown keyword)."""
    unknown = set(options) - set(ConnectionOptions.__annotations__)
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(unknown))}")
