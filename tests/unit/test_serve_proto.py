"""proto3-JSON messages of ``e2b-tools serve`` (issue 15): builders, readers, hostile input.

Shapes follow E2B's ``spec/envd/{process,filesystem}`` protos and envd's Go source
(``permissions`` is Go's ``FileMode.String()``). The real ``e2b`` SDK's generated
messages (a side venv, ``tests/helpers.e2b_sdk_python``) parse what we build and build
what we read.
"""

from __future__ import annotations

import json
import stat
import subprocess

import pytest
from helpers import e2b_sdk_python

from e2b_tools_serve._connect import Code, ConnectError
from e2b_tools_serve._proto import (
    Pty,
    Selector,
    data_event,
    end_event,
    entry_info,
    file_type,
    keepalive_event,
    permissions,
    process_config,
    process_info,
    read_fs_request,
    read_process_request,
    read_start,
    read_stream_input,
    require_selector,
    start_event,
)
from e2b_tools_serve._protojson import timestamp


def test_process_events() -> None:
    assert start_event(7) == {"event": {"start": {"pid": 7}}}
    assert data_event(stdout=b"hi\n") == {"event": {"data": {"stdout": "aGkK"}}}
    assert data_event(pty=b"\xff") == {"event": {"data": {"pty": "/w=="}}}
    assert end_event(0, exited=True, status="exit status 0") == {
        "event": {"end": {"exited": True, "status": "exit status 0"}}
    }
    assert end_event(-1, exited=False, status="signal: killed", error="signal: killed") == {
        "event": {"end": {"exitCode": -1, "status": "signal: killed", "error": "signal: killed"}}
    }
    assert keepalive_event() == {"event": {"keepalive": {}}}
    with pytest.raises(ValueError):
        data_event(stdout=b"a", stderr=b"b")


def test_process_info() -> None:
    config = process_config("/bin/bash", ["-l", "-c", "ls"], {"A": "1"}, "/home/user")
    assert process_info(5, config, "web") == {
        "config": {
            "cmd": "/bin/bash",
            "args": ["-l", "-c", "ls"],
            "envs": {"A": "1"},
            "cwd": "/home/user",
        },
        "pid": 5,
        "tag": "web",
    }


@pytest.mark.parametrize(
    ("mode", "text"),
    [
        (stat.S_IFREG | 0o644, "-rw-r--r--"),
        (stat.S_IFDIR | 0o755, "drwxr-xr-x"),
        (stat.S_IFLNK | 0o777, "Lrwxrwxrwx"),
        (stat.S_IFREG | stat.S_ISUID | 0o755, "urwxr-xr-x"),
        (stat.S_IFDIR | stat.S_ISVTX | 0o777, "dtrwxrwxrwx"),
        (stat.S_IFCHR | 0o666, "Dcrw-rw-rw-"),
        (stat.S_IFIFO | 0o600, "prw-------"),
        (stat.S_IFSOCK | 0o755, "Srwxr-xr-x"),
    ],
)
def test_permissions_like_go(mode: int, text: str) -> None:
    assert permissions(mode) == text


def test_entry_info() -> None:
    entry = entry_info(
        name="a.txt",
        type=file_type(stat.S_IFREG | 0o644),
        path="/home/user/a.txt",
        size=12,
        mode=0o644,
        permissions="-rw-r--r--",
        owner="user",
        group="user",
        modified_time=1_700_000_000.5,
    )
    assert entry == {
        "name": "a.txt",
        "type": "FILE_TYPE_FILE",
        "path": "/home/user/a.txt",
        "size": "12",
        "mode": 420,
        "permissions": "-rw-r--r--",
        "owner": "user",
        "group": "user",
        "modifiedTime": "2023-11-14T22:13:20.500Z",
    }
    link = entry_info(
        name="l", type="FILE_TYPE_DIRECTORY", path="/l", symlink_target="/d", is_symlink=True
    )
    assert link == {
        "name": "l",
        "type": "FILE_TYPE_DIRECTORY",
        "path": "/l",
        "symlinkTarget": "/d",
        "isSymlink": True,
    }
    with pytest.raises(ValueError):
        entry_info(name="x", type="dir", path="/x")


