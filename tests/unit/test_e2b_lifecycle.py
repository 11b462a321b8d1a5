"""E2B's lifecycle API against the engine-free backend: class and instance forms,
``template=``, the v2 paginator, pause and resume (the timeout clock stops while
paused), metrics, and gc keeping paused sandboxes."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time

import pytest
from local_backend import LocalBackend

from e2b_tools import (
    AsyncSandbox,
    InvalidArgumentError,
    Sandbox,
    SandboxConfig,
    SandboxError,
    SandboxInfo,
    SandboxMetrics,
    SandboxPaginator,
    SandboxQuery,
    SandboxState,
    agc,
)
from e2b_tools._inspect import metrics_from_stats
from e2b_tools.backends.docker import image_name
from e2b_tools.images.names import DEFAULT_IMAGE


def _deadline(sbx: Sandbox) -> float:
    info = sbx.get_info()
    assert info.end_at is not None
    return info.end_at.timestamp()


def test_kill_set_timeout_and_get_info_by_id(backend: LocalBackend) -> None:
    sbx = Sandbox.create(backend=backend, timeout=60, metadata={"who": "by-id"})
    sid = sbx.sandbox_id
    info = Sandbox.get_info(sid, backend=backend)
    assert isinstance(info, SandboxInfo)
    assert info.sandbox_id == sid and info.metadata == {"who": "by-id"}
    assert info.state == SandboxState.RUNNING
    assert Sandbox.kill(sid, backend=backend) is True
    assert Sandbox.kill(sid, backend=backend) is False
    assert sbx.kill() is False  # the instance form, on the same sandbox
    other = Sandbox.create(backend=backend)
    assert Sandbox.kill(other) is True  # E2B's Class.method(instance) form


def test_template_is_image_and_name_drops_the_tag(backend: LocalBackend) -> None:
    with Sandbox.create(template="repo.example:5000/team/img:1.2", backend=backend) as sbx:
        assert sbx.image == "repo.example:5000/team/img:1.2"
        info = sbx.get_info()
        assert info.template_id == "repo.example:5000/team/img:1.2"
        assert info.name == "repo.example:5000/team/img"
    with pytest.raises(InvalidArgumentError, match="template is E2B's name for image"):
        Sandbox.create(image="a", template="b", backend=backend)
    for e2b_default in ("base", "code-interpreter-v1"):
        with Sandbox.create(template=e2b_default, backend=backend) as sbx:
            assert sbx.image == DEFAULT_IMAGE
    assert image_name("img@sha256:00") == "img"
    assert image_name("host:5000/img") == "host:5000/img"


def test_list_pages_newest_first_with_filters(backend: LocalBackend) -> None:
    made = []
    try:
        for n in range(3):
            made.append(Sandbox.create(backend=backend, metadata={"suite": "pages", "n": str(n)}))
            time.sleep(1.05)  # distinct creation seconds: the order is by start time
        query = SandboxQuery(metadata={"suite": "pages"})
        pages = Sandbox.list(query, limit=2, backend=backend)
        assert isinstance(pages, SandboxPaginator) and pages.has_next
        first = pages.next_items()
        assert [i.metadata["n"] for i in first] == ["2", "1"]
        assert pages.has_next and pages.next_token
        # A new paginator goes on from a token.
        rest = Sandbox.list(query, limit=2, next_token=pages.next_token, backend=backend)
        assert [i.metadata["n"] for i in rest.next_items()] == ["0"]
        assert [i.metadata["n"] for i in pages.next_items()] == ["0"]
        assert not pages.has_next and pages.next_token is None
        with pytest.raises(InvalidArgumentError, match="has_next"):
            pages.next_items()
        assert Sandbox.list(SandboxQuery(template="nope"), backend=backend).next_items() == []
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        assert Sandbox.list(SandboxQuery(started_after=later), backend=backend).next_items() == []
        with pytest.raises(InvalidArgumentError, match="next_token"):
            Sandbox.list(next_token="garbage", backend=backend).next_items()
    finally:
        for sbx in made:
            sbx.kill()


def test_pause_keeps_state_and_stops_the_clock(backend: LocalBackend) -> None:
    timeout = 3.0
    sbx = Sandbox.create(backend=backend, timeout=timeout)
    try:
        sbx.run_code("x = 41")
        before = _deadline(sbx)
        assert sbx.pause() is True
        assert sbx.pause() is False  # already paused
        assert not sbx.is_running()
        sid = sbx.sandbox_id
        assert Sandbox.get_info(sid, backend=backend).state == SandboxState.PAUSED
        paused = Sandbox.list(SandboxQuery(state=[SandboxState.PAUSED]), backend=backend)
        assert [i.sandbox_id for i in paused.next_items()] == [sid]
        running = Sandbox.list(SandboxQuery(state=[SandboxState.RUNNING]), backend=backend)
        assert sid not in {i.sandbox_id for i in running.next_items()}
        # Paused past its deadline and the watchdog's grace: the clock stood still.
        time.sleep(timeout + 3)
        same = Sandbox.connect(sid, backend=backend)
        assert same.run_code("x + 1").text == "42"
        moved = _deadline(same) - before
        assert timeout + 2 < moved < timeout + 10
        # The time left before the pause still runs out.
        gone = time.monotonic() + timeout + 10
        while sbx.is_running() and time.monotonic() < gone:
            time.sleep(0.2)
        assert not sbx.is_running()
    finally:
        sbx.kill()


# The local backend's agent has one pair of pipes: the forms that attach a second
# connection to a running sandbox (set_timeout, pause, connect by id) are tested on the
# engine (tests/engine/test_e2b_lifecycle.py).


def test_instance_connect_resumes_and_timeout_sets_the_deadline(backend: LocalBackend) -> None:
    with Sandbox.create(backend=backend, timeout=60) as sbx:
        sbx.run_code("y = 1")
        assert sbx.pause() is True
        assert sbx.connect(timeout=500) is sbx
        assert sbx.run_code("y").text == "1"
        assert abs(_deadline(sbx) - (time.time() + 500)) < 30
        # A running sandbox's deadline is only extended, as in E2B.
        sbx.connect(timeout=5)
        assert _deadline(sbx) > time.time() + 400
        assert sbx.beta_pause() is True
        with pytest.raises(InvalidArgumentError, match="paused"):
            Sandbox.set_timeout(sbx.sandbox_id, 60, backend=backend)
        sbx.connect()
        assert sbx.run_code("y + 1").text == "2"


def test_kill_a_paused_sandbox(backend: LocalBackend) -> None:
    sbx = Sandbox.create(backend=backend)
    sbx.pause()
    assert sbx.kill() is True
    assert not sbx.is_running()


def test_gc_keeps_a_paused_sandbox_past_its_label_deadline(backend: LocalBackend) -> None:
    sbx = Sandbox.create(backend=backend, timeout=1)
    try:
        sbx.pause()
        time.sleep(1.5)
        assert asyncio.run(agc(backend=backend, dry_run=True)) == []
        sbx.connect()
        assert sbx.run_code("1 + 1").text == "2"
    finally:
        sbx.kill()


def test_get_metrics(backend: LocalBackend) -> None:
    with Sandbox.create(backend=backend) as sbx:
        (sample,) = sbx.get_metrics()
        assert isinstance(sample, SandboxMetrics)
        assert sample.cpu_count >= 1 and 0 <= sample.cpu_used_pct <= 100
        assert 0 < sample.mem_used < sample.mem_total
        assert Sandbox.get_metrics(sbx.sandbox_id, backend=backend)
        future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
        assert sbx.get_metrics(start=future) == []


def test_metrics_from_docker_stats() -> None:
    stats = {
        "read": "2025-01-02T03:04:05.123456789Z",
        "cpu_stats": {
            "cpu_usage": {"total_usage": 3_000_000_000},
            "system_cpu_usage": 20_000_000_000,
            "online_cpus": 8,
        },
        "precpu_stats": {
            "cpu_usage": {"total_usage": 2_000_000_000},
            "system_cpu_usage": 12_000_000_000,
        },
        "memory_stats": {
            "usage": 300 << 20,
            "limit": 1 << 30,
            "stats": {"inactive_file": 100 << 20, "file": 120 << 20},
        },
    }
    info = {
        "Config": {"WorkingDir": "/home/user"},
        "HostConfig": {
            "NanoCpus": 2_000_000_000,
            "Tmpfs": {"/home/user": "rw,exec,size=512m,mode=0755"},
        },
    }
    sample = metrics_from_stats(stats, info)
    # 1 s of CPU over 8 s of all 8 CPUs' time: one CPU busy, half of the sandbox's 2.
    assert sample.cpu_count == 2 and sample.cpu_used_pct == 50.0
    assert sample.mem_used == 200 << 20 and sample.mem_total == 1 << 30
    assert sample.mem_cache == 120 << 20 and sample.disk_total == 512 << 20
    assert sample.timestamp == dt.datetime(2025, 1, 2, 3, 4, 5, 123456, dt.timezone.utc)


@pytest.mark.asyncio
async def test_async_forms(backend: LocalBackend) -> None:
    sbx = await AsyncSandbox.create(backend=backend, metadata={"suite": "async-forms"})
    try:
        pages = AsyncSandbox.list(SandboxQuery(metadata={"suite": "async-forms"}), backend=backend)
        assert [i.sandbox_id for i in await pages.next_items()] == [sbx.sandbox_id]
        assert await sbx.pause() is True
        assert await AsyncSandbox.pause(sbx.sandbox_id, backend=backend) is False
        same = await AsyncSandbox.connect(sbx.sandbox_id, backend=backend)
        assert (await same.run_code("3 * 3")).text == "9"
        info = await AsyncSandbox.get_info(sbx.sandbox_id, backend=backend)
        assert info.state == SandboxState.RUNNING
    finally:
        assert await AsyncSandbox.kill(sbx.sandbox_id, backend=backend) is True


def _agent_pid(backend: LocalBackend, sbx: Sandbox) -> int:
    process = backend._sandboxes[sbx.container_id].process
    assert process is not None
    return process.pid


def _dies_within(pid: int, seconds: float) -> float | None:
    """Seconds until ``pid`` is gone (killed or a zombie), None if it outlives ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return time.monotonic() - start
        except FileNotFoundError:
            return time.monotonic() - start
        time.sleep(0.1)
    return None


