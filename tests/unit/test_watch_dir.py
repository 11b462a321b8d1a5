"""``files.watch_dir`` (E2B's), against the real agent on the local backend: events and
their names, recursive watches, both handles, errors, and the bounds under a flood.

Paths are relative: they land in the local backend's scratch workspace.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from local_backend import LocalBackend

from e2b_tools import (
    AsyncSandbox,
    AsyncWatchHandle,
    FileNotFoundException,
    FilesystemEvent,
    FilesystemEventType,
    FileType,
    NotFoundException,
    Sandbox,
    SandboxException,
    SandboxFileError,
    TimeoutException,
    WatchHandle,
)
from e2b_tools._watch import PENDING_LIMIT
from e2b_tools.agent import watch as agent_watch

CREATE = FilesystemEventType.CREATE
WRITE = FilesystemEventType.WRITE
REMOVE = FilesystemEventType.REMOVE
RENAME = FilesystemEventType.RENAME
CHMOD = FilesystemEventType.CHMOD


@pytest.fixture
def sbx(local_sandbox: Sandbox) -> Sandbox:
    return local_sandbox


def pairs(events: list[FilesystemEvent]) -> list[tuple[str, str]]:
    return [(e.type.value, e.name) for e in events]


def new_file(name: str) -> list[tuple[str, str]]:
    """What E2B reports for a file written with files.write that did not exist."""
    return [("create", name), ("chmod", name), ("write", name)]


def inotify_fds(pid: int) -> int:
    """How many inotify instances process ``pid`` holds open."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:inotify"
        except OSError:
            pass
    return count


def agent_pid(sandbox: Sandbox | AsyncSandbox) -> int:
    inner = sandbox.async_sandbox if isinstance(sandbox, Sandbox) else sandbox
    return int(inner._channel.conn.hello["pid"])


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


# -- the blocking API -------------------------------------------------------------------


def test_write_rename_remove_events(sbx: Sandbox) -> None:
    sbx.files.make_dir("w")
    handle = sbx.files.watch_dir("w")
    assert isinstance(handle, WatchHandle)
    try:
        assert handle.get_new_events() == []
        # The agent's upload (a temporary file renamed over the target) reads as E2B's
        # writes do: create for a new file, then chmod (envd chowns) and write.
        sbx.files.write("w/a.txt", "one")
        assert pairs(handle.get_new_events()) == new_file("a.txt")
        sbx.files.write("w/a.txt", "two")
        assert pairs(handle.get_new_events()) == [("chmod", "a.txt"), ("write", "a.txt")]
        sbx.files.rename("w/a.txt", "w/b.txt")
        assert pairs(handle.get_new_events()) == [("rename", "a.txt"), ("create", "b.txt")]
        sbx.files.remove("w/b.txt")
        assert pairs(handle.get_new_events()) == [("remove", "b.txt")]
        sbx.files.write("w/c.txt", "big" * 500_000)  # several chunks: one upload
        assert pairs(handle.get_new_events()) == new_file("c.txt")
        sbx.files.write("w/c.txt", "+", append=True)
        assert pairs(handle.get_new_events()) == [("write", "c.txt")]
    finally:
        handle.stop()


def test_changes_made_by_commands(sbx: Sandbox) -> None:
    sbx.files.make_dir("cmd")
    handle = sbx.files.watch_dir("cmd")
    try:
        sbx.commands.run(
            "cd cmd && echo x > f && chmod 600 f && mkdir d && mv f g && rm g && rmdir d"
        )
        events = pairs(handle.get_new_events())
        assert events == [
            ("create", "f"),
            ("write", "f"),
            ("chmod", "f"),
            ("create", "d"),
            ("rename", "f"),
            ("create", "g"),
            ("remove", "g"),
            ("remove", "d"),
        ]
    finally:
        handle.stop()