def test_timestamps() -> None:
    assert timestamp(0) == "1970-01-01T00:00:00Z"
    assert timestamp(1.25) == "1970-01-01T00:00:01.250Z"
    assert timestamp(1.000001) == "1970-01-01T00:00:01.000001Z"
    assert timestamp(-1.5) == "1969-12-31T23:59:58.500Z"


def test_start_request_camel_snake_and_defaults() -> None:
    body = {
        "process": {
            "cmd": "/bin/bash",
            "args": ["-l", "-c", "echo hi"],
            "envs": {"A": "1"},
            "cwd": "/tmp",
        },
        "stdin": True,
        "tag": "t",
        "pty": {"size": {"cols": "80", "rows": 24}},
    }
    start = read_start(json.dumps(body).encode())
    assert (start.cmd, start.args, start.envs, start.cwd) == (
        "/bin/bash",
        ["-l", "-c", "echo hi"],
        {"A": "1"},
        "/tmp",
    )
    assert (start.stdin, start.tag, start.pty) == (True, "t", Pty(80, 24))
    empty = read_start(b"{}")
    assert (empty.cmd, empty.args, empty.cwd, empty.stdin, empty.pty) == ("", [], None, None, None)
    assert read_start(b'{"process":null,"unknownField":[1,{"x":2}]}').cmd == ""


def test_process_requests() -> None:
    kill = read_process_request(
        b'{"process":{"pid":5},"signal":"SIGNAL_SIGKILL"}', "SendSignalRequest"
    )
    assert (kill.process, kill.signal) == (Selector(pid=5), 9)
    assert (
        read_process_request(b'{"process":{"tag":"x"},"signal":15}', "SendSignalRequest").signal
        == 15
    )
    stdin = read_process_request(
        b'{"process":{"pid":"5"},"input":{"stdin":"aGkK"}}', "SendInputRequest"
    )
    assert (stdin.process.pid, stdin.stdin) == (5, b"hi\n")
    for encoded in ("_w", "_w==", "/w", "/w=="):
        got = read_process_request(
            json.dumps({"input": {"pty": encoded}}).encode(), "SendInputRequest"
        )
        assert got.pty_input == b"\xff"
    with pytest.raises(ConnectError, match="a pid or a tag"):
        require_selector(read_process_request(b"{}", "CloseStdinRequest"))
    assert require_selector(read_process_request(b'{"process":{"pid":0}}', "X")) == Selector(pid=0)


def test_stream_input_events() -> None:
    start = read_stream_input(b'{"start":{"process":{"pid":3}}}')
    assert (start.event, start.process.pid) == ("start", 3)
    data = read_stream_input(b'{"data":{"input":{"stdin":"YQ=="}}}')
    assert (data.event, data.stdin) == ("data", b"a")
    assert read_stream_input(b'{"keepalive":{}}').event == "keepalive"


