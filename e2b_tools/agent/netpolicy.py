"""Network policy rules and the decision the egress proxy takes on one request.

Standard library only and free of I/O: the egress proxy (``egress.py``) imports it inside
its container, and the host imports it to validate a policy before a sandbox starts.

A rule names a destination in one of these forms (each takes an optional ``:port``)::

    example.com        the name itself
    *.example.com      any subdomain, at any depth (not example.com itself)
    1.2.3.4            an address        [2001:db8::1]:443 (an IPv6 one with a port)
    10.0.0.0/8         a block           2001:db8::/32
    0.0.0.0/0, ::/0, * every destination (kind "all"); "*:443" is every host on 443

Addresses fall in three classes. HARD-protected ones (loopback, link-local and the cloud
metadata address, unspecified, multicast, reserved, broadcast, and whatever the proxy adds:
itself, its gateways, the sandbox subnets) open only to an ``allow_out`` IP/CIDR rule naming
them. PRIVATE ones (RFC 1918, CGNAT, IPv6 ULA) also open to a domain rule naming the host.
PUBLIC ones open to anything that allows them, including an "all" rule.

Example:
    >>> policy = Policy.from_lists(["*.pypi.test:443"], [])
    >>> decide(policy, "files.pypi.test", 443, [ipaddress.ip_address("93.184.216.34")]).allowed
    True
    >>> decide(policy, "pypi.test", 443, []).reason
    "'pypi.test:443' matches no allow_out rule"
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

ALL_TRAFFIC = "0.0.0.0/0"
"""Every destination, as E2B spells it (the normalized text of an "all" rule)."""

MAX_RULES = 1000
"""Most rules a policy may have in each of its two lists."""

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

FORMS = (
    "example.com, *.example.com, 1.2.3.4, 10.0.0.0/8, 2001:db8::1, 2001:db8::/32, "
    "or 0.0.0.0/0 (or * or ::/0) for everything, each with an optional :port "
    "(example.com:443, 10.0.0.0/8:443, [2001:db8::1]:443, *:443)"
)
"""The accepted rule forms, as error messages list them."""

_LABEL = re.compile(r"[a-z0-9_-]{1,63}\Z")
_DIGITS = re.compile(r"[0-9]+\Z")

# Address classes. The first group is HARD-protected: only an explicit IP/CIDR rule opens it.
LOOPBACK = "loopback"
LINK_LOCAL = "link-local/metadata"
UNSPECIFIED = "unspecified"
MULTICAST = "multicast"
RESERVED = "reserved"
BROADCAST = "broadcast"
PROTECTED = "protected"
PRIVATE = "private"
PUBLIC = "public"
HARD_CLASSES = frozenset(
    {LOOPBACK, LINK_LOCAL, UNSPECIFIED, MULTICAST, RESERVED, BROADCAST, PROTECTED}
)
"""Classes of :func:`classify` that only an ``allow_out`` IP/CIDR rule naming them opens."""

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network
_V4_CLASSES: Tuple[Tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("255.255.255.255/32"), BROADCAST),
    (_V4("127.0.0.0/8"), LOOPBACK),
    (_V4("169.254.0.0/16"), LINK_LOCAL),
    (_V4("0.0.0.0/8"), UNSPECIFIED),
    (_V4("224.0.0.0/4"), MULTICAST),
    (_V4("240.0.0.0/4"), RESERVED),
    (_V4("10.0.0.0/8"), PRIVATE),
    (_V4("172.16.0.0/12"), PRIVATE),
    (_V4("192.168.0.0/16"), PRIVATE),
    (_V4("100.64.0.0/10"), PRIVATE),
)
_V6_CLASSES: Tuple[Tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::1/128"), LOOPBACK),
    (_V6("::/128"), UNSPECIFIED),
    (_V6("fe80::/10"), LINK_LOCAL),
    (_V6("fec0::/10"), RESERVED),
    (_V6("ff00::/8"), MULTICAST),
    (_V6("fc00::/7"), PRIVATE),
)


@dataclass(frozen=True)
class Rule:
    """One parsed rule (see :func:`parse_rule`)."""

    text: str
    """The normalized rule, as :meth:`Policy.to_dict` gives it back."""
    kind: str
    """``"domain"``, ``"wildcard"``, ``"network"`` or ``"all"``."""
    domain: Optional[str] = None
    """The name (without ``*.`` for a wildcard); None for other kinds."""
    network: Optional[Network] = None
    """The address block (a single address is a /32 or /128); None for other kinds."""
    port: Optional[int] = None
    """The one port the rule is about; None for every port."""


@dataclass(frozen=True)
class Decision:
    """What :func:`decide` concluded for one request."""

    allowed: bool
    address: Optional[Address]
    """The address the request may go to (or the first one refused); None if unresolved."""
    rule: Optional[str]
    """Text of the rule that decided; None when the default or an address class did."""
    reason: str
    """One short sentence naming the rule or the protection."""


def _reject(text: object, why: str) -> ValueError:
    return ValueError(f"invalid network rule {text!r}: {why}; accepted forms: {FORMS}")


def _port(text: str, rule: str) -> int:
    if not _DIGITS.match(text) or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise _reject(rule, f"port {text!r} is not a number from 1 to 65535")
    return int(text)


def _domain(text: str, rule: str) -> str:
    name = text.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name.isascii():
        try:
            hint = f" ({name.encode('idna').decode('ascii')!r})"
        except UnicodeError:
            hint = ""
        raise _reject(rule, f"non-ASCII names must be written in punycode{hint}")
    if not name or len(name) > 253:
        raise _reject(rule, "a domain name has 1 to 253 characters")
    labels = name.split(".")
    for label in labels:
        if not _LABEL.match(label):
            raise _reject(
                rule,
                f"{label!r} is not a domain label (1 to 63 of a-z, 0-9, '-' and '_')",
            )
    if _DIGITS.match(labels[-1]):
        raise _reject(rule, "it is neither an IP address nor a domain name")
    return name


def _network(text: str, rule: str) -> Network:
    try:
        if "/" in text:
            return ipaddress.ip_network(text, strict=True)
        return ipaddress.ip_network(ipaddress.ip_address(text))
    except ValueError as exc:
        if "host bits set" in str(exc):
            block = ipaddress.ip_network(text, strict=False)
            raise _reject(rule, f"host bits set (did you mean {block}?)") from None
        raise _reject(rule, f"not an IP address or CIDR block ({exc})") from None


def _network_text(network: Network) -> str:
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def _build(rule: str, host: str, port: Optional[int], bracketed: bool) -> Rule:
    suffix = "" if port is None else f":{port}"
    if host == "*" and not bracketed:
        return Rule(ALL_TRAFFIC + suffix, "all", port=port)
    if host.startswith("*."):
        domain = _domain(host[2:], rule)
        return Rule(f"*.{domain}{suffix}", "wildcard", domain=domain, port=port)
    if "*" in host:
        raise _reject(rule, "'*' may only stand alone or open a name as '*.'")
    if "%" in host:
        raise _reject(rule, "IPv6 zone ids ('%eth0') are not supported")
    looks_ip = bracketed or ":" in host or "/" in host or bool(re.match(r"[0-9.]+\Z", host))
    if looks_ip:
        network = _network(host, rule)
        if network.prefixlen == 0:
            return Rule(ALL_TRAFFIC + suffix, "all", port=port)
        text = _network_text(network)
        if port is not None:
            text = f"[{text}]:{port}" if network.version == 6 else f"{text}:{port}"
        return Rule(text, "network", network=network, port=port)
    domain = _domain(host, rule)
    return Rule(domain + suffix, "domain", domain=domain, port=port)


def parse_rule(text: str) -> Rule:
    """Parse one ``allow_out``/``deny_out`` rule.

    Raises:
        ValueError: naming the rule, what is wrong with it and the accepted forms.

    Example:
        >>> parse_rule("Example.COM.:443").text
        'example.com:443'
        >>> parse_rule("[2001:DB8::1]:443").text
        '[2001:db8::1]:443'
    """
    if not isinstance(text, str):
        raise _reject(text, "a rule is a string")
    rule = text.strip()
    if "://" in rule or ("/" in rule and not is_ip_literal(rule.split("/")[0].strip("["))):
        raise _reject(text, "a rule names a host or an address, not a URL or a path")
    if not rule:
        raise _reject(text, "it is empty")
    if any(c.isspace() for c in rule):
        raise _reject(text, "it contains whitespace")
    if rule.startswith("["):
        end = rule.find("]")
        if end < 0:
            raise _reject(text, "'[' without ']'")
        rest = rule[end + 1 :]
        if rest and not rest.startswith(":"):
            raise _reject(text, "only ':port' may follow ']'")
        inner = rule[1:end]
        if ":" not in inner:
            raise _reject(text, "brackets hold an IPv6 address")
        return _build(text, inner, _port(rest[1:], text) if rest else None, True)
    if rule.count(":") == 1:
        host, port = rule.split(":")
        return _build(text, host, _port(port, text), False)
    return _build(text, rule, None, False)


def _rules(name: str, texts: Optional[Iterable[str]]) -> Tuple[Rule, ...]:
    if texts is None:
        return ()
    if isinstance(texts, (str, bytes, Mapping)) or not hasattr(texts, "__iter__"):
        raise ValueError(f"{name} must be a list of rules, not {type(texts).__name__}")
    items = list(texts)
    if len(items) > MAX_RULES:
        raise ValueError(f"{name} has {len(items)} rules; at most {MAX_RULES} are allowed")
    rules: Dict[str, Rule] = {}
    for item in items:
        try:
            rule = parse_rule(item)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        rules.setdefault(rule.text, rule)
    return tuple(rules.values())


@dataclass(frozen=True)
class Policy:
    """A sandbox's ``allow_out`` and ``deny_out`` rules, parsed.

    Example:
        >>> Policy.from_lists(["example.com", "EXAMPLE.com"], ["*"]).to_dict()
        {'allow_out': ['example.com'], 'deny_out': ['0.0.0.0/0']}
    """

    allow: Tuple[Rule, ...] = ()
    deny: Tuple[Rule, ...] = ()

    @classmethod
    def from_lists(
        cls,
        allow_out: Optional[Iterable[str]] = None,
        deny_out: Optional[Iterable[str]] = None,
    ) -> Policy:
        """Parse, validate and deduplicate both lists (order kept; ValueError if invalid)."""
        return cls(_rules("allow_out", allow_out), _rules("deny_out", deny_out))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """The policy of ``{"allow_out": [...], "deny_out": [...]}`` (a ``sandbox_id``
        key is ignored; other keys are a ValueError)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a network policy is a JSON object, not {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in ("allow_out", "deny_out", "sandbox_id"))
        if unknown:
            raise ValueError(
                f"unknown network policy key(s) {', '.join(unknown)}; "
                "expected allow_out and deny_out"
            )
        return cls.from_lists(data.get("allow_out"), data.get("deny_out"))

    def to_dict(self) -> Dict[str, List[str]]:
        """The normalized rule texts, as :meth:`from_dict` takes them."""
        return {
            "allow_out": [r.text for r in self.allow],
            "deny_out": [r.text for r in self.deny],
        }

    @property
    def default_allow(self) -> bool:
        """True for a pure deny list: what no rule names is allowed (if public)."""
        return not self.allow and bool(self.deny)


