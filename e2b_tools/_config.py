"""Sandbox configuration: what :meth:`Sandbox.create` turns its arguments into."""

from __future__ import annotations

import re
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


def resolve_network(network: Any, allow_internet_access: bool | None = None) -> Network:
    """``network`` (a mode, a policy or E2B's dict) with E2B's ``allow_internet_access``
    folded in: ``True`` turns the default ``"none"`` into ``"full"``; ``False`` turns a
    mode into ``"none"`` and adds :data:`ALL_TRAFFIC` to a policy's ``deny_out``."""
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
    the same with every public address allowed."""
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
    interrupt_grace: float = Field(default=2.0, gt=0)
    """Seconds code gets to stop after KeyboardInterrupt before its context is killed."""
    output_limit: int = Field(default=DEFAULT_OUTPUT_LIMIT, gt=1024)
    """Characters per output stream kept in results (head and tail; the middle is
    dropped and counted). Streaming callbacks still see everything."""

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
) -> SandboxConfig:
    """``base`` with :meth:`Sandbox.create`'s arguments applied (and validated)."""
    return SandboxConfig.model_validate(
        {
            **base.model_dump(),
            "image": image if image is not None else base.image,
            "timeout": timeout,
            "envs": {**base.envs, **(envs or {})},
            "cpu": cpu,
            "memory": memory,
            "network": network,
            "metadata": {**base.metadata, **(metadata or {})},
        }
    )
