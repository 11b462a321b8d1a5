"""Pure logic: protocol framing and validation, bounded output, API surface."""

from __future__ import annotations

import base64
import inspect
import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

import e2b_tools
from e2b_tools import (
    AsyncCommandHandle,
    AsyncCommands,
    AsyncFiles,
    AsyncSandbox,
    BoundedText,
    CommandHandle,
    Commands,
    Files,
    Sandbox,
    _bundle,
)
from e2b_tools.agent import protocol


def test_encode_is_one_line() -> None:
    line = protocol.encode({"id": "1", "type": "stdout", "text": "a\nb ✓"})
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {"id": "1", "type": "stdout", "text": "a\nb ✓"}


def test_decode_request_validates() -> None:
    ok = protocol.decode_request(b'{"id":"1","op":"run_code","code":"1","language":"python"}')
    assert ok["op"] == "run_code"
    bad = [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"op":"info"}', "string 'id'"),
        (b'{"id":"1","op":"explode"}', "unknown op"),
        (b'{"id":"1","op":"run_code","code":"1"}', "needs field 'language'"),
        (b'{"id":"1","op":"run_code","code":1,"language":"python"}', "wrong type"),
        (b'{"id":"1","op":"info","extra":1}', "takes no field"),
        (b'{"id":"1","op":"write_file","path":"a","data":"","append":1}', "wrong type"),
    ]
    for line, message in bad:
        with pytest.raises(protocol.MalformedMessage, match=message):
            protocol.decode_request(line)


def test_decode_event() -> None:
    assert protocol.decode_event(b'{"id":"1","type":"done","value":{}}')["type"] == "done"
    with pytest.raises(protocol.MalformedMessage):
        protocol.decode_event(b'{"id":"1","type":"weird"}')


def test_bounded_text_keeps_head_and_tail() -> None:
    buf = BoundedText(limit=2000)
    for i in range(1000):
        buf.add(f"{i:04d}\n")
    text = buf.text()
    assert text.startswith("0000\n0001\n")
    assert text.endswith("0998\n0999\n")
    assert buf.dropped == 5000 - 2000
    assert f"{buf.dropped} characters omitted" in text
    small = BoundedText(limit=2000)
    small.add("short")
    assert small.text() == "short"
    assert small.dropped == 0


def test_bounded_text_single_huge_chunk() -> None:
    buf = BoundedText(limit=1024)
    buf.add("a" * 512 + "b" * 10_000 + "c" * 512)
    assert buf.head == ["a" * 512]
    assert "".join(buf.tail) == "c" * 512
    assert buf.dropped == 10_000


def test_injected_command_carries_the_agent() -> None:
    cmd = _bundle.injected_command()
    assert cmd[:3] == ["python3", "-I", "-c"]
    # Each argv string must stay below MAX_ARG_STRLEN (128 KiB); the zip is split.
    assert all(len(arg) < 120_000 for arg in cmd)
    assert _bundle.agent_hash() in cmd[3]
    assert set(_bundle.agent_files()) >= {"main.py", "protocol.py", "kernel_python.py"}
    zipped = base64.b64decode("".join(cmd[4:]))
    names = zipfile.ZipFile(io.BytesIO(zipped)).namelist()
    assert sorted(names) == sorted(f"e2b_tools_agent/{n}" for n in _bundle.agent_files())


def test_the_injected_command_unpacks_and_runs_the_agent(tmp_path: Path) -> None:
    """The command as a container runs it, here with an entry that only imports."""
    entry = "import e2b_tools_agent.protocol as p; print('agent', p.PROTOCOL_VERSION)"
    cmd = _bundle.injected_command(entry)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("agent ")


def test_all_is_the_public_api() -> None:
    public = {
        name
        for name, obj in vars(e2b_tools).items()
        if not name.startswith("_") and not inspect.ismodule(obj)
    }
    assert len(set(e2b_tools.__all__)) == len(e2b_tools.__all__)  # ruff keeps it sorted
    assert set(e2b_tools.__all__) == public | {"__version__"}