def test_recursive_and_not(sbx: Sandbox) -> None:
    sbx.files.make_dir("tree/old/deeper")
    flat = sbx.files.watch_dir("tree")
    deep = sbx.files.watch_dir("tree", recursive=True)
    try:
        sbx.files.write("tree/old/deeper/f.txt", "x")
        sbx.files.write("tree/top.txt", "x")
        expected_top = new_file("top.txt")
        assert pairs(flat.get_new_events()) == expected_top
        nested = new_file("old/deeper/f.txt")
        assert pairs(deep.get_new_events()) == nested + expected_top
        # A tree made at once: what appeared before its directories were watched is
        # reported too, and the new directories are watched from then on.
        sbx.commands.run("mkdir -p tree/new/a/b && touch tree/new/a/b/f")
        sbx.files.write("tree/new/a/b/g", "x")
        events = pairs(deep.get_new_events())
        for item in [("create", "new"), ("create", "new/a"), ("create", "new/a/b")]:
            assert item in events
        assert ("create", "new/a/b/f") in events
        assert events[-3:] == new_file("new/a/b/g")
        assert pairs(flat.get_new_events()) == [("create", "new")]
        # A directory moved away is no longer watched; moved back, it is again.
        sbx.commands.run("mv tree/new outside && mv outside tree/back")
        sbx.files.write("tree/back/a/b/h", "x")
        events = pairs(deep.get_new_events())
        assert events[0] == ("rename", "new")
        assert ("create", "back") in events
        assert events[-3:] == new_file("back/a/b/h")
        assert not [name for _, name in events if name.startswith("new/")]
    finally:
        flat.stop()
        deep.stop()


def test_missing_directory_and_file(sbx: Sandbox) -> None:
    with pytest.raises(NotFoundException):
        sbx.files.watch_dir("no_such_dir")
    with pytest.raises(FileNotFoundException) as missing:
        sbx.files.watch_dir("no_such_dir", recursive=True)
    assert missing.value.kind == "not_found"
    sbx.files.write("plain.txt", "x")
    with pytest.raises(SandboxException) as not_dir:
        sbx.files.watch_dir("plain.txt")
    assert isinstance(not_dir.value, SandboxFileError)
    assert not_dir.value.kind == "not_a_directory"
    with pytest.raises(SandboxException):
        sbx.files.watch_dir("x", user="root")  # type: ignore[arg-type]


def test_include_entry(sbx: Sandbox) -> None:
    sbx.files.make_dir("ent")
    sbx.files.write("ent/f.txt", "old")
    plain = sbx.files.watch_dir("ent", allow_network_mounts=True)
    handle = sbx.files.watch_dir("ent", include_entry=True)
    try:
        sbx.files.write("ent/f.txt", "new text")
        events = handle.get_new_events()
        assert pairs(events) == [("chmod", "f.txt"), ("write", "f.txt")]
        write = events[1]
        assert write.entry is not None
        assert write.entry.name == "f.txt" and write.entry.type == FileType.FILE
        assert write.entry.path == sbx.files.get_info("ent").path + "/f.txt"
        assert write.entry.size == len("new text")
        # The entry is what the path holds when the event is sent: none once it is gone.
        sbx.files.remove("ent/f.txt")
        (removed,) = handle.get_new_events()
        assert (removed.type, removed.entry) == (REMOVE, None)
        assert all(e.entry is None for e in plain.get_new_events())
    finally:
        handle.stop()
        plain.stop()


def test_stop_releases_the_inotify_instance(sbx: Sandbox) -> None:
    pid = agent_pid(sbx)
    before = inotify_fds(pid)
    sbx.files.make_dir("rel")
    handles = [sbx.files.watch_dir("rel"), sbx.files.watch_dir("rel", recursive=True)]
    assert inotify_fds(pid) == before + 2
    handles[0].stop()
    handles[0].stop()  # twice is fine
    assert inotify_fds(pid) == before + 1
    with pytest.raises(SandboxException, match="already stopped"):
        handles[0].get_new_events()
    handles[1].stop()
    assert inotify_fds(pid) == before


def test_watched_directory_removed(sbx: Sandbox) -> None:
    pid = agent_pid(sbx)
    before = inotify_fds(pid)
    sbx.files.make_dir("gone/sub")
    handle = sbx.files.watch_dir("gone", recursive=True)
    sbx.files.write("gone/sub/f", "x")
    sbx.files.remove("gone")
    events = pairs(handle.get_new_events())
    assert events[:3] == new_file("sub/f")
    assert ("remove", "sub/f") in events and ("remove", "sub") in events
    assert handle.get_new_events() == []  # the watch ended with its directory
    assert eventually(lambda: inotify_fds(pid) == before)
    handle.stop()


