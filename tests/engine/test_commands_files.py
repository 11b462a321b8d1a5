"""Shell commands and files, against real sandboxes."""

from __future__ import annotations

import hashlib
import os

import pytest
from test_background import PROCS

from e2b_tools import (
    CommandExitError,
    FileType,
    InvalidArgumentError,
    NotFoundError,
    Sandbox,
    SandboxFileError,
    SandboxTimeoutError,
)


def test_command_output_and_exit_code(sandbox: Sandbox) -> None:
    result = sandbox.commands.run("echo out; echo err >&2; pwd")
    assert result.stdout == "out\n/home/user\n"
    assert result.stderr == "err\n"
    assert result.exit_code == 0


def test_nonzero_exit_raises_with_the_whole_result(sandbox: Sandbox) -> None:
    with pytest.raises(CommandExitError) as info:
        sandbox.commands.run("echo partial; echo oops >&2; exit 7")
    err = info.value
    assert err.exit_code == 7
    assert err.stdout == "partial\n"
    assert err.stderr == "oops\n"
    assert "oops" in str(err)


def test_cwd_envs_and_stdin_closed(sandbox: Sandbox) -> None:
    sandbox.files.make_dir("work/sub")
    result = sandbox.commands.run(
        "pwd; echo $GREETING; cat", cwd="work/sub", envs={"GREETING": "hi"}
    )
    assert result.stdout == "/home/user/work/sub\nhi\n"
    with pytest.raises(InvalidArgumentError, match="not a directory"):
        sandbox.commands.run("true", cwd="/nope")


def test_command_timeout_kills_the_process_group(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxTimeoutError, match="timeout=1s") as info:
        sandbox.commands.run("echo begun; (sleep 100; echo never) & sleep 100", timeout=1)
    assert info.value.result is not None
    assert info.value.result.stdout == "begun\n"
    procs = sandbox.commands.run(PROCS).stdout
    assert "bash" in procs  # the listing works: it shows the shell running it
    assert "sleep 100" not in procs


def test_streaming_command_output(sandbox: Sandbox) -> None:
    chunks: list[str] = []
    sandbox.commands.run("for i in 1 2 3; do echo $i; sleep 0.1; done", on_stdout=chunks.append)
    assert "".join(chunks) == "1\n2\n3\n"
    assert len(chunks) >= 2  # delivered as it happened, not in one piece at the end


def test_background_child_does_not_hang_the_call(sandbox: Sandbox) -> None:
    result = sandbox.commands.run("sleep 30 & echo started", timeout=10)
    assert result.stdout == "started\n"


def test_text_round_trip_and_parents(sandbox: Sandbox) -> None:
    info = sandbox.files.write("deep/er/notes.md", "# Title\nnaïve ✓\n")
    assert info.path == "/home/user/deep/er/notes.md"
    assert info.type == FileType.FILE
    assert sandbox.files.read("/home/user/deep/er/notes.md") == "# Title\nnaïve ✓\n"


def test_ten_mib_binary_round_trip(sandbox: Sandbox) -> None:
    data = os.urandom(10 * 1024 * 1024)
    sandbox.files.write("blob.bin", data)
    back = sandbox.files.read("blob.bin", format="bytes")
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest()
    digest = sandbox.commands.run("sha256sum blob.bin").stdout.split()[0]
    assert digest == hashlib.sha256(data).hexdigest()


def test_binary_file_as_text_has_replacement_characters(sandbox: Sandbox) -> None:
    # As E2B: bytes that are not UTF-8 become U+FFFD; format="bytes" keeps them.
    sandbox.files.write("bin.dat", b"\xff\xfe\x00binary")
    assert sandbox.files.read("bin.dat") == "\ufffd\ufffd\x00binary"
    assert sandbox.files.read("bin.dat", format="bytes") == b"\xff\xfe\x00binary"


def test_list_exists_remove_make_dir(sandbox: Sandbox) -> None:
    assert sandbox.files.make_dir("proj/src") is True
    assert sandbox.files.make_dir("proj/src") is False
    sandbox.files.write("proj/src/a.py", "a = 1\n")
    sandbox.files.write("proj/readme.txt", "r")
    top = sandbox.files.list("proj")
    assert [(e.name, e.type) for e in top] == [("readme.txt", FileType.FILE), ("src", FileType.DIR)]
    deep = sandbox.files.list("proj", depth=2)
    assert "/home/user/proj/src/a.py" in [e.path for e in deep]
    assert sandbox.files.exists("proj/src/a.py")
    assert sandbox.files.get_info("proj/src/a.py").size == 6
    sandbox.files.remove("proj")
    assert not sandbox.files.exists("proj")


def test_file_errors(sandbox: Sandbox) -> None:
    with pytest.raises(NotFoundError, match=r"missing\.txt"):
        sandbox.files.read("missing.txt")
    with pytest.raises(FileNotFoundError):  # also the builtin
        sandbox.files.list("missing-dir")
    with pytest.raises(SandboxFileError):
        sandbox.files.write("/etc/passwd", "no")  # read-only root, not root
    sandbox.files.make_dir("adir")
    with pytest.raises(SandboxFileError, match="IsADirectory"):
        sandbox.files.write("adir", "x")


def test_rewriting_keeps_mode_follows_symlinks_and_respects_read_only(sandbox: Sandbox) -> None:
    sandbox.files.write("run.sh", "#!/bin/sh\necho one\n")
    sandbox.commands.run("chmod 750 run.sh && ln -s run.sh link.sh")
    sandbox.files.write("run.sh", "#!/bin/sh\necho two\n")
    assert sandbox.commands.run("stat -c %a run.sh && ./run.sh").stdout == "750\ntwo\n"
    written = sandbox.files.write("link.sh", "#!/bin/sh\necho three\n")
    assert written.type == "file" and written.symlink_target == written.path[:-7] + "run.sh"
    assert sandbox.commands.run("stat -c %F link.sh && ./run.sh").stdout == (
        "symbolic link\nthree\n"
    )
    sandbox.commands.run("chmod 444 run.sh")
    with pytest.raises(SandboxFileError, match="PermissionError"):
        sandbox.files.write("run.sh", "lost?")
    assert sandbox.files.read("run.sh") == "#!/bin/sh\necho three\n"


def test_upload_download(sandbox: Sandbox, tmp_path: pytest.TempPathFactory) -> None:
    local = tmp_path / "in.bin"  # type: ignore[operator]
    local.write_bytes(b"\x00\x01payload")
    sandbox.files.upload(local, "up/in.bin")
    out = sandbox.files.download("up/in.bin", tmp_path / "out.bin")  # type: ignore[operator]
    assert out.read_bytes() == b"\x00\x01payload"
