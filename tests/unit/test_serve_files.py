"""``e2b-tools serve``'s filesystem service and ``/files`` endpoints without an engine:
the real E2B SDK (side venv, a subprocess) and plain httpx against uvicorn on the local
backend (the real agent as a subprocess, relative paths under a temp workspace), plus
hostile bodies and the server's memory measured. With the engine:
``tests/engine/test_serve_files_engine.py``."""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import Served, run_e2b_sdk, serving
from local_backend import LocalBackend

from e2b_tools_serve import ServeSettings
from e2b_tools_serve._files_http import accepts_gzip

KEY = "e2b_" + "f1" * 20
SECRET = b"unit-test-secret-files-files-files"
AUTH = {"X-API-KEY": KEY}
SDK = pytest.mark.skipif(sys.version_info < (3, 11), reason="the latest e2b SDK needs Python 3.11")


@pytest.fixture(scope="module")
def served(backend: LocalBackend) -> Iterator[Served]:
    """One server for the module; every sandbox it made is killed after."""
    settings = ServeSettings(api_key=KEY, secret=SECRET, backend=backend)
    with serving(settings, start_wait=5.0, stop_wait=10.0, kill_wait=30.0) as url:
        yield url


class Box:
    """A sandbox created through the control plane, with envd's headers."""

    def __init__(self, served: Served) -> None:
        self.served = served
        reply = httpx.post(
            f"{served.api}/v2/sandboxes", json={"templateID": "base", "timeout": 120}, headers=AUTH
        )
        assert reply.status_code == 201, reply.text
        body = reply.json()
        self.id: str = body["sandboxID"]
        self.token: str = body["envdAccessToken"]
        self.headers = {"E2b-Sandbox-Id": self.id, "X-Access-Token": self.token}
        self.client = httpx.Client(base_url=served.sandbox, headers=self.headers, timeout=60)

    def rpc(self, method: str, body: dict[str, Any]) -> httpx.Response:
        return self.client.post(
            f"/filesystem.Filesystem/{method}",
            json=body,
            headers={"Connect-Protocol-Version": "1"},
        )

    def kill(self) -> None:
        self.client.close()
        httpx.delete(f"{self.served.api}/sandboxes/{self.id}", headers=AUTH)


@pytest.fixture
def box(served: Served) -> Iterator[Box]:
    made = Box(served)
    try:
        yield made
    finally:
        made.kill()


def _run(served: Served, script: str) -> dict[str, Any]:
    return run_e2b_sdk(served, script, KEY, timeout=150)


# -- the real SDK ---------------------------------------------------------------------

SYNC_SCRIPT = """
import json, os, hashlib
from e2b import Sandbox
from e2b.exceptions import FileNotFoundException

out = {}
sbx = Sandbox.create(timeout=120)
try:
    f = sbx.files
    info = f.write("dir/a.txt", "hello ü")
    out["write"] = [info.name, info.type.value, info.path.endswith("dir/a.txt")]
    out["read_text"] = f.read("dir/a.txt")
    blob = bytes(range(256)) * 64
    f.write("dir/b.bin", blob)
    out["read_bytes"] = bytes(f.read("dir/b.bin", format="bytes")) == blob
    out["stream"] = b"".join(f.read("dir/b.bin", format="stream")) == blob
    many = f.write_files(
        [{"path": "m/1.txt", "data": "one"}, {"path": "m/2.bin", "data": b"\\x00two"}]
    )
    out["write_files"] = [w.name for w in many]
    out["m2"] = bytes(f.read("m/2.bin", format="bytes")).hex()
    out["octet"] = f.write("dir/c.txt", open(__file__ if False else "/dev/null", "rb")).name
    out["gzip_up"] = f.write("dir/g.txt", "z" * 100000, gzip=True).name
    out["gzip_read"] = f.read("dir/g.txt", gzip=True) == "z" * 100000
    out["list1"] = sorted(e.name for e in f.list("."))
    out["list2"] = sorted(e.name for e in f.list(".", depth=2))
    out["exists"] = [f.exists("dir/a.txt"), f.exists("nope.txt")]
    e = f.get_info("dir/a.txt")
    out["info"] = [e.name, e.type.value, e.size, e.permissions, e.owner != "", e.group != "",
                   e.modified_time.year > 2000, e.symlink_target, e.mode]
    d = f.get_info("dir")
    out["dir_info"] = [d.type.value, d.permissions[:1]]
    out["make_dir"] = [f.make_dir("new/deep"), f.make_dir("new/deep")]
    r = f.rename("dir/a.txt", "moved/a2.txt")
    out["rename"] = [r.name, f.exists("dir/a.txt"), f.read("moved/a2.txt")]
    f.remove("moved")
    out["removed"] = f.exists("moved")
    f.remove("never-there")
    try:
        f.read("missing.txt")
    except FileNotFoundException as exc:
        out["missing"] = str(exc)
    try:
        f.list("dir/b.bin")
    except Exception as exc:
        out["list_file"] = type(exc).__name__
    w = f.watch_dir("dir")
    f.write("dir/watched.txt", "w")
    import time
    deadline = time.time() + 10
    seen = []
    while time.time() < deadline and "watched.txt" not in seen:
        seen += [e.name for e in w.get_new_events()]
        time.sleep(0.1)
    w.stop()
    out["watch"] = "watched.txt" in seen
finally:
    sbx.kill()
print(json.dumps(out))
"""


