"""Network policy rules and decisions (``e2b_tools/agent/netpolicy.py``), pure logic."""

from __future__ import annotations

import ipaddress

import pytest

from e2b_tools.agent import netpolicy
from e2b_tools.agent.netpolicy import Policy, decide, parse_rule

ip = ipaddress.ip_address
PUBLIC = ip("93.184.216.34")
PUBLIC6 = ip("2606:2800:220:1::1")
PRIVATE = ip("10.1.2.3")
METADATA = ip("169.254.169.254")
LOOPBACK = ip("127.0.0.1")


@pytest.mark.parametrize(
    ("text", "normal", "kind", "port"),
    [
        ("example.com", "example.com", "domain", None),
        ("Example.COM.", "example.com", "domain", None),
        ("  example.com ", "example.com", "domain", None),
        ("example.com:443", "example.com:443", "domain", 443),
        ("my_host-1.internal", "my_host-1.internal", "domain", None),
        ("localhost", "localhost", "domain", None),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", "domain", None),
        ("*.example.com", "*.example.com", "wildcard", None),
        ("*.Example.com:8080", "*.example.com:8080", "wildcard", 8080),
        ("1.2.3.4", "1.2.3.4", "network", None),
        ("1.2.3.4/32", "1.2.3.4", "network", None),
        ("1.2.3.4:80", "1.2.3.4:80", "network", 80),
        ("10.0.0.0/8", "10.0.0.0/8", "network", None),
        ("10.0.0.0/8:443", "10.0.0.0/8:443", "network", 443),
        ("2001:DB8::1", "2001:db8::1", "network", None),
        ("[2001:db8::1]:443", "[2001:db8::1]:443", "network", 443),
        ("2001:db8::/32", "2001:db8::/32", "network", None),
        ("[2001:db8::/32]:443", "[2001:db8::/32]:443", "network", 443),
        ("0.0.0.0/0", "0.0.0.0/0", "all", None),
        ("::/0", "0.0.0.0/0", "all", None),
        ("*", "0.0.0.0/0", "all", None),
        ("*:443", "0.0.0.0/0:443", "all", 443),
        ("0.0.0.0/0:443", "0.0.0.0/0:443", "all", 443),
        ("example.com:00443", "example.com:443", "domain", 443),
    ],
)
def test_parse_rule_forms(text: str, normal: str, kind: str, port: int | None) -> None:
    rule = parse_rule(text)
    assert (rule.text, rule.kind, rule.port) == (normal, kind, port)
    assert parse_rule(rule.text) == rule  # the normal form parses back to the same rule


def test_parse_rule_fields() -> None:
    assert parse_rule("*.example.com").domain == "example.com"
    assert parse_rule("10.0.0.0/8").network == ipaddress.ip_network("10.0.0.0/8")
    assert parse_rule("1.2.3.4").network == ipaddress.ip_network("1.2.3.4/32")
    assert parse_rule("*").network is None and parse_rule("*").domain is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("exa mple.com", "whitespace"),
        ("bücher.example", "punycode .*xn--bcher-kva"),
        ("example.com:0", "port '0' is not a number from 1 to 65535"),
        ("example.com:65536", "from 1 to 65535"),
        ("example.com:https", "port 'https'"),
        ("example.com:", "port ''"),
        ("example..com", "'' is not a domain label"),
        ("exa$mple.com", "'exa\\$mple' is not a domain label"),
        ("a" * 64 + ".com", "is not a domain label"),
        (".".join(["a" * 60] * 5), "1 to 253 characters"),
        ("*example.com", "'\\*' may only stand alone"),
        ("foo.*.example.com", "'\\*' may only stand alone"),
        ("1.2.3", "not an IP address or CIDR block"),
        ("1.2.3.4.5", "not an IP address or CIDR block"),
        ("example.123", "neither an IP address nor a domain name"),
        ("10.0.0.1/8", "host bits set \\(did you mean 10.0.0.0/8\\?\\)"),
        ("10.0.0.0/33", "not an IP address or CIDR block"),
        ("[2001:db8::1", "'\\[' without '\\]'"),
        ("[2001:db8::1]443", "only ':port' may follow"),
        ("[1.2.3.4]:80", "brackets hold an IPv6 address"),
        ("fe80::1%eth0", "zone ids"),
        ("2001:db8::zz", "not an IP address"),
        ("a:b:c", "not an IP address"),
        ("http://x.test/path", "names a host or an address, not a URL"),
        ("x.test/path", "not a URL or a path"),
    ],
)
def test_parse_rule_rejects_with_a_message(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        parse_rule(text)
    message = str(info.value)
    assert repr(text) in message  # the rule is quoted
    assert "accepted forms: example.com, *.example.com" in message


def test_parse_rule_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="a rule is a string"):
        parse_rule(443)  # type: ignore[arg-type]


