"""E2B's ``gzip=``, ``use_octet_stream=`` and ``metadata=`` on files, and its words for a
bad ``depth``, against the real agent on the local backend (its scratch directory must
take ``user.`` extended attributes, as ext4 and tmpfs do)."""

from __future__ import annotations

import asyncio
import base64
import os
import tempfile
import zlib
from collections.abc import Iterator

import pytest
from local_backend import LocalBackend

from e2b_tools import (
    AsyncSandbox,
    FileType,
    InvalidArgumentException,
    ProtocolError,
    Sandbox,
    SandboxError,
    SandboxFileError,
    WriteEntry,
)
from e2b_tools._bridge import blocking
from e2b_tools._files import _chunk
from e2b_tools.agent import protocol
from e2b_tools.agent.files import (
    FILE_CHUNK,
    METADATA_KEY_MAX,
    METADATA_TOTAL_MAX,
    Compressor,
    check_metadata,
    inflate,
    read_metadata,
)

TEXT = "".join(f"line {i} of a log with some words\n" for i in range(60_000))  # ~2 MiB


@pytest.fixture
def sbx(local_sandbox: Sandbox) -> Sandbox:
    return local_sandbox


def _sh(sbx: Sandbox, script: str) -> str:
    """Run python3 code in the sandbox (as a process that is not the agent)."""
    quoted = script.replace("'", "'\"'\"'")
    return sbx.commands.run(f"python3 -c '{quoted}'").stdout


# -- gzip and use_octet_stream ----------------------------------------------------------


def test_gzip_read_returns_the_same_data_in_every_format(sbx: Sandbox) -> None:
    sbx.files.write("log.txt", TEXT)
    noise = os.urandom(3 * FILE_CHUNK + 7)  # incompressible: sent as it is after chunk 1
    sbx.files.write("noise.bin", noise)
    assert sbx.files.read("log.txt", gzip=True) == TEXT
    assert sbx.files.read("log.txt", "bytes", gzip=True) == TEXT.encode()
    with sbx.files.read("log.txt", "stream", gzip=True) as stream:
        assert b"".join(stream) == TEXT.encode()
    assert sbx.files.read("noise.bin", "bytes", gzip=True) == noise
    assert sbx.files.read("log.txt", gzip=True, offset=5, length=100) == TEXT[5:105]
    sbx.files.write("empty.txt", "")
    assert sbx.files.read("empty.txt", gzip=True) == ""


def test_gzip_read_keeps_the_size_cap(sbx: Sandbox) -> None:
    sbx.files.write("log.txt", TEXT)
    with pytest.raises(SandboxFileError) as err:
        sbx.files.read("log.txt", gzip=True, max_size=1000)
    assert err.value.kind == "too_large"


def test_gzip_and_octet_stream_writes_store_the_same_bytes(sbx: Sandbox) -> None:
    noise = os.urandom(2 * FILE_CHUNK + 3)
    sbx.files.write("a.txt", TEXT, gzip=True)
    sbx.files.write("b.bin", noise, gzip=True, use_octet_stream=True)
    sbx.files.write("c.txt", "x", use_octet_stream=False)
    sbx.files.write("a.txt", "tail\n", gzip=True, append=True)
    assert sbx.files.read("a.txt") == TEXT + "tail\n"
    assert sbx.files.read("b.bin", "bytes") == noise
    assert sbx.files.read("c.txt") == "x"
    infos = sbx.files.write_files(
        [WriteEntry(path="m/1.txt", data="one" * 1000), WriteEntry(path="m/2.txt", data=b"\0")],
        gzip=True,
        use_octet_stream=True,
    )
    assert [i.name for i in infos] == ["1.txt", "2.txt"]
    assert sbx.files.read("m/1.txt") == "one" * 1000


def test_compressor_stops_on_data_that_does_not_shrink() -> None:
    packer = Compressor()
    packed, compressed = packer.pack(b"a" * 1000)
    assert compressed and inflate(packed) == b"a" * 1000
    assert packer.pack(os.urandom(1000))[1] is False
    assert packer.pack(b"a" * 1000) == (b"a" * 1000, False)  # off for the rest of the file


