"""Write docs/configuration.md from SandboxConfig and the environment the library reads.

    python scripts/gen_config_doc.py           # rewrites docs/configuration.md
    python scripts/gen_config_doc.py --check   # exits 1 when the page is stale

Each field's type is its annotation as written in ``e2b_tools/_config.py``, its
description the docstring under it. The environment variables are found by scanning the
host-side modules (``e2b_tools/`` without ``agent/``, which runs inside the sandbox) for
``os.environ`` reads; each needs a line in :data:`ENV_VARS`, so a new one fails the
docs test until it is described here.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"
CONFIG_SOURCE = ROOT / "e2b_tools" / "_config.py"
PACKAGE = ROOT / "e2b_tools"

sys.path.insert(0, str(ROOT))

from pydantic import BaseModel  # noqa: E402

from e2b_tools import NetworkPolicy, SandboxConfig  # noqa: E402
from e2b_tools._config import (  # noqa: E402
    DEFAULT_CODE_TIMEOUT,
    DEFAULT_COMMAND_TIMEOUT,
    Ingress,
)

CREATE_KEYWORDS = {
    "image": "`create(image=)`, E2B's `template=`",
    "timeout": "`create(timeout=)`",
    "envs": "`create(envs=)`, merged",
    "metadata": "`create(metadata=)`, merged",
    "cpu": "`create(cpu=)`",
    "memory": "`create(memory=)`",
    "network": "`create(network=)`, `allow_internet_access=`",
    "ingress": '`create(network={"allow_public_traffic": ..., "mask_request_host": ...})`',
    "on_timeout": '`create(lifecycle={"on_timeout": ...})`',
    "auto_resume": '`create(lifecycle={"auto_resume": ...})`',
}
"""Fields that ``Sandbox.create`` also takes as an argument of its own."""

CLI_FLAGS = {"image": "`e2b-tools run --image`"}
"""Fields a CLI flag sets (the other CLI commands use the defaults)."""

ENV_VARS: dict[str, str] = {
    "DOCKER_HOST": (
        "The engine to use (`unix:///var/run/docker.sock` when unset), as for the `docker` "
        "command; read by the Docker SDK (`docker.from_env()`, with `DOCKER_TLS_VERIFY` and "
        "`DOCKER_CERT_PATH`) and named in the error messages. `docs/platforms.md` lists the "
        "value for each platform."
    ),
    "E2B_TOOLS_ENGINE_TIMEOUT": (
        "Seconds a control call to the engine (create, start, inspect, list, remove) waits "
        "for its answer before `EngineUnavailableError`; default 10. Read once, at import."
    ),
    "E2B_TOOLS_SUBNET_POOL": (
        "The IPv4 range the per-sandbox networks of policy sandboxes are cut from; default "
        "`10.213.0.0/16`. Change it when it overlaps a network of yours. Read at import."
    ),
    "E2B_TOOLS_EGRESS_UPSTREAM": (
        "A proxy the egress proxy sends allowed traffic through (it must be reachable from "
        "containers, not the host's loopback). Wins over `HTTPS_PROXY` / `HTTP_PROXY`."
    ),
    "HTTPS_PROXY": (
        "With `HTTP_PROXY` (either case), the host's own proxy, handed to the egress proxy "
        "as its upstream when `E2B_TOOLS_EGRESS_UPSTREAM` is not set."
    ),
    "HTTP_PROXY": "See `HTTPS_PROXY`.",
    "https_proxy": "See `HTTPS_PROXY`.",
    "http_proxy": "See `HTTPS_PROXY`.",
    "NO_PROXY": (
        "With an upstream proxy (either case): destinations the egress proxy reaches "
        "directly, not through the upstream."
    ),
    "no_proxy": "See `NO_PROXY`.",
    "E2B_TOOLS_EGRESS_NETWORKS": (
        "Comma-separated Docker networks the egress proxy joins when it starts, e.g. one "
        "where a package mirror runs (`docs/network.md`)."
    ),
    "E2B_TOOLS_DEBIAN_MIRROR": (
        "The Debian mirror the offline image build (debootstrap) fetches from; default: "
        "Debian's own (`e2b_tools/images/offline.py`). A mirror of yours makes builds work "
        "where only it is reachable."
    ),
    "E2B_TOOLS_DEBIAN_SECURITY_MIRROR": (
        "The Debian security mirror of the offline image build; default: Debian's own."
    ),
    "TERM": "`e2b-tools shell`: the terminal type given to the shell (`xterm-256color` if unset).",
}
"""Every environment variable the host-side code reads, with what it does."""


def _rst_to_md(text: str) -> str:
    text = re.sub(r":(?:class|meth|attr|data|func):`~?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    return " ".join(text.split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _attribute_docs(class_name: str) -> dict[str, tuple[str, str]]:
    """``{field: (annotation as written, docstring)}`` for a class of _config.py."""
    source = CONFIG_SOURCE.read_text(encoding="utf-8")
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    found: dict[str, tuple[str, str]] = {}
    body = cls.body
    for node, after in zip(body, [*body[1:], None], strict=True):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        doc = ""
        if (
            isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            doc = after.value.value
        annotation = ast.get_source_segment(source, node.annotation) or ""
        found[node.target.id] = (annotation, doc)
    return found


def _default(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    value: Any = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return f"`{type(value).__name__}()`"
    return f"`{value!r}`"


def _constraints(model: type[BaseModel], name: str) -> str:
    parts = []
    for item in model.model_fields[name].metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(item, attr, None)
            if bound is not None:
                parts.append(f"{sign} {bound}")
    return f" ({', '.join(parts)})" if parts else ""


def _field_table(model: type[BaseModel], *, with_create: bool) -> list[str]:
    docs = _attribute_docs(model.__name__)
    missing = set(model.model_fields) - set(docs)
    if missing:
        raise SystemExit(f"{model.__name__}: no annotation found for {sorted(missing)}")
    header = "| field | type | default | what it does |"
    rule = "| --- | --- | --- | --- |"
    if with_create:
        header = "| field | type | default | also set by | what it does |"
        rule = "| --- | --- | --- | --- | --- |"
    lines = [header, rule]
    for name in model.model_fields:
        annotation, doc = docs[name]
        if not doc.strip():
            raise SystemExit(f"{model.__name__}.{name} has no docstring")
        cells = [
            f"`{name}`",
            f"`{_cell(annotation)}`{_constraints(model, name)}",
            _cell(_default(model, name)),
        ]
        if with_create:
            setters = [CREATE_KEYWORDS[name]] if name in CREATE_KEYWORDS else []
            if name in CLI_FLAGS:
                setters.append(CLI_FLAGS[name])
            cells.append(", ".join(setters) or "`config=` only")
        cells.append(_cell(_rst_to_md(doc)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def environment_reads() -> set[str]:
    """Names of the environment variables host-side modules read through os.environ."""
    names: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if "agent" in path.relative_to(PACKAGE).parts:
            continue  # runs inside the sandbox; the library sets its environment
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            key: ast.expr | None = None
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and ast.unparse(node.func.value) == "os.environ"
                and node.args
            ):
                key = node.args[0]
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
                key = node.slice
            elif (
                isinstance(node, ast.For)
                and isinstance(node.iter, ast.Tuple)
                and "os.environ" in ast.unparse(node)
            ):
                # for name in ("HTTPS_PROXY", ...): os.environ.get(name)
                for elt in node.iter.elts:
                    if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                        names.add(elt.value)
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
    return names


def render() -> str:
    """The whole page."""
    read = environment_reads()
    undocumented = sorted(read - set(ENV_VARS))
    if undocumented:
        raise SystemExit(f"describe these in ENV_VARS of {__file__}: {undocumented}")
    stale = sorted(set(ENV_VARS) - read - {"DOCKER_HOST"})
    if stale:
        raise SystemExit(f"the code no longer reads {stale}: remove them from ENV_VARS")
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/gen_config_doc.py from e2b_tools/_config.py; "
        "do not edit by hand. -->",
        "",
        "Every setting of a sandbox is a field of `SandboxConfig`; pass one as "
        "`Sandbox.create(config=SandboxConfig(...))` (also `SandboxPool(config=...)` and "
        "`Toolkit(config=...)`). The fields that `Sandbox.create` takes as arguments of "
        "their own are said so below: an argument given wins over the config's value "
        "(for `cpu`, `memory` and `network`, a value other than the argument's default). "
        "The hardening defaults and what relaxing each costs are in `docs/security.md`.",
        "",
        "## `SandboxConfig`",
        "",
        *_field_table(SandboxConfig, with_create=True),
        "",
        "Sizes (`memory`, `workspace_size`, `tmp_size`) are bytes or a number with `k`, `m`, "
        '`g` or `t` (`"512m"`, `"2g"`).',
        "",
        "## `NetworkPolicy` (`network=`)",
        "",
        '`network` is `"none"`, `"full"` or a policy; E2B\'s dict '
        '`{"allow_out": [...], "deny_out": [...]}` is turned into one '
        "(`docs/network.md`).",
        "",
        *_field_table(NetworkPolicy, with_create=False),
        "",
        "## `Ingress` (`ingress=`)",
        "",
        *_field_table(Ingress, with_create=False),
        "",
        "## Call timeouts",
        "",
        "Not sandbox settings but per-call arguments: `run_code(timeout=)` defaults to "
        f"{DEFAULT_CODE_TIMEOUT:g} s and `commands.run(timeout=)` to "
        f"{DEFAULT_COMMAND_TIMEOUT:g} s (E2B's values); `0` or `None` is no limit.",
        "",
        "## Environment variables",
        "",
        "What the library reads on the host (the agent inside the sandbox gets its own "
        "environment from the library). None is needed on a Linux host with Docker at its "
        "default socket.",
        "",
        "| variable | effect |",
        "| --- | --- |",
        *(f"| `{name}` | {_cell(text)} |" for name, text in ENV_VARS.items()),
        "",
    ]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the page is stale")
    args = parser.parse_args()
    page = render()
    if args.check:
        if PAGE.read_text(encoding="utf-8") != page:
            print(f"{PAGE.relative_to(ROOT)} is stale: run python scripts/gen_config_doc.py")
            return 1
        return 0
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