def test_policy_from_lists_normalizes_and_dedups() -> None:
    policy = Policy.from_lists(["Example.com", "example.com.", "*", "::/0"], ["evil.test"])
    assert policy.to_dict() == {
        "allow_out": ["example.com", "0.0.0.0/0"],
        "deny_out": ["evil.test"],
    }
    assert Policy.from_dict(policy.to_dict()) == policy
    assert Policy.from_lists() == Policy()


def test_policy_validation_messages() -> None:
    with pytest.raises(ValueError, match="deny_out: invalid network rule 'bad rule'"):
        Policy.from_lists([], ["ok.test", "bad rule"])
    with pytest.raises(ValueError, match="allow_out has 1001 rules; at most 1000"):
        Policy.from_lists([f"h{i}.test" for i in range(1001)])
    assert len(Policy.from_lists([f"h{i}.test" for i in range(1000)]).allow) == 1000
    with pytest.raises(ValueError, match="allow_out must be a list of rules, not str"):
        Policy.from_lists("example.com")
    with pytest.raises(ValueError, match="unknown network policy key\\(s\\) allowOut"):
        Policy.from_dict({"allowOut": ["example.com"]})
    with pytest.raises(ValueError, match="JSON object"):
        Policy.from_dict(["example.com"])  # type: ignore[arg-type]
    assert Policy.from_dict({"sandbox_id": "s", "allow_out": ["a.test"]}).to_dict() == {
        "allow_out": ["a.test"],
        "deny_out": [],
    }


def test_default_allow_only_for_a_pure_deny_list() -> None:
    assert Policy.from_lists([], ["evil.test"]).default_allow
    assert not Policy.from_lists(["a.test"], ["evil.test"]).default_allow
    assert not Policy.from_lists(["a.test"], []).default_allow
    assert not Policy().default_allow