def test_inflate_refuses_bombs_and_garbage() -> None:
    assert inflate(zlib.compress(b"x" * FILE_CHUNK)) == b"x" * FILE_CHUNK
    with pytest.raises(ValueError, match="inflates past"):
        inflate(zlib.compress(b"\0" * (FILE_CHUNK + 1)))
    with pytest.raises(ValueError, match="inflates past"):
        inflate(zlib.compress(b"\0" * (64 * FILE_CHUNK), 9))  # ~64 KiB in, never 64 MiB out
    with pytest.raises(ValueError, match="cut short"):
        inflate(zlib.compress(b"abc" * 100)[:-3])
    with pytest.raises(ValueError, match="cut short"):
        inflate(zlib.compress(b"abc") + b"trailing")
    with pytest.raises(ValueError, match="not zlib"):
        inflate(b"not zlib at all")


def test_a_bad_compressed_chunk_from_the_sandbox_is_a_protocol_error() -> None:
    bomb = base64.b64encode(zlib.compress(b"\0" * (8 * FILE_CHUNK))).decode()
    with pytest.raises(ProtocolError, match="bad chunk"):
        _chunk({"type": "data", "data": bomb, "compressed": True}, "sbx")
    plain = base64.b64encode(b"abc").decode()
    assert _chunk({"type": "data", "data": plain}, "sbx") == b"abc"


def test_protocol_takes_the_new_fields_with_their_types() -> None:
    line = b'{"id":"1","op":"read_file","path":"a","compress":true}'
    assert protocol.decode_request(line)["compress"] is True
    line = b'{"id":"1","op":"write_file","path":"a","data":"","compressed":true,"metadata":{}}'
    assert protocol.decode_request(line)["metadata"] == {}
    with pytest.raises(protocol.MalformedMessage):
        protocol.decode_request(b'{"id":"1","op":"write_file","path":"a","data":"","metadata":[]}')


# -- depth ------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0, -1])
def test_depth_below_one_has_e2bs_words_and_type(sbx: Sandbox, depth: int) -> None:
    with pytest.raises(InvalidArgumentException, match=r"^depth should be at least 1$"):
        sbx.files.list(".", depth=depth)
    assert isinstance(sbx.files.list(".", depth=None), list)


# -- metadata: E2B's behaviour ----------------------------------------------------------


def test_metadata_is_written_read_listed_and_renamed(sbx: Sandbox) -> None:
    meta = {"author": "mish", "purpose": "upload"}
    info = sbx.files.write("d/meta.txt", "content", metadata=meta)
    assert info.metadata == meta
    assert sbx.files.get_info("d/meta.txt").metadata == meta
    listed = {e.name: e.metadata for e in sbx.files.list("d")}
    assert listed == {"meta.txt": meta}
    assert sbx.files.list(".", depth=2)  # recursing reads it too
    moved = sbx.files.rename("d/meta.txt", "e/moved.txt")
    assert moved.metadata == meta
    assert sbx.files.get_info("e/moved.txt").metadata == meta
    assert sbx.files.read("e/moved.txt") == "content"


def test_a_file_without_metadata_says_none(sbx: Sandbox) -> None:
    assert sbx.files.write("plain.txt", "x").metadata is None
    assert sbx.files.get_info("plain.txt").metadata is None
    assert sbx.files.write("empty.txt", "x", metadata={}).metadata is None
    assert sbx.files.get_info(".").metadata is None


def test_overwriting_replaces_or_clears_metadata(sbx: Sandbox) -> None:
    sbx.files.write("f.txt", "first", metadata={"author": "mish", "old": "1"})
    assert sbx.files.write("f.txt", "second", metadata={"author": "kim"}).metadata == {
        "author": "kim"
    }
    assert sbx.files.write("f.txt", "third").metadata is None  # E2B: cleared
    assert sbx.files.get_info("f.txt").metadata is None


