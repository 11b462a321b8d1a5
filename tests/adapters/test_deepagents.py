"""Deep Agents backend: LangChain's standard sandbox suite, and what it does not cover."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

pytest.importorskip("deepagents")  # Deep Agents needs Python 3.11+

from deepagents import create_deep_agent
from deepagents.backends.protocol import SandboxBackendProtocol
from deepagents.backends.sandbox import MAX_OUTPUT_BYTES, TRUNCATION_MSG
from helpers import PROCS
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_tests.integration_tests import SandboxIntegrationTests

from e2b_tools import AsyncSandbox, Sandbox
from e2b_tools_langchain import (
    DEEPAGENTS_FILE_TOOLS,
    E2BToolsSandbox,
    SandboxToolkit,
    ToolNameClashError,
)
from e2b_tools_langchain.deepagents import _page_text


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # The standard suite's async tests carry no marker; anyio runs them, on asyncio only.
    return "asyncio"


@pytest.mark.anyio
# langchain-tests 1.1.9 declares its class-scoped `sandbox_backend` fixture as an instance
# method, which pytest 9.2 deprecates.
@pytest.mark.filterwarnings(
    "ignore:Class-scoped fixtures defined as instance methods:pytest.PytestRemovedIn10Warning"
)
class TestE2BToolsSandboxStandard(SandboxIntegrationTests):
    """The suite in full, on the default image.

    ``overwrite=False`` and ``glob_paths="relative"``: langchain-tests 1.1.9 still checks
    the Deep Agents contract before 0.7 (``write`` refuses an existing file; ``glob``
    returns paths relative to the search root, directories included). The defaults
    follow 0.7; ``test_default_*`` below check them.
    """

    @pytest.fixture(scope="class")
    @classmethod
    def sandbox(cls, image: str) -> Iterator[SandboxBackendProtocol]:
        sbx = Sandbox.create(timeout=1800)
        try:
            yield E2BToolsSandbox(sbx, overwrite=False, glob_paths="relative")
        finally:
            sbx.kill()


# -- beyond the suite: one sandbox with the default settings ----------------------------
@pytest.fixture(scope="module")
def backend(image: str) -> Iterator[E2BToolsSandbox]:
    with E2BToolsSandbox.create(timeout=600) as made:
        yield made


def test_read_maps_errors_to_codes(backend: E2BToolsSandbox) -> None:
    backend.execute("mkdir -p /tmp/codes/dir && echo secret > /tmp/codes/locked")
    backend.execute("chmod 000 /tmp/codes/locked")
    assert backend.read("/tmp/codes/dir").error == "File '/tmp/codes/dir': is_directory"
    assert backend.read("/tmp/codes/nope").error == "File '/tmp/codes/nope': file_not_found"
    assert backend.read("/tmp/codes/locked").error == "File '/tmp/codes/locked': permission_denied"
    assert backend.read("codes/dir").error == "File 'codes/dir': invalid_path"


def test_download_and_upload_map_errors_to_codes(backend: E2BToolsSandbox) -> None:
    backend.execute("mkdir -p /tmp/dl/dir && echo x > /tmp/dl/file && echo s > /tmp/dl/locked")
    backend.execute("chmod 000 /tmp/dl/locked")
    got = backend.download_files(
        ["/tmp/dl/dir", "/tmp/dl/nope", "/tmp/dl/locked", "/tmp/dl/file/below", "dl/file"]
    )
    assert [r.error for r in got] == [
        "is_directory",
        "file_not_found",
        "permission_denied",
        "invalid_path",
        "invalid_path",
    ]
    assert all(r.content is None for r in got)
    put = backend.upload_files(
        [
            ("/usr/bin/new-tool", b"x"),  # the root filesystem is read-only
            ("/tmp/dl/dir", b"x"),
            ("/tmp/dl/file/below", b"x"),
            ("relative.txt", b"x"),
            ("/tmp/dl/ok.txt", b"ok"),
        ]
    )
    assert [r.error for r in put] == [
        "permission_denied",
        "is_directory",
        "invalid_path",
        "invalid_path",
        None,
    ]
    assert backend.execute("cat /tmp/dl/ok.txt").output == "ok"


def test_ls_and_delete_errors(backend: E2BToolsSandbox) -> None:
    backend.write("/tmp/lsd/file.txt", "x")
    # FilesystemMiddleware looks for "not_a_directory" to tell a file from a directory.
    assert backend.ls("/tmp/lsd/file.txt").error == "Path '/tmp/lsd/file.txt': not_a_directory"
    assert backend.ls("/tmp/lsd/nope").error == "Path '/tmp/lsd/nope': path_not_found"
    listing = backend.ls("/tmp/lsd")
    assert listing.entries is not None
    [entry] = listing.entries
    assert entry["path"] == "/tmp/lsd/file.txt"
    assert entry.get("size") == 1
    assert entry.get("is_dir") is False
    assert backend.delete("/tmp/lsd").path == "/tmp/lsd"
    assert backend.execute("test -e /tmp/lsd").exit_code == 1
    assert backend.delete("/tmp/lsd").error == "Error: '/tmp/lsd' not found"


def test_binary_round_trip_and_read_as_base64(backend: E2BToolsSandbox) -> None:
    data = os.urandom(1 << 20)
    assert backend.upload_files([("/tmp/bin/blob.txt", data)])[0].error is None
    assert backend.download_files(["/tmp/bin/blob.txt"])[0].content == data
    digest = hashlib.sha256(data).hexdigest()
    assert backend.execute("sha256sum /tmp/bin/blob.txt").output.startswith(digest)
    # Binary by content despite the extension: base64 up to 500 KiB, an error above.
    small = b"\x89\xff\x00" + os.urandom(1000)
    backend.upload_files([("/tmp/bin/small.txt", small)])
    read = backend.read("/tmp/bin/small.txt")
    assert read.file_data is not None
    assert read.file_data["encoding"] == "base64"
    assert base64.b64decode(read.file_data["content"]) == small
    assert "Binary file exceeds maximum preview size" in (
        backend.read("/tmp/bin/blob.txt").error or ""
    )
    # Over 2 MiB the page is cut in the sandbox; a binary file must not come back whole.
    backend.execute("head -c 3000000 /dev/urandom > /tmp/bin/big.log")
    assert "Binary file exceeds" in (backend.read("/tmp/bin/big.log").error or "")


def test_read_pages_with_universal_newlines(backend: E2BToolsSandbox) -> None:
    backend.upload_files([("/tmp/nl.txt", b"one\r\ntwo\rthree\n")])
    page = backend.read("/tmp/nl.txt", offset=1, limit=1)
    assert page.file_data is not None
    assert page.file_data["content"] == "two"
    assert (page.total_lines, page.start_line, page.end_line, page.next_offset) == (3, 2, 2, 2)
    assert backend.read("/tmp/nl.txt", offset=3).error == (
        "File '/tmp/nl.txt': Line offset 3 exceeds file length (3 lines)"
    )


def test_big_text_file_is_paged_in_the_sandbox(backend: E2BToolsSandbox) -> None:
    lines = [f"{i:07d} " + "x" * 92 for i in range(40_000)]  # 4 MB: past the whole-read limit
    backend.write("/tmp/big.txt", "\n".join(lines) + "\n")
    page = backend.read("/tmp/big.txt", offset=39_998, limit=10)
    assert page.file_data is not None
    assert page.file_data["content"] == "\n".join(lines[39_998:])
    assert (page.total_lines, page.start_line, page.end_line, page.next_offset) == (
        40_000,
        39_999,
        40_000,
        None,
    )


def test_page_over_the_size_cap_ends_with_the_truncation_note(backend: E2BToolsSandbox) -> None:
    lines = [f"{i:04d}" + "é" * 500 for i in range(1000)]  # about 1 MB, 2-byte characters
    backend.write("/tmp/wide.txt", "\n".join(lines))
    page = backend.read("/tmp/wide.txt", limit=1000)
    assert page.file_data is not None
    content = page.file_data["content"]
    assert content.endswith(TRUNCATION_MSG)
    assert len(content.encode()) <= MAX_OUTPUT_BYTES
    assert page.next_offset == page.end_line
    shown = content[: -len(TRUNCATION_MSG)].split("\n")
    assert shown[:-1] == lines[: len(shown) - 1]  # whole lines, then one cut short
    following = backend.read("/tmp/wide.txt", offset=page.next_offset or 0, limit=1)
    assert following.file_data is not None
    assert following.file_data["content"] == lines[page.next_offset or 0]


def test_execute_interleaves_streams_and_keeps_exit_code(backend: E2BToolsSandbox) -> None:
    result = backend.execute("echo a; sleep 0.2; echo b >&2; sleep 0.2; echo c; exit 3")
    assert result.output == "a\nb\nc\n"
    assert result.exit_code == 3
    assert result.truncated is False
    assert backend.execute("pwd").output == "/home/user\n"


def test_execute_timeout_kills_and_reports_124(backend: E2BToolsSandbox) -> None:
    started = time.monotonic()
    result = backend.execute("echo begun; sleep 77", timeout=1)
    assert time.monotonic() - started < 15
    assert result.exit_code == 124
    assert result.output.startswith("begun\n")
    assert "timed out after 1s" in result.output
    assert "sleep 77" not in backend.execute(PROCS).output
    with pytest.raises(ValueError, match="timeout"):
        backend.execute("true", timeout=-1)


def test_execute_output_over_the_bound_is_flagged_truncated(image: str) -> None:
    from e2b_tools import SandboxConfig

    with E2BToolsSandbox.create(config=SandboxConfig(output_limit=4096)) as small:
        result = small.execute("head -c 20000 /dev/zero | tr '\\0' x; echo; echo tail-end")
        assert result.truncated is True
        assert result.output.startswith("x" * 100)
        assert result.output.endswith("tail-end\n")
        assert "characters omitted" in result.output


def test_default_write_overwrites_and_glob_is_absolute_files_only(
    backend: E2BToolsSandbox,
) -> None:
    assert backend.write("/tmp/g/a.py", "first").error is None
    assert backend.write("/tmp/g/a.py", "second").error is None
    assert backend.execute("cat /tmp/g/a.py").output == "second"
    backend.execute("mkdir -p /tmp/g/sub.py /tmp/g/deep && touch /tmp/g/deep/b.py")
    found = backend.glob("*.py", path="/tmp/g")
    assert found.error is None
    assert sorted(m["path"] for m in found.matches or []) == ["/tmp/g/a.py", "/tmp/g/deep/b.py"]


def test_legacy_settings_refuse_overwrite_and_glob_relative(backend: E2BToolsSandbox) -> None:
    legacy = E2BToolsSandbox(backend.sandbox, overwrite=False, glob_paths="relative")
    backend.write("/tmp/legacy/a.py", "first")
    refused = legacy.write("/tmp/legacy/a.py", "second")
    assert "already exists" in (refused.error or "")
    assert backend.execute("cat /tmp/legacy/a.py").output == "first"
    backend.execute("mkdir -p /tmp/legacy/sub")
    found = legacy.glob("*", path="/tmp/legacy")
    assert found.matches == [
        {"path": "a.py", "is_dir": False},
        {"path": "sub", "is_dir": True},
    ]
    assert "path_not_found" in (legacy.glob("*", path="/tmp/legacy/nope").error or "")
    assert "invalid_pattern" in (legacy.glob("../*", path="/tmp/legacy").error or "")


def test_close_kills_only_a_sandbox_it_created(image: str) -> None:
    mine = Sandbox.create(timeout=120)
    try:
        E2BToolsSandbox(mine).close()
        assert mine.is_running()
    finally:
        mine.kill()
    made = E2BToolsSandbox.create(timeout=120)
    made.close()
    assert isinstance(made.sandbox, Sandbox)
    assert not made.sandbox.is_running()


@pytest.mark.asyncio
async def test_async_sandbox_from_its_loop_and_from_threads(async_sandbox: AsyncSandbox) -> None:
    backend = E2BToolsSandbox(async_sandbox)
    assert backend.id == async_sandbox.sandbox_id
    written = await backend.awrite("/tmp/async.txt", "from the loop")
    assert written.error is None
    assert (await backend.aexecute("cat /tmp/async.txt")).output == "from the loop"
    # Blocking calls work from another thread while the loop runs...
    page = await asyncio.to_thread(backend.read, "/tmp/async.txt")
    assert page.file_data is not None
    assert page.file_data["content"] == "from the loop"
    # ...and from the loop itself they fail at once instead of deadlocking.
    with pytest.raises(RuntimeError, match="use the async API"):
        backend.read("/tmp/async.txt")
    listing = await backend.als("/tmp")
    assert "/tmp/async.txt" in [e["path"] for e in listing.entries or []]


@pytest.mark.asyncio
async def test_async_methods_of_a_sync_sandbox(backend: E2BToolsSandbox) -> None:
    results = await asyncio.gather(*(backend.aexecute(f"echo {i}") for i in range(5)))
    assert [r.output for r in results] == [f"{i}\n" for i in range(5)]
    edited = await backend.aedit("/tmp/async-edit.txt", "x", "y")
    assert "not found" in (edited.error or "").lower()


@pytest.mark.asyncio
async def test_cancelled_aexecute_stops_the_command(backend: E2BToolsSandbox) -> None:
    # Deep Agents' agrep/aglob give up with asyncio.wait_for: the command must stop too.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(backend.aexecute("sleep 66"), 1)
    await asyncio.sleep(0.5)
    assert "sleep 66" not in (await backend.aexecute(PROCS)).output


class _ScriptedModel(GenericFakeChatModel):
    """A scripted chat model that accepts ``bind_tools`` like a real provider."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


