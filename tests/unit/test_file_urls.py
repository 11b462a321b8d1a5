"""``upload_url`` / ``download_url``: signed URLs of a sandbox's files, served by this
process on the loopback (engine-free: the real agent as a subprocess)."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import io
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import IO

import pytest
import requests
from local_backend import LocalBackend

from e2b_tools import AsyncSandbox, InvalidArgumentError, Sandbox, SandboxGoneError
from e2b_tools import _file_urls as file_urls

MiB = 1 << 20


def _split(url: str) -> tuple[str, int, str]:
    """Host, port and request target of a URL."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.port is not None
    return parts.hostname, parts.port, f"{parts.path}?{parts.query}"


def _request(
    url: str,
    method: str = "GET",
    body: bytes | Iterator[bytes] | None = None,
    headers: dict[str, str] | None = None,
    *,
    chunked: bool = False,
    timeout: float = 60,
) -> tuple[int, bytes]:
    """Status and body of one request (errors included), over http.client."""
    host, port, target = _split(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {}, encode_chunked=chunked)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _multipart(boundary: str, *parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body, built by hand: (field name, file name, data) parts."""
    out = b"preamble, ignored\r\n"
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        out += b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _post_multipart(url: str, body: bytes, boundary: str) -> tuple[int, bytes]:
    return _request(
        url, "POST", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )


@pytest.fixture
def sbx(local_sandbox: Sandbox) -> Sandbox:
    return local_sandbox


# -- downloads ------------------------------------------------------------------------


def test_download_with_urllib(sbx: Sandbox) -> None:
    data = bytes(range(256)) * 1000
    sbx.files.write("dir/data.bin", data)
    url = sbx.download_url("dir/data.bin")
    assert url.startswith("http://127.0.0.1:")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["path"] == ["dir/data.bin"] and query["username"] == ["user"]
    assert query["signature"][0].startswith("v1_") and "signature_expiration" not in query
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.read() == data
    # A URL works as often as asked, until kill().
    assert urllib.request.urlopen(url, timeout=30).read() == data


def test_download_of_a_missing_file_is_404(sbx: Sandbox) -> None:
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(sbx.download_url("missing.txt"), timeout=30)
    assert info.value.code == 404
    assert b"missing.txt" in info.value.read()
    sbx.files.make_dir("a_dir")
    assert _request(sbx.download_url("a_dir"))[0] == 400


def test_a_path_with_spaces_and_unicode(sbx: Sandbox) -> None:
    name = "odd dir/na me ü+&=.txt"
    assert _request(sbx.upload_url(name), "POST", b"odd")[0] == 200
    assert sbx.files.read(name) == "odd"
    assert _request(sbx.download_url(name)) == (200, b"odd")


# -- uploads --------------------------------------------------------------------------


def test_upload_a_hand_built_multipart_body(sbx: Sandbox) -> None:
    boundary = "----e2b-tools-test-7d1f"
    body = _multipart(
        boundary,
        ("comment", None, b"not a file"),
        ("file", "ignored-name.txt", b"line 1\r\n--not the boundary\r\nline 3"),
    )
    status, answer = _post_multipart(sbx.upload_url("up/hand.txt"), body, boundary)
    assert status == 200, answer
    [entry] = json.loads(answer)
    assert entry["name"] == "hand.txt" and entry["type"] == "file"
    assert entry["path"].endswith("/up/hand.txt")
    assert sbx.files.read("up/hand.txt", format="bytes") == (
        b"line 1\r\n--not the boundary\r\nline 3"
    )


def test_upload_with_requests_files_as_e2b_documents(sbx: Sandbox) -> None:
    url = sbx.upload_url("docs.txt")
    response = requests.post(url, files={"file": io.BytesIO(b"from requests")}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()[0]["path"].endswith("/docs.txt")
    assert sbx.files.read("docs.txt") == "from requests"
    # Without a path, each part goes to its file name (the base name only).
    url = sbx.upload_url()
    assert "path=" not in url
    response = requests.post(url, files={"file": ("../../named.txt", b"named")}, timeout=30)
    assert response.status_code == 200, response.text
    assert sbx.files.read("named.txt") == "named"


def test_upload_a_raw_octet_stream_body(sbx: Sandbox) -> None:
    url = sbx.upload_url("raw.bin", use_signature_expiration=60)
    request = urllib.request.Request(
        url, data=b"\x00raw\xff", headers={"Content-Type": "application/octet-stream"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())[0]["name"] == "raw.bin"
    assert sbx.files.read("raw.bin", format="bytes") == b"\x00raw\xff"
    # Chunked transfer encoding, and metadata headers as E2B takes them.
    parts = iter([b"chunk one, ", b"chunk two"])
    status, _ = _request(url, "POST", parts, {"X-Metadata-Author": "me"}, chunked=True)
    assert status == 200
    assert sbx.files.read("raw.bin") == "chunk one, chunk two"
    assert sbx.files.get_info("raw.bin").metadata == {"author": "me"}


def test_a_20_mib_round_trip_is_spooled_to_disk(
    sbx: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    spools: list[IO[bytes]] = []
    spool = file_urls._spool

    def spy() -> IO[bytes]:
        spools.append(spool())
        return spools[-1]

    monkeypatch.setattr(file_urls, "_spool", spy)
    block = os.urandom(MiB)
    boundary = "b-" + os.urandom(16).hex()
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + 20 * MiB + len(tail)

    def body() -> Iterator[bytes]:  # never the whole file in this process either
        yield head.encode()
        for i in range(20):
            yield bytes([i]) + block[1:]
        yield tail

    expected = hashlib.sha256(b"".join(bytes([i]) + block[1:] for i in range(20))).hexdigest()
    status, answer = _request(
        sbx.upload_url("big.bin"),
        "POST",
        body(),
        {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(length),
        },
    )
    assert status == 200, answer
    assert len(spools) == 1 and getattr(spools[0], "_rolled", False)  # went to a file
    digest = hashlib.sha256()
    with urllib.request.urlopen(sbx.download_url("big.bin"), timeout=60) as response:
        while chunk := response.read(MiB):
            digest.update(chunk)
    assert digest.hexdigest() == expected


def test_an_upload_over_the_cap_is_413(sbx: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_urls, "MAX_UPLOAD", 1000)
    url = sbx.upload_url("capped.bin")
    # Refused on its Content-Length, before a byte of the body is read.
    host, port, target = _split(url)
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n".encode())
        assert conn.recv(4096).startswith(b"HTTP/1.1 413 ")
    # Chunked: refused once it passes the cap.
    status, _ = _request(url, "POST", iter([b"x" * 600, b"y" * 600]), chunked=True)
    assert status == 413
    assert _request(url, "POST", b"z" * 1000)[0] == 200
    assert not sbx.files.exists("capped.bin") or sbx.files.read("capped.bin") == "z" * 1000


# -- malformed requests ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'--B\r\nContent-Disposition: form-data; name="file"\r\n\r\nno end', "boundary=B"),
        (b"--B\r\n\r\nno disposition\r\n--B--\r\n", "boundary=B"),
        (
            b'--B\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--B--\r\n',
            "boundary=B",
        ),
        (b"no boundary at all", "boundary=B"),
        (b"--B--\r\n", ""),
    ],
    ids=["unterminated", "no-disposition", "no-file-part", "no-delimiter", "no-boundary"],
)
def test_malformed_multipart_is_400(sbx: Sandbox, body: bytes, content_type: str) -> None:
    url = sbx.upload_url("never.txt")
    headers = {"Content-Type": f"multipart/form-data; {content_type}".strip("; ")}
    status, answer = _request(url, "POST", body, headers)
    assert status == 400, answer
    assert not sbx.files.exists("never.txt")


def test_other_bad_requests(sbx: Sandbox) -> None:
    url = sbx.upload_url("x.txt")
    assert _request(url, "POST", b"x", {"Content-Type": "text/csv"})[0] == 415
    assert _request(sbx.upload_url(), "POST", b"x")[0] == 400  # a raw body needs a path
    status, _ = _request(url + "&path=y.txt", "POST", b"x")
    assert status == 400  # a field given twice


def test_oversized_and_too_many_headers_are_431(sbx: Sandbox) -> None:
    url = sbx.download_url("a.txt")
    assert _request(url, headers={"X-Big": "a" * (file_urls.MAX_LINE + 10)})[0] == 431
    many = {f"X-H{i}": "v" for i in range(file_urls.MAX_HEADERS + 1)}
    assert _request(url, headers=many)[0] == 431
    host, port, target = _split(url)
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(f"GET {target}{'a' * 10000} HTTP/1.1\r\n\r\n".encode())
        assert conn.recv(4096).startswith(b"HTTP/1.1 431 ")


def test_wrong_methods_and_paths(sbx: Sandbox) -> None:
    sbx.files.write("m.txt", "m")
    url = sbx.download_url("m.txt")
    for method in ("PUT", "DELETE", "PATCH"):
        assert _request(url, method, b"")[0] == 405
    assert _request(url.replace("/files?", "/other?"))[0] == 404
    assert sbx.files.read("m.txt") == "m"


# -- signatures -----------------------------------------------------------------------


def _with(url: str, **changes: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    query.update(changes)
    return parts._replace(query=urllib.parse.urlencode(query)).geturl()


def test_tampered_urls_are_refused(sbx: Sandbox, backend: LocalBackend) -> None:
    sbx.files.write("secret.txt", "secret")
    sbx.files.write("public.txt", "public")
    url = sbx.download_url("public.txt")
    assert _request(url) == (200, b"public")
    assert _request(_with(url, path="secret.txt"))[0] == 403
    assert _request(_with(url, username="root"))[0] == 403
    signature = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["signature"][0]
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert _request(_with(url, signature=flipped))[0] == 403
    assert _request(_with(url, signature_expiration=str(int(time.time()) + 999)))[0] == 403
    no_signature = url.replace(f"&signature={signature}", "")
    assert _request(no_signature) == (401, b"missing signature\n")
    # A URL does one operation: a download URL does not upload, nor the other way.
    assert _request(url, "POST", b"overwrite")[0] == 403
    assert _request(sbx.upload_url("public.txt"))[0] == 403
    assert sbx.files.read("public.txt") == "public"
    # Nor does it open another sandbox's files, moved to that sandbox's port.
    other = Sandbox.create(backend=backend, timeout=60)
    try:
        other.files.write("public.txt", "other")
        port = _split(other.download_url("public.txt"))[1]
        assert _request(url.replace(f":{_split(url)[1]}/", f":{port}/"))[0] == 403
    finally:
        other.kill()


def test_expired_signatures_are_refused(sbx: Sandbox) -> None:
    sbx.files.write("t.txt", "t")
    url = sbx.download_url("t.txt", use_signature_expiration=60)
    expiration = int(
        urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["signature_expiration"][0]
    )
    assert abs(expiration - (time.time() + 60)) < 5
    assert _request(url) == (200, b"t")
    # The same URL signed to have expired a second ago (no waiting for it).
    past = int(time.time()) - 1
    signature = file_urls.signature(sbx.sandbox_id, "read", "t.txt", "user", past)
    expired = _with(url, signature=signature, signature_expiration=str(past))
    assert _request(expired) == (401, b"signature expired\n")


def test_bad_arguments(sbx: Sandbox) -> None:
    for bad in (0, -5, True, 1.5):
        with pytest.raises(InvalidArgumentError, match="use_signature_expiration"):
            sbx.download_url("a.txt", use_signature_expiration=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="path"):
        sbx.download_url("")
    with pytest.raises(InvalidArgumentError, match="root"):
        sbx.upload_url("a.txt", user="root")
    assert "username=user" in sbx.upload_url("a.txt", user="user")


# -- lifecycle ------------------------------------------------------------------------


def test_kill_closes_the_listener(backend: LocalBackend) -> None:
    sbx = Sandbox.create(backend=backend, timeout=60)
    sbx.files.write("k.txt", "k")
    url = sbx.download_url("k.txt")
    assert sbx.upload_url("k.txt").split("/files")[0] == url.split("/files")[0]  # one server
    assert _request(url) == (200, b"k")
    sbx.kill()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(_split(url)[:2], timeout=5).close()
    with pytest.raises(SandboxGoneError):
        sbx.download_url("k.txt")


def test_kill_without_urls_and_then_none(backend: LocalBackend) -> None:
    sbx = Sandbox.create(backend=backend, timeout=60)
    sbx.kill()
    with pytest.raises(SandboxGoneError):
        sbx.upload_url("k.txt")


def test_a_url_asked_for_just_before_kill_leaves_later_servers_working(
    backend: LocalBackend,
) -> None:
    # kill() used to cancel the server's start half-way: its socket stayed registered
    # with the loop's selector once closed, and the next listener given that descriptor
    # number never accepted a connection.
    for _ in range(5):
        doomed = Sandbox.create(backend=backend, timeout=60)
        doomed.upload_url("x.txt")
        doomed.kill()
        sbx = Sandbox.create(backend=backend, timeout=60)
        try:
            sbx.files.write("k.txt", "k")
            assert _request(sbx.download_url("k.txt"), timeout=10) == (200, b"k")
        finally:
            sbx.kill()


@pytest.mark.asyncio
async def test_a_url_then_kill_at_once_in_the_async_api(backend: LocalBackend) -> None:
    sbx = await AsyncSandbox.create(backend=backend, timeout=60)
    url = sbx.upload_url("x.txt")  # its server has not started yet
    await sbx.kill()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(_split(url)[:2], timeout=5).close()


@pytest.mark.asyncio
async def test_the_async_api_gives_urls_without_awaiting(backend: LocalBackend) -> None:
    sbx = await AsyncSandbox.create(backend=backend, timeout=60)
    try:
        url = sbx.upload_url("async.txt")  # E2B: a plain call
        status, _ = await asyncio.to_thread(_request, url, "POST", b"async")
        assert status == 200
        assert await asyncio.to_thread(_request, sbx.download_url("async.txt")) == (200, b"async")
    finally:
        await sbx.kill()