@pytest.mark.parametrize(
    ("address", "cls"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local/metadata"),
        ("fe80::1", "link-local/metadata"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("64:ff9b::7f00:1", "reserved"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("fd00::1", "private"),
        ("172.32.0.1", "public"),
        ("93.184.216.34", "public"),
        ("2606:2800:220:1::1", "public"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local/metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:8.8.8.8", "public"),
    ],
)
def test_classify(address: str, cls: str) -> None:
    assert netpolicy.classify(ip(address)) == cls
    assert (cls in netpolicy.HARD_CLASSES) == (cls not in ("private", "public"))


def test_classify_extra_protected() -> None:
    extra = [ipaddress.ip_network("10.213.0.0/16"), ipaddress.ip_network("8.8.8.8/32")]
    assert netpolicy.classify(ip("10.213.4.5"), extra) == "protected"
    assert netpolicy.classify(ip("8.8.8.8"), extra) == "protected"
    assert netpolicy.classify(ip("::ffff:8.8.8.8"), extra) == "protected"
    assert netpolicy.classify(ip("10.214.0.1"), extra) == "private"
    assert netpolicy.classify(ip("127.0.0.1"), extra) == "loopback"  # the specific class wins


def _policy(allow: list[str] = [], deny: list[str] = []) -> Policy:  # noqa: B006
    return Policy.from_lists(allow, deny)


def test_explicit_network_rule_opens_hard_protected_addresses() -> None:
    policy = _policy(["127.0.0.1", "169.254.169.254:80", "10.0.0.0/8"])
    d = decide(policy, "127.0.0.1", 8080, [LOOPBACK])
    assert (d.allowed, d.address, d.rule) == (True, LOOPBACK, "127.0.0.1")
    assert d.reason == "allowed by allow_out rule '127.0.0.1'"
    assert decide(policy, "169.254.169.254", 80, [METADATA]).allowed
    d = decide(policy, "169.254.169.254", 443, [METADATA])
    assert not d.allowed and d.rule is None
    assert d.reason == "'169.254.169.254:443' matches no allow_out rule"
    # ... also when the request names the host: the rule names the address
    assert decide(policy, "svc.internal", 80, [PRIVATE]).rule == "10.0.0.0/8"


def test_domain_rule_opens_private_but_not_hard_protected() -> None:
    policy = _policy(["svc.internal", "metadata.test", "localhost"])
    d = decide(policy, "svc.internal", 80, [PRIVATE])
    assert d.allowed and d.rule == "svc.internal"
    d = decide(policy, "metadata.test", 80, [METADATA])
    assert not d.allowed and d.rule is None and d.address == METADATA
    assert d.reason == (
        "169.254.169.254 is a link-local/metadata address; "
        "only an allow_out IP/CIDR rule naming it opens it"
    )
    d = decide(policy, "localhost", 80, [ip("::1"), LOOPBACK])
    assert not d.allowed and d.reason.startswith("::1 is a loopback address")
    extra = [ipaddress.ip_network("10.1.0.0/16")]
    d = decide(policy, "svc.internal", 80, [PRIVATE], extra)
    assert d.reason.startswith("10.1.2.3 is a protected address; only an allow_out IP/CIDR")


def test_all_rule_opens_public_addresses_only() -> None:
    policy = _policy([netpolicy.ALL_TRAFFIC])
    d = decide(policy, "example.com", 443, [PUBLIC])
    assert d.allowed and d.rule == "0.0.0.0/0"
    assert decide(policy, "example.com", 443, [PUBLIC6]).allowed
    d = decide(policy, "intranet.test", 80, [PRIVATE])
    assert not d.allowed
    assert d.reason == (
        "10.1.2.3 is a private address; only an allow_out rule naming the host or the address "
        "opens it"
    )
    assert not decide(policy, "169.254.169.254", 80, [METADATA]).allowed
    assert not decide(policy, "x", 80, [ip("::ffff:10.0.0.1")]).allowed
    assert not decide(policy, "x", 80, [ip("::ffff:127.0.0.1")]).allowed
    extra = [ipaddress.ip_network("8.8.8.0/24")]
    assert not decide(policy, "x", 80, [ip("8.8.8.8")], extra).allowed


def test_first_allowed_address_wins() -> None:
    policy = _policy(["*"])
    d = decide(policy, "dual.test", 443, [PRIVATE, PUBLIC])
    assert d.allowed and d.address == PUBLIC
    d = decide(policy, "dual.test", 443, [PRIVATE, METADATA])
    assert not d.allowed and d.address == PRIVATE  # the first address's denial


def test_allow_takes_precedence_over_deny() -> None:
    policy = _policy(["api.example.com"], ["*.example.com", "*"])
    assert decide(policy, "api.example.com", 443, [PUBLIC]).allowed
    d = decide(policy, "www.example.com", 443, [PUBLIC])
    assert not d.allowed and d.rule == "*.example.com"
    assert d.reason == "denied by deny_out rule '*.example.com'"
    d = decide(policy, "other.test", 443, [PUBLIC])
    assert d.rule == "0.0.0.0/0" and d.reason == "denied by deny_out rule '0.0.0.0/0'"


def test_deny_rules_match_names_and_addresses() -> None:
    policy = _policy([], ["evil.test", "93.184.216.0/24", "*:25"])
    d = decide(policy, "evil.test", 443, [ip("1.1.1.1")])
    assert not d.allowed and d.reason == "denied by deny_out rule 'evil.test'"
    d = decide(policy, "fine.test", 443, [PUBLIC])
    assert not d.allowed and d.rule == "93.184.216.0/24"
    assert decide(policy, "fine.test", 25, [ip("1.1.1.1")]).rule == "0.0.0.0/0:25"
    d = decide(policy, "fine.test", 443, [ip("1.1.1.1")])
    assert d.allowed and d.rule is None and d.address == ip("1.1.1.1")


def test_pure_deny_list_allows_public_only() -> None:
    policy = _policy([], ["evil.test"])
    assert decide(policy, "example.com", 80, [PUBLIC]).allowed
    d = decide(policy, "intranet.test", 80, [PRIVATE])
    assert not d.allowed and "private address" in d.reason
    d = decide(policy, "169.254.169.254", 80, [METADATA])
    assert not d.allowed and "link-local/metadata" in d.reason


def test_allow_list_alone_denies_the_rest() -> None:
    policy = _policy(["example.com"])
    d = decide(policy, "x.test", 443, [PUBLIC])
    assert not d.allowed and d.rule is None
    assert d.reason == "'x.test:443' matches no allow_out rule"
    d = decide(policy, "2001:db8::1", 443, [ip("2001:db8::1")])
    assert d.reason == "'[2001:db8::1]:443' matches no allow_out rule"
    assert not decide(Policy(), "example.com", 80, [PUBLIC]).allowed


def test_port_specific_rules() -> None:
    policy = _policy(["example.com:443", "10.0.0.0/8:5432", "*:8443"], ["example.com:80"])
    assert decide(policy, "example.com", 443, [PUBLIC]).allowed
    d = decide(policy, "example.com", 80, [PUBLIC])
    assert not d.allowed and d.rule == "example.com:80"
    assert not decide(policy, "example.com", 22, [PUBLIC]).allowed
    assert decide(policy, "db.internal", 5432, [PRIVATE]).allowed
    assert not decide(policy, "db.internal", 5433, [PRIVATE]).allowed
    assert decide(policy, "any.test", 8443, [PUBLIC]).allowed
    assert not decide(policy, "any.test", 8443, [PRIVATE]).allowed


def test_wildcard_matches_subdomains_at_any_depth_not_the_apex() -> None:
    policy = _policy(["*.pypi.test"])
    assert decide(policy, "files.pypi.test", 443, [PUBLIC]).allowed
    assert decide(policy, "a.b.c.pypi.test", 443, [PUBLIC]).allowed
    assert decide(policy, "FILES.PYPI.TEST.", 443, [PUBLIC]).allowed
    assert not decide(policy, "pypi.test", 443, [PUBLIC]).allowed
    assert not decide(policy, "evilpypi.test", 443, [PUBLIC]).allowed
    assert not decide(policy, "pypi.test.evil", 443, [PUBLIC]).allowed


def test_domain_rules_never_match_ip_literals() -> None:
    policy = _policy(["*.in-addr.arpa", "1.2.3.4.example"], ["93.184.216.34.nip.test"])
    assert not decide(policy, "93.184.216.34", 80, [PUBLIC]).allowed
    assert decide(_policy(["93.184.216.34"]), "[93.184.216.34]", 80, [PUBLIC]).allowed


def test_ipv4_mapped_addresses_match_ipv4_rules() -> None:
    mapped = ip("::ffff:10.1.2.3")
    assert decide(_policy(["10.0.0.0/8"]), "x", 80, [mapped]).allowed
    assert not decide(_policy(["10.0.0.0/8"]), "x", 80, [ip("::ffff:11.0.0.1")]).allowed
    d = decide(_policy(["1.1.1.1"], ["10.0.0.0/8"]), "x", 80, [mapped])
    assert d.rule == "10.0.0.0/8" and not d.allowed
    # and an IPv4-mapped rule matches the IPv4 address
    assert decide(_policy(["::ffff:10.1.2.3"]), "x", 80, [PRIVATE]).allowed


def test_decide_without_addresses_uses_the_name_alone() -> None:
    policy = _policy(["example.com", "10.0.0.0/8"], ["evil.test"])
    d = decide(policy, "example.com", 443, [])
    assert d.allowed and d.address is None and d.rule == "example.com"
    d = decide(policy, "evil.test", 443, [])
    assert not d.allowed and d.address is None and d.rule == "evil.test"
    assert not decide(policy, "other.test", 443, []).allowed
    assert decide(_policy(["*"]), "anything.test", 443, []).allowed
    assert decide(_policy([], ["evil.test"]), "anything.test", 443, []).allowed


def test_decide_name_skips_lookups_only_when_no_address_can_change_it() -> None:
    assert netpolicy.decide_name(_policy(["example.com"]), "example.com", 443) is None
    d = netpolicy.decide_name(_policy(["example.com"]), "made-up.test", 443)
    assert d is not None and not d.allowed
    # an IP rule (for this port) could still allow it once resolved
    assert netpolicy.decide_name(_policy(["10.0.0.0/8"]), "made-up.test", 443) is None
    assert netpolicy.decide_name(_policy(["10.0.0.0/8:5432"]), "made-up.test", 443) is not None
    d = netpolicy.decide_name(_policy([], ["evil.test"]), "evil.test", 443)
    assert d is not None and d.rule == "evil.test"


def test_matches() -> None:
    rule = parse_rule("*.example.com:443")
    assert netpolicy.matches(rule, "a.example.com", 443, None)
    assert not netpolicy.matches(rule, "a.example.com", 80, None)
    assert not netpolicy.matches(rule, None, 443, PUBLIC)
    assert netpolicy.matches(parse_rule("93.184.216.0/24"), None, 1, PUBLIC)
    assert not netpolicy.matches(parse_rule("93.184.216.0/24"), "x", 1, None)
    assert netpolicy.is_ip_literal("[::1]") and not netpolicy.is_ip_literal("example.com")


def test_describe() -> None:
    describe = netpolicy.describe
    assert describe(_policy(["example.com", "*.pypi.test:443"])) == (
        "Network: only example.com, *.pypi.test:443 (everything else is blocked)."
    )
    assert describe(_policy([], ["evil.test"])) == "Network: everything except evil.test."
    assert describe(_policy([netpolicy.ALL_TRAFFIC])) == (
        "Network: the public internet (private, host and metadata addresses blocked)."
    )
    assert describe(_policy(["*:443", "10.0.0.0/8"], ["evil.test"])) == (
        "Network: the public internet on port 443, 10.0.0.0/8, except evil.test "
        "(private, host and metadata addresses blocked)."
    )
    assert describe(Policy()) == "Network: none (every destination is blocked)."
    assert describe(_policy([], ["*"])) == "Network: none (every destination is blocked)."
    assert describe(_policy(["a.test"], ["*"])) == (
        "Network: only a.test (everything else is blocked)."
    )
    assert describe(_policy([], ["*:25", "evil.test"])) == (
        "Network: everything except any host on port 25, evil.test."
    )
    many = describe(_policy([f"h{i}.test" for i in range(20)]))
    assert many.startswith("Network: only h0.test, ") and "12 more" in many
