"""``e2b-tools serve``'s filesystem service and ``/files`` on the Docker Engine, driven by
the real E2B SDK (side venv) in a subprocess: 10 MiB of random bytes both ways byte-exact
(multipart and octet-stream, bytes and stream), gzip both ways, relative paths under
``/home/user``, the read-only root, special files, pre-signed URLs, and a gzip bomb
against the workspace's size. Engine-free checks: ``tests/unit/test_serve_files.py``."""

from __future__ import annotations

import sys
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import Served, run_e2b_sdk, serving

from e2b_tools_serve import ServeSettings

KEY = "e2b_" + "f2" * 20
AUTH = {"X-API-KEY": KEY}

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="the latest e2b SDK needs Python 3.11"
)


@pytest.fixture
def server(image: str) -> Iterator[Served]:
    """The server on the Docker backend; every sandbox it made is killed after."""
    settings = ServeSettings(api_key=KEY, templates={"base": image})
    with serving(settings, start_wait=10.0, stop_wait=15.0, kill_wait=60.0) as url:
        yield url


ROUND_TRIP = """
import asyncio, hashlib, io, json, os
import httpx
from e2b import AsyncSandbox, Sandbox
from e2b.exceptions import FileNotFoundException

def sha(data):
    return hashlib.sha256(data).hexdigest()

out = {}
blob = os.urandom(10 << 20)
out["sha"] = sha(blob)
sbx = Sandbox.create(timeout=300)
try:
    f = sbx.files
    out["multipart"] = f.write("data/blob.bin", blob).path
    out["read_bytes"] = sha(bytes(f.read("data/blob.bin", format="bytes")))
    with f.read("data/blob.bin", format="stream") as stream:
        out["read_stream"] = sha(b"".join(stream))
    out["octet"] = f.write("data/blob2.bin", io.BytesIO(blob)).path
    out["octet_back"] = sha(bytes(f.read("/home/user/data/blob2.bin", format="bytes")))
    f.write("data/blob3.bin", blob, gzip=True)
    out["gzip_both"] = sha(bytes(f.read("data/blob3.bin", format="bytes", gzip=True)))
    text = "line\\n" * 500000
    f.write("data/t.txt", text, gzip=True)
    out["gzip_text"] = f.read("data/t.txt", gzip=True) == text
    info = f.get_info("data/blob.bin")
    out["info"] = [info.path, info.size, info.owner, info.group, info.permissions]
    out["home"] = f.get_info(".").path
    out["list"] = sorted(e.path for e in f.list("data"))
    out["deep"] = len(f.list("/home/user", depth=3)) >= 4
    out["tmp"] = f.write("/tmp/abs.txt", "abs").path
    for name, call in {
        "etc": lambda: f.write("/etc/x", "no"),
        "dev_zero": lambda: f.read("/dev/zero"),
        "missing": lambda: f.read("nope.txt"),
        "dir": lambda: f.read("data"),
    }.items():
        try:
            call()
            out[name] = "no error"
        except Exception as exc:
            out[name] = [type(exc).__name__, str(exc)[:200]]
    up = sbx.upload_url("signed/s.bin")
    out["signed_up"] = httpx.post(up, files={"file": ("signed/s.bin", blob[:1000])}).status_code
    down = httpx.get(sbx.download_url("signed/s.bin"))
    out["signed_down"] = [down.status_code, sha(down.content) == sha(blob[:1000])]
    wrong = sbx.download_url("signed/other.bin").replace("other.bin", "s.bin")
    out["signed_wrong"] = httpx.get(wrong).status_code

    async def other():
        a = await AsyncSandbox.connect(sbx.sandbox_id)
        await a.files.write("data/async.bin", blob)
        got = await a.files.read("data/async.bin", format="bytes")
        return sha(bytes(got))

    out["async"] = asyncio.run(other())
finally:
    sbx.kill()
print(json.dumps(out))
"""


@pytest.mark.timeout(400)
def test_ten_mib_both_ways_byte_exact_gzip_paths_and_signed_urls(server: Served) -> None:
    out = run_e2b_sdk(server, ROUND_TRIP, KEY, timeout=300)
    digest = out["sha"]
    assert out["multipart"] == "/home/user/data/blob.bin"
    assert out["read_bytes"] == out["read_stream"] == out["octet_back"] == digest
    assert out["octet"] == "/home/user/data/blob2.bin"
    assert out["gzip_both"] == digest and out["gzip_text"] is True
    assert out["async"] == digest
    assert out["info"] == ["/home/user/data/blob.bin", 10 << 20, "user", "user", "-rw-r--r--"]
    assert out["home"] == "/home/user" and out["deep"] is True
    assert out["list"] == [
        f"/home/user/data/{n}" for n in ("blob.bin", "blob2.bin", "blob3.bin", "t.txt")
    ]
    assert out["tmp"] == "/tmp/abs.txt"
    assert out["etc"][0] == "SandboxException" and "403" in out["etc"][1]
    assert out["dev_zero"][0] == "InvalidArgumentException"
    assert "regular file" in out["dev_zero"][1]
    assert out["missing"][0] == "FileNotFoundException"
    assert out["dir"][0] == "InvalidArgumentException" and "is a directory" in out["dir"][1]
    assert out["signed_up"] == 200 and out["signed_down"] == [200, True]
    assert out["signed_wrong"] == 401


@pytest.mark.timeout(400)
def test_a_gzip_bomb_fills_the_workspace_not_the_servers_memory(server: Served) -> None:
    reply = httpx.post(f"{server.api}/v2/sandboxes", json={"templateID": "base"}, headers=AUTH)
    assert reply.status_code == 201, reply.text
    created: dict[str, Any] = reply.json()
    headers = {"E2b-Sandbox-Id": created["sandboxID"], "X-Access-Token": created["envdAccessToken"]}
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    bomb = b"".join(packer.compress(zeros) for _ in range(2048)) + packer.flush()  # 2 GiB
    assert len(bomb) < 4 << 20
    with httpx.Client(base_url=server.sandbox, headers=headers, timeout=300) as client:
        tracemalloc.start()
        try:
            reply = client.post(
                "/files",
                params={"path": "bomb"},
                content=bomb,
                headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
            )
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert reply.status_code == 507, reply.text
        assert peak < 24 << 20
        gone = client.get("/files", params={"path": "bomb"})
        assert gone.status_code == 404  # the partial file was removed: the disk is free again
        ok = client.post(
            "/files",
            params={"path": "after"},
            content=b"still works",
            headers={"Content-Type": "application/octet-stream"},
        )
        assert ok.status_code == 200 and client.get("/files?path=after").content == b"still works"
