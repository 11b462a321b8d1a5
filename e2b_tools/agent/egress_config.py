"""The egress proxy's settings: the environment's, and the machine's own addresses.

:class:`Config` reads the ``E2B_TOOLS_EGRESS_*`` variables (listed in :mod:`egress`);
:func:`local_networks` finds the addresses and gateways of the proxy's own machine, which
the proxy protects like loopback (only an explicit IP rule opens them). Standard library
only.

Example:
    >>> Config.from_env({"E2B_TOOLS_EGRESS_MAX_TOTAL": "64"}).max_total
    64
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from . import netpolicy
from .egress_wire import Upstream, parse_upstream

_NUMBERS = {  # field: (variable, default)
    "port": ("PORT", 3128),
    "idle_timeout": ("IDLE", 600.0),
    "head_timeout": ("HEAD_TIMEOUT", 10.0),
    "connect_timeout": ("CONNECT_TIMEOUT", 10.0),
    "hello_timeout": ("HELLO_TIMEOUT", 5.0),
    "max_per_client": ("MAX_CLIENT", 128),
    "max_total": ("MAX_TOTAL", 2048),
}


@dataclass(frozen=True)
class Config:
    """The proxy's settings (see the module docstring for the environment)."""

    port: int = 3128
    bind: str = "0.0.0.0"
    state: str = "/run/egress"
    upstream: Optional[Upstream] = None
    no_upstream: Tuple[str, ...] = ()
    protected: Tuple[netpolicy.Network, ...] = ()
    idle_timeout: float = 600.0
    head_timeout: float = 10.0
    connect_timeout: float = 10.0
    hello_timeout: float = 5.0
    max_per_client: int = 128
    """Most connections served at once from one source (one sandbox)."""
    max_total: int = 2048
    """Most connections served at once in all (the proxy's memory is bounded)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Settings from the ``E2B_TOOLS_EGRESS_*`` variables (ValueError if one is wrong)."""

        def get(name: str) -> str:
            return env.get("E2B_TOOLS_EGRESS_" + name, "").strip()

        numbers: Dict[str, float] = {}
        for key, (name, default) in _NUMBERS.items():
            try:
                numbers[key] = float(get(name) or default)
            except ValueError:
                numbers[key] = -1
            low, high = (0, 65535) if key == "port" else (1e-3, 1e7)
            if key.startswith("max_"):
                low = 1  # a cap of 0.5 would be 0: no connection at all
            if not low <= numbers[key] <= high:
                what = "a port number" if key == "port" else "a positive number"
                raise ValueError(f"E2B_TOOLS_EGRESS_{name}={get(name)!r} is not {what}")
        cidrs = [p.strip() for p in get("PROTECTED").split(",") if p.strip()]
        try:
            protected = tuple(ipaddress.ip_network(p, strict=False) for p in cidrs)
        except ValueError as exc:
            raise ValueError(f"E2B_TOOLS_EGRESS_PROTECTED: {exc}") from None
        return cls(
            port=int(numbers.pop("port")),
            max_per_client=int(numbers.pop("max_per_client")),
            max_total=int(numbers.pop("max_total")),
            bind=get("BIND") or "0.0.0.0",
            state=get("STATE") or "/run/egress",
            upstream=parse_upstream(get("UPSTREAM")) if get("UPSTREAM") else None,
            no_upstream=tuple(
                e.strip().lower() for e in get("NO_UPSTREAM").split(",") if e.strip()
            ),
            protected=protected,
            **numbers,
        )


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(1 << 20)
    except OSError:
        return ""


def _proc_addresses() -> Iterator[object]:
    last = ""
    for line in _read_text("/proc/net/fib_trie").splitlines():  # "|-- a.b.c.d", "/32 host LOCAL"
        text = line.strip()
        if text.startswith(("|--", "+--")):
            last = (text[3:].split() or [""])[0]
        elif text.startswith("/32 host LOCAL"):
            yield last
    for path, column in (("route", 2), ("if_inet6", 0), ("ipv6_route", 4)):
        for line in _read_text("/proc/net/" + path).splitlines():
            fields = line.split()
            try:
                if path != "route":
                    yield bytes.fromhex(fields[column])  # an address, or a route's next hop
                elif int(fields[3], 16) & 0x2:  # RTF_GATEWAY (a little-endian address)
                    yield int(fields[column], 16).to_bytes(4, "little")
            except (ValueError, IndexError, OverflowError):
                continue


def local_networks() -> List[netpolicy.Network]:
    """This machine's own addresses and gateways as /32 and /128 networks (from Linux's
    ``/proc/net``; missing files or odd lines give nothing)."""
    found: Dict[netpolicy.Network, None] = {}
    for raw in _proc_addresses():
        try:
            network = ipaddress.ip_network(raw)  # type: ignore[arg-type]
        except (ValueError, TypeError):
            continue
        if not network.network_address.is_unspecified:
            found[network] = None
    return list(found)
