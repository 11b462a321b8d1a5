"""Hostile code against the controller: each case is an attack through the public API.

Code in a sandbox is hostile. These cases check that it cannot grow the host process's
memory without bound, take over or impersonate the agent, hang the host, outlive its
TTL, kill its own sandbox by filling the disk, or leave processes running past its
call; and that the host fails fast on a hung engine. Memory is measured as the growth
of this process's peak RSS (``VmHWM``, reset before each case) over its RSS before.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import docker
import pytest

from e2b_tools import (
    AsyncSandbox,
    EngineError,
    EngineUnavailableError,
    ProtocolError,
    Sandbox,
    SandboxFileError,
    SandboxTimeoutError,
)

T = TypeVar("T")
MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


def rss_growth(fn: Callable[[], T]) -> tuple[int, T]:
    """How far this process's peak RSS rose above its RSS while ``fn`` ran."""
    gc.collect()
    base = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    result = fn()
    return _status("VmHWM") - base, result


def root_exec(sbx: Sandbox, client: docker.DockerClient, script: str) -> str:
    """Run a shell script in the container as root (docker exec): the test plays a
    compromised or wedged agent, which user code itself can no longer bring about."""
    container = client.containers.get(sbx.container_id)
    code, out = container.exec_run(["sh", "-c", script], user="0")
    text = out.decode("utf-8", "replace")
    assert code == 0, text
    return text


AGENT_PID = "cat /proc/1/task/1/children | cut -d' ' -f1"


# -- 1. host memory on the files path ----------------------------------------------


def test_read_of_a_device_is_refused_without_reading(sandbox: Sandbox) -> None:
    start = time.monotonic()
    growth, _ = rss_growth(
        lambda: _expect_file_error(lambda: sandbox.files.read("/dev/zero"), "character device")
    )
    assert time.monotonic() - start < 10
    assert growth < 16 * MiB, growth >> 20


def _expect_file_error(fn: Callable[[], Any], match: str) -> None:
    with pytest.raises(SandboxFileError, match=match):
        fn()


def test_read_of_a_huge_sparse_file_is_capped_and_pages(sandbox: Sandbox) -> None:
    sandbox.commands.run("truncate -s 20G sparse.bin && printf END >> sparse.bin")
    growth, _ = rss_growth(
        lambda: _expect_file_error(
            lambda: sandbox.files.read("sparse.bin", format="bytes"), "over the read limit"
        )
    )
    assert growth < 16 * MiB, growth >> 20
    # A part of it, by offset and length, is fine; so is the end.
    assert sandbox.files.read("sparse.bin", "bytes", offset=10 << 30, length=MiB) == bytes(MiB)
    assert sandbox.files.read("sparse.bin", "bytes", offset=20 << 30) == b"END"
    with pytest.raises(SandboxFileError, match="max_size"):
        sandbox.files.read("sparse.bin", "bytes", offset=(20 << 30) - 10, max_size=5)


def test_64_mib_round_trip_keeps_host_memory_near_the_bytes_kept(sandbox: Sandbox) -> None:
    payload = os.urandom(64 * MiB)
    growth, back = rss_growth(
        lambda: (sandbox.files.write("big.bin", payload), sandbox.files.read("big.bin", "bytes"))
    )
    assert back[1] == payload
    # What the caller keeps is the 64 MiB read back; allow up to twice that.
    assert growth <= 2 * 64 * MiB, growth >> 20


def test_read_cap_counts_bytes_from_offset_and_can_be_lifted(sandbox: Sandbox) -> None:
    sandbox.files.write("ten.bin", bytes(10 * MiB))
    with pytest.raises(SandboxFileError, match="over the read limit"):
        sandbox.files.read("ten.bin", "bytes", max_size=MiB)
    assert len(sandbox.files.read("ten.bin", "bytes", max_size=None)) == 10 * MiB
    assert len(sandbox.files.read("ten.bin", "bytes", offset=9 * MiB, max_size=MiB)) == MiB


def test_chunked_write_is_atomic_and_append_streams(sandbox: Sandbox, tmp_path: Path) -> None:
    big = os.urandom(3 * MiB + 5)
    sandbox.files.write("f.bin", b"old")
    sandbox.files.write("f.bin", big)
    assert sandbox.files.read("f.bin", "bytes") == big
    sandbox.files.write("f.bin", big, append=True)
    assert sandbox.files.read("f.bin", "bytes") == big + big
    text = "é" * (2 * MiB)  # multibyte characters across chunk borders
    sandbox.files.write("t.txt", text)
    assert sandbox.files.read("t.txt") == text
    local = tmp_path / "up.bin"
    local.write_bytes(big)
    sandbox.files.upload(local, "up.bin")
    sandbox.files.download("up.bin", tmp_path / "down.bin")
    assert (tmp_path / "down.bin").read_bytes() == big
    # No temporary file is left next to the target.
    assert sandbox.commands.run("ls -a | grep -c e2b-tools || true").stdout.strip() == "0"


