"""E2B snippets for ``sandbox.files``: read and write (text, bytes, file objects,
streams), write_files, list, exists, get_info, make_dir, remove, rename and watch_dir."""

# The snippets call E2B's API as documented, parts this package lacks included: running
# them, not the type checker, says what works.
# mypy: disable-error-code="attr-defined, call-arg, arg-type, call-overload, dict-item"

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
import requests

from e2b_tools import (
    FileNotFoundException,
    FileType,
    NotFoundException,
    Sandbox,
    SandboxException,
    WriteEntry,
)

SDK = "e2b-dev/E2B:packages/python-sdk/tests/sync/sandbox_sync/files"
DOCS = "https://e2b.dev/docs"


# -- read and write -------------------------------------------------------------------


@pytest.mark.e2b(
    feature="files: write text, read it back",
    call="sandbox.files.write(filename, content) -> info.path, info.type",
    source=f"{SDK}/test_write.py",
)
def test_write_text_file(sbx: Sandbox) -> None:
    filename = "test_write.txt"
    content = "This is a test file."
    info = sbx.files.write(filename, content)
    assert info.path == f"/home/user/{filename}"
    assert info.type == FileType.FILE
    assert sbx.files.exists(filename)
    assert sbx.files.read(filename) == content


@pytest.mark.e2b(
    feature="files: write a binary file object",
    call="sandbox.files.write(filename, io.BytesIO(...))",
    source=f"{SDK}/test_write.py",
)
def test_write_binary_file(sbx: Sandbox) -> None:
    filename = "test_write.bin"
    text = "This is a test binary file."
    content = io.BytesIO(text.encode("utf-8"))
    info = sbx.files.write(filename, content)
    assert info.path == f"/home/user/{filename}"
    assert sbx.files.exists(filename)
    assert sbx.files.read(filename) == text


@pytest.mark.e2b(
    feature="files: write_files with WriteEntry",
    call="sandbox.files.write_files([WriteEntry(path=..., data=...)])",
    source=f"{SDK}/test_write.py",
)
def test_write_multiple_files(sbx: Sandbox) -> None:
    assert sbx.files.write_files([]) == []
    info = sbx.files.write_files(
        [WriteEntry(path="one_test_file.txt", data="This is a test file.")]
    )
    assert len(info) == 1
    assert info[0].path == "/home/user/one_test_file.txt"
    assert sbx.files.read(info[0].path) == "This is a test file."
    files = [
        WriteEntry(path=f"test_write_{i}.txt", data=f"This is a test file {i}.") for i in range(10)
    ]
    infos = sbx.files.write_files(files)
    assert len(infos) == len(files)
    for i, entry in enumerate(infos):
        assert entry.path == f"/home/user/test_write_{i}.txt"
        assert entry.type == FileType.FILE
        assert sbx.files.read(entry.path) == files[i]["data"]


@pytest.mark.e2b(
    feature="files: write_files with str, bytes, BytesIO and StringIO",
    call="sandbox.files.write_files([WriteEntry(path, data=<str|bytes|BytesIO|StringIO>)])",
    source=f"{SDK}/test_write.py",
)
def test_write_files_with_different_data_types(sbx: Sandbox) -> None:
    files = [
        WriteEntry(path="writefiles_text.txt", data="Text string data"),
        WriteEntry(path="writefiles_bytes.bin", data=b"Bytes data"),
        WriteEntry(path="writefiles_bytesio.bin", data=io.BytesIO(b"BytesIO data")),
        WriteEntry(path="writefiles_stringio.txt", data=io.StringIO("StringIO data")),
    ]
    infos = sbx.files.write_files(files)
    assert len(infos) == 4
    assert sbx.files.read("writefiles_text.txt") == "Text string data"
    assert sbx.files.read("writefiles_bytes.bin") == "Bytes data"
    assert sbx.files.read("writefiles_bytesio.bin") == "BytesIO data"
    assert sbx.files.read("writefiles_stringio.txt") == "StringIO data"


