"""The in-sandbox agent as something a container can run.

The agent is the stdlib-only package ``e2b_tools/agent``. Inside a container it is
importable as ``e2b_tools_agent``. Two ways to get it there:

* baked: the default image copies it to ``/opt/e2b-tools/e2b_tools_agent`` and labels
  the image with :func:`agent_hash`; the container's command is :func:`baked_command`.
* injected: any other image with ``python3`` runs :func:`injected_command`, which
  carries the package as a base64 zip in the command line and unpacks it into
  ``/tmp`` before starting it. Docker refuses ``put_archive`` into a read-only root
  filesystem, and our default root filesystem is read-only, so the command line is
  the one channel that works for every image and every hardening setting. The zip
  travels in pieces of at most :data:`ARG_CHUNK` characters, one argument each: the
  kernel caps each argument at 128 KiB (``MAX_ARG_STRLEN``), not their sum.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import zipfile
from pathlib import Path

AGENT_PACKAGE = "e2b_tools_agent"
"""Import name of the agent package inside a sandbox."""

BAKED_AGENT_ROOT = "/opt/e2b-tools"
"""Directory of the default image that holds ``e2b_tools_agent/``."""

AGENT_HASH_LABEL = "e2b-tools.agent-hash"
"""Image label naming the agent build baked into the image."""

AGENT_ENTRY = f"from {AGENT_PACKAGE}.main import main; main(root)"
"""What a sandbox container runs: the agent (``root`` is the package's parent dir)."""

EGRESS_ENTRY = f"from {AGENT_PACKAGE}.egress import main; main()"
"""What the egress proxy container runs (see ``agent/egress.py``)."""

_SOURCE_DIR = Path(__file__).parent / "agent"


@functools.cache
def agent_files() -> dict[str, bytes]:
    """The agent package's files, by name relative to the package directory."""
    paths = sorted([*_SOURCE_DIR.glob("*.py"), *_SOURCE_DIR.glob("*.js")])
    return {p.name: p.read_bytes() for p in paths if p.is_file()}


@functools.cache
def agent_hash() -> str:
    """A short digest of the agent's sources; images whose label differs get injected."""
    digest = hashlib.sha256()
    for name, data in agent_files().items():
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:16]


def baked_command(entry: str = AGENT_ENTRY) -> list[str]:
    """The container command for an image that has the agent at :data:`BAKED_AGENT_ROOT`."""
    return [
        "python3",
        "-I",
        "-c",
        f"import sys; root = {BAKED_AGENT_ROOT!r}; sys.path.insert(0, root); {entry}",
    ]


ARG_CHUNK = 100_000
"""Characters of the base64 zip per command-line argument of :func:`injected_command`."""


@functools.cache
def _zipped_agent_b64() -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in agent_files().items():
            info = zipfile.ZipInfo(f"{AGENT_PACKAGE}/{name}", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def injected_command(entry: str = AGENT_ENTRY) -> list[str]:
    """The container command for an image without the agent: it unpacks and runs it."""
    script = (
        "import base64, io, os, sys, tempfile, zipfile\n"
        f"root = os.path.join(tempfile.gettempdir(), '.e2b-tools-agent-{agent_hash()}')\n"
        "if not os.path.isdir(root):\n"
        "    tmp = tempfile.mkdtemp(prefix='.e2b-tools-agent-')\n"
        "    data = base64.b64decode(''.join(sys.argv[1:]))\n"
        "    zipfile.ZipFile(io.BytesIO(data)).extractall(tmp)\n"
        # Extracted by root before the agent drops to the user: readable by user code
        # (the Node kernel runs from here), writable by nobody else.
        "    os.chmod(tmp, 0o755)\n"
        "    try:\n"
        "        os.rename(tmp, root)\n"
        "    except OSError:\n"
        "        root = tmp\n"
        "sys.path.insert(0, root)\n"
        f"{entry}\n"
    )
    payload = _zipped_agent_b64()
    parts = [payload[i : i + ARG_CHUNK] for i in range(0, len(payload), ARG_CHUNK)]
    return ["python3", "-I", "-c", script, *parts]