@SDK
@pytest.mark.timeout(300)
def test_the_sync_sdk_reads_writes_lists_and_moves(served: Served) -> None:
    out = _run(served, SYNC_SCRIPT)
    assert out["write"] == ["a.txt", "file", True]
    assert out["read_text"] == "hello ü"
    assert out["read_bytes"] is True and out["stream"] is True
    assert out["write_files"] == ["1.txt", "2.bin"] and out["m2"] == "0074776f"
    assert out["octet"] == "c.txt" and out["gzip_up"] == "g.txt" and out["gzip_read"] is True
    assert {"dir", "m"} <= set(out["list1"]) and "a.txt" not in out["list1"]
    assert {"dir", "m", "a.txt", "b.bin", "c.txt", "g.txt", "1.txt", "2.bin"} <= set(out["list2"])
    assert out["exists"] == [True, False]
    name, kind, size, perms, has_owner, has_group, recent, target, mode = out["info"]
    assert (name, kind, size, perms, target) == ("a.txt", "file", 8, "-rw-r--r--", None)
    assert has_owner and has_group and recent and mode == 0o644
    assert out["dir_info"] == ["dir", "d"]
    assert out["make_dir"] == [True, False]
    assert out["rename"] == ["a2.txt", False, "hello ü"]
    assert out["removed"] is False
    assert "does not exist" in out["missing"]
    assert out["list_file"] == "InvalidArgumentException"
    assert out["watch"] is True


ASYNC_SCRIPT = """
import asyncio, json
from e2b import AsyncSandbox
from e2b.exceptions import FileNotFoundException

async def main():
    out = {}
    sbx = await AsyncSandbox.create(timeout=120)
    try:
        f = sbx.files
        await f.write("a/x.txt", "async ü")
        out["read"] = await f.read("a/x.txt")
        blob = bytes(range(256)) * 4096
        await f.write("a/y.bin", blob)
        out["bytes"] = bytes(await f.read("a/y.bin", format="bytes")) == blob
        stream = await f.read("a/y.bin", format="stream")
        out["stream"] = b"".join([c async for c in stream]) == blob
        many = await f.write_files([{"path": "a/1", "data": "1"}, {"path": "a/2", "data": b"2"}])
        out["many"] = [w.name for w in many]
        out["list"] = sorted(e.name for e in await f.list("a"))
        out["exists"] = [await f.exists("a/x.txt"), await f.exists("a/none")]
        out["make_dir"] = [await f.make_dir("b"), await f.make_dir("b")]
        out["rename"] = (await f.rename("a/x.txt", "b/x.txt")).name
        await f.remove("b")
        out["removed"] = await f.exists("b")
        events = []
        handle = await f.watch_dir("a", lambda e: events.append(e.name))
        await f.write("a/new.txt", "n")
        for _ in range(100):
            if "new.txt" in events:
                break
            await asyncio.sleep(0.1)
        await handle.stop()
        out["watch"] = "new.txt" in events
        try:
            await f.read("a/missing")
        except FileNotFoundException:
            out["missing"] = True
    finally:
        await sbx.kill()
    print(json.dumps(out))

asyncio.run(main())
"""