def test_flood_stays_bounded_and_other_calls_go_on(sbx: Sandbox) -> None:
    sbx.files.make_dir("flood")
    handle = sbx.files.watch_dir("flood")
    try:
        sbx.files.write(
            "flood.py", "for i in range(50_000):\n    open(f'flood/{i}', 'w').close()\n"
        )
        flood = sbx.commands.run("python3 flood.py", background=True, timeout=120)
        # Other calls are served while the events stream.
        assert sbx.run_code("6 * 7").text == "42"
        sbx.files.write("elsewhere.txt", "x")
        assert sbx.files.read("elsewhere.txt") == "x"
        flood.wait()
        events = handle.get_new_events()
        assert len(events) <= PENDING_LIMIT
        # 50,000 creations: whatever was not delivered was counted as dropped.
        assert handle.dropped > 0
        assert len(events) + handle.dropped >= min(50_000, PENDING_LIMIT)
        assert all(e.type in (CREATE, WRITE, CHMOD) for e in events)
        # The watch still works after the flood.
        sbx.files.write("flood/after.txt", "x")
        assert pairs(handle.get_new_events())[-3:] == new_file("after.txt")
    finally:
        handle.stop()


# -- the async API ----------------------------------------------------------------------


@pytest.fixture
def async_run() -> Iterator[Callable[[Callable[[AsyncSandbox], Any]], None]]:
    """Run ``test(sandbox)`` on a fresh AsyncSandbox of a fresh local backend."""

    def run(test: Callable[[AsyncSandbox], Any]) -> None:
        async def main() -> None:
            with LocalBackend() as backend:
                sandbox = await AsyncSandbox.create(backend=backend, timeout=120)
                try:
                    await test(sandbox)
                finally:
                    await sandbox.kill()

        asyncio.run(main())

    yield run


async def _wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def test_async_on_event_and_on_exit(async_run: Any) -> None:
    async def test(sandbox: AsyncSandbox) -> None:
        await sandbox.files.make_dir("aw/sub")
        seen: list[tuple[str, str]] = []
        exits: list[Exception | None] = []

        async def on_event(event: FilesystemEvent) -> None:
            await asyncio.sleep(0)  # awaited, in order
            seen.append((event.type.value, event.name))

        handle = await sandbox.files.watch_dir(
            "aw", on_event=on_event, on_exit=exits.append, recursive=True
        )
        assert isinstance(handle, AsyncWatchHandle)
        await sandbox.files.write("aw/sub/x.txt", "x")
        await sandbox.files.rename("aw/sub/x.txt", "aw/y.txt")
        expected = [*new_file("sub/x.txt"), ("rename", "sub/x.txt"), ("create", "y.txt")]
        await _wait_for(lambda: len(seen) >= 5)
        assert seen == expected
        assert exits == []
        await handle.stop()
        assert exits == [None]
        await handle.stop()
        assert exits == [None]

    async_run(test)


def test_async_timeout_and_callback_errors(async_run: Any) -> None:
    async def test(sandbox: AsyncSandbox) -> None:
        pid = agent_pid(sandbox)
        before = inotify_fds(pid)
        await sandbox.files.make_dir("at")
        exits: list[Exception | None] = []
        handle = await sandbox.files.watch_dir(
            "at", on_event=lambda e: None, on_exit=exits.append, timeout=0.3
        )
        await _wait_for(lambda: bool(exits))
        assert isinstance(exits[0], TimeoutException)
        assert "timeout=0.3s" in str(exits[0])
        await _wait_for(lambda: inotify_fds(pid) == before)
        await handle.stop()

        def on_event(event: FilesystemEvent) -> None:
            raise RuntimeError("callback failed")

        exits.clear()
        handle = await sandbox.files.watch_dir("at", on_event=on_event, on_exit=exits.append)
        await sandbox.files.write("at/f", "x")
        await _wait_for(lambda: bool(exits))
        assert isinstance(exits[0], RuntimeError)
        await _wait_for(lambda: inotify_fds(pid) == before)

        def bad_exit(error: Exception | None) -> None:
            raise ValueError("on_exit failed")

        handle = await sandbox.files.watch_dir("at", on_event=lambda e: None, on_exit=bad_exit)
        with pytest.raises(ValueError, match="on_exit failed"):
            await handle.stop()
        assert inotify_fds(pid) == before
        # No limit at all with timeout=0, as in E2B.
        handle = await sandbox.files.watch_dir("at", on_event=lambda e: None, timeout=0)
        await asyncio.sleep(0.2)
        await handle.stop()

    async_run(test)


