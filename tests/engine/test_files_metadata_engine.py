"""E2B's file metadata (``user.e2b.*`` extended attributes) and ``gzip=`` in a real
container: the workspace and ``/tmp`` are tmpfs mounts, which take user xattrs from
Linux 6.6 on, with limits of their own (64 KiB values, no per-inode budget)."""

from __future__ import annotations

import time

import pytest

from e2b_tools import InvalidArgumentException, Sandbox, SandboxFileError
from e2b_tools.agent.files import METADATA_KEY_MAX, METADATA_TOTAL_MAX

TEXT = "".join(f"line {i} of a log with some words\n" for i in range(200_000))  # ~7 MiB


def _py(sandbox: Sandbox, script: str) -> str:
    """Run python3 code as the sandbox's user (not the agent)."""
    sandbox.files.write("/tmp/script.py", script)
    return sandbox.commands.run("python3 /tmp/script.py", timeout=120).stdout


@pytest.mark.parametrize("where", ["/home/user", "/tmp"])
def test_metadata_lives_in_tmpfs_xattrs(sandbox: Sandbox, where: str) -> None:
    assert sandbox.commands.run(f"stat -f -c %T {where}").stdout.strip() == "tmpfs"
    meta = {"author": "mish", "purpose": "upload"}
    info = sandbox.files.write(f"{where}/d/meta.txt", "content", metadata=meta)
    assert info.metadata == meta
    assert sandbox.files.get_info(info.path).metadata == meta
    assert [e.metadata for e in sandbox.files.list(f"{where}/d")] == [meta]
    # The sandbox's own tools see the attributes the agent set.
    seen = _py(sandbox, f"import os; print(os.getxattr({info.path!r}, 'user.e2b.author'))")
    assert seen == "b'mish'\n"
    moved = sandbox.files.rename(info.path, f"{where}/e/moved.txt")
    assert moved.metadata == meta
    assert sandbox.files.write(moved.path, "again").metadata is None


def test_metadata_set_by_user_code_is_reported(sandbox: Sandbox) -> None:
    # E2B's own test: an attribute set out of band, namespace stripped.
    path = sandbox.files.write("xattr.txt", "content").path
    _py(sandbox, f"import os; os.setxattr({path!r}, 'user.e2b.author', b'mish')")
    assert sandbox.files.get_info("xattr.txt").metadata == {"author": "mish"}


def test_the_largest_metadata_e2b_allows_is_stored(sandbox: Sandbox) -> None:
    key = "k" * METADATA_KEY_MAX
    assert sandbox.files.write("long_key.txt", "x", metadata={key: "v"}).metadata == {key: "v"}
    full = {"k": "v" * (METADATA_TOTAL_MAX - len("user.e2b.") - 1)}
    assert sandbox.files.write("full.txt", "x", metadata=full).metadata == full
    many = {f"k{i:03}": "" for i in range(METADATA_TOTAL_MAX // 13)}  # 13 bytes each
    assert sandbox.files.write("many.txt", "x", metadata=many).metadata == many
    with pytest.raises(InvalidArgumentException, match="over 4096"):
        sandbox.files.write("over.txt", "x", metadata={**many, "one": "more"})
    assert not sandbox.files.exists("over.txt")


def test_hostile_attributes_stay_bounded(sandbox: Sandbox) -> None:
    # User code fills files with what tmpfs takes and a write never could: 64 KiB values,
    # thousands of keys, names past listxattr's 64 KiB, bytes that are not UTF-8.
    _py(
        sandbox,
        "import os\n"
        "os.makedirs('hostile', exist_ok=True)\n"
        "for f in range(50):\n"
        "    p = f'hostile/{f:02}.txt'\n"
        "    open(p, 'w').close()\n"
        "    for i in range(40):\n"
        "        os.setxattr(p, f'user.e2b.big{i:02}', b'b' * 65536)\n"
        "    for i in range(2000):\n"
        "        os.setxattr(p, f'user.e2b.k{i:04}', b'v' * 30)\n"
        "    os.setxattr(p, 'user.e2b.bin', b'\\xff' * 100)\n"
        "p = 'hostile/names.txt'\n"
        "open(p, 'w').close()\n"
        "for i in range(6000):\n"
        "    os.setxattr(p, 'user.e2b.' + 'n' * 20 + str(i), b'')\n",
    )
    start = time.monotonic()
    entries = {e.name: e.metadata for e in sandbox.files.list("hostile")}
    assert time.monotonic() - start < 30  # not a timing assert: a hang would be the bug
    assert entries["names.txt"] is None
    for name in (f"{f:02}.txt" for f in range(50)):
        meta = entries[name]
        assert meta is not None and "bin" not in meta and not any(k.startswith("big") for k in meta)
        assert sum(len("user.e2b.") + len(k) + len(v) for k, v in meta.items()) <= 4096


def test_metadata_and_other_writers(sandbox: Sandbox) -> None:
    sandbox.files.write("in_place.txt", "old", metadata={"v": "1"})
    sandbox.files.write("replaced.txt", "old", metadata={"v": "1"})
    sandbox.commands.run("printf new > in_place.txt && sed -i s/old/new/ replaced.txt")
    assert sandbox.files.get_info("in_place.txt").metadata == {"v": "1"}
    assert sandbox.files.get_info("replaced.txt").metadata is None


def test_metadata_where_it_cannot_be_written(sandbox: Sandbox) -> None:
    assert sandbox.files.get_info("/etc/hostname").metadata is None
    with pytest.raises(SandboxFileError):
        sandbox.files.write("/etc/e2b-tools-meta.txt", "x", metadata={"a": "b"})
    with pytest.raises(SandboxFileError):
        sandbox.files.write("/proc/self/comm", "x", metadata={"a": "b"})


def test_gzip_round_trips_in_the_container(sandbox: Sandbox) -> None:
    sandbox.files.write("log.txt", TEXT, gzip=True)
    assert sandbox.commands.run("wc -c < log.txt").stdout.strip() == str(len(TEXT))
    assert sandbox.files.read("log.txt", gzip=True) == TEXT
    with sandbox.files.read("log.txt", "stream", gzip=True) as stream:
        assert b"".join(stream) == TEXT.encode()
    sandbox.commands.run("head -c 3000000 /dev/urandom > noise.bin")
    noise = sandbox.files.read("noise.bin", "bytes", gzip=True)
    assert len(noise) == 3_000_000
    sandbox.files.write("noise2.bin", noise, gzip=True)
    assert sandbox.commands.run("cmp noise.bin noise2.bin").exit_code == 0