# -- 2. the agent is out of user code's reach ---------------------------------------

ATTACK = textwrap.dedent(
    """
    import ctypes, json, os, signal
    libc = ctypes.CDLL(None, use_errno=True)
    def ruid(pid):
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("Uid:"))
    out = {"self": os.getresuid(), "targets": {}}
    for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        try:
            if ruid(pid) != 0:
                continue
        except OSError:
            continue
        got = out["targets"][pid] = {}
        def attempt(name, fn):
            try:
                fn()
                got[name] = "succeeded"
            except OSError as exc:
                got[name] = exc.errno
        attempt("sigstop", lambda: os.kill(pid, signal.SIGSTOP))
        attempt("sigkill", lambda: os.kill(pid, signal.SIGKILL))
        attempt("fds", lambda: os.listdir(f"/proc/{pid}/fd"))
        for fd in range(8):
            attempt(f"write fd {fd}", lambda: open(f"/proc/{pid}/fd/{fd}", "wb").write(
                b'{"id":"x","type":"done","value":{}}\\n'))
        attempt("mem", lambda: open(f"/proc/{pid}/mem", "rb").read(1))
        def ptrace():
            if libc.ptrace(16, pid, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "ptrace")
        attempt("ptrace", ptrace)
    back_to_root = [
        ("setuid 0", lambda: os.setresuid(0, 0, 0)),
        ("seteuid 0", lambda: os.seteuid(0)),
    ]
    for name, fn in back_to_root:
        try:
            fn()
            out[name] = "succeeded"
        except OSError as exc:
            out[name] = exc.errno
    print(json.dumps(out))
    """
)


def test_user_code_cannot_signal_trace_or_write_into_the_agent(sandbox: Sandbox) -> None:
    import json

    before = sandbox.commands.run("cat /etc/hostname").stdout
    report = json.loads(sandbox.run_code(ATTACK).logs.stdout[-1])
    assert report["self"] == [1000, 1000, 1000]
    assert report["setuid 0"] != "succeeded" and report["seteuid 0"] != "succeeded"
    # docker-init, the agent, its watchdog and the guards of running work.
    assert len(report["targets"]) >= 3, report
    for pid, attempts in report["targets"].items():
        for name, outcome in attempts.items():
            assert outcome != "succeeded", f"{name} on pid {pid} worked: {report}"
    # The host still gets true answers, and the sandbox kept running.
    assert sandbox.commands.run("cat /etc/hostname").stdout == before
    assert sandbox.run_code("1 + 1").text == "2"


def test_every_process_of_user_code_has_only_the_user_uid(sandbox: Sandbox) -> None:
    sandbox.commands.run("sleep 30 >/dev/null 2>&1 &")
    sandbox.run_code("x = 1", language="js")
    sandbox.run_code("true", language="bash")
    kernel = int(sandbox.run_code("import os; os.getpid()").text or 0)
    ps = sandbox.commands.run("ps -eo pid=,ppid=,ruid=,euid=,suid=,args=").stdout.splitlines()
    rows = [line.split(None, 5) for line in ps]
    agent = next(int(r[0]) for r in rows if r[1] == "1")
    users = set()
    for pid, ppid, *uids, args in rows:
        if uids[0] == "0":
            # Only docker-init, the agent and what the agent forked itself (its watchdog
            # and the guards) keep real uid 0.
            assert pid == "1" or int(ppid) in (1, agent), f"root process {args}: {ps}"
        else:
            assert uids == ["1000", "1000", "1000"], f"{args}: {ps}"
            users.add(int(pid))
    assert kernel in users
    assert any("kernel_node.js" in r[5] and int(r[0]) in users for r in rows), ps
    assert any(r[5].startswith("bash --norc") and int(r[0]) in users for r in rows), ps


# -- 3. a corrupt or oversized protocol line fails the call, not hangs it ----------


@pytest.mark.parametrize(
    "inject",
    [
        "printf 'not json at all\\n' > /proc/1/fd/1",
        "head -c 17000000 /dev/zero | tr '\\0' a > /proc/1/fd/1",
    ],
    ids=["unparseable", "oversized"],
)
def test_corrupt_stream_fails_calls_in_flight_and_reconnects(
    sandbox: Sandbox, docker_client: docker.DockerClient, inject: str
) -> None:
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            sandbox.run_code("import time; time.sleep(60)", timeout=None)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(1.0)
    root_exec(sandbox, docker_client, inject)
    thread.join(timeout=20)
    assert not thread.is_alive(), "the call hung on a broken stream"
    assert errors and isinstance(errors[0], ProtocolError), errors
    assert sandbox.commands.run("echo back").stdout == "back\n"