@pytest.mark.parametrize("move", ["earlier", "later", "later-then-earlier"])
def test_the_watchdog_enforces_a_moved_deadline_on_a_stopped_agent(
    backend: LocalBackend, move: str
) -> None:
    """The agent hands the watchdog a later deadline lazily (off the path of the calls
    that follow a set_timeout); an earlier one, or one close to the one it holds, at
    once. Either way a stopped agent dies at the new deadline, not before."""
    sbx = Sandbox.create(backend=backend, timeout=3 if move == "later" else 60)
    try:
        if move == "later-then-earlier":
            sbx.set_timeout(90)  # far off: waits its turn, then must not undo the next
        sbx.set_timeout(6 if move == "later" else 2)
        pid = _agent_pid(backend, sbx)
        os.kill(pid, signal.SIGSTOP)  # only the watchdog can end it now
        took = _dies_within(pid, 20)
        assert took is not None, "the watchdog did not kill a stopped agent past its deadline"
        # Deadline, plus the watchdog's 2 s grace, plus slack; not at the old deadline.
        if move != "later":
            assert took < 10
        else:
            assert took > 6, "killed at the old deadline: the later one never reached it"
    finally:
        sbx.kill()


def test_create_takes_e2bs_positional_order_and_cloud_settings(backend: LocalBackend) -> None:
    # E2B: create(template, timeout, metadata, envs, ...); its cloud settings are accepted.
    with Sandbox.create(
        None,
        None,
        {"who": "positional"},
        {"FROM_ENVS": "yes"},
        backend=backend,
        api_key="e2b_unused",
        domain="unused.example",
        request_timeout=5,
        secure=True,
    ) as sbx:
        assert sbx.config.metadata["who"] == "positional"
        assert sbx.run_code("import os; os.environ['FROM_ENVS']").text == "yes"
        assert sbx.config.timeout == 300  # timeout=None: the default lifetime
    config = SandboxConfig(timeout=42)
    with Sandbox.create(config=config, backend=backend) as sbx:
        assert sbx.config.timeout == 42  # and with a config: the config's


