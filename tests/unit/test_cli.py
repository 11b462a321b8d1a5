"""The ``e2b-tools`` command line without an engine: usage, exit statuses and output, with
the sandbox commands run against the local backend (``tests/local_backend.py``). What
the container changes (``shell``, ``doctor``, ``gc``, images) is in
``tests/engine/test_cli.py``."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator

import pytest
from local_backend import LocalBackend

from e2b_tools import Sandbox
from e2b_tools._version import __version__
from e2b_tools.agent.plumbing import LOG_LINE_CHARS, LogBuffer
from e2b_tools.cli import _admin, _sandboxes, _shell, main


@pytest.fixture
def local(backend: LocalBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A local sandbox, with every command pointed at the local backend."""
    for module in (_admin, _sandboxes, _shell):
        monkeypatch.setattr(module, "get_backend", lambda: backend)
    sbx = Sandbox.create(backend=backend, timeout=120, metadata={"suite": "cli"})

    # The local backend serves one connection per sandbox (the agent's pipes): the
    # commands get this very object where they would connect.
    def connect(sandbox_id: str, *, backend: object = None) -> Sandbox:
        assert sandbox_id == sbx.sandbox_id
        return sbx

    monkeypatch.setattr(Sandbox, "connect", staticmethod(connect))
    try:
        yield sbx
    finally:
        sbx.kill()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# -- usage and plain commands --------------------------------------------------------


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["version"], capsys) == (0, f"{__version__}\n", "")
    assert run(["--version"], capsys) == (0, f"e2b-tools {__version__}\n", "")
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in ("ls", "kill", "exec", "run", "shell", "logs", "doctor", "bench", "gc"):
        assert f"  {command} " in out
    code, out, _ = run(["image", "build", "--help"], capsys)
    assert code == 0 and "--dockerfile PATH" in out and "--context DIR" in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["nope"], "No such command 'nope'"),
        (["kill"], "give sandbox IDs or --all-mine"),
        (["kill", "abc", "--all-mine"], "give sandbox IDs or --all-mine"),
        (["kill", "abc", "-m", "a=b"], "--metadata goes with --all-mine"),
        (["ls", "-m", "novalue"], "'novalue' is not KEY=VALUE"),
        (["exec", "abc"], "Missing argument 'COMMAND...'"),
        (["run", "1", "--file", "-"], "give CODE or --file, not both"),
        (["mcp", "--http", "8000"], "'8000' is not HOST:PORT"),
        (["image", "build", "--tag", "x:1"], "--tag needs --dockerfile"),
        (["image", "build", "--variant", "tiny"], "'tiny' is not one of"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2 and says in err and out == ""


def test_mcp_without_the_extra_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "e2b_tools_mcp", None)  # import raises
    code, out, err = run(["mcp"], capsys)
    assert code == 1 and out == ""
    assert err == (
        "e2b-tools: error: the MCP server is not installed: pip install 'e2b-tools[mcp]' "
        "(it brings the e2b_tools_mcp adapter and the mcp SDK)\n"
    )


def test_mcp_calls_serve_with_the_http_address(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str | None, str]] = []
    fake = types.ModuleType("e2b_tools_mcp")
    fake.serve = lambda http, name_prefix: calls.append((http, name_prefix))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "e2b_tools_mcp", fake)
    assert run(["mcp"], capsys)[0] == 0
    assert run(["mcp", "--http", "127.0.0.1:8765", "--name-prefix", "sbx_"], capsys)[0] == 0
    assert calls == [(None, ""), ("127.0.0.1:8765", "sbx_")]


def test_mcp_refuses_a_prefix_model_apis_would_refuse(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["mcp", "--name-prefix", "my tools."], capsys)
    assert code == 1
    assert "name_prefix 'my tools.' makes tool names that model APIs refuse" in err


def test_shell_needs_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["shell", "abc"], capsys)
    assert code == 1
    assert err.startswith("e2b-tools: error: shell needs a terminal") and err.count("\n") == 1


# -- sandbox commands over the local backend ----------------------------------------


