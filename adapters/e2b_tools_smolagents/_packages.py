"""Packages for the sandbox: what smolagents asks for, what the image has, what pip can
fetch under the sandbox's network policy."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable

from e2b_tools import CommandExitError, Sandbox, SandboxError, SandboxTimeoutError

REQUIREMENT = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._\-]*(\[[A-Za-z0-9._,\-]+\])?([<>=!~]=?[\w.*+!\-]+)*"
)
"""A pip requirement without URLs, paths or options (``pandas``, ``numpy==2.1``)."""

IMPORT_NAMES = {"pillow": "PIL", "scikit-learn": "sklearn", "beautifulsoup4": "bs4"}
"""Distributions whose import name differs (smolagents names tools' needs both ways)."""

_PROBE = """
import importlib.metadata, importlib.util, json, sys
missing = []
for dist, module in json.loads(sys.argv[1]):
    try:
        importlib.metadata.distribution(dist)
        continue
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        missing.append(dist)
print(json.dumps(missing))
"""


class PackageInstallError(SandboxError):
    """Packages smolagents asked for are missing from the sandbox and cannot be installed.

    Raised to the operator (at executor creation or at the start of ``agent.run``), not
    shown to the model: the fix is an image that has them, or a network policy that
    lets pip reach a package index. ``packages`` lists what is missing.
    """

    def __init__(self, message: str, packages: list[str], *, sandbox_id: str | None = None):
        super().__init__(message, sandbox_id=sandbox_id)
        self.packages = packages


def wanted(names: Iterable[str]) -> list[str]:
    """The distributions ``names`` ask for: smolagents' authorized imports (``"*"``,
    ``"numpy.*"``, ``"os.path"``) reduced to top-level names, ``smolagents`` left out
    (the sandbox gets tools as source, not the package), duplicates dropped."""
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if not re.search(r"[<>=!~\[]", name):  # a module path, not a pinned requirement
            name = name.removesuffix(".*").split(".")[0]
        if name in ("", "*", "smolagents") or name in out:
            continue
        out.append(name)
    return out


def missing(sbx: Sandbox, names: list[str], timeout: float) -> list[str]:
    """Those of ``names`` that the sandbox's Python can neither find installed nor import."""
    pairs = [
        [name, IMPORT_NAMES.get(name.lower(), re.split(r"[<>=!~\[]", name)[0])] for name in names
    ]
    cmd = f"python3 -c {shlex.quote(_PROBE)} {shlex.quote(json.dumps(pairs))}"
    result = sbx.commands.run(cmd, timeout=timeout)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    return [str(name) for name in found]


def install(sbx: Sandbox, names: list[str], timeout: float) -> None:
    """pip-install ``names`` in the sandbox, or raise :class:`PackageInstallError` saying
    why not (no network, blocked by the policy, pip failed)."""
    bad = [name for name in names if not REQUIREMENT.fullmatch(name)]
    if bad:
        raise PackageInstallError(
            f"not installed: {bad} are not package names (like pandas or numpy==2.1)",
            bad,
            sandbox_id=sbx.sandbox_id,
        )
    config = sbx.config
    if config.network == "none":
        raise PackageInstallError(
            f"the sandbox lacks {', '.join(names)} and cannot install them: it has no network "
            "(network='none', the default). Use an image that has them (docs/images.md), or "
            "create the sandbox with a network policy that allows your package index, e.g. "
            "SandboxConfig(network={'allow_out': ['<index host>']}, envs={'PIP_INDEX_URL': ...}) "
            "(docs/network.md)",
            names,
            sandbox_id=sbx.sandbox_id,
        )
    command = "pip install --quiet --disable-pip-version-check " + " ".join(
        shlex.quote(name) for name in names
    )
    try:
        sbx.commands.run(command, timeout=timeout)
    except (CommandExitError, SandboxTimeoutError) as exc:
        output = ""
        if isinstance(exc, CommandExitError):
            output = (exc.stderr or exc.stdout)[-1500:]
        else:
            output = f"pip did not finish within {timeout:g}s (install_timeout)"
        raise PackageInstallError(
            f"installing {', '.join(names)} failed. {config.describe_network()} "
            f"{_denials(sbx)}\npip said:\n{output}".strip(),
            names,
            sandbox_id=sbx.sandbox_id,
        ) from exc


def _denials(sbx: Sandbox) -> str:
    try:
        log = sbx.network_log(limit=20)
    except SandboxError:
        return ""
    denied = sorted({f"{d.host}:{d.port} ({d.reason})" for d in log if not d.allowed})
    return f"Blocked by the network policy: {'; '.join(denied)}." if denied else ""