@pytest.mark.parametrize(
    ("sync_cls", "async_cls"),
    [
        (Sandbox, AsyncSandbox),
        (Commands, AsyncCommands),
        (Files, AsyncFiles),
        (CommandHandle, AsyncCommandHandle),
    ],
)
def test_sync_facade_matches_async_signatures(sync_cls: type, async_cls: type) -> None:
    async_methods = {
        name
        for name, fn in inspect.getmembers(async_cls)
        if not name.startswith("_") and inspect.iscoroutinefunction(fn)
    }
    assert async_methods, async_cls
    # E2B's two watch_dir differ: the async one takes callbacks, the blocking one polls.
    for name in async_methods - {"watch_dir"}:
        sync_fn = getattr(sync_cls, name, None)
        assert sync_fn is not None, f"{sync_cls.__name__}.{name} is missing"
        s = inspect.signature(sync_fn)
        a = inspect.signature(getattr(async_cls, name))
        assert list(s.parameters) == list(a.parameters), name
        for p in s.parameters:
            assert s.parameters[p].default == a.parameters[p].default, (name, p)
            assert s.parameters[p].kind == a.parameters[p].kind, (name, p)


def test_e2b_names_are_aliases() -> None:
    # E2B raises TimeoutException for a call whose sandbox ended under it too.
    assert issubclass(e2b_tools.SandboxTimeoutError, e2b_tools.TimeoutException)
    assert issubclass(e2b_tools.SandboxGoneError, e2b_tools.TimeoutException)
    assert not issubclass(e2b_tools.SandboxGoneError, e2b_tools.SandboxTimeoutError)
    assert issubclass(e2b_tools.SandboxTimeoutError, TimeoutError)
    assert issubclass(e2b_tools.NotFoundError, FileNotFoundError)
    assert issubclass(e2b_tools.EngineUnavailableError, ConnectionError)
    err = e2b_tools.SandboxTimeoutError("slow", sandbox_id="abc")
    assert str(err) == "slow [sandbox abc]"


def test_every_error_name_the_agent_sends_is_declared() -> None:
    import builtins
    import re
    from pathlib import Path

    agent = Path(e2b_tools.__file__).parent / "agent"
    names: set[str] = set()
    for path in (agent / "main.py", agent / "files.py", agent / "procs.py"):
        text = path.read_text()
        names |= set(re.findall(r'"name": "(\w+)"', text))
        names |= set(re.findall(r'fail\(\s*\w+(?:\["id"\])?,\s*"(\w+)"', text))
        names |= set(re.findall(r'^\s+"(\w+)",\n\s+f?"', text, re.M)) & {"CompileError"}
    assert names, "the pattern found nothing"
    for name in names:
        builtin = getattr(builtins, name, None)
        is_os_error = isinstance(builtin, type) and issubclass(builtin, OSError)
        assert name in protocol.ERRORS or is_os_error, name


def test_file_errors_carry_kind_errno_and_path() -> None:
    from e2b_tools._exceptions import error_from_event

    event = {"name": "OSError", "value": "No space left on device", "errno": 28, "path": "/w/f"}
    err = error_from_event(event, "sbx", "f")
    assert isinstance(err, e2b_tools.SandboxFileError)
    assert (err.kind, err.errno, err.path) == ("no_space", 28, "/w/f")
    missing = error_from_event({"name": "FileNotFoundError", "value": "x"}, "sbx", "nope")
    assert isinstance(missing, e2b_tools.NotFoundError) and missing.kind == "not_found"
    assert isinstance(missing, FileNotFoundError) and missing.path == "nope"
    assert issubclass(e2b_tools.EngineUnavailableError, e2b_tools.EngineError)
    assert issubclass(e2b_tools.UnknownToolError, KeyError)


def test_cancelled_timers_do_not_pile_up() -> None:
    from e2b_tools.agent.plumbing import Timers

    timers = Timers()
    fired: list[int] = []
    keep = timers.add(0.0, lambda: fired.append(1))
    for _ in range(10_000):  # one timeout timer per call, cancelled when it ends
        timers.cancel(timers.add(300.0, lambda: fired.append(2)))
    assert len(timers) < 200
    timers.cancel(keep + 10**9)  # cancelling one that is gone is harmless
    timers.run_due()
    assert fired == [1]
    assert timers.next_delay() is None or timers.next_delay() > 0
