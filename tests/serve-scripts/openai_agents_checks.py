"""openai-agents' ``E2BSandboxClient`` (``agents.extensions.sandbox.e2b``, with the
``e2b`` 2.31.0 + ``e2b-code-interpreter`` 2.8.1 it pins) driven without a model, unchanged
against ``e2b-tools serve`` (Mode A env vars only): create a session, start it (the
workspace root), exec, write, read, a missing file, then shut it down (kill). A failed
start is recorded (``start``: the exception chain) and the session still shut down. Run by
``tests/engine/test_serve_integrations.py`` in the ``serve-pins/openai-agents.txt`` venv;
``SERVE_CHECK_ROOT`` (optional) is the manifest's workspace root."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path
from typing import Any

from agents.extensions.sandbox.e2b import E2BSandboxClient, E2BSandboxClientOptions
from agents.sandbox import Manifest
from e2b import Sandbox

BLOB = bytes(range(256)) * 8
out: dict[str, Any] = {}


async def main() -> None:
    client = E2BSandboxClient()
    root = os.environ.get("SERVE_CHECK_ROOT")
    manifest = Manifest(root=root) if root else Manifest()
    options = E2BSandboxClientOptions(sandbox_type="e2b", timeout=300)
    session = await client.create(manifest=manifest, options=options)
    out["id"] = session.state.sandbox_id
    out["root"] = manifest.root
    try:
        try:
            await session.start()
        except Exception as exc:
            causes = [exc]
            while causes[-1].__cause__ is not None:
                causes.append(causes[-1].__cause__)
            out["start"] = [f"{type(e).__name__}: {e}" for e in causes]
            return
        ran = await session.exec("pwd; echo err >&2; exit 3")
        out["exec"] = [ran.stdout.decode(), ran.stderr.decode(), ran.exit_code]
        await session.write(Path(manifest.root) / "data" / "blob.bin", io.BytesIO(BLOB))
        read = await session.read(Path(manifest.root) / "data" / "blob.bin")
        out["read"] = read.read() == BLOB
        listed = await session.exec("ls", "data")
        out["ls"] = listed.stdout.decode()
        try:
            await session.read(Path(manifest.root) / "missing.txt")
            out["missing"] = "read"
        except Exception as exc:
            out["missing"] = type(exc).__name__
        out["running"] = await session.running()
    finally:
        await session.aclose()
        await client.delete(session)
        try:
            Sandbox.connect(out["id"])
            out["after"] = "connected"
        except Exception as exc:
            out["after"] = type(exc).__name__


asyncio.run(main())
print(json.dumps(out))