def _tool_call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage(
        content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}]
    )


def test_deep_agent_runs_its_tools_in_the_sandbox(backend: E2BToolsSandbox) -> None:
    six = "/home/user/da/six.py"
    script = [
        _tool_call("write_file", {"file_path": six, "content": "print(6 * 7)"}, "1"),
        _tool_call("execute", {"command": f"python3 {six}"}, "2"),
        _tool_call("ls", {"path": six}, "3"),
        _tool_call("glob", {"pattern": "*.py", "path": "/home/user/da"}, "4"),
        _tool_call("edit_file", {"file_path": six, "old_string": "6", "new_string": "7"}, "5"),
        _tool_call("read_file", {"file_path": six}, "6"),
        AIMessage(content="done"),
    ]
    agent = create_deep_agent(model=_ScriptedModel(messages=iter(script)), backend=backend)
    messages = agent.invoke({"messages": [{"role": "user", "content": "compute"}]})["messages"]
    results = {m.tool_call_id: str(m.content) for m in messages if isinstance(m, ToolMessage)}
    assert results["1"] == f"Updated file {six}"
    assert results["2"].startswith("42\n")
    assert "exit code 0" in results["2"]
    assert "not_a_directory" in results["3"]
    assert results["4"] == f"['{six}']"
    assert results["6"].endswith("print(7 * 7)")
    assert backend.execute(f"python3 {six}").output == "49\n"