@SDK
@pytest.mark.timeout(300)
def test_the_async_sdk_reads_writes_lists_moves_and_watches(served: Served) -> None:
    out = _run(served, ASYNC_SCRIPT)
    assert out["read"] == "async ü" and out["bytes"] is True and out["stream"] is True
    assert out["many"] == ["1", "2"] and out["list"] == ["1", "2", "x.txt", "y.bin"]
    assert out["exists"] == [True, False] and out["make_dir"] == [True, False]
    assert out["rename"] == "x.txt" and out["removed"] is False
    assert out["watch"] is True and out["missing"] is True


SIGNED_SCRIPT = """
import json, time, httpx
from e2b import Sandbox

out = {}
sbx = Sandbox.create(timeout=120)
try:
    up = sbx.upload_url("signed/up.bin")
    r = httpx.post(up, files={"file": ("signed/up.bin", b"\\x00signed\\xff")})
    out["upload"] = [r.status_code, r.json()[0]["name"]]
    down = sbx.download_url("signed/up.bin")
    r = httpx.get(down)
    out["download"] = [r.status_code, r.content.hex()]
    other = sbx.download_url("signed/other.bin").replace("other.bin", "up.bin")
    out["other_path"] = httpx.get(other).status_code
    out["write_url_read"] = httpx.get(up).status_code
    out["tampered"] = httpx.get(down[:-3] + "AAA").status_code
    short = sbx.download_url("signed/up.bin", use_signature_expiration=5)
    out["fresh"] = httpx.get(short).status_code  # a loaded machine: 5 s of slack
    time.sleep(6.2)
    out["expired"] = [httpx.get(short).status_code, httpx.get(short).json()["message"]]
    out["no_signature"] = httpx.get(down.split("&signature")[0]).status_code
finally:
    sbx.kill()
print(json.dumps(out))
"""


@SDK
@pytest.mark.timeout(300)
def test_pre_signed_urls_work_with_plain_http_and_nothing_else(served: Served) -> None:
    out = _run(served, SIGNED_SCRIPT)
    assert out["upload"] == [200, "up.bin"]
    assert out["download"] == [200, "00" + b"signed".hex() + "ff"]
    assert out["other_path"] == 401 and out["write_url_read"] == 401
    assert out["tampered"] == 401 and out["fresh"] == 200
    assert out["expired"][0] == 401
    assert out["no_signature"] in (401, 502)  # no token, no signature: not this sandbox's


# -- the wire, with plain httpx --------------------------------------------------------


def _workspace(box: Box) -> str:
    reply = box.rpc("Stat", {"path": "."})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["entry"]["path"])


def test_entries_follow_envd_symlinks_included(box: Box) -> None:
    assert (
        box.client.post(
            "/files",
            params={"path": "t/file.txt"},
            content=b"12345",
            headers={"Content-Type": "application/octet-stream"},
        ).status_code
        == 200
    )
    root = _workspace(box)
    os.symlink(f"{root}/t/file.txt", f"{root}/t/link")
    os.symlink(f"{root}/t/nowhere", f"{root}/t/dangling")
    entry = box.rpc("Stat", {"path": "t/file.txt"}).json()["entry"]
    assert entry["type"] == "FILE_TYPE_FILE" and entry["size"] == "5"
    assert entry["permissions"] == "-rw-r--r--" and entry["mode"] == 0o644
    assert entry["name"] == "file.txt" and entry["path"] == f"{root}/t/file.txt"
    assert entry["owner"] and entry["group"] and entry["modifiedTime"].endswith("Z")
    assert "isSymlink" not in entry and "symlinkTarget" not in entry
    link = box.rpc("Stat", {"path": "t/link"}).json()["entry"]
    assert link["type"] == "FILE_TYPE_FILE" and link["isSymlink"] is True
    assert link["symlinkTarget"] == f"{root}/t/file.txt" and link["permissions"] == "Lrwxrwxrwx"
    dangling = box.rpc("Stat", {"path": "t/dangling"}).json()["entry"]
    assert dangling["type"] == "FILE_TYPE_SYMLINK" and dangling["isSymlink"] is True
    listed = box.rpc("ListDir", {"path": "t", "depth": 1}).json()["entries"]
    assert [e["name"] for e in listed] == ["dangling", "file.txt", "link"]
    directory = box.rpc("Stat", {"path": "t"}).json()["entry"]
    assert directory["type"] == "FILE_TYPE_DIRECTORY" and directory["permissions"][0] == "d"