# -- 4. huge values cost the sandbox, not the host ----------------------------------


def test_huge_result_repr_and_error_are_capped(sandbox: Sandbox) -> None:
    start = time.monotonic()
    growth, execution = rss_growth(lambda: sandbox.run_code("'x' * (100 * 2**20)"))
    assert time.monotonic() - start < 30
    assert execution.text is not None and len(execution.text) < 2 * MiB
    assert "characters omitted by e2b-tools" in execution.text
    assert growth < 32 * MiB, growth >> 20
    failed = sandbox.run_code("raise ValueError('y' * (50 * 2**20))")
    assert failed.error is not None and len(failed.error.value) < MiB
    js = sandbox.run_code("'z'.repeat(20 * 2 ** 20)", language="js")
    assert js.text is not None and len(js.text) < 2 * MiB
    assert sandbox.run_code("1 + 1").text == "2"


def test_too_large_listing_is_a_clear_error(sandbox: Sandbox) -> None:
    sandbox.commands.run("mkdir many && cd many && seq -f 'file-%06g' 120000 | xargs touch")
    with pytest.raises(Exception, match="over the protocol's limit"):
        sandbox.files.list("many")
    assert sandbox.files.exists("many")


# -- 5. blocking paths, and a TTL nothing inside can stop ---------------------------


def test_special_files_are_refused_at_once(sandbox: Sandbox) -> None:
    sandbox.run_code(
        "import os, socket\nos.mkfifo('fifo')\ns = socket.socket(socket.AF_UNIX)\ns.bind('sock')"
    )
    for path, kind in [("fifo", "FIFO"), ("sock", "socket"), ("/dev/zero", "device")]:
        start = time.monotonic()
        with pytest.raises(SandboxFileError, match=kind):
            sandbox.files.read(path)
        with pytest.raises(SandboxFileError, match=kind):
            sandbox.files.write(path, "x", append=True)
        assert time.monotonic() - start < 5
    with pytest.raises(SandboxFileError, match="FIFO"):
        sandbox.files.write("fifo", "replace me")
    assert sandbox.commands.run("echo alive").stdout == "alive\n"


def test_ttl_holds_while_the_agent_is_stopped(
    image: str, docker_client: docker.DockerClient
) -> None:
    sbx = Sandbox.create(timeout=4)
    try:
        root_exec(sbx, docker_client, f"kill -STOP $({AGENT_PID})")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _exists(docker_client, sbx.container_id):
            time.sleep(0.5)
        assert not _exists(docker_client, sbx.container_id), "the sandbox outlived its TTL"
    finally:
        sbx.kill()


def _exists(client: docker.DockerClient, container_id: str) -> bool:
    try:
        client.containers.get(container_id)
    except docker.errors.NotFound:
        return False
    return True


def test_gc_removes_a_sandbox_past_its_label_deadline(
    image: str, docker_client: docker.DockerClient
) -> None:
    from e2b_tools import gc as reap

    sbx = Sandbox.create(timeout=3)
    try:
        # Stop the agent and its watchdog: only the host can end it now.
        root_exec(
            sbx,
            docker_client,
            "for p in $(cat /proc/1/task/1/children); do kill -STOP $p "
            "$(cat /proc/$p/task/$p/children); done",
        )
        time.sleep(4)
        assert sbx.sandbox_id in reap()
        assert not _exists(docker_client, sbx.container_id)
    finally:
        sbx.kill()


# -- 6. a full workspace is ENOSPC, not a dead sandbox ------------------------------


def test_filling_the_workspace_gives_enospc_and_the_sandbox_lives(sandbox: Sandbox) -> None:
    sandbox.run_code("keep = 41")
    result = sandbox.commands.run("head -c 2G /dev/zero > fill.bin; echo status=$?", timeout=120)
    assert "No space left on device" in result.stderr
    with pytest.raises(SandboxFileError, match="No space left"):
        sandbox.files.write("more.bin", bytes(8 * MiB))
    execution = sandbox.run_code("keep + 1")
    assert execution.text == "42" and not execution.context_restarted
    sandbox.files.remove("fill.bin")
    assert sandbox.commands.run("echo ok").stdout == "ok\n"


# -- 7. a hung engine fails fast ----------------------------------------------------