def test_the_v1_constructor_creates_a_sandbox(backend: LocalBackend) -> None:
    sbx = Sandbox(timeout=30, metadata={"v": "1"}, envs={"V1": "ok"}, backend=backend)
    try:
        assert sbx.run_code("import os; os.environ['V1']").text == "ok"
        assert sbx.get_info().metadata == {"v": "1"}
        with pytest.raises(TypeError, match="takes no other arguments"):
            Sandbox(sbx.async_sandbox, timeout=5)
        assert Sandbox(sbx.async_sandbox).sandbox_id == sbx.sandbox_id
    finally:
        sbx.kill()
    with pytest.raises(InvalidArgumentError):
        Sandbox(timeout=-1, backend=backend)  # a bad setting fails before anything starts


def _frozen(backend: LocalBackend, sbx: Sandbox) -> list[str]:
    """States of the agent's descendants but its watchdog (``T``: stopped)."""
    from e2b_tools.agent import procs

    agent = _agent_pid(backend, sbx)
    found = procs.descendants(agent)
    watchdog = min(pid for pid, parent, _ in found if parent == agent)  # forked first
    return [state for pid, parent, state in found if watchdog not in (pid, parent)]


def _wait_state(sbx: Sandbox, state: SandboxState, within: float) -> None:
    end = time.monotonic() + within
    while sbx.get_info().state != state:
        assert time.monotonic() < end, f"not {state} within {within}s"
        time.sleep(0.2)