def test_cancelling_the_awaiting_task_leaves_no_watch(async_run: Any) -> None:
    async def test(sandbox: AsyncSandbox) -> None:
        pid = agent_pid(sandbox)
        before = inotify_fds(pid)
        await sandbox.files.make_dir("ct")
        for delay in (0, 0.0005, 0.002, 0.01):
            task = asyncio.ensure_future(sandbox.files.watch_dir("ct", on_event=lambda e: None))
            await asyncio.sleep(delay)
            task.cancel()
            try:
                handle = await task
            except asyncio.CancelledError:
                pass
            else:  # it had started before the cancel came
                await handle.stop()
            await _wait_for(lambda: inotify_fds(pid) == before)
        # stop() from a task that is cancelled meanwhile still ends the watch.
        handle = await sandbox.files.watch_dir("ct", on_event=lambda e: None)
        stopping = asyncio.ensure_future(handle.stop())
        await asyncio.sleep(0)
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        await _wait_for(lambda: inotify_fds(pid) == before)
        assert await sandbox.files.exists("ct")

    async_run(test)


def test_async_flood_with_a_slow_consumer_and_concurrent_calls(async_run: Any) -> None:
    async def test(sandbox: AsyncSandbox) -> None:
        await sandbox.files.make_dir("af")
        await sandbox.files.make_dir("quiet")
        count = 0

        async def slow(event: FilesystemEvent) -> None:
            nonlocal count
            count += 1
            await asyncio.sleep(0.001)

        quiet_events: list[FilesystemEvent] = []
        busy = await sandbox.files.watch_dir("af", on_event=slow, recursive=True, timeout=0)
        quiet = await sandbox.files.watch_dir("quiet", on_event=quiet_events.append)
        flood = asyncio.ensure_future(
            sandbox.commands.run(
                "python3 -c \"[open(f'af/{i}', 'w').close() for i in range(50_000)]\"",
                timeout=120,
            )
        )
        peak = 0
        while not flood.done():
            peak = max(peak, len(busy._stream.pending))
            # Other calls are served meanwhile, quickly enough to matter.
            assert (await sandbox.run_code("1 + 1")).text == "2"
            await sandbox.files.write("quiet/q.txt", "x")
            await asyncio.sleep(0.01)
        await flood
        assert peak <= PENDING_LIMIT
        await _wait_for(lambda: len(quiet_events) >= 2)
        assert {(e.type, e.name) for e in quiet_events} >= {(CREATE, "q.txt"), (WRITE, "q.txt")}
        await _wait_for(lambda: busy.dropped > 0, 30)
        assert count < 50_000
        await busy.stop()
        await quiet.stop()

    async_run(test)


# -- the agent's side, in this process (Linux inotify, no sandbox) ----------------------