def test_append_keeps_metadata_unless_given(sbx: Sandbox) -> None:
    sbx.files.write("log.txt", "a\n", metadata={"kind": "log"})
    assert sbx.files.write("log.txt", "b\n", append=True).metadata == {"kind": "log"}
    again = sbx.files.write("log.txt", "c\n", append=True, metadata={"kind": "done"})
    assert again.metadata == {"kind": "done"}
    assert sbx.files.write("log.txt", "d\n", append=True, metadata={}).metadata is None
    assert sbx.files.read("log.txt") == "a\nb\nc\nd\n"
    assert sbx.files.write("new.txt", "x", append=True, metadata={"k": "v"}).metadata == {"k": "v"}


def test_write_files_puts_the_same_metadata_on_every_file(sbx: Sandbox) -> None:
    meta = {"source": "test-suite"}
    infos = sbx.files.write_files(
        [WriteEntry(path="w/1.txt", data="1"), WriteEntry(path="w/2.txt", data=b"2")],
        metadata=meta,
    )
    assert [i.metadata for i in infos] == [meta, meta]
    assert [e.metadata for e in sbx.files.list("w")] == [meta, meta]


def test_keys_are_stored_lowercased_as_in_e2b(sbx: Sandbox) -> None:
    info = sbx.files.write("k.txt", "x", metadata={"Author": "Mish", "X-Trace_ID": "A b"})
    assert info.metadata == {"author": "Mish", "x-trace_id": "A b"}


def test_metadata_set_inside_the_sandbox_is_reported(sbx: Sandbox) -> None:
    path = sbx.files.write("oob.txt", "x").path
    _sh(
        sbx,
        f"import os; p = {path!r}\n"
        "os.setxattr(p, 'user.e2b.author', b'mish')\n"
        "os.setxattr(p, 'user.e2b.utf8', 'caf\\u00e9'.encode())\n"
        "os.setxattr(p, 'user.e2b.binary', b'\\xff\\xfe\\x00')\n"
        "os.setxattr(p, 'user.other', b'not ours')\n",
    )
    # Not UTF-8: skipped, as E2B does; other namespaces are not metadata.
    assert sbx.files.get_info("oob.txt").metadata == {"author": "mish", "utf8": "café"}
    # A write that replaces the file drops all of them (E2B clears its own namespace).
    assert sbx.files.write("oob.txt", "y").metadata is None


# -- metadata: refused before anything is written ---------------------------------------


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({"bad key": "v"}, "invalid metadata key"),
        ({"": "v"}, "invalid metadata key"),
        ({"key\n": "v"}, "invalid metadata key"),
        ({"clé": "v"}, "invalid metadata key"),
        ({"k" * (METADATA_KEY_MAX + 1): "v"}, "at most 246"),
        ({"good": "bad\nvalue"}, "printable US-ASCII"),
        ({"good": "value\n"}, "printable US-ASCII"),
        ({"good": "tab\there"}, "printable US-ASCII"),
        ({"good": "café"}, "printable US-ASCII"),
        ({"good": "nul\0"}, "printable US-ASCII"),
        ({"k": "v" * METADATA_TOTAL_MAX}, "over 4096 bytes"),
        ({f"k{i}": "v" * 100 for i in range(40)}, "over 4096 bytes"),
        ({"Author": "a", "author": "b"}, "are one key"),
        ({1: "v"}, "must be str"),
        ({"k": 1}, "must be str"),
        ({"k": b"bytes"}, "must be str"),
        ({"k": None}, "must be str"),
        ([("k", "v")], "must be a dict"),
        ("k=v", "must be a dict"),
    ],
)
def test_bad_metadata_is_refused_and_nothing_is_written(
    sbx: Sandbox, metadata: object, words: str
) -> None:
    with pytest.raises(InvalidArgumentException, match=words):
        sbx.files.write("fresh/bad.txt", "x", metadata=metadata)  # type: ignore[arg-type]
    assert not sbx.files.exists("fresh")
    with pytest.raises(InvalidArgumentException):
        sbx.files.write_files(
            [WriteEntry(path="fresh/1.txt", data="1")],
            metadata=metadata,  # type: ignore[arg-type]
        )
    assert not sbx.files.exists("fresh")


