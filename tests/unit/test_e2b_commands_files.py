"""E2B's commands, files and error API, against the real agent on the local backend
(``tests/local_backend.py``): code written for ``e2b`` runs with only the import changed.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from local_backend import LocalBackend

from e2b_tools import (
    AsyncSandbox,
    CommandExitException,
    FileNotFoundException,
    FileType,
    InvalidArgumentException,
    NotEnoughSpaceException,
    NotFoundException,
    Sandbox,
    SandboxNotFoundException,
    WriteEntry,
    WriteInfo,
)
from e2b_tools._exceptions import error_from_event


@pytest.fixture
def sbx(local_sandbox: Sandbox) -> Sandbox:
    return local_sandbox


# -- errors ---------------------------------------------------------------------------


def test_not_found_exception_catches_sandbox_and_file(sbx: Sandbox, backend: LocalBackend) -> None:
    with pytest.raises(NotFoundException):
        Sandbox.connect("no-such-sandbox", backend=backend)
    with pytest.raises(SandboxNotFoundException):
        Sandbox.connect("no-such-sandbox", backend=backend)
    with pytest.raises(FileNotFoundException) as missing:
        sbx.files.read("missing.txt")
    assert isinstance(missing.value, NotFoundException)
    assert isinstance(missing.value, FileNotFoundError)


def test_no_space_is_its_own_exception() -> None:
    event = {"name": "OSError", "value": "No space left on device", "errno": 28, "path": "/x"}
    error = error_from_event(event, "sbx")
    assert isinstance(error, NotEnoughSpaceException) and isinstance(error, OSError)
    assert error.kind == "no_space" and error.path == "/x"


def test_timeout_zero_means_no_limit(sbx: Sandbox) -> None:
    assert sbx.commands.run("sleep 0.2; echo ok", timeout=0).stdout == "ok\n"
    assert sbx.run_code("1 + 1", timeout=0).text == "2"


# -- commands -------------------------------------------------------------------------


def test_user_argument(sbx: Sandbox) -> None:
    assert sbx.commands.run("echo me", user="user").stdout == "me\n"
    with pytest.raises(InvalidArgumentException, match="root"):
        sbx.commands.run("id", user="root")
    with pytest.raises(InvalidArgumentException):
        sbx.commands.run("id", user="nobody")  # type: ignore[arg-type]


def test_sandbox_env(sbx: Sandbox) -> None:
    out = sbx.commands.run('echo "$E2B_SANDBOX $E2B_SANDBOX_ID"').stdout.split()
    assert out == ["true", sbx.sandbox_id]


def test_handle_iterates_output_tuples(sbx: Sandbox) -> None:
    handle = sbx.commands.run("echo a; echo b >&2; sleep 0.2; echo c", background=True)
    seen = list(handle)
    stdout = "".join(out for out, _, _ in seen if out is not None)
    stderr = "".join(err for _, err, _ in seen if err is not None)
    assert stdout == "a\nc\n" and stderr == "b\n"
    assert all(pty is None for _, _, pty in seen)
    assert handle.wait().exit_code == 0


def test_handle_wait_callbacks(sbx: Sandbox) -> None:
    handle = sbx.commands.run("echo out; echo err >&2; exit 4", background=True)
    outs: list[str] = []
    errs: list[str] = []
    with pytest.raises(CommandExitException) as info:
        handle.wait(on_stdout=outs.append, on_stderr=errs.append)
    assert "".join(outs) == "out\n" and "".join(errs) == "err\n"
    assert info.value.exit_code == 4 and info.value.stdout == "out\n"


def test_send_stdin_bytes_and_text(sbx: Sandbox) -> None:
    handle = sbx.commands.run("od -An -tx1 | tr -d ' \\n'", background=True, stdin=True)
    sbx.commands.send_stdin(handle.pid, b"\x00\xff")
    handle.send_stdin("é")
    handle.close_stdin()
    assert handle.wait().stdout == "00ffc3a9"


def test_async_handle_iteration() -> None:
    async def main() -> None:
        with LocalBackend() as backend:
            sandbox = await AsyncSandbox.create(backend=backend, timeout=60)
            try:
                handle = await sandbox.commands.run("echo x; echo y >&2", background=True)
                seen = [chunk async for chunk in handle]
                assert ("x\n", None, None) in seen and (None, "y\n", None) in seen
                assert (await handle.wait()).exit_code == 0
            finally:
                await sandbox.kill()

    asyncio.run(main())


# -- files ----------------------------------------------------------------------------


def test_write_files_and_write_info(sbx: Sandbox) -> None:
    infos = sbx.files.write_files(
        [WriteEntry(path="w/a.txt", data="A"), WriteEntry(path="w/b.bin", data=b"\x00B")]
    )
    assert [i.name for i in infos] == ["a.txt", "b.bin"]
    assert all(isinstance(i, WriteInfo) and i.type == FileType.FILE for i in infos)
    assert sbx.files.read("w/b.bin", format="bytes") == b"\x00B"
    assert isinstance(sbx.files.write("w/c.txt", "C"), WriteInfo)
    assert sbx.files.write_files([]) == []


def test_rename_and_remove_missing(sbx: Sandbox) -> None:
    sbx.files.write("r/old.txt", "data")
    info = sbx.files.rename("r/old.txt", "r/sub/new.txt")
    assert info.name == "new.txt" and info.path.endswith("/r/sub/new.txt")
    assert sbx.files.read("r/sub/new.txt") == "data"
    assert not sbx.files.exists("r/old.txt")
    with pytest.raises(FileNotFoundException):
        sbx.files.rename("r/old.txt", "r/other.txt")
    sbx.files.remove("r/never-there.txt")  # no error, as in E2B


def test_list_depth_none_and_owner(sbx: Sandbox) -> None:
    sbx.files.write("l/a/b.txt", "x")
    assert [e.name for e in sbx.files.list("l", depth=None)] == ["a"]
    entry = sbx.files.get_info("l/a/b.txt")
    assert entry.uid == os.getuid() and entry.owner  # a name, or the id as text
    assert entry.group


def test_symlink_info_as_e2b(sbx: Sandbox) -> None:
    sbx.files.write("s/target.txt", "t")
    sbx.commands.run("ln -s target.txt s/link && ln -s . s/dirlink && ln -s gone s/dangling")
    target = sbx.files.get_info("s/target.txt").path
    link = sbx.files.get_info("s/link")
    assert link.type == FileType.FILE and link.symlink_target == target
    assert sbx.files.get_info("s/dirlink").type == FileType.DIR
    dangling = sbx.files.get_info("s/dangling")
    assert dangling.type == FileType.SYMLINK
    assert dangling.symlink_target is not None and dangling.symlink_target.startswith("/")


def test_read_stream(sbx: Sandbox) -> None:
    data = os.urandom(3 * (1 << 20) + 5)
    sbx.files.write("big.bin", data)
    chunks = list(sbx.files.read("big.bin", format="stream"))
    assert len(chunks) == 4 and b"".join(chunks) == data
    with sbx.files.read("big.bin", format="stream") as stream:
        assert next(stream) == data[: 1 << 20]
    assert sbx.commands.run("echo still").stdout == "still\n"  # the rest was dropped
    with pytest.raises(FileNotFoundException):
        sbx.files.read("nope.bin", format="stream")
    sbx.files.write("empty", b"")
    assert list(sbx.files.read("empty", format="stream")) == []


def test_async_read_stream() -> None:
    async def main() -> None:
        with LocalBackend() as backend:
            sandbox = await AsyncSandbox.create(backend=backend, timeout=60)
            try:
                await sandbox.files.write("f.bin", b"abc")
                stream = await sandbox.files.read("f.bin", format="stream")
                assert [chunk async for chunk in stream] == [b"abc"]
            finally:
                await sandbox.kill()

    asyncio.run(main())