def _in(address: Address, network: Network) -> bool:
    if address.version == network.version:
        return address in network
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        return mapped is not None and mapped in network
    return ipaddress.IPv6Address(f"::ffff:{address}") in network


def classify(address: Address, extra_protected: Sequence[Network] = ()) -> str:
    """The class of ``address``: one of :data:`HARD_CLASSES`, ``"private"`` or ``"public"``.

    An IPv4-mapped IPv6 address is classified by the IPv4 address it maps.

    Example:
        >>> classify(ipaddress.ip_address("::ffff:169.254.169.254"))
        'link-local/metadata'
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        found = classify(address.ipv4_mapped, extra_protected)
        if found not in HARD_CLASSES and any(_in(address, n) for n in extra_protected):
            return PROTECTED
        return found
    table: Sequence[Tuple[Network, str]]
    table = _V4_CLASSES if address.version == 4 else _V6_CLASSES
    for network, name in table:
        if address in network and name != PRIVATE:
            return name
    if address.version == 6 and address.is_reserved:
        return RESERVED
    if any(_in(address, n) for n in extra_protected):
        return PROTECTED
    for network, name in table:
        if address in network:
            return name
    return PUBLIC


def _host(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host[:-1] if host.endswith(".") and len(host) > 1 else host


def is_ip_literal(host: str) -> bool:
    """True if ``host`` is an IP address (IPv6 possibly in brackets), not a name."""
    try:
        ipaddress.ip_address(_host(host))
    except ValueError:
        return False
    return True


def matches(rule: Rule, host: Optional[str], port: int, address: Optional[Address]) -> bool:
    """Whether ``rule`` names this destination, whatever the address's class.

    ``host`` is the name (None for an IP literal: domain rules never match it), ``address``
    the resolved address (None when unknown: network rules never match then).
    """
    if rule.port is not None and rule.port != port:
        return False
    if rule.kind == "all":
        return True
    if rule.kind == "network":
        return address is not None and rule.network is not None and _in(address, rule.network)
    if host is None or rule.domain is None:
        return False
    if rule.kind == "wildcard":
        return host.endswith("." + rule.domain)
    return host == rule.domain


def _class_denial(address: Address, cls: str) -> Decision:
    if cls == PRIVATE:
        reason = (
            f"{address} is a private address; "
            "only an allow_out rule naming the host or the address opens it"
        )
    else:
        article = "an" if cls[0] in "aeiou" else "a"
        reason = (
            f"{address} is {article} {cls} address; "
            "only an allow_out IP/CIDR rule naming it opens it"
        )
    return Decision(False, address, None, reason)


def _decide_one(
    policy: Policy,
    name: Optional[str],
    label: str,
    port: int,
    address: Optional[Address],
    extra_protected: Sequence[Network],
) -> Decision:
    cls = None if address is None else classify(address, extra_protected)
    blocked = False
    for rule in policy.allow:
        if not matches(rule, name, port, address):
            continue
        if (
            rule.kind == "network"
            or (rule.kind in ("domain", "wildcard") and cls not in HARD_CLASSES)
            or (rule.kind == "all" and cls in (None, PUBLIC))
        ):
            return Decision(True, address, rule.text, f"allowed by allow_out rule {rule.text!r}")
        blocked = True
    for rule in policy.deny:
        if matches(rule, name, port, address):
            return Decision(False, address, rule.text, f"denied by deny_out rule {rule.text!r}")
    if policy.default_allow and cls in (None, PUBLIC):
        return Decision(True, address, None, "allowed: it matches no deny_out rule")
    if address is not None and cls is not None and (blocked or policy.default_allow):
        return _class_denial(address, cls)
    return Decision(False, address, None, f"{f'{label}:{port}'!r} matches no allow_out rule")


def decide(
    policy: Policy,
    host: str,
    port: int,
    addresses: Sequence[Address],
    extra_protected: Sequence[Network] = (),
) -> Decision:
    """Whether a request to ``host:port`` may go out, and to which of ``addresses``.

    ``host`` is a domain name or an IP literal (then ``addresses`` is that address and
    domain rules never match). The first address allowed wins; if none is, the decision
    is the first address's denial. With no addresses the name alone decides (network
    rules cannot match then) and ``address`` is None. An ``allow_out`` rule wins over a
    ``deny_out`` rule; an IP/CIDR rule opens any address it names, a domain rule private
    and public ones, an "all" rule public ones only; what no rule matches is denied,
    unless the policy is a pure deny list (then public addresses are allowed).
    """
    normal = _host(host)
    name = None if is_ip_literal(normal) else normal
    label = f"[{normal}]" if ":" in normal else normal
    if not addresses:
        return _decide_one(policy, name, label, port, None, extra_protected)
    first: Optional[Decision] = None
    for address in addresses:
        decision = _decide_one(policy, name, label, port, address, extra_protected)
        if decision.allowed:
            return decision
        first = first or decision
    assert first is not None
    return first


def decide_name(policy: Policy, host: str, port: int) -> Optional[Decision]:
    """The denial of ``host:port`` when no address could lift it, else None.

    The proxy asks this before resolving a name, so that a name the policy refuses
    anyway is never looked up (lookups of made-up names would leak data through DNS).
    """
    decision = decide(policy, host, port, [])
    if decision.allowed:
        return None
    if any(r.kind == "network" and r.port in (None, port) for r in policy.allow):
        return None
    return decision


def _listing(rules: Sequence[Rule], everything: str, limit: int = 8) -> str:
    texts = [
        (everything + (f" on port {r.port}" if r.port else "")) if r.kind == "all" else r.text
        for r in rules
    ]
    if len(texts) > limit:
        texts = [*texts[:limit], f"{len(texts) - limit} more"]
    return ", ".join(texts)


def describe(policy: Policy) -> str:
    """The policy in one line, for tool descriptions.

    Example:
        >>> describe(Policy.from_lists(["example.com", "*.pypi.test:443"]))
        'Network: only example.com, *.pypi.test:443 (everything else is blocked).'
        >>> describe(Policy.from_lists([], ["evil.test"]))
        'Network: everything except evil.test.'
    """
    deny_all = any(r.kind == "all" and r.port is None for r in policy.deny)
    if not policy.allow and (deny_all or not policy.deny):
        return "Network: none (every destination is blocked)."
    if policy.default_allow:
        return f"Network: everything except {_listing(policy.deny, 'any host')}."
    deny = [r for r in policy.deny if not (r.kind == "all" and r.port is None)]
    but = f", except {_listing(deny, 'any host')}" if deny else ""
    if any(r.kind == "all" for r in policy.allow):
        return (
            f"Network: {_listing(policy.allow, 'the public internet')}{but} "
            "(private, host and metadata addresses blocked)."
        )
    return f"Network: only {_listing(policy.allow, '')}{but} (everything else is blocked)."