def test_the_limits_are_e2bs() -> None:
    assert METADATA_KEY_MAX == 246 and METADATA_TOTAL_MAX == 4096
    key = "k" * METADATA_KEY_MAX
    assert check_metadata({key: ""}) == {key: ""}
    exact = {"k": "v" * (METADATA_TOTAL_MAX - len("user.e2b.") - 1)}
    assert check_metadata(exact) == exact
    with pytest.raises(ValueError, match="over 4096"):
        check_metadata({"k": "v" * (METADATA_TOTAL_MAX - len("user.e2b."))})


def test_huge_metadata_is_refused_quickly() -> None:
    huge = {f"k{i}": "v" for i in range(1_000_000)}
    with pytest.raises(ValueError, match="over 4096"):
        check_metadata(huge)
    with pytest.raises(ValueError, match="over 4096"):
        check_metadata({"k": "v" * (64 << 20)})
    with pytest.raises(ValueError, match=r"'kkkk.*\.\.\.' is 10000000"):
        check_metadata({"k" * 10_000_000: "v"})  # the message quotes 40 characters of it


def test_the_agent_checks_metadata_too(sbx: Sandbox) -> None:
    # Past the host's check, as a buggy host would send it: refused, nothing made.
    fields = {"path": "agent/bad.txt", "data": "", "metadata": {"bad key": "v"}}
    request = sbx.async_sandbox._channel.request("write_file", fields, 10.0, "agent/bad.txt")
    with pytest.raises(SandboxError, match="invalid metadata key"):
        blocking.run(request)
    assert not sbx.files.exists("agent")


# -- metadata: hostile and odd cases ----------------------------------------------------


def test_symlinks_carry_their_targets_metadata(sbx: Sandbox) -> None:
    target = sbx.files.write("real.txt", "x", metadata={"who": "target"}).path
    sbx.commands.run("ln -s real.txt link.txt && ln -s missing.txt dangling.txt")
    link = sbx.files.get_info("link.txt")
    assert link.type == FileType.FILE and link.symlink_target == target
    assert link.metadata == {"who": "target"}
    assert sbx.files.get_info("dangling.txt").metadata is None
    # Writing through the link replaces the target, with the new metadata.
    assert sbx.files.write("link.txt", "y", metadata={"who": "via-link"}).metadata == {
        "who": "via-link"
    }
    assert sbx.files.get_info("real.txt").metadata == {"who": "via-link"}
    assert sbx.commands.run("test -L link.txt").exit_code == 0


def test_directories_report_metadata_but_are_never_written(sbx: Sandbox) -> None:
    sbx.files.make_dir("dir")
    path = sbx.files.get_info("dir").path
    _sh(sbx, f"import os; os.setxattr({path!r}, 'user.e2b.tag', b'dir')")
    assert sbx.files.get_info("dir").metadata == {"tag": "dir"}
    assert {e.name: e.metadata for e in sbx.files.list(".")}["dir"] == {"tag": "dir"}
    with pytest.raises(SandboxFileError):
        sbx.files.write("dir", "x", metadata={"tag": "file"})
    assert sbx.files.get_info("dir").metadata == {"tag": "dir"}


def test_metadata_follows_the_inode_when_another_process_rewrites(sbx: Sandbox) -> None:
    sbx.files.write("in_place.txt", "old", metadata={"v": "1"})
    sbx.files.write("replaced.txt", "old", metadata={"v": "1"})
    # In place (same inode, as `>` does): metadata stays. Replaced (a new file renamed
    # over it, as editors and `sed -i` do): it goes with the old file.
    sbx.commands.run("printf new > in_place.txt && sed -i s/old/new/ replaced.txt")
    assert sbx.files.get_info("in_place.txt").metadata == {"v": "1"}
    assert sbx.files.read("in_place.txt") == "new"
    assert sbx.files.get_info("replaced.txt").metadata is None
    assert sbx.files.read("replaced.txt") == "new"