@pytest.fixture
def silent_engine(tmp_path: Path) -> Iterator[str]:
    """A Unix socket that accepts connections and never answers."""
    path = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"unix://{path}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_hung_engine_fails_create_and_gc_fast(silent_engine: str) -> None:
    env = {**os.environ, "DOCKER_HOST": silent_engine, "E2B_TOOLS_ENGINE_TIMEOUT": "3"}
    script = (
        "import time\nfrom e2b_tools import Sandbox, EngineUnavailableError\n"
        "t = time.monotonic()\ntry:\n    Sandbox.create()\n"
        "except EngineUnavailableError as exc:\n    print(round(time.monotonic() - t, 1), exc)\n"
    )
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - start < 30, out
    assert silent_engine in out.stdout and "DOCKER_HOST" in out.stdout, out
    assert "scripts/" not in out.stdout
    cli = subprocess.run(
        [sys.executable, "-m", "e2b_tools.cli", "gc"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1 and silent_engine in cli.stderr, cli
    assert time.monotonic() - start < 60
    assert issubclass(EngineUnavailableError, EngineError)


# -- 8. nothing a timed-out call started keeps running -------------------------------

FORK_BOMB = """
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"""


def _count(sbx: Sandbox, pattern: str) -> int:
    # [x]yz: the pattern does not match the shell running pgrep itself.
    out = sbx.commands.run(f"pgrep -fc '[{pattern[0]}]{pattern[1:]}' || true").stdout.strip()
    return int(out or 0)


def test_timed_out_fork_bomb_leaves_nothing_behind(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxTimeoutError):
        sandbox.run_code(FORK_BOMB, timeout=3)
    processes = sandbox.commands.run("ps -e --no-headers | wc -l").stdout.strip()
    assert int(processes) < 20, sandbox.commands.run("ps -ef").stdout
    assert sandbox.run_code("21 * 2").text == "42"


def test_timeout_kills_what_the_call_started_even_in_new_sessions(sandbox: Sandbox) -> None:
    sandbox.commands.run("sleep 1001 >/dev/null 2>&1 &")  # an earlier, finished call
    sandbox.run_code("import subprocess; server = subprocess.Popen(['sleep', '1002'])")
    with pytest.raises(SandboxTimeoutError):
        sandbox.commands.run(
            "setsid sleep 1003 & (setsid sh -c 'sleep 1004 &' &); sleep 100", timeout=2
        )
    with pytest.raises(SandboxTimeoutError):
        sandbox.run_code(
            "import subprocess, time\n"
            "subprocess.Popen(['setsid', 'sh', '-c', 'sleep 1005 & sleep 1006'])\n"
            "time.sleep(100)",
            timeout=2,
        )
    assert [_count(sandbox, f"sleep {n}") for n in (1003, 1004, 1005, 1006)] == [0, 0, 0, 0]
    # Processes of earlier calls are not the timed-out call's to kill.
    assert _count(sandbox, "sleep 1001") == 1 and _count(sandbox, "sleep 1002") == 1


# -- 9. the channel survives its creator ---------------------------------------------


def test_connect_after_the_creator_exited_and_two_at_once(image: str) -> None:
    script = (
        "from e2b_tools import Sandbox\n"
        "s = Sandbox.create(timeout=120)\ns.run_code('x = 20')\nprint(s.sandbox_id)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    sandbox_id = out.stdout.strip()
    first = Sandbox.connect(sandbox_id)
    try:
        second = Sandbox.connect(sandbox_id)
        assert first.run_code("x + 1").text == "21"
        assert second.run_code("x + 2").text == "22"
        assert first.commands.run("echo one").stdout == "one\n"
    finally:
        first.kill()


# -- 10. kill returns after the process is gone; no stray task errors ---------------


def test_commands_kill_returns_after_the_process_is_gone(sandbox: Sandbox) -> None:
    for _ in range(5):
        handle = sandbox.commands.run("sleep 100", background=True)
        assert sandbox.commands.kill(handle.pid)
        probe = sandbox.commands.run(f"kill -0 {handle.pid} 2>/dev/null; echo $?")
        assert probe.stdout.strip() != "0"


def test_killing_a_sandbox_under_a_background_command_is_quiet(image: str) -> None:
    script = (
        "import gc\nfrom e2b_tools import Sandbox\n"
        "s = Sandbox.create(timeout=60)\nh = s.commands.run('sleep 100', background=True)\n"
        "s.kill()\ndel h\ngc.collect()\nimport time; time.sleep(0.5)\nprint('done')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "done"
    assert "never retrieved" not in out.stderr, out.stderr


# -- async callers get the same bounds ----------------------------------------------


@pytest.mark.asyncio
async def test_async_read_is_capped(async_sandbox: AsyncSandbox) -> None:
    await async_sandbox.files.write("x.bin", bytes(2 * MiB))
    with pytest.raises(SandboxFileError, match="over the read limit"):
        await async_sandbox.files.read("x.bin", "bytes", max_size=MiB)
    assert len(await async_sandbox.files.read("x.bin", "bytes")) == 2 * MiB
    await asyncio.sleep(0)