@pytest.mark.e2b(
    feature="files: write_files with plain dicts",
    call='sandbox.files.write_files([{ "path": ..., "data": ... }, ...])',
    source=f"{DOCS}/filesystem/read-write",
)
def test_docs_write_files_dicts(sbx: Sandbox) -> None:
    # The docs' "/path/to/a" stands for any absolute path the user may write.
    sbx.files.write_files(
        [
            {"path": "/home/user/path/to/a", "data": "file content"},
            {"path": "another/path/to/b", "data": "file content"},
        ]
    )
    assert sbx.files.read("/home/user/path/to/a") == "file content"
    assert sbx.files.read("/home/user/another/path/to/b") == "file content"


@pytest.mark.e2b(
    feature="files: write and write_files under /tmp",
    call='sandbox.files.write("/tmp/file.txt", "content"); write_files([...])',
    source=f"{DOCS}/migration/v2",
)
def test_docs_migration_write_tmp(sbx: Sandbox) -> None:
    info = sbx.files.write("/tmp/file.txt", "content")
    infos = sbx.files.write_files(
        [
            {"path": "/tmp/file1.txt", "data": "content1"},
            {"path": "/tmp/file2.txt", "data": "content2"},
        ]
    )
    assert info.path == "/tmp/file.txt"
    assert [i.path for i in infos] == ["/tmp/file1.txt", "/tmp/file2.txt"]
    assert sbx.files.read("/tmp/file2.txt") == "content2"


@pytest.mark.e2b(
    feature="files: overwrite",
    call="sandbox.files.write(filename, new_content)",
    source=f"{SDK}/test_write.py",
)
def test_overwrite_file(sbx: Sandbox) -> None:
    filename = "test_overwrite.txt"
    sbx.files.write(filename, "Initial content.")
    sbx.files.write(filename, "New content.")
    assert sbx.files.read(filename) == "New content."


@pytest.mark.e2b(
    feature="files: write creates parent directories",
    call='sandbox.files.write("non_existing_dir/test_write.txt", content)',
    source=f"{SDK}/test_write.py",
)
def test_write_to_non_existing_directory(sbx: Sandbox) -> None:
    filename = "non_existing_dir/test_write.txt"
    content = "This should succeed too."
    sbx.files.write(filename, content)
    assert sbx.files.exists(filename)
    assert sbx.files.read(filename) == content


@pytest.mark.e2b(
    feature="files: upload a local file object",
    call='sandbox.files.write("/path/in/sandbox", open(local, "rb"))',
    source=f"{DOCS}/filesystem/upload",
)
def test_docs_upload_file_object(sbx: Sandbox, tmp_path: Path) -> None:
    local = tmp_path / "file"
    local.write_bytes(b"uploaded \x00\xff bytes")
    with open(local, "rb") as file:
        sbx.files.write("/home/user/my-file", file)
    assert sbx.files.read("/home/user/my-file", format="bytes") == b"uploaded \x00\xff bytes"


@pytest.mark.e2b(
    feature="files: upload a local directory with write_files",
    call="sandbox.files.write_files([{'path': file_path, 'data': file.read()}, ...])",
    source=f"{DOCS}/filesystem/upload",
)
def test_docs_upload_directory(sbx: Sandbox, tmp_path: Path) -> None:
    # The docs upload each file to the same absolute path as on the host.
    (tmp_path / "file1.txt").write_text("File 1 contents...")
    (tmp_path / "file2.txt").write_text("File 2 contents...")
    files = []
    for filename in sorted(p.name for p in tmp_path.iterdir()):
        file_path = str(tmp_path / filename)
        with open(file_path, "rb") as file:
            files.append({"path": file_path, "data": file.read()})
    sbx.files.write_files(files)
    assert sbx.files.read(str(tmp_path / "file2.txt")) == "File 2 contents..."


