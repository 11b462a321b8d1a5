"""How ``network=`` is read: modes, policies, E2B's spellings (engine-free)."""

from __future__ import annotations

import pytest
from local_backend import LocalBackend

from e2b_tools import ALL_TRAFFIC, InvalidArgumentError, NetworkPolicy, Sandbox, SandboxConfig
from e2b_tools._config import proxied_policy, resolve_network
from e2b_tools.backends.egress import Attachment, upstream_env


def test_modes_policies_and_e2b_dicts() -> None:
    assert SandboxConfig().network == "none"
    assert SandboxConfig(network="full").network == "full"
    policy = SandboxConfig(network={"allow_out": ["PyPI.Internal.Example."]}).network
    assert policy == NetworkPolicy(allow_out=["pypi.internal.example"])
    assert proxied_policy("none") is None
    assert proxied_policy("full") == NetworkPolicy(allow_out=[ALL_TRAFFIC])
    with pytest.raises(ValueError, match="'none', 'full' or a policy"):
        SandboxConfig(network="bridge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"invalid network rule 'http://x\.test/'"):
        NetworkPolicy(allow_out=["http://x.test/"])
    with pytest.raises(ValueError, match="extra"):
        NetworkPolicy.model_validate({"allow": ["x.test"]})


def test_allow_internet_access_as_in_e2b() -> None:
    assert resolve_network("none", True) == "full"
    assert resolve_network("full", False) == "none"
    assert resolve_network("none", None) == "none"
    policy = {"allow_out": ["a.test"]}
    assert resolve_network(policy, True) == NetworkPolicy(allow_out=["a.test"])
    # False with a policy: E2B's equivalence, deny_out gets ALL_TRAFFIC.
    assert resolve_network(policy, False) == NetworkPolicy(
        allow_out=["a.test"], deny_out=[ALL_TRAFFIC]
    )


def test_the_policy_survives_the_configuration_label() -> None:
    config = SandboxConfig(network={"allow_out": ["a.test:443"], "deny_out": ["10.0.0.0/8"]})
    again = SandboxConfig.model_validate_json(config.model_dump_json(exclude={"envs"}))
    assert again.network == config.network
    assert SandboxConfig.model_validate_json(SandboxConfig().model_dump_json()).network == "none"


def test_bad_policies_are_refused_before_anything_is_created() -> None:
    with pytest.raises(InvalidArgumentError, match=r"invalid sandbox settings.*'a b'"):
        Sandbox.create(network={"allow_out": ["a b"]})
    with pytest.raises(InvalidArgumentError, match="invalid sandbox settings"):
        Sandbox.create(network={"allow_out": [], "deny": []})


def test_descriptions_say_what_the_policy_allows() -> None:
    assert SandboxConfig().describe_network() == "No network access."
    only = SandboxConfig(network={"allow_out": ["a.test"]}).describe_network()
    assert "only a.test" in only and "403" in only
    deny = SandboxConfig(network={"deny_out": ["evil.test"]}).describe_network()
    assert "evil.test" in deny and "except" in deny
    closed = SandboxConfig(network={"allow_out": []}).describe_network()
    assert "nothing" in closed.lower() or "blocked" in closed.lower()


def test_the_sandbox_gets_the_proxy_in_the_usual_variables() -> None:
    env = Attachment("net", "10.213.0.2", "10.213.0.3").env()
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert env[name] == "http://10.213.0.3:3128"
    assert "127.0.0.1" in env["NO_PROXY"] and env["no_proxy"] == env["NO_PROXY"]


def test_the_hosts_own_proxy_becomes_the_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("E2B_TOOLS_EGRESS_UPSTREAM", raising=False)
    assert upstream_env() == {}
    monkeypatch.setenv("http_proxy", "http://corp-proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", ".internal")
    assert upstream_env() == {
        "E2B_TOOLS_EGRESS_UPSTREAM": "http://corp-proxy.internal:3128",
        "E2B_TOOLS_EGRESS_NO_UPSTREAM": ".internal",
    }
    monkeypatch.setenv("E2B_TOOLS_EGRESS_UPSTREAM", "")
    assert upstream_env() == {}  # set but empty: no upstream, whatever the host uses


def test_config_limits_are_not_overridden_by_create_defaults(backend: LocalBackend) -> None:
    """``create(config=...)`` keeps the config's cpu and memory unless they are given."""
    config = SandboxConfig(memory="2g", cpu=2, network="none")
    with Sandbox.create(backend=backend, config=config, timeout=60) as sbx:
        assert (sbx.config.cpu, sbx.config.memory) == (2.0, "2g")
    with Sandbox.create(backend=backend, config=config, memory="512m", timeout=60) as sbx:
        assert (sbx.config.cpu, sbx.config.memory) == (2.0, "512m")
    with Sandbox.create(backend=backend, timeout=60) as sbx:
        assert (sbx.config.cpu, sbx.config.memory) == (1.0, "1g")