def test_fs_requests() -> None:
    assert read_fs_request(b'{"path":"/a","depth":2}', "ListDirRequest").depth == 2
    move = read_fs_request(b'{"source":"/a","destination":"/b"}', "MoveRequest")
    assert (move.source, move.destination) == ("/a", "/b")
    watch = read_fs_request(
        b'{"path":"/","include_entry":true,"allowNetworkMounts":true}', "WatchDirRequest"
    )
    assert (watch.include_entry, watch.allow_network_mounts, watch.recursive) == (True, True, False)
    assert read_fs_request(b'{"watcherId":"w1"}', "RemoveWatcherRequest").watcher_id == "w1"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"not json", "not valid JSON"),
        (b'{"path":', "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", "expected an object, got an array"),
        (b'"x"', "expected an object, got a string"),
        (b"null", "expected an object"),
        (b'{"path":1}', "path: expected a string, got a number"),
        (b'{"path":"a","path":"b"}', "duplicate field"),
        (b'{"depth":-1}', "out of range"),
        (b'{"depth":4294967296}', "out of range"),
        (b'{"depth":1.5}', "expected an integer"),
        (b'{"depth":true}', "expected an integer"),
        (b'{"depth":NaN}', "not valid JSON"),
        (b'{"recursive":"yes"}', "expected a boolean"),
        (b'{"depth":' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"depth":1e400}', "expected an integer"),
        (b'{"depth":"99999999999999999999"}', "out of range"),
        (b'{"watcher_id":"a","watcherId":"b"}', "set twice"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|not valid JSON"),
    ],
)
def test_fs_hostile(body: bytes, match: str) -> None:
    with pytest.raises(ConnectError, match=match) as info:
        read_fs_request(body, "ListDirRequest")
    assert info.value.code is Code.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b'{"process":{"pid":1,"tag":"x"}}', "more than one"),
        (b'{"process":{"pid":"x"}}', "expected an integer"),
        (b'{"process":[]}', "expected an object"),
        (b'{"signal":"SIGNAL_SIGINT"}', "unknown value"),
        (b'{"signal":[9]}', "enum name or number"),
        (b'{"input":{"stdin":"a$b"}}', "invalid base64"),
        (b'{"input":{"stdin":"a"}}', "invalid base64"),
        (b'{"input":{"stdin":5}}', "base64 string"),
        (b'{"input":{"stdin":"YQ==","pty":"YQ=="}}', "more than one"),
    ],
)
def test_process_hostile(body: bytes, match: str) -> None:
    with pytest.raises(ConnectError, match=match) as info:
        read_process_request(body, "SendInputRequest")
    assert info.value.code is Code.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "body",
    [
        b'{"process":{"args":"ls"}}',
        b'{"process":{"args":[1]}}',
        b'{"process":{"envs":{"A":1}}}',
        b'{"stdin":1}',
    ],
)
def test_start_hostile(body: bytes) -> None:
    with pytest.raises(ConnectError) as info:
        read_start(body)
    assert info.value.code is Code.INVALID_ARGUMENT


_SDK_ROUND_TRIP = r"""
import json, sys
from e2b.envd.process import process_pb as p
from e2b.envd.filesystem import filesystem_pb as f
cases = json.load(sys.stdin)
print(p.StartResponse.from_json(json.dumps(cases["event"])).to_json())
print(f.EntryInfo.from_json(json.dumps(cases["entry"])).to_json())
print(p.ListResponse.from_json(json.dumps(cases["list"])).to_json())
config = p.ProcessConfig(cmd="/bin/bash", args=["-l", "-c", "ls"], envs={"A": "1"}, cwd="/w")
req = p.StartRequest(process=config, stdin=False, tag="t")
print(req.to_json())
print(p.SendSignalRequest.from_json('{"process":{"pid":9},"signal":9}').to_json())
print(f.ListDirRequest(path="/x", depth=3).to_json())
"""


def test_sdk_messages_agree() -> None:
    entry = entry_info(
        name="d",
        type="FILE_TYPE_DIRECTORY",
        path="/d",
        size=4096,
        mode=0o755,
        permissions="drwxr-xr-x",
        owner="user",
        group="user",
        modified_time=1.5,
    )
    config = process_config("/bin/bash", ["-c", "sleep 9"], {"K": "v"}, "/w")
    cases = {
        "event": end_event(3, exited=True, status="exit status 3"),
        "entry": entry,
        "list": {"processes": [process_info(12, config, "bg")]},
    }
    run = subprocess.run(
        [str(e2b_sdk_python()), "-c", _SDK_ROUND_TRIP],
        input=json.dumps(cases).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    lines = run.stdout.decode().splitlines()
    # The SDK's own encoder writes exactly what we write (same order, same forms).
    assert [json.loads(line) for line in lines[:3]] == [cases["event"], entry, cases["list"]]
    assert lines[:3] == [
        json.dumps(c, separators=(",", ":")) for c in (cases["event"], entry, cases["list"])
    ]
    start = read_start(lines[3].encode())
    assert (start.cmd, start.args, start.envs, start.cwd, start.stdin, start.tag) == (
        "/bin/bash",
        ["-l", "-c", "ls"],
        {"A": "1"},
        "/w",
        False,
        "t",
    )
    signal = read_process_request(lines[4].encode(), "SendSignalRequest")
    assert (signal.process.pid, signal.signal) == (9, 9)
    assert read_fs_request(lines[5].encode(), "ListDirRequest").depth == 3
