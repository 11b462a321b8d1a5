"""OpenAI Agents SDK sandbox client: the SDK's session contract on a real engine.

The SDK ships no importable conformance suite for sandbox clients (its checks live in
the repository's ``tests/sandbox/``, e.g. ``integration_tests/_helpers.py``, which the
package does not install). The checks those make of a backend are re-created here as
facts: manifest entries materialize, reads and writes round-trip, a missing file is
``WorkspaceReadNotFoundError``, paths and symlinks leading out of the workspace are
refused with ``InvalidManifestPathError`` (``ApplyPatchPathError`` for patches),
``apply_patch`` answers ``"Done!"``, ``extract`` unpacks a tar, and a stopped session
resumes with its workspace restored from the snapshot.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from agents import Model, ModelResponse, RunConfig, Runner, Usage
from agents.editor import ApplyPatchOperation
from agents.exceptions import UserError
from agents.sandbox import LocalSnapshotSpec, Manifest, SandboxAgent, SandboxRunConfig
from agents.sandbox.entries import Dir, File, LocalDir, LocalFile
from agents.sandbox.errors import (
    ApplyPatchPathError,
    ExecTimeoutError,
    ExecTransportError,
    ExposedPortUnavailableError,
    InvalidManifestPathError,
    WorkspaceArchiveWriteError,
    WorkspaceReadNotFoundError,
)
from agents.sandbox.errors import SandboxError as SdkSandboxError
from agents.sandbox.session import SandboxSession, SandboxSessionState
from agents.sandbox.session.sandbox_client import BaseSandboxClientOptions
from agents.sandbox.snapshot import NoopSnapshotSpec
from helpers import run_example
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from e2b_tools import AsyncSandbox, SandboxGoneError, SandboxNotFoundError, SandboxQuery
from e2b_tools_openai_agents import (
    E2BToolsSandboxClient,
    E2BToolsSandboxClientOptions,
    E2BToolsSandboxSession,
    E2BToolsSandboxSessionState,
)

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


@asynccontextmanager
async def started(
    client: E2BToolsSandboxClient,
    *,
    manifest: Manifest | None = None,
    options: E2BToolsSandboxClientOptions | None = None,
    **create: object,
) -> AsyncIterator[SandboxSession]:
    """A started session that is always shut down and deleted (its sandbox killed)."""
    session = await client.create(manifest=manifest, options=options, **create)  # type: ignore[arg-type]
    try:
        await session.start()
        yield session
    finally:
        try:
            await session.aclose()
        finally:
            await client.delete(session)
            await AsyncSandbox.kill(session.state.sandbox_id)  # type: ignore[attr-defined]


def _inner(session: SandboxSession) -> E2BToolsSandboxSession:
    inner = session._inner
    assert isinstance(inner, E2BToolsSandboxSession)
    return inner


async def _read(session: SandboxSession, path: Path) -> bytes:
    stream = await session.read(path)
    try:
        data = stream.read()
    finally:
        stream.close()
    assert isinstance(data, bytes)
    return data


async def _gone(sandbox_id: str) -> bool:
    try:
        sbx = await AsyncSandbox.connect(sandbox_id)
    except SandboxNotFoundError:
        return True
    await sbx.kill()
    return False


# -- options and state (no engine) ---------------------------------------------------------
def test_options_and_state_round_trip_through_json() -> None:
    options = E2BToolsSandboxClientOptions(
        image="e2b-tools/sandbox-slim:0.1.0", timeout=60, network={"allow_out": ["pypi.org"]}
    )
    parsed = BaseSandboxClientOptions.parse(options.model_dump(mode="json"))
    assert parsed == options
    state = E2BToolsSandboxSessionState(
        manifest=Manifest(root="/srv/ws"),
        snapshot={"type": "noop", "id": "x"},
        sandbox_id="abc123",
        exposed_ports=(8000,),
    )
    client = E2BToolsSandboxClient()
    payload = client.serialize_session_state(state)
    assert payload["type"] == "e2b_tools"
    restored = client.deserialize_session_state(payload)
    assert isinstance(restored, E2BToolsSandboxSessionState)
    assert (restored.sandbox_id, restored.manifest.root) == ("abc123", "/srv/ws")
    assert isinstance(SandboxSessionState.parse(client.serialize_session_state(state)), type(state))


def test_engine_unavailable_reaches_the_operator(tmp_path: Path) -> None:
    # A fresh process: the default backend is per process and bound to DOCKER_HOST.
    code = (
        "import asyncio\n"
        "from e2b_tools import EngineUnavailableError\n"
        "from e2b_tools_openai_agents import E2BToolsSandboxClient\n"
        "try:\n"
        "    asyncio.run(E2BToolsSandboxClient().create(options=None))\n"
        "except EngineUnavailableError as exc:\n"
        "    print('EngineUnavailableError:', exc)\n"
    )
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert "EngineUnavailableError: the Docker Engine at unix://" in proc.stdout


# -- exec ----------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_exec_results_and_exit_codes(image: str) -> None:
    async with started(E2BToolsSandboxClient()) as session:
        ok = await session.exec("echo out; echo err >&2")
        assert (ok.exit_code, ok.stdout, ok.stderr) == (0, b"out\n", b"err\n")
        failed = await session.exec("echo partial; exit 7")
        assert (failed.ok(), failed.exit_code, failed.stdout) == (False, 7, b"partial\n")
        argv = await session.exec("printf", "[%s]", "a b", "$HOME;", shell=False)
        assert argv.stdout == b"[a b][$HOME;]"  # arguments are quoted, never re-parsed
        assert (await session.exec("pwd")).stdout == b"/workspace\n"
        signalled = await session.exec("kill -9 $$")
        assert signalled.exit_code == 137
        missing = await session.exec("no-such-command-here")
        assert missing.exit_code == 127
        both = await asyncio.gather(*(session.exec(f"sleep 0.3; echo {i}") for i in range(5)))
        assert [r.stdout for r in both] == [f"{i}\n".encode() for i in range(5)]


@pytest.mark.asyncio
async def test_exec_timeout_kills_the_command_and_the_sandbox_lives(image: str) -> None:
    async with started(E2BToolsSandboxClient()) as session:
        start = time.monotonic()
        with pytest.raises(ExecTimeoutError) as info:
            await session.exec("echo begun; sleep 30", timeout=1)
        assert time.monotonic() - start < 10
        assert info.value.timeout_s == 1
        assert "begun" in str(info.value.context.get("stdout"))
        left = await session.exec("ps -eo args | grep -c '^sleep 30$' || true")
        assert left.stdout.strip() == b"0"  # the whole process group was killed
        assert (await session.exec("echo alive")).stdout == b"alive\n"


@pytest.mark.asyncio
async def test_cancelled_exec_stops_the_command(image: str) -> None:
    async with started(E2BToolsSandboxClient()) as session:
        task = asyncio.create_task(session.exec("sleep 31"))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.5)
        left = await session.exec("ps -eo args | grep -c '^sleep 31$' || true")
        assert left.stdout.strip() == b"0"


@pytest.mark.asyncio
async def test_huge_output_keeps_host_memory_bounded(image: str) -> None:
    async with started(E2BToolsSandboxClient()) as session:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        result = await session.exec("head -c 150000000 /dev/zero | tr '\\0' a; echo; echo end")
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
        assert result.exit_code == 0
        assert len(result.stdout) < 9 * MiB  # head and tail of 150 MB, with a marker
        assert result.stdout.endswith(b"end\n") and result.stdout.startswith(b"aaaa")
        assert grown < 120 * MiB, f"host peak RSS grew by {grown / MiB:.0f} MiB"


@pytest.mark.asyncio
async def test_unsupported_user_is_an_sdk_error(image: str) -> None:
    async with started(E2BToolsSandboxClient()) as session:
        with pytest.raises(ExecTransportError) as info:
            await session.exec("id", user="alice")
        assert info.value.context["reason"] == "invalid_argument"
        assert (await session.exec("id -un", user="user")).stdout == b"user\n"


# -- files ---------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_binary_files_round_trip(image: str) -> None:
    payload = bytes(range(256)) * 4096 + os.urandom(3 * MiB) + b"\x00\r\n\xff"
    async with started(E2BToolsSandboxClient()) as session:
        await session.write(Path("bin/blob.dat"), io.BytesIO(payload))
        assert await _read(session, Path("bin/blob.dat")) == payload
        digest = await session.exec("sha256sum bin/blob.dat | cut -c1-64")
        assert digest.stdout.strip().decode() == hashlib.sha256(payload).hexdigest()
        await session.write(Path("/workspace/empty"), io.BytesIO(b""))
        assert await _read(session, Path("empty")) == b""
        await session.write(Path("text.txt"), io.StringIO("héllo"))  # type: ignore[arg-type]
        assert await _read(session, Path("text.txt")) == "héllo".encode()
        with pytest.raises(WorkspaceReadNotFoundError):
            await session.read(Path("no/such/file"))
        with pytest.raises(WorkspaceArchiveWriteError) as info:
            await session.write(Path("bin"), io.BytesIO(b"onto a directory"))
        assert info.value.context["kind"] == "is_directory"


@pytest.mark.asyncio
async def test_read_bounded_reads_only_the_prefix(image: str) -> None:
    async with started(E2BToolsSandboxClient()) as session:
        if not hasattr(session, "read_bounded"):
            pytest.skip("read_bounded is openai-agents 0.24's")
        await session.exec("head -c 5000000 /dev/urandom > big.bin && printf abc > small")
        assert len(await session.read_bounded(Path("big.bin"), max_bytes=10)) == 10
        assert await session.read_bounded(Path("small"), max_bytes=10) == b"abc"
        with pytest.raises(WorkspaceReadNotFoundError):
            await session.read_bounded(Path("missing"), max_bytes=10)


@pytest.mark.asyncio
async def test_paths_outside_the_workspace_are_refused(image: str) -> None:
    async with started(E2BToolsSandboxClient()) as session:
        for path in ("../outside.txt", "/tmp/sandbox-outside.txt", "/etc/passwd"):
            with pytest.raises(InvalidManifestPathError):
                await session.read(Path(path))
            with pytest.raises(InvalidManifestPathError):
                await session.write(Path(path), io.BytesIO(b"x"))
            with pytest.raises((ApplyPatchPathError, InvalidManifestPathError)):
                await session.apply_patch(
                    ApplyPatchOperation(type="create_file", path=path, diff="+x\n")
                )
        # A symlink made inside the sandbox must not lead a read or write out of it.
        await session.exec("echo secret > /tmp/target.txt && ln -s /tmp/target.txt link.txt")
        with pytest.raises(InvalidManifestPathError):
            await session.read(Path("link.txt"))
        with pytest.raises(InvalidManifestPathError):
            await session.write(Path("link.txt"), io.BytesIO(b"overwritten"))
        assert (await session.exec("cat /tmp/target.txt")).stdout == b"secret\n"


@pytest.mark.asyncio
async def test_manifest_patch_extract_and_listing(
    image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # local sources resolve from the working directory
    (tmp_path / "local.txt").write_text("local file\n")
    (tmp_path / "dir" / "nested").mkdir(parents=True)
    (tmp_path / "dir" / "nested" / "deep.txt").write_text("deep\n")
    manifest = Manifest(
        entries={
            "inline.txt": File(content=b"inline v1\n"),
            "delete_me.txt": File(content=b"bye\n"),
            "tree": Dir(children={"eph.txt": File(content=b"eph\n", ephemeral=True)}),
            "copied.txt": LocalFile(src=Path("local.txt")),
            "copied_dir": LocalDir(src=Path("dir")),
        }
    )
    async with started(E2BToolsSandboxClient(), manifest=manifest) as session:
        texts = {
            "inline.txt": b"inline v1\n",
            "tree/eph.txt": b"eph\n",
            "copied.txt": b"local file\n",
            "copied_dir/nested/deep.txt": b"deep\n",
        }
        for path, text in texts.items():
            assert await _read(session, Path(path)) == text
        done = await session.apply_patch(
            [
                ApplyPatchOperation(
                    type="update_file", path="inline.txt", diff="@@\n-inline v1\n+inline v2\n"
                ),
                ApplyPatchOperation(type="create_file", path="new.txt", diff="+created\n"),
                ApplyPatchOperation(type="delete_file", path="delete_me.txt"),
            ]
        )
        assert done == "Done!"
        assert await _read(session, Path("inline.txt")) == b"inline v2\n"
        assert await _read(session, Path("new.txt")) == b"created"
        with pytest.raises(WorkspaceReadNotFoundError):
            await session.read(Path("delete_me.txt"))
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo("arch/hello.txt")
            info.size = 6
            tar.addfile(info, io.BytesIO(b"hello\n"))
        archive.seek(0)
        await session.extract("bundle.tar", archive)
        assert await _read(session, Path("arch/hello.txt")) == b"hello\n"
        await session.mkdir("made/deeper", parents=True)
        names = {Path(e.path).name for e in await session.ls(".")}
        assert {"inline.txt", "new.txt", "tree", "copied_dir", "arch", "made"} <= names
        await session.rm("made", recursive=True)
        assert "made" not in {Path(e.path).name for e in await session.ls(".")}


# -- lifecycle -----------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_killed_sandbox_mid_call_raises_the_sdk_error(image: str) -> None:
    async with started(E2BToolsSandboxClient()) as session:
        sandbox_id = session.state.sandbox_id  # type: ignore[attr-defined]
        call = asyncio.create_task(session.exec("sleep 30"))
        await asyncio.sleep(1.0)
        assert await AsyncSandbox.kill(sandbox_id)
        with pytest.raises(ExecTransportError) as info:
            await asyncio.wait_for(call, 30)
        assert isinstance(info.value.cause, SandboxGoneError)
        assert info.value.retryable is False
        with pytest.raises(ExecTransportError):
            await session.exec("true")
        with pytest.raises(SdkSandboxError) as read_info:  # the path check runs in the sandbox
            await session.read(Path("anything"))
        assert isinstance(read_info.value.cause, SandboxGoneError)
        assert not await session.running()


@pytest.mark.asyncio
async def test_stop_and_delete_leave_no_container(image: str) -> None:
    client = E2BToolsSandboxClient()
    session = await client.create(options=None)
    await session.start()
    sandbox_id = session.state.sandbox_id  # type: ignore[attr-defined]
    assert await session.running()
    await session.aclose()  # stop (persist) + shutdown (kill)
    await client.delete(session)
    await client.delete(session)  # idempotent
    assert await _gone(sandbox_id)


@pytest.mark.asyncio
async def test_resume_by_state_reattaches_to_the_live_sandbox(image: str) -> None:
    client = E2BToolsSandboxClient()
    async with started(client) as session:
        await session.exec("echo kept > note.txt && (sleep 600 >/dev/null 2>&1 &)")
        payload = client.serialize_session_state(session.state)
        # Another process (a crash, a restart) resumes from the stored payload.
        other = E2BToolsSandboxClient()
        resumed = await other.resume(other.deserialize_session_state(payload))
        assert resumed.state.sandbox_id == session.state.sandbox_id  # type: ignore[attr-defined]
        await resumed.start()
        assert await _read(resumed, Path("note.txt")) == b"kept\n"
        procs = await resumed.exec("ps -eo args | grep -c '^sleep 600$'")
        assert procs.stdout.strip() == b"1"  # the same sandbox, not a copy


@pytest.mark.asyncio
async def test_resume_after_pause_on_exit(image: str) -> None:
    client = E2BToolsSandboxClient()
    options = E2BToolsSandboxClientOptions(pause_on_exit=True)
    session = await client.create(options=options)
    sandbox_id = session.state.sandbox_id  # type: ignore[attr-defined]
    try:
        await session.start()
        await session.exec("echo paused > p.txt")
        await session.aclose()  # pauses instead of killing
        await client.delete(session)
        info = await AsyncSandbox.get_info(sandbox_id)
        assert info.state == "paused"
        resumed = await client.resume(session.state)
        assert resumed.state.sandbox_id == sandbox_id  # type: ignore[attr-defined]
        await resumed.start()
        assert await _read(resumed, Path("p.txt")) == b"paused\n"
    finally:
        await AsyncSandbox.kill(sandbox_id)


@pytest.mark.asyncio
async def test_resume_replaces_a_gone_sandbox_from_the_snapshot(image: str, tmp_path: Path) -> None:
    client = E2BToolsSandboxClient()
    manifest = Manifest(entries={"seed.txt": File(content=b"seed\n")})
    snapshot = LocalSnapshotSpec(base_path=tmp_path)
    session = await client.create(snapshot=snapshot, manifest=manifest, options=None)
    first_id = session.state.sandbox_id  # type: ignore[attr-defined]
    await session.start()
    blob = os.urandom(256 * 1024)
    await session.write(Path("work/blob.bin"), io.BytesIO(blob))
    await session.exec("echo edited >> seed.txt")
    await session.aclose()  # persists the workspace tar on the host, kills the sandbox
    await client.delete(session)
    assert await _gone(first_id)
    payload = client.serialize_session_state(session.state)
    resumed = await client.resume(client.deserialize_session_state(payload))
    second_id = resumed.state.sandbox_id  # type: ignore[attr-defined]
    try:
        assert second_id != first_id
        await resumed.start()  # hydrates the new sandbox from the snapshot
        assert await _read(resumed, Path("work/blob.bin")) == blob
        assert await _read(resumed, Path("seed.txt")) == b"seed\nedited\n"
    finally:
        await resumed.aclose()
        await client.delete(resumed)
    assert await _gone(second_id)


@pytest.mark.asyncio
async def test_exposed_port_resolves_through_get_host(image: str) -> None:
    options = E2BToolsSandboxClientOptions(exposed_ports=(8000,))
    async with started(E2BToolsSandboxClient(), options=options) as session:
        await session.write(Path("index.html"), io.BytesIO(b"served from the sandbox"))
        await session.exec(
            "nohup python3 -m http.server 8000 >/dev/null 2>&1 &"
            " for i in $(seq 50); do python3 -c 'import socket; "
            'socket.create_connection(("127.0.0.1", 8000))\' 2>/dev/null && break; sleep 0.1; done'
        )
        endpoint = await session.resolve_exposed_port(8000)
        assert endpoint.host == "127.0.0.1" and not endpoint.tls
        url = endpoint.url_for("http") + "index.html"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
        assert body == b"served from the sandbox"
        with pytest.raises(ExposedPortUnavailableError):
            await session.resolve_exposed_port(9000)  # not configured


class _OneCommandModel(Model):
    """The SDK's Model interface: one exec_command call, then a final answer."""

    def __init__(self, cmd: str) -> None:
        call = ResponseFunctionToolCall(
            id="fc_1",
            call_id="call_1",
            name="exec_command",
            type="function_call",
            arguments=json.dumps({"cmd": cmd}),
        )
        answer = ResponseOutputMessage(
            id="msg_1",
            role="assistant",
            status="completed",
            type="message",
            content=[ResponseOutputText(text="done", type="output_text", annotations=[])],
        )
        self.turns: list[list[Any]] = [[call], [answer]]

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