def test_sandbox_tools_that_shadow_deep_agents_file_tools_are_refused() -> None:
    # The split: the sandbox's write_file replaces Deep Agents' own, while its ls,
    # edit_file, glob and grep stay on the agent's in-state files. The first call of a
    # shadowing tool raises to the operator instead of letting the agent lose its file.
    script = [
        _tool_call("write_file", {"path": "notes.txt", "content": "hi"}, "1"),
        _tool_call("ls", {"path": "/"}, "2"),
        AIMessage(content="done"),
    ]
    with SandboxToolkit() as toolkit:
        agent = create_deep_agent(
            model=_ScriptedModel(messages=iter(script)), tools=toolkit.get_tools()
        )
        with pytest.raises(ToolNameClashError) as caught:
            agent.invoke({"messages": [{"role": "user", "content": "take notes"}]})
        assert toolkit.core.session.sandbox is None  # refused before any sandbox started
    message = str(caught.value)
    assert "'write_file' replaces Deep Agents' own" in message
    assert "backend=E2BToolsSandbox(...)" in message and "name_prefix='sbx_'" in message
    assert {"read_file", "write_file", "ls", "edit_file"} <= DEEPAGENTS_FILE_TOOLS


def test_prefixed_sandbox_tools_live_next_to_deep_agents_file_tools(image: str) -> None:
    script = [
        _tool_call("sbx_write_file", {"path": "in-sandbox.txt", "content": "box"}, "1"),
        _tool_call("write_file", {"file_path": "/in-state.txt", "content": "state"}, "2"),
        _tool_call("ls", {"path": "/"}, "3"),
        _tool_call("sbx_list_files", {}, "4"),
        AIMessage(content="done"),
    ]
    with SandboxToolkit(name_prefix="sbx_") as toolkit:
        agent = create_deep_agent(
            model=_ScriptedModel(messages=iter(script)), tools=toolkit.get_tools()
        )
        out = agent.invoke({"messages": [{"role": "user", "content": "take notes"}]})
    results = {
        m.tool_call_id: str(m.content) for m in out["messages"] if isinstance(m, ToolMessage)
    }
    assert "Wrote /home/user/in-sandbox.txt" in results["1"]
    assert "/in-state.txt" in results["3"] and "in-sandbox.txt" not in results["3"]
    assert "in-sandbox.txt" in results["4"] and "in-state.txt" not in results["4"]