@pytest.fixture
def tmpfs_file() -> Iterator[str]:
    """A file on a tmpfs with user xattrs (Linux 6.6+), as the sandbox's workspace is."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    fd, path = tempfile.mkstemp(dir="/dev/shm")
    os.close(fd)
    try:
        os.setxattr(path, "user.e2b.probe", b"")
        os.removexattr(path, "user.e2b.probe")
    except OSError:
        os.unlink(path)
        pytest.skip("this tmpfs takes no user xattrs (Linux < 6.6)")
    try:
        yield path
    finally:
        os.unlink(path)


def test_hostile_attributes_do_not_blow_up_an_answer(tmpfs_file: str) -> None:
    # tmpfs takes far more than ext4's ~4 KiB an inode: 64 KiB values, any number of them.
    for i in range(2000):
        os.setxattr(tmpfs_file, f"user.e2b.k{i:04}", b"v" * 30)
    os.setxattr(tmpfs_file, "user.e2b.big", b"b" * 65536)
    meta = read_metadata(tmpfs_file)
    assert meta is not None
    cost = sum(len("user.e2b.") + len(k) + len(v) for k, v in meta.items())
    assert cost <= METADATA_TOTAL_MAX and "big" not in meta  # over the budget: skipped
    assert list(meta) == [f"k{i:04}" for i in range(len(meta))]  # in name order
    assert METADATA_TOTAL_MAX - cost < len("user.e2b.k0000") + 30  # the budget is spent
    # A value that fits is still found after ones that do not.
    for i in range(3):
        os.setxattr(tmpfs_file, f"user.e2b.a{i}", b"x" * 5000)
    os.setxattr(tmpfs_file, "user.e2b.a9", b"small")
    assert (read_metadata(tmpfs_file) or {}).get("a9") == "small"
    # Names past what listxattr can return at once (64 KiB): no metadata, no error.
    for i in range(6000):
        os.setxattr(tmpfs_file, f"user.e2b.{'n' * 20}{i:05}", b"")
    assert read_metadata(tmpfs_file) is None


def test_attributes_that_fit_ext4_are_reported_whole(sbx: Sandbox) -> None:
    path = sbx.files.write("many.txt", "x").path
    _sh(
        sbx,
        f"import os; p = {path!r}\n"
        "os.setxattr(p, 'user.e2b.a', b'1' * 2000)\n"
        "os.setxattr(p, 'user.e2b.b', b'2' * 1900)\n",
    )
    assert sbx.files.get_info("many.txt").metadata == {"a": "1" * 2000, "b": "2" * 1900}


def test_read_metadata_is_best_effort(tmp_path: os.PathLike[str]) -> None:
    assert read_metadata(os.path.join(tmp_path, "missing")) is None
    assert read_metadata("/proc/self/status") is None  # no user xattrs on procfs


# -- the async API ----------------------------------------------------------------------


def test_async_api_takes_the_same_arguments(backend: LocalBackend) -> None:
    async def main() -> None:
        sbx = await AsyncSandbox.create(backend=backend, timeout=60)
        try:
            info = await sbx.files.write("a.txt", TEXT, gzip=True, metadata={"a": "1"})
            assert info.metadata == {"a": "1"}
            assert await sbx.files.read("a.txt", gzip=True) == TEXT
            stream = await sbx.files.read("a.txt", "stream", gzip=True)
            assert b"".join([chunk async for chunk in stream]) == TEXT.encode()
            infos = await sbx.files.write_files(
                [WriteEntry(path="b.txt", data="b")], metadata={"b": "2"}
            )
            assert infos[0].metadata == {"b": "2"}
            with pytest.raises(InvalidArgumentException, match="depth should be at least 1"):
                await sbx.files.list(".", depth=0)
        finally:
            await sbx.kill()

    asyncio.run(main())