def test_auto_pause_freezes_at_the_deadline_and_connect_resumes(backend: LocalBackend) -> None:
    sbx = Sandbox.beta_create(auto_pause=True, timeout=2, backend=backend)
    try:
        sbx.run_code("x = 41")
        sbx.commands.run("sleep 600", background=True)
        _wait_state(sbx, SandboxState.PAUSED, 10)
        states = _frozen(backend, sbx)
        assert states and set(states) <= {"T"}, states  # every process stopped
        time.sleep(3)  # past the deadline and the watchdog's grace: still there
        assert sbx.get_info().state == SandboxState.PAUSED
        assert sbx.is_running(request_timeout=5) is False
        with pytest.raises(SandboxError, match="paused"):
            sbx.set_timeout(60)
        # (The by-id forms, list and gc attach a second stream: on the engine, in
        # tests/engine/test_e2b_lifecycle_engine.py.)
        assert sbx.connect(timeout=60) is sbx
        assert sbx.run_code("x + 1").text == "42"
        assert sbx.get_info().state == SandboxState.RUNNING and sbx.is_running()
        assert "T" not in _frozen(backend, sbx)
        assert 50 < _deadline(sbx) - time.time() < 70
    finally:
        sbx.kill()


def test_auto_resume_wakes_a_paused_sandbox_on_its_next_use(backend: LocalBackend) -> None:
    lifecycle = {"on_timeout": {"action": "pause", "keep_memory": True}, "auto_resume": True}
    sbx = Sandbox.create(timeout=2, lifecycle=lifecycle, backend=backend)
    try:
        sbx.run_code("y = 1")
        _wait_state(sbx, SandboxState.PAUSED, 10)
        assert sbx.run_code("y + 1").text == "2"  # woke it, with its lifetime again
        assert sbx.get_info().state == SandboxState.RUNNING
        _wait_state(sbx, SandboxState.PAUSED, 10)  # and the lifetime runs out again
    finally:
        sbx.kill()


@pytest.mark.parametrize(
    "lifecycle",
    [{"on_timeout": "sleep"}, {"auto_resume": True}, {"when": "never"}, {"auto_resume": "yes"}],
)
def test_a_bad_lifecycle_is_refused(backend: LocalBackend, lifecycle: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError, match="lifecycle"):
        Sandbox.create(lifecycle=lifecycle, backend=backend)


def test_list_puts_the_newest_first_even_within_a_second(backend: LocalBackend) -> None:
    made = [Sandbox.create(backend=backend, metadata={"suite": "order"}) for _ in range(3)]
    try:
        query = SandboxQuery(metadata={"suite": "order"})
        listed = Sandbox.list(query, limit=1, backend=backend)
        order = []
        while listed.has_next:
            order += [i.sandbox_id for i in listed.next_items()]
        assert order == [s.sandbox_id for s in reversed(made)]
    finally:
        for sbx in made:
            sbx.kill()


def test_connect_and_kill_take_e2bs_connection_settings(backend: LocalBackend) -> None:
    sbx = Sandbox.create(backend=backend, api_key="e2b_unused")
    assert sbx.connect(timeout=60, api_key="e2b_unused", request_timeout=5) is sbx
    with pytest.raises(TypeError, match="unexpected keyword arguments: api_kee"):
        sbx.connect(api_kee="typo")  # type: ignore[call-arg]
    assert Sandbox.kill(sbx.sandbox_id, backend=backend, api_key="k", domain="d") is True
    assert sbx.kill(api_key="k") is False  # gone already