# -- pure logic -----------------------------------------------------------------------
def test_page_text_cuts_at_the_byte_cap_without_splitting_a_character() -> None:
    line = "€" * (MAX_OUTPUT_BYTES // 3)  # one line of 3-byte characters, over the cap
    page = _page_text("/f", line + "\nnext", 0, 10)
    assert page.file_data is not None
    shown = page.file_data["content"][: -len(TRUNCATION_MSG)]
    assert shown and set(shown) == {"€"}  # cut between characters, never inside one
    assert len(page.file_data["content"].encode()) <= MAX_OUTPUT_BYTES
    # Nothing was shown whole, yet the reader moves on rather than looping.
    assert (page.start_line, page.end_line, page.next_offset) == (1, 1, 1)


def test_page_text_bounds() -> None:
    assert _page_text("/f", "a\nb\n", 0, 0).no_lines_requested
    assert _page_text("/f", "a\nb\n", -5, 1).file_data == {"content": "a", "encoding": "utf-8"}
    assert _page_text("/f", "a\nb\n", 2, 1).error == (
        "File '/f': Line offset 2 exceeds file length (2 lines)"
    )
    last = _page_text("/f", "a\nb", 1, 5)
    assert (last.total_lines, last.end_line, last.next_offset) == (2, 2, None)


def test_constructor_rejects_what_is_not_a_sandbox() -> None:
    with pytest.raises(TypeError, match="Sandbox or AsyncSandbox"):
        E2BToolsSandbox(object())  # type: ignore[arg-type]


def test_adapter_loads_deep_agents_only_when_asked() -> None:
    code = (
        "import sys, e2b_tools_langchain\n"
        "print('deepagents' in sys.modules)\n"
        "e2b_tools_langchain.E2BToolsSandbox\n"
        "print('deepagents' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["False", "True"]


def test_backend_without_its_extra_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['deepagents'] = None  # as if the extra were not installed\n"
        "import e2b_tools_langchain\n"
        "try:\n    e2b_tools_langchain.E2BToolsSandbox\nexcept ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'e2b-tools[deepagents]'" in proc.stdout