class FakeAgent:
    """What agent/watch.py uses of the agent: a selector, send, finish and resolve."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sel = selectors.DefaultSelector()
        self.sent: list[dict[str, Any]] = []

    def send(self, msg: dict[str, Any]) -> None:
        self.sent.append(msg)

    def finish(self, rid: str, value: dict[str, Any] | None = None) -> None:
        self.sent.append({"id": rid, "type": "done", "value": value or {}})

    def resolve(self, path: str) -> str:
        return str(self.root / path)

    def pump(self) -> None:
        for key, _ in self.sel.select(0):
            key.data()

    def events(self) -> list[tuple[str, str]]:
        return [(m["kind"], m["name"]) for m in self.sent if m["type"] == "fs_event"]


def test_agent_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = FakeAgent(tmp_path)
    watches = agent_watch.Watches(agent)  # type: ignore[arg-type]
    (tmp_path / "d").mkdir()
    monkeypatch.setattr(agent_watch, "MAX_WATCHES", 2)
    watches.start({"id": "w1", "path": "d"})
    watches.start({"id": "w2", "path": "d", "recursive": True})
    with pytest.raises(agent_watch.ResourceExhausted, match="2 directory watches"):
        watches.start({"id": "w3", "path": "d"})
    assert watches.cancel("w1") and not watches.cancel("w1")
    # A new directory's contents come from a scan, capped at QUEUE_LIMIT per batch.
    monkeypatch.setattr(agent_watch, "QUEUE_LIMIT", 10)
    new = tmp_path / "d" / "new"
    new.mkdir()
    for i in range(25):
        (new / f"f{i}").touch()
    agent.sent.clear()
    agent.pump()
    events = agent.events()
    assert events[0] == ("create", "new") and len(events) == 10 + 1
    overflow = [m for m in agent.sent if m.get("kind") == "overflow"]
    assert overflow == [
        {"id": "w2", "type": "fs_event", "kind": "overflow", "name": "", "dropped": 16}
    ]
    # A tree larger than MAX_DIRS is refused, and nothing is left open.
    monkeypatch.setattr(agent_watch, "MAX_DIRS", 3)
    with pytest.raises(agent_watch.ResourceExhausted, match="more directories"):
        watches.start({"id": "w4", "path": ".", "recursive": True})
    assert set(watches.active) == {"w2"}
    watches.flush({"id": "f1", "target": "w2"})
    assert agent.sent[-1]["value"]["found"] is True
    watches.cancel("w2")
    assert agent.sent[-1] == {
        "id": "w2",
        "type": "done",
        "value": {"reason": "cancelled", "sent": 11},
    }
    watches.flush({"id": "f2", "target": "w2"})
    assert agent.sent[-1]["value"] == {"found": False}
    assert not agent.sel.get_map()


def test_agent_parses_and_counts_kernel_overflow(tmp_path: Path) -> None:
    agent = FakeAgent(tmp_path)
    watches = agent_watch.Watches(agent)  # type: ignore[arg-type]
    watches.start({"id": "w", "path": "."})
    watch = watches.active["w"]
    root = watch.root_wd

    def event(wd: int, mask: int, name: bytes = b"", cookie: int = 0) -> bytes:
        padded = name + b"\0" * (16 - len(name) % 16) if name else b""
        return struct.pack("iIII", wd, mask, cookie, len(padded)) + padded

    data = (
        event(root, agent_watch.IN_CREATE, b"a")
        + event(root, agent_watch.IN_MODIFY, b"a")
        + event(root, agent_watch.IN_MODIFY, b"a")  # a run of the same event: one
        + event(-1, agent_watch.IN_Q_OVERFLOW)
        + event(root, agent_watch.IN_MOVED_FROM, b"a", cookie=7)
        + event(root, agent_watch.IN_MOVED_TO, b"b", cookie=7)
        + event(root, agent_watch.IN_ATTRIB)  # the root itself: not reported
        + event(12345, agent_watch.IN_DELETE, b"unknown-wd")
    )
    assert [p[3] for p in agent_watch.parse(data)] == [
        b"a",
        b"a",
        b"a",
        b"",
        b"a",
        b"b",
        b"",
        b"unknown-wd",
    ]
    agent.sent.clear()
    watch.handle(data)
    watch.send()
    assert agent.events() == [
        ("create", "a"),
        ("write", "a"),
        ("rename", "a"),
        ("create", "b"),
        ("overflow", ""),
    ]
    assert agent.sent[-1]["dropped"] == 1
    watch.handle(event(root, agent_watch.IN_IGNORED))
    assert watch.ended
    watches.end(watch, "removed")
    assert agent.sent[-1]["value"]["reason"] == "removed"