@pytest.mark.e2b(
    feature="files: upload returns the path to use in code",
    call='dataset_path_in_sandbox = sbx.files.write("dataset.csv", f); .path',
    source=f"{DOCS}/code-interpreting/analyze-data-with-ai",
)
def test_docs_dataset_upload(sbx: Sandbox, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset.csv"
    dataset.write_text("id,vote_average\n1,7.5\n2,6.5\n")
    with open(dataset, "rb") as f:
        dataset_path_in_sandbox = sbx.files.write("dataset.csv", f)
    execution = sbx.run_code(
        f"import pandas as pd\npd.read_csv({dataset_path_in_sandbox.path!r}).vote_average.sum()"
    )
    assert execution.text == "14.0"


@pytest.mark.e2b(
    feature="files: download (read) to a local file",
    call="content = sandbox.files.read('/home/user/my-file')",
    source=f"{DOCS}/quickstart/upload-download-files",
)
def test_docs_download(sbx: Sandbox, tmp_path: Path) -> None:
    sbx.files.write("/home/user/my-file-a", "downloaded text")
    content_a = sbx.files.read("/home/user/my-file-a")
    with open(tmp_path / "a", "w") as file:
        file.write(content_a)
    assert (tmp_path / "a").read_text() == "downloaded text"


@pytest.mark.e2b(
    feature="files: read text",
    call="sandbox.files.read(filename)",
    source=f"{SDK}/test_read.py",
)
def test_read_file(sbx: Sandbox) -> None:
    filename = "test_read.txt"
    content = "Hello, world!"
    sbx.files.write(filename, content)
    assert sbx.files.read(filename) == content


@pytest.mark.e2b(
    feature="files: read bytes",
    call='sandbox.files.read(path, format="bytes")',
    source="e2b-dev/E2B:packages/python-sdk/e2b/sandbox_sync/filesystem/filesystem.py",
)
def test_read_bytes(sbx: Sandbox) -> None:
    sbx.files.write("test_read_bytes.bin", b"\x00\x01\xfe\xff")
    content = sbx.files.read("test_read_bytes.bin", format="bytes")
    assert content == b"\x00\x01\xfe\xff"


@pytest.mark.e2b(
    feature="files: read a missing file raises FileNotFoundException",
    call="sandbox.files.read('non_existing_file.txt')",
    source=f"{SDK}/test_read.py",
)
def test_read_non_existing_file(sbx: Sandbox) -> None:
    with pytest.raises(FileNotFoundException):
        sbx.files.read("non_existing_file.txt")


@pytest.mark.e2b(
    feature="files: the deprecated NotFoundException still catches it",
    call="sandbox.files.read('non_existing_file.txt') -> NotFoundException",
    source=f"{SDK}/test_read.py",
)
def test_read_non_existing_file_not_found_exception(sbx: Sandbox) -> None:
    with pytest.raises(NotFoundException):
        sbx.files.read("non_existing_file.txt")


@pytest.mark.e2b(
    feature="files: read an empty file",
    call="sandbox.files.read('empty_file.txt')",
    source=f"{SDK}/test_read.py",
)
def test_read_empty_file(sbx: Sandbox) -> None:
    filename = "empty_file.txt"
    sbx.commands.run(f"touch {filename}")
    assert sbx.files.read(filename) == ""


@pytest.mark.e2b(
    feature="files: read as a stream",
    call='b"".join(sandbox.files.read(filename, format="stream"))',
    source=f"{SDK}/test_read.py",
)
def test_read_file_as_stream(sbx: Sandbox) -> None:
    filename = "test_read_stream.txt"
    content = "Streamed read content. " * 10_000
    sbx.files.write(filename, content)
    stream = sbx.files.read(filename, format="stream")
    assert b"".join(stream).decode("utf-8") == content


@pytest.mark.e2b(
    feature="files: read a stream in a with block",
    call='with sandbox.files.read(filename, format="stream") as stream',
    source=f"{SDK}/test_read.py",
)
def test_read_file_as_stream_context_manager(sbx: Sandbox) -> None:
    filename = "test_read_stream_ctx.txt"
    content = "Streamed read content. " * 10_000
    sbx.files.write(filename, content)
    with sbx.files.read(filename, format="stream") as stream:
        read_content = b"".join(stream).decode("utf-8")
    assert read_content == content


@pytest.mark.e2b(
    feature="files: read part of a stream, then close it",
    call='next(iter(sandbox.files.read(filename, format="stream"))); stream.close()',
    source=f"{SDK}/test_read.py",
)
def test_read_file_as_stream_partial_then_close(sbx: Sandbox) -> None:
    filename = "test_read_stream_partial.txt"
    sbx.files.write(filename, "Streamed read content. " * 10_000)
    stream = sbx.files.read(filename, format="stream")
    first = next(iter(stream))
    assert len(first) > 0
    stream.close()
    assert sbx.files.exists(filename)  # the connection is still usable


@pytest.mark.e2b(
    feature="files: read a missing file as a stream",
    call='sandbox.files.read("non_existing_file.txt", format="stream")',
    source=f"{SDK}/test_read.py",
)
def test_read_non_existing_file_as_stream(sbx: Sandbox) -> None:
    with pytest.raises(FileNotFoundException):
        sbx.files.read("non_existing_file.txt", format="stream")


@pytest.mark.e2b(
    feature="files: gzip-encoded read as a stream",
    call='sandbox.files.read(filename, format="stream", gzip=True)',
    source=f"{SDK}/test_read.py",
)
def test_read_file_as_stream_with_gzip(sbx: Sandbox) -> None:
    filename = "test_read_stream_gzip.txt"
    content = "Streamed gzipped read content. " * 10_000
    sbx.files.write(filename, content)
    stream = sbx.files.read(filename, format="stream", gzip=True)
    assert b"".join(stream).decode("utf-8") == content


@pytest.mark.e2b(
    feature="files: user metadata on written files",
    call="sandbox.files.write(filename, content, metadata={...}); get_info(filename).metadata",
    source=f"{SDK}/test_metadata.py",
)
def test_write_file_with_metadata(sbx: Sandbox) -> None:
    filename = "test_metadata.txt"
    metadata = {"author": "mish", "purpose": "upload"}
    info = sbx.files.write(filename, "with metadata", metadata=metadata)
    assert info.metadata == metadata
    assert sbx.files.get_info(filename).metadata == metadata


# -- exists, make_dir, remove, rename ---------------------------------------------------


@pytest.mark.e2b(
    feature="files: exists",
    call="sandbox.files.exists(filename)",
    source=f"{SDK}/test_exists.py",
)
def test_exists(sbx: Sandbox) -> None:
    filename = "test_exists.txt"
    sbx.files.write(filename, "test")
    assert sbx.files.exists(filename)


@pytest.mark.e2b(
    feature="files: make_dir, then exists",
    call="sandbox.files.make_dir(dir_name)",
    source=f"{SDK}/test_make_dir.py",
)
def test_make_directory(sbx: Sandbox) -> None:
    dir_name = f"test_directory_{uuid.uuid4()}"
    sbx.files.make_dir(dir_name)
    assert sbx.files.exists(dir_name)


@pytest.mark.e2b(
    feature="files: make_dir says whether it created the directory",
    call="sandbox.files.make_dir(dir_name) -> True, then False",
    source=f"{SDK}/test_make_dir.py",
)
def test_make_directory_already_exists(sbx: Sandbox) -> None:
    dir_name = f"test_directory_{uuid.uuid4()}"
    assert sbx.files.make_dir(dir_name)
    assert not sbx.files.make_dir(dir_name)


@pytest.mark.e2b(
    feature="files: make_dir creates parents",
    call="sandbox.files.make_dir(f'{parent}/nested_directory')",
    source=f"{SDK}/test_make_dir.py",
)
def test_make_nested_directory(sbx: Sandbox) -> None:
    nested_dir_name = f"test_directory_{uuid.uuid4()}/nested_directory"
    sbx.files.make_dir(nested_dir_name)
    assert sbx.files.exists(nested_dir_name)


@pytest.mark.e2b(
    feature="files: remove a file",
    call="sandbox.files.remove(filename)",
    source=f"{SDK}/test_remove.py",
)
def test_remove_file(sbx: Sandbox) -> None:
    filename = "test_remove.txt"
    sbx.files.write(filename, "This file will be removed.")
    sbx.files.remove(filename)
    assert not sbx.files.exists(filename)


@pytest.mark.e2b(
    feature="files: remove a missing file is not an error",
    call='sandbox.files.remove("non_existing_file.txt")',
    source=f"{SDK}/test_remove.py",
)
def test_remove_non_existing_file(sbx: Sandbox) -> None:
    sbx.files.remove("non_existing_file.txt")


@pytest.mark.e2b(
    feature="files: rename",
    call="sandbox.files.rename(old_filename, new_filename).path",
    source=f"{SDK}/test_rename.py",
)
def test_rename_file(sbx: Sandbox) -> None:
    old_filename = "test_rename_old.txt"
    new_filename = "test_rename_new.txt"
    content = "This file will be renamed."
    sbx.files.write(old_filename, content)
    info = sbx.files.rename(old_filename, new_filename)
    assert info.path == f"/home/user/{new_filename}"
    assert not sbx.files.exists(old_filename)
    assert sbx.files.exists(new_filename)
    assert sbx.files.read(new_filename) == content


@pytest.mark.e2b(
    feature="files: rename a missing file",
    call="sandbox.files.rename(old, new) -> FileNotFoundException",
    source=f"{SDK}/test_rename.py",
)
def test_rename_non_existing_file(sbx: Sandbox) -> None:
    with pytest.raises(FileNotFoundException):
        sbx.files.rename("non_existing_file.txt", "new_non_existing_file.txt")


# -- list and get_info -----------------------------------------------------------------


@pytest.mark.e2b(
    feature="files: list with depth",
    call="sandbox.files.list(parent_dir_name, depth=None|1|2|3)",
    source=f"{SDK}/test_files_list.py",
)
def test_list_directory(sbx: Sandbox) -> None:
    parent = f"test_directory_{uuid.uuid4()}"
    for sub in ("subdir1/subdir1_1", "subdir1/subdir1_2", "subdir2/subdir2_1", "subdir2/subdir2_2"):
        sbx.files.make_dir(f"{parent}/{sub}")
    sbx.files.write(f"{parent}/file1.txt", "Hello, world!")
    base = f"/home/user/{parent}"
    shallow = [
        ("file1.txt", f"{base}/file1.txt", FileType.FILE),
        ("subdir1", f"{base}/subdir1", FileType.DIR),
        ("subdir2", f"{base}/subdir2", FileType.DIR),
    ]
    deep = [
        shallow[0],
        shallow[1],
        ("subdir1_1", f"{base}/subdir1/subdir1_1", FileType.DIR),
        ("subdir1_2", f"{base}/subdir1/subdir1_2", FileType.DIR),
        shallow[2],
        ("subdir2_1", f"{base}/subdir2/subdir2_1", FileType.DIR),
        ("subdir2_2", f"{base}/subdir2/subdir2_2", FileType.DIR),
    ]
    for depth, expected in ((None, shallow), (1, shallow), (2, deep), (3, deep)):
        files = sbx.files.list(parent, depth=depth)
        assert [(f.name, f.path, f.type) for f in files] == expected, depth
    sbx.files.remove(parent)


@pytest.mark.e2b(
    feature="files: list with depth below 1 is refused",
    call="sandbox.files.list(parent_dir_name, depth=-1)",
    source=f"{SDK}/test_files_list.py",
)
def test_list_directory_error_cases(sbx: Sandbox) -> None:
    parent_dir_name = f"test_directory_{uuid.uuid4()}"
    sbx.files.make_dir(parent_dir_name)
    with pytest.raises(Exception) as err:  # E2B's test catches any exception
        sbx.files.list(parent_dir_name, depth=-1)
    assert "depth should be at least 1" in str(err.value)


@pytest.mark.e2b(
    feature="files: list entry details",
    call="sandbox.files.list(test_dir, depth=1)[0].mode / .permissions / .owner ...",
    source=f"{SDK}/test_files_list.py",
)
def test_list_entry_details(sbx: Sandbox) -> None:
    test_dir = "test-mixed-entries"
    sbx.files.make_dir(f"{test_dir}/subdir")
    sbx.files.write(f"{test_dir}/test.txt", "Hello, World!")
    entries = {entry.name: entry for entry in sbx.files.list(test_dir, depth=1)}
    assert len(entries) == 2
    dir_entry, file_entry = entries["subdir"], entries["test.txt"]
    assert dir_entry.path == f"/home/user/{test_dir}/subdir"
    assert dir_entry.type == FileType.DIR
    assert (dir_entry.mode, dir_entry.permissions) == (0o755, "drwxr-xr-x")
    assert file_entry.type == FileType.FILE
    assert (file_entry.mode, file_entry.permissions) == (0o644, "-rw-r--r--")
    assert (file_entry.owner, file_entry.group) == ("user", "user")
    assert file_entry.size == len("Hello, World!")
    assert file_entry.symlink_target is None
    sbx.files.remove(test_dir)


@pytest.mark.e2b(
    feature="files: list the root directory",
    call='sbx.files.list("/")',
    source=f"{DOCS}/quickstart",
)
def test_docs_quickstart_list_root(sbx: Sandbox) -> None:
    execution = sbx.run_code("print('hello world')")
    assert execution.logs.stdout == ["hello world\n"]
    files = sbx.files.list("/")
    assert {"home", "tmp"} <= {f.name for f in files}


@pytest.mark.e2b(
    feature="files: get_info of a file",
    call="sandbox.files.get_info(filename)",
    source=f"{SDK}/test_info.py",
)
def test_get_info_of_file(sbx: Sandbox) -> None:
    filename = "test_file.txt"
    sbx.files.write(filename, "test")
    info = sbx.files.get_info(filename)
    current_path = sbx.commands.run("pwd")
    assert info.name == filename
    assert info.type == FileType.FILE
    assert info.path == f"{current_path.stdout.strip()}/{filename}"
    assert info.size == 4
    assert info.mode == 0o644
    assert info.permissions == "-rw-r--r--"
    assert info.owner == "user"
    assert info.group == "user"
    assert info.modified_time is not None
    assert info.modified_time.tzinfo is not None


@pytest.mark.e2b(
    feature="files: get_info of a directory",
    call="sandbox.files.get_info(dirname)",
    source=f"{SDK}/test_info.py",
)
def test_get_info_of_directory(sbx: Sandbox) -> None:
    dirname = "test_dir"
    sbx.files.make_dir(dirname)
    info = sbx.files.get_info(dirname)
    assert info.name == dirname
    assert info.type == FileType.DIR
    assert info.path == f"/home/user/{dirname}"
    assert info.size > 0
    assert info.mode == 0o755
    assert info.permissions == "drwxr-xr-x"
    assert (info.owner, info.group) == ("user", "user")
    assert info.modified_time.tzinfo is not None


@pytest.mark.e2b(
    feature="files: get_info of a missing path",
    call="sandbox.files.get_info(missing) -> FileNotFoundException",
    source=f"{SDK}/test_info.py",
)
def test_get_info_of_nonexistent(sbx: Sandbox) -> None:
    with pytest.raises(FileNotFoundException):
        sbx.files.get_info("test_does_not_exist.txt")
    with pytest.raises(FileNotFoundException):
        sbx.files.get_info("test_does_not_exist_dir")


@pytest.mark.e2b(
    feature="files: get_info of a symlink",
    call="sandbox.files.get_info(symlink).symlink_target",
    source=f"{SDK}/test_info.py",
)
def test_file_symlink(sbx: Sandbox) -> None:
    test_dir = "test-simlink-entry"
    file_name = "test.txt"
    sbx.files.make_dir(test_dir)
    sbx.files.write(f"{test_dir}/{file_name}", "Hello, World!")
    symlink_name = "symlink_to_test.txt"
    sbx.commands.run(f"ln -s {file_name} {symlink_name}", cwd=test_dir)
    file = sbx.files.get_info(f"{test_dir}/{symlink_name}")
    pwd = sbx.commands.run("pwd")
    assert file.type == FileType.FILE
    assert file.symlink_target == f"{pwd.stdout.strip()}/{test_dir}/{file_name}"
    sbx.files.remove(test_dir)


@pytest.mark.e2b(
    feature="files: get_info as documented",
    call="sandbox.files.get_info('test_file')",
    source=f"{DOCS}/filesystem/info",
)
def test_docs_get_info(sbx: Sandbox) -> None:
    sbx.files.write("test_file", "Hello, world!")
    info = sbx.files.get_info("test_file")
    assert (info.name, info.type, info.path) == ("test_file", FileType.FILE, "/home/user/test_file")
    assert info.size == 13
    assert info.symlink_target is None


# -- watch_dir ---------------------------------------------------------------------------


@pytest.mark.e2b(
    feature="watch: WRITE events from watch_dir",
    call="handle = sandbox.files.watch_dir(dirname); handle.get_new_events()",
    source=f"{SDK}/test_watch.py",
)
def test_watch_directory_changes(sbx: Sandbox) -> None:
    from e2b_tools import FilesystemEventType

    dirname = "test_watch_dir"
    filename = "test_watch.txt"
    sbx.files.make_dir(dirname)
    sbx.files.write(f"{dirname}/{filename}", "This file will be watched.")
    handle = sbx.files.watch_dir(dirname)
    try:
        sbx.files.write(f"{dirname}/{filename}", "This file has been modified.")
        events = handle.get_new_events()
        write_event = next(
            (e for e in events if e.type == FilesystemEventType.WRITE and e.name == filename),
            None,
        )
        assert write_event is not None, events
    finally:
        handle.stop()


@pytest.mark.e2b(
    feature="watch: entry info on events",
    call="sandbox.files.watch_dir(dirname, include_entry=True)",
    source=f"{SDK}/test_watch.py",
)
def test_watch_directory_changes_with_entry_info(sbx: Sandbox) -> None:
    from e2b_tools import FilesystemEventType

    dirname = "test_watch_dir_entry"
    filename = "test_watch.txt"
    sbx.files.make_dir(dirname)
    sbx.files.write(f"{dirname}/{filename}", "This file will be watched.")
    handle = sbx.files.watch_dir(dirname, include_entry=True)
    try:
        sbx.files.write(f"{dirname}/{filename}", "This file has been modified.")
        events = handle.get_new_events()
        write_event = next(
            e for e in events if e.type == FilesystemEventType.WRITE and e.name == filename
        )
        assert write_event.entry is not None
        assert write_event.entry.name == filename
        assert write_event.entry.path == f"/home/user/{dirname}/{filename}"
        assert write_event.entry.type == FileType.FILE
    finally:
        handle.stop()


@pytest.mark.e2b(
    feature="watch: recursive, nested CREATE first",
    call="sandbox.files.watch_dir(dirname, recursive=True)",
    source=f"{SDK}/test_watch.py",
)
def test_watch_recursive_directory_changes(sbx: Sandbox) -> None:
    from e2b_tools import FilesystemEventType

    dirname = "test_recursive_watch_dir"
    nested_dirname = "test_nested_watch_dir"
    filename = "test_watch.txt"
    sbx.files.remove(dirname)
    sbx.files.make_dir(f"{dirname}/{nested_dirname}")
    handle = sbx.files.watch_dir(dirname, recursive=True)
    try:
        sbx.files.write(f"{dirname}/{nested_dirname}/{filename}", "This file will be watched.")
        events = handle.get_new_events()
        assert len(events) == 3, f"events: {[(e.type, e.name) for e in events]}"
        assert events[0].type == FilesystemEventType.CREATE
        assert events[0].name == f"{nested_dirname}/{filename}"
    finally:
        handle.stop()


@pytest.mark.e2b(
    feature="watch: the documented loop over get_new_events()",
    call="sandbox.files.watch_dir('/home/user'); handle.get_new_events()",
    source=f"{DOCS}/filesystem/watch",
)
def test_docs_watch(sbx: Sandbox) -> None:
    from e2b_tools import FilesystemEventType

    dirname = "/home/user"
    handle = sbx.files.watch_dir(dirname)
    try:
        sbx.files.write(f"{dirname}/my-file", "hello")
        events = handle.get_new_events()
        assert any(e.type == FilesystemEventType.WRITE and e.name == "my-file" for e in events)
    finally:
        handle.stop()


@pytest.mark.e2b(
    feature="watch: missing directory",
    call='sandbox.files.watch_dir("non_existing_watch_dir") -> FileNotFoundException',
    source=f"{SDK}/test_watch.py",
)
def test_watch_non_existing_directory(sbx: Sandbox) -> None:
    with pytest.raises(FileNotFoundException):
        sbx.files.watch_dir("non_existing_watch_dir")


@pytest.mark.e2b(
    feature="watch: a file is not a directory",
    call="sandbox.files.watch_dir(filename) -> SandboxException",
    source=f"{SDK}/test_watch.py",
)
def test_watch_file(sbx: Sandbox) -> None:
    filename = "test_watch_file.txt"
    sbx.files.write(filename, "This file will be watched.")
    with pytest.raises(SandboxException):
        sbx.files.watch_dir(filename)


# -- pre-signed URLs (E2B's cloud endpoint; here this machine's loopback) ------------------


@pytest.mark.e2b(
    feature="files: pre-signed upload URL of a secured sandbox",
    call='Sandbox.create(timeout=12_000, secure=True).upload_url(path="demo.txt", ...)',
    source=f"{DOCS}/filesystem/upload",
)
def test_docs_upload_url() -> None:
    with Sandbox.create(timeout=12_000, secure=True) as sandbox:
        signed_url = sandbox.upload_url(
            path="demo.txt", user="user", use_signature_expiration=10_000
        )
        assert signed_url
        # Here the URL is served on this machine's loopback: upload, then read back.
        response = requests.post(signed_url, files={"file": io.BytesIO(b"uploaded")}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()[0]["path"] == "/home/user/demo.txt"
        assert sandbox.files.read("demo.txt") == "uploaded"
        download_url = sandbox.download_url(path="demo.txt", user="user")
        assert requests.get(download_url, timeout=60).content == b"uploaded"


@pytest.mark.e2b(
    feature="files: pre-signed download URL of a secured sandbox",
    call='sbx.download_url(path="demo.txt", user="user", use_signature_expiration=10_000)',
    source=f"{DOCS}/filesystem/download",
)
def test_docs_download_url(sbx: Sandbox) -> None:
    signed_url = sbx.download_url(path="demo.txt", user="user", use_signature_expiration=10_000)
    assert signed_url
    # Here the URL is served on this machine's loopback: upload, then download.
    upload_url = sbx.upload_url(path="demo.txt", user="user")
    response = requests.post(upload_url, files={"file": io.BytesIO(b"to download")}, timeout=60)
    assert response.status_code == 200, response.text
    assert requests.get(signed_url, timeout=60).content == b"to download"
