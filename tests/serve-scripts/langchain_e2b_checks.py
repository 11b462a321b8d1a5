"""langchain-e2b's ``E2BSandbox`` and ``AsyncE2BSandbox`` (Deep Agents backends) over
sandboxes the E2B SDK creates, unchanged against ``e2b-tools serve`` (Mode A env vars
only); run by ``tests/engine/test_serve_integrations.py`` in the
``serve-pins/langchain-e2b.txt`` venv. The last output line is the JSON of each step."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import e2b
from langchain_e2b import AsyncE2BSandbox, E2BSandbox

BLOB = bytes(range(256)) * 16
out: dict[str, Any] = {}

sbx = e2b.Sandbox.create(timeout=300)
out["id"] = sbx.sandbox_id
try:
    backend = E2BSandbox(sandbox=sbx)
    ran = backend.execute("pwd; echo err >&2; exit 4")
    out["execute"] = [ran.output, ran.exit_code]
    slow = backend.execute("sleep 10", timeout=1)
    out["timeout"] = [slow.exit_code, slow.output]
    out["write"] = [
        backend.write("/home/user/src/app.py", "x = 1\ny = 2\n").path,
        backend.write("/home/user/src/app.py", "again").error is not None,
    ]
    read = backend.read("/home/user/src/app.py")
    out["read"] = read.error or (read.file_data or {}).get("content")
    edited = backend.edit("/home/user/src/app.py", "y = 2", "y = 3")
    out["edit"] = [edited.error, edited.occurrences, sbx.files.read("/home/user/src/app.py")]
    listing = backend.ls("/home/user/src")
    out["ls"] = [e["path"] for e in listing.entries or []]
    grep = backend.grep("y = 3", path="/home/user/src")
    out["grep"] = [m["path"] for m in grep.matches or []]
    uploaded = backend.upload_files([("/home/user/blob.bin", BLOB), ("relative.txt", b"no")])
    out["upload"] = [u.error for u in uploaded]
    down = backend.download_files(["/home/user/blob.bin", "/home/user/nope", "/home/user/src"])
    out["download"] = [down[0].content == BLOB, down[1].error, down[2].error]
finally:
    out["killed"] = sbx.kill()


async def run_async() -> list[Any]:
    asbx = await e2b.AsyncSandbox.create(timeout=300)
    try:
        backend = AsyncE2BSandbox(sandbox=asbx)
        ran = await backend.aexecute("echo async")
        wrote = await backend.awrite("/home/user/async.txt", "héllo")
        read = await backend.aread("/home/user/async.txt")
        return [ran.output, ran.exit_code, wrote.path, (read.file_data or {}).get("content")]
    finally:
        await asbx.kill()


out["async"] = asyncio.run(run_async())
print(json.dumps(out))