@pytest.mark.asyncio
async def test_runner_raises_when_the_sandbox_dies_during_a_tool_call(image: str) -> None:
    label = {"test": f"oa-kill-{os.getpid()}-{time.monotonic_ns()}"}
    agent = SandboxAgent(name="a", instructions="x", model=_OneCommandModel("sleep 20; echo done"))
    run_config = RunConfig(
        sandbox=SandboxRunConfig(
            client=E2BToolsSandboxClient(),
            options=E2BToolsSandboxClientOptions(metadata=label),
            snapshot=NoopSnapshotSpec(),
        ),
        tracing_disabled=True,
    )

    async def kill_when_running() -> None:
        while not (
            found := await AsyncSandbox.list(query=SandboxQuery(metadata=label)).next_items()
        ):
            await asyncio.sleep(0.1)
        await asyncio.sleep(2.0)  # the manifest is applied, the tool call is running
        await AsyncSandbox.kill(found[0].sandbox_id)

    killer = asyncio.create_task(kill_when_running())
    try:
        with pytest.raises(UserError) as info:
            await Runner.run(agent, "go", run_config=run_config)
    finally:
        await asyncio.wait_for(killer, 60)
    assert isinstance(info.value.__cause__, ExecTransportError)
    assert isinstance(info.value.__cause__.cause, SandboxGoneError)
    assert not await AsyncSandbox.list(query=SandboxQuery(metadata=label)).next_items()


# -- the example ---------------------------------------------------------------------------
def test_example_runs_offline_and_leaves_no_sandbox(image: str, tmp_path: Path) -> None:
    out = run_example("openai_agents_sandbox.py", tmp_path)
    assert "[exec_command] pwd && head -2 data/temps.csv" in out
    assert "/workspace\n    city,temp\n    Oslo,4" in out  # the manifest's file, in the sandbox
    assert "wrote hottest.py" in out
    assert "hottest: Cairo (31 C)" in out  # computed in the sandbox
    assert "Process exited with code 3" in out
    assert "[answer] Cairo is the hottest city" in out
    assert "[cleanup] sandboxes left: 0" in out
