"""``e2b-tools doctor``: is this machine ready to run sandboxes, and if not, what to do."""

from __future__ import annotations

import ipaddress
import random
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import click
import docker
import docker.errors

from e2b_tools._exceptions import SandboxError

from ._common import docker_client, echo_json, get_backend, json_option, one_line

Status = Literal["ok", "warn", "fail"]

_MARK = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}
_PLAIN_MARK = {"ok": "✓", "warn": "!", "fail": "✗"}

DOCTOR_MEMORY = 256 << 20
"""Memory limit of the throwaway sandbox that checks the cgroup limits."""

_READ_LIMITS = (
    "for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do "
    '[ -r "$f" ] && { echo "memory $(cat "$f")"; break; }; done; '
    "for f in /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max; do "
    '[ -r "$f" ] && { echo "pids $(cat "$f")"; break; }; done'
)


@dataclass
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str
    hint: str = ""


class Doctor:
    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.client: docker.DockerClient | None = None

    def add(self, name: str, status: Status, detail: str, hint: str = "") -> bool:
        self.checks.append(Check(name, status, detail, hint))
        return status != "fail"

    def run(self) -> list[Check]:
        if not self.engine():
            for name in ("runtime", "image", "limits", "egress image", "networks"):
                self.add(name, "fail", "skipped: no engine")
            return self.checks
        self.runtime()
        image_ok = self.image()
        if image_ok:
            self.limits()
        else:
            self.add("limits", "fail", "skipped: no current default image")
        self.egress_image()
        self.networks()
        return self.checks

    def guard(self, name: str, hint: str, check: Callable[[], bool]) -> bool:
        try:
            return check()
        except (SandboxError, docker.errors.DockerException, OSError) as exc:
            return self.add(name, "fail", one_line(str(exc)), hint)

    # -- the checks ----------------------------------------------------------------
    def engine(self) -> bool:
        from e2b_tools.backends.docker import engine_address

        hint = (
            "start the engine (on Linux: `sudo systemctl start docker`; elsewhere: Docker "
            "Desktop) or set DOCKER_HOST to one that answers"
        )
        try:
            self.client = docker_client()
            version = self.client.version()
        except (SandboxError, docker.errors.DockerException, OSError) as exc:
            return self.add("engine", "fail", one_line(str(exc)), hint)
        return self.add(
            "engine",
            "ok",
            f"Docker Engine {version.get('Version')} (API {version.get('ApiVersion')}) "
            f"at {engine_address()}",
        )

    def runtime(self) -> None:
        assert self.client is not None
        info = self.client.info()
        runtimes = sorted(info.get("Runtimes") or {})
        default = info.get("DefaultRuntime", "runc")
        cgroup = f"cgroup v{info.get('CgroupVersion', '?')} ({info.get('CgroupDriver', '?')})"
        detail = f"runtimes {', '.join(runtimes) or '?'} (default {default}); {cgroup}"
        if "runsc" in runtimes:
            self.add("runtime", "ok", detail + "; gVisor available: SandboxConfig(runtime='runsc')")
        else:
            self.add(
                "runtime",
                "warn",
                detail + "; runsc (gVisor) not installed",
                "optional: install gVisor (runsc) and pass SandboxConfig(runtime='runsc') for a "
                "kernel boundary of its own (docs/security.md)",
            )

    def image(self) -> bool:
        from e2b_tools._bundle import agent_hash
        from e2b_tools.images.build import _stale
        from e2b_tools.images.names import DEFAULT_IMAGE

        assert self.client is not None
        why = _stale(self.client, "default")
        if why is None:
            return self.add("image", "ok", f"{DEFAULT_IMAGE} current (agent {agent_hash()})")
        return self.add(
            "image",
            "fail",
            f"{DEFAULT_IMAGE} {why}",
            "run `e2b-tools image build` (only the agent layer when the agent changed)",
        )

    def limits(self) -> bool:
        hint = (
            "the engine does not apply memory/pids limits: enable the cgroup controllers "
            "(cgroup v2, or on v1 boot with `cgroup_enable=memory swapaccount=1`)"
        )
        return self.guard("limits", hint, lambda: self._limits(hint))

    def _limits(self, hint: str) -> bool:
        from e2b_tools._config import SandboxConfig
        from e2b_tools._sync import Sandbox

        config = SandboxConfig()
        with Sandbox.create(
            timeout=60,
            memory=DOCTOR_MEMORY,
            metadata={"e2b-tools": "doctor"},
            backend=get_backend(),
        ) as sbx:
            text = sbx.commands.run(_READ_LIMITS, timeout=30).stdout
        found = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
        memory, pids = found.get("memory", "?").strip(), found.get("pids", "?").strip()
        detail = f"memory limit {memory} (want {DOCTOR_MEMORY}), pids limit {pids} (want "
        detail += f"{config.pids_limit})"
        ok = memory == str(DOCTOR_MEMORY) and pids == str(config.pids_limit)
        return self.add("limits", "ok" if ok else "fail", detail, "" if ok else hint)

    def egress_image(self) -> bool:
        from e2b_tools import _bundle
        from e2b_tools.backends.docker import DockerBackend
        from e2b_tools.images.names import DEFAULT_IMAGE

        hint = "the egress proxy runs from the default image: run `e2b-tools image build`"

        def check() -> bool:
            assert self.client is not None
            DockerBackend(self.client).command_for(DEFAULT_IMAGE, _bundle.EGRESS_ENTRY)
            running = self.client.api.containers(filters={"label": "e2b-tools.egress=proxy"})
            state = "running" if running else "not running (started with the first policy)"
            return self.add("egress image", "ok", f"proxy image {DEFAULT_IMAGE}; proxy {state}")

        return self.guard("egress image", hint, check)

    def networks(self) -> bool:
        from e2b_tools.backends.egress import SUBNET_POOL

        hint = (
            "network policies need internal bridge networks: check the engine's bridge "
            "driver, or set E2B_TOOLS_SUBNET_POOL to a range no other network uses"
        )
        return self.guard("networks", hint, lambda: self._networks(SUBNET_POOL, hint))

    def _networks(self, pool: ipaddress.IPv4Network, hint: str) -> bool:
        assert self.client is not None
        api = self.client.api
        name = f"e2b-tools-doctor-{secrets.token_hex(4)}"
        count = max(1, pool.num_addresses // 8)
        last: Exception | None = None
        for index in random.sample(range(count), min(8, count)):
            subnet = ipaddress.IPv4Network((int(pool.network_address) + 8 * index, 29))
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet))])
            try:
                net: dict[str, Any] = api.create_network(
                    name,
                    driver="bridge",
                    internal=True,
                    ipam=ipam,
                    options={
                        "com.docker.network.bridge.inhibit_ipv4": "true",
                        "com.docker.network.bridge.enable_ip_masquerade": "false",
                    },
                    labels={"e2b-tools.doctor": "1"},
                )
            except docker.errors.APIError as exc:
                last = exc
                if "overlap" in str(exc).lower():
                    continue
                break
            api.remove_network(net["Id"])
            return self.add("networks", "ok", f"internal network creatable ({subnet} of {pool})")
        return self.add("networks", "fail", f"no internal network: {one_line(str(last))}", hint)


@click.command("doctor", short_help="Check engine, runtimes, image, limits, networks.")
@json_option('print {"ok": ..., "checks": [...]} as JSON')
def doctor(as_json: bool) -> int:
    """Check this machine: engine, runtimes, image, cgroup limits, network policies.

    Each check prints ✓ (ok), ! (works, with a suggestion) or ✗ (fails) and how to fix
    it. Exit status 1 if any check fails. The limits check starts a small sandbox for a
    few seconds.
    """
    checks = Doctor().run()
    ok = all(c.status != "fail" for c in checks)
    if as_json:
        echo_json({"ok": ok, "checks": [asdict(c) for c in checks]})
        return 0 if ok else 1
    from rich.console import Console
    from rich.markup import escape

    console = Console(highlight=False, soft_wrap=True)
    width = max(len(c.name) for c in checks)
    for c in checks:
        text = f"{c.name:<{width}}  {c.detail}"
        if console.is_terminal:
            console.print(f"{_MARK[c.status]} {escape(text)}")
        else:
            click.echo(f"{_PLAIN_MARK[c.status]} {text}")
        if c.hint and c.status != "ok":
            click.echo(f"  {'':<{width}}  fix: {c.hint}")
    return 0 if ok else 1