def test_ls_lists_as_a_table_and_as_json(
    local: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["ls"], capsys)
    assert code == 0 and local.sandbox_id in out and "suite=cli" in out
    assert out.splitlines()[0].split() == ["ID", "AGE", "TTL", "LEFT", "IMAGE", "METADATA", "OWNER"]
    code, out, _ = run(["ls", "--json", "-m", "suite=cli"], capsys)
    (row,) = [r for r in json.loads(out) if r["sandbox_id"] == local.sandbox_id]
    assert row["metadata"] == {"suite": "cli"} and 100 < row["ttl_seconds"] <= 120
    assert set(row) >= {"age_seconds", "created_at", "end_at", "image", "owner", "state"}
    code, out, _ = run(["ls", "--json", "-m", "suite=other"], capsys)
    assert json.loads(out) == []


def test_exec_streams_and_exits_with_the_status(
    local: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = local.sandbox_id[:6]
    code, out, err = run(["exec", prefix, "--", "echo out; echo err >&2; exit 3"], capsys)
    assert (code, out, err) == (3, "out\n", "err\n")
    code, out, _ = run(["exec", local.sandbox_id, "--", "printf", "%s|", "a b", "$HOME"], capsys)
    assert (code, out) == (0, "a b|$HOME|")  # several arguments are quoted
    code, out, _ = run(["exec", local.sandbox_id, "-e", "X=7", "--", "echo $X"], capsys)
    assert (code, out) == (0, "7\n")
    code, _, err = run(["exec", local.sandbox_id, "--timeout", "0.5", "--", "sleep 5"], capsys)
    assert code == 124 and "timeout" in err
    code, _, err = run(["exec", "nosuchid", "--", "true"], capsys)
    assert code == 1 and err == (
        "e2b-tools: error: no running sandbox has the id 'nosuchid' (see `e2b-tools ls`)\n"
    )


def test_run_in_an_existing_and_a_new_sandbox(
    local: Sandbox, backend: LocalBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = local.sandbox_id
    assert run(["run", "-s", sid, "x = 20"], capsys) == (0, "", "")
    assert run(["run", "-s", sid, "print('hi')\nx * 2 + 2"], capsys) == (0, "hi\n42\n", "")
    code, out, err = run(["run", "-s", sid, "1 / 0"], capsys)
    assert code == 1 and out == "" and "ZeroDivisionError: division by zero" in err
    code, out, _ = run(["run", "-s", sid, "-l", "bash", "echo $((6*7))"], capsys)
    assert (code, out) == (0, "42\n")
    code, out, _ = run(["run", "-s", sid, "--json", "print(1)\n2"], capsys)
    execution = json.loads(out)
    assert code == 0 and execution["logs"]["stdout"] == ["1\n"]
    assert execution["results"][0]["text"] == "2"
    before = {s["Id"] for s in backend.list_containers(True)}
    assert run(["run", "6 * 7"], capsys) == (0, "42\n", "")
    assert {s["Id"] for s in backend.list_containers(True)} == before  # killed after


def test_logs_print_the_agent_log(local: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["logs", local.sandbox_id, "-n", "0"], capsys)
    assert code == 0 and " started: pid " in out.splitlines()[0]
    assert "hello from a host (protocol 2)" in out
    code, out, _ = run(["logs", local.sandbox_id, "-n", "1", "--json"], capsys)
    assert len(json.loads(out)["lines"]) == 1
    assert len(local.agent_log(None)) >= 2 and local.agent_log(0) == []


def test_kill_by_id_and_all_mine(
    local: Sandbox, backend: LocalBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    other = Sandbox.create(backend=backend, timeout=60, metadata={"suite": "cli-kill"})
    code, out, err = run(["kill", other.sandbox_id[:8], "nosuchid"], capsys)
    assert code == 1 and out == f"killed {other.sandbox_id}\n"
    assert err == "e2b-tools: error: nosuchid: no sandbox has this id\n"
    # The local backend's sandboxes have no owner label: none is this host's.
    code, out, err = run(["kill", "--all-mine"], capsys)
    assert code == 0 and out == "" and "no sandboxes of this host" in err
    assert local.is_running()


# -- the agent's log buffer ------------------------------------------------------------


def test_agent_log_buffer_is_bounded() -> None:
    buffer = LogBuffer(size=3)
    for n in range(5):
        buffer.add(f"line {n}")
    buffer.add("x" * (LOG_LINE_CHARS + 10))
    assert buffer.total == 6
    assert buffer.tail(None)[:2] == ["line 3", "line 4"]
    assert buffer.tail(None)[2].endswith("... [10 chars cut]")
    assert buffer.tail(1) == buffer.tail(None)[-1:] and buffer.tail(0) == []