def test_rpc_errors_carry_envd_codes(box: Box) -> None:
    missing = box.rpc("Stat", {"path": "nope"})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert box.rpc("MakeDir", {"path": "d"}).json()["entry"]["type"] == "FILE_TYPE_DIRECTORY"
    again = box.rpc("MakeDir", {"path": "d"})
    assert again.status_code == 409 and again.json()["code"] == "already_exists"
    box.client.post(
        "/files",
        params={"path": "f"},
        content=b"x",
        headers={"Content-Type": "application/octet-stream"},
    )
    over_file = box.rpc("MakeDir", {"path": "f"})
    assert over_file.status_code == 400 and "not a directory" in over_file.json()["message"]
    assert box.rpc("ListDir", {"path": "f"}).json()["code"] == "invalid_argument"
    assert box.rpc("Move", {"source": "nope", "destination": "x"}).json()["code"] == "not_found"
    moved = box.rpc("Move", {"source": "f", "destination": "g/h"}).json()["entry"]
    assert moved["name"] == "h"
    assert box.rpc("Remove", {"path": "g"}).json() == {}
    assert box.rpc("Remove", {"path": "g"}).status_code == 200  # gone already: fine, as E2B
    assert box.rpc("Stat", {"path": 5}).json()["code"] == "invalid_argument"
    bad = box.client.post(
        "/filesystem.Filesystem/Stat",
        content=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_argument"
    unknown = box.rpc("GetWatcherEvents", {"watcherId": "nope"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    watcher = box.rpc("CreateWatcher", {"path": "d"}).json()["watcherId"]
    box.client.post(
        "/files",
        params={"path": "d/new"},
        content=b"1",
        headers={"Content-Type": "application/octet-stream"},
    )
    events: list[dict[str, Any]] = []
    for _ in range(100):
        events += box.rpc("GetWatcherEvents", {"watcherId": watcher}).json().get("events", [])
        if any(e["name"] == "new" for e in events):
            break
        time.sleep(0.05)
    assert {"name": "new", "type": "EVENT_TYPE_CREATE"} in events
    assert box.rpc("RemoveWatcher", {"watcherId": watcher}).json() == {}
    assert box.rpc("RemoveWatcher", {"watcherId": watcher}).status_code == 404
    no_token = httpx.post(
        f"{box.served.sandbox}/filesystem.Filesystem/Stat",
        json={"path": "."},
        headers={"E2b-Sandbox-Id": box.id},
    )
    assert no_token.status_code == 401 and no_token.json()["code"] == "unauthenticated"


OCTET = {"Content-Type": "application/octet-stream"}


def test_downloads_gzip_when_accepted_and_errors_as_envd(box: Box) -> None:
    text = b"line of text\n" * 50_000
    assert (
        box.client.post("/files", params={"path": "g.txt"}, content=text, headers=OCTET).json()[0][
            "type"
        ]
        == "file"
    )
    raw = httpx.get(
        f"{box.served.sandbox}/files",
        params={"path": "g.txt"},
        headers={**box.headers, "Accept-Encoding": "gzip"},
    )
    assert raw.headers["content-encoding"] == "gzip" and raw.content == text
    with box.client.stream(
        "GET", "/files", params={"path": "g.txt"}, headers={"Accept-Encoding": "gzip"}
    ) as streamed:
        wire = b"".join(streamed.iter_raw())
    assert len(wire) < len(text) // 10 and gzip.decompress(wire) == text
    plain = box.client.get(
        "/files", params={"path": "g.txt"}, headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers and plain.content == text
    assert plain.headers["content-type"] == "application/octet-stream"
    ranged = box.client.get(
        "/files",
        params={"path": "g.txt"},
        headers={"Accept-Encoding": "gzip", "Range": "bytes=0-1"},
    )
    assert "content-encoding" not in ranged.headers
    missing = box.client.get("/files", params={"path": "none.txt"})
    assert missing.status_code == 404
    assert missing.json() == {"code": 404, "message": "path 'none.txt' does not exist"}
    directory = box.client.get("/files", params={"path": "."})
    assert directory.status_code == 400 and directory.json()["message"] == "path '.' is a directory"
    assert box.client.get("/files").status_code == 400
    empty = box.client.post("/files", params={"path": "empty"}, content=b"", headers=OCTET)
    assert empty.status_code == 200 and box.client.get("/files?path=empty").content == b""


def test_special_files_are_refused_not_read(box: Box) -> None:
    root = _workspace(box)
    os.mkfifo(f"{root}/fifo")
    for path in ("/dev/zero", "/dev/urandom", "fifo"):
        reply = box.client.get("/files", params={"path": path}, timeout=10)
        assert reply.status_code == 400, (path, reply.text)
        assert "regular file" in reply.json()["message"]
    assert (
        box.client.post(
            "/files", params={"path": "fifo"}, content=b"x", headers=OCTET, timeout=10
        ).status_code
        == 400
    )


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


MULTI = {"Content-Type": "multipart/form-data; boundary=b0undary"}


def test_multipart_uploads_several_files_and_refuses_malformed_bodies(box: Box) -> None:
    body = _multipart(
        [
            ("file", "m/a.bin", b"\x00A\r\n--b0und"),
            ("other", None, b"skip"),
            ("file", "m/b.txt", b"B" * 3_000_000),
        ]
    )
    reply = box.client.post("/files", content=body, headers=MULTI)
    assert reply.status_code == 200, reply.text
    assert [(e["name"], e["type"]) for e in reply.json()] == [("a.bin", "file"), ("b.txt", "file")]
    assert box.client.get("/files?path=m/a.bin").content == b"\x00A\r\n--b0und"
    assert box.client.get("/files?path=m/b.txt").content == b"B" * 3_000_000
    named = box.client.post(
        "/files",
        params={"path": "m/c"},
        content=_multipart([("file", "ignored", b"C")]),
        headers=MULTI,
    )
    assert named.json()[0]["name"] == "c"
    assert box.client.post("/files", content=_multipart([]), headers=MULTI).json() == []
    cases = [
        (body[:-12], MULTI, "closing boundary"),
        (body, {"Content-Type": "multipart/form-data"}, "no boundary"),
        (_multipart([("file", None, b"x")]), MULTI, "no filename"),
        (_multipart([("file", "m/d", b"1"), ("file", "m/d", b"2")]), MULTI, "same path"),
        (b"garbage", MULTI, "multipart"),
        (b"x", {"Content-Type": "text/plain"}, "unsupported content type"),
        (b"x", {}, "unsupported content type"),
        (b"x", OCTET, "path query parameter is required"),
        (b"x", {**OCTET, "Content-Encoding": "br"}, "Content-Encoding"),
    ]
    for content, headers, fragment in cases:
        bad = box.client.post("/files", content=content, headers=headers)
        assert bad.status_code == 400, (fragment, bad.text)
        assert fragment.lower() in bad.json()["message"].lower(), bad.text
    assert box.client.get("/files?path=m/d").content == b"1"  # the first one, as envd


def test_gzip_uploads_and_broken_gzip(box: Box) -> None:
    data = os.urandom(300_000) + b"z" * 3_000_000
    gz = {**OCTET, "Content-Encoding": "gzip"}
    assert (
        box.client.post(
            "/files", params={"path": "z"}, content=gzip.compress(data), headers=gz
        ).status_code
        == 200
    )
    assert box.client.get("/files?path=z").content == data
    members = gzip.compress(b"one ") + gzip.compress(b"two")
    box.client.post("/files", params={"path": "two"}, content=members, headers=gz)
    assert box.client.get("/files?path=two").content == b"one two"
    cut = box.client.post(
        "/files", params={"path": "cut"}, content=gzip.compress(data)[:-100], headers=gz
    )
    assert cut.status_code == 400 and "ended early" in cut.json()["message"]
    assert box.rpc("Stat", {"path": "cut"}).status_code == 404  # the partial file is removed
    junk = box.client.post("/files", params={"path": "junk"}, content=b"not gzip", headers=gz)
    assert junk.status_code == 400 and "gzip" in junk.json()["message"]


def _measure(run: Any) -> int:
    """Peak bytes the test process (the server's thread included) allocated in ``run``."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.timeout(600)
def test_a_200_mib_upload_and_a_gzip_bomb_keep_the_servers_memory_bounded(box: Box) -> None:
    size, chunk = 200 << 20, os.urandom(1 << 16)
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for _ in range(size // len(chunk)):
            digest.update(chunk)
            yield chunk

    def upload() -> None:
        reply = box.client.post(
            "/files", params={"path": "big.bin"}, content=body(), headers=OCTET, timeout=600
        )
        assert reply.status_code == 200, reply.text

    assert _measure(upload) < 24 << 20
    assert box.rpc("Stat", {"path": "big.bin"}).json()["entry"]["size"] == str(size)
    got = hashlib.sha256()

    def download() -> None:
        with box.client.stream(
            "GET",
            "/files",
            params={"path": "big.bin"},
            headers={"Accept-Encoding": "identity"},
            timeout=600,
        ) as reply:
            for part in reply.iter_bytes():
                got.update(part)

    assert _measure(download) < 24 << 20
    assert got.hexdigest() == digest.hexdigest()
    box.rpc("Remove", {"path": "big.bin"})
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(packer.compress(bytes(1 << 20)) for _ in range(256)) + packer.flush()
    assert len(bomb) < 512 << 10

    def explode() -> None:
        reply = box.client.post(
            "/files",
            params={"path": "bomb"},
            content=bomb,
            headers={**OCTET, "Content-Encoding": "gzip"},
            timeout=600,
        )
        assert reply.status_code == 200, reply.text

    assert _measure(explode) < 24 << 20
    assert box.rpc("Stat", {"path": "bomb"}).json()["entry"]["size"] == str(256 << 20)
    box.rpc("Remove", {"path": "bomb"})


@pytest.mark.timeout(300)
def test_a_dropped_download_frees_the_sandbox_and_a_killed_one_cuts_the_body(
    served: Served,
) -> None:
    box = Box(served)
    try:
        size = 96 << 20
        payload = os.urandom(1 << 20) * (size >> 20)
        assert (
            box.client.post(
                "/files", params={"path": "big"}, content=payload, headers=OCTET, timeout=300
            ).status_code
            == 200
        )
        del payload
        for _ in range(3):  # the client goes away after one chunk
            with box.client.stream("GET", "/files", params={"path": "big"}) as reply:
                next(reply.iter_raw())
        assert box.rpc("Stat", {"path": "big"}).status_code == 200
        received = 0
        with (
            pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)),
            box.client.stream(
                "GET", "/files", params={"path": "big"}, headers={"Accept-Encoding": "identity"}
            ) as reply,
        ):
            for part in reply.iter_raw():
                if not received:
                    killed = httpx.delete(f"{served.api}/sandboxes/{box.id}", headers=AUTH)
                    assert killed.status_code == 204
                received += len(part)
        assert received < size  # never a short body that looks whole
        after = box.rpc("Stat", {"path": "."})
        assert after.status_code == 502 and "was not found" in after.json()["message"]
    finally:
        box.kill()


def test_accept_encoding_parsing() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("br, gzip;q=0.5") and accepts_gzip("GZIP")
    assert accepts_gzip("gzip, deflate")
    assert not accepts_gzip(None) and not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("gzip; q=0.000")
