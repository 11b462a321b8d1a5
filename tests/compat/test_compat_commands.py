"""E2B snippets for ``sandbox.commands``: run, exit codes, timeouts, background
handles, stdin, kill, list, environment variables, users and streaming callbacks."""

# The snippets call E2B's API as documented, parts this package lacks included: running
# them, not the type checker, says what works.
# mypy: disable-error-code="attr-defined, call-arg, arg-type, call-overload, dict-item"

from __future__ import annotations

import pytest

from e2b_tools import (
    CommandExitException,
    CommandHandle,
    NotFoundException,
    Sandbox,
    TimeoutException,
)

SDK = "e2b-dev/E2B:packages/python-sdk/tests/sync/sandbox_sync/commands"
DOCS = "https://e2b.dev/docs"


@pytest.mark.e2b(
    feature="commands: run and read stdout",
    call="sandbox.commands.run(f'echo \"{text}\"')",
    source=f"{SDK}/test_run.py",
)
def test_run(sbx: Sandbox) -> None:
    text = "Hello, World!"
    cmd = sbx.commands.run(f'echo "{text}"')
    assert cmd.exit_code == 0
    assert cmd.stdout == f"{text}\n"


@pytest.mark.e2b(
    feature="commands: special characters",
    call="sandbox.commands.run('echo \"!@#$%^&*()_+\"')",
    source=f"{SDK}/test_run.py",
)
def test_run_with_special_characters(sbx: Sandbox) -> None:
    text = "!@#$%^&*()_+"
    cmd = sbx.commands.run(f'echo "{text}"')
    assert cmd.exit_code == 0
    assert cmd.stdout == f"{text}\n"


@pytest.mark.e2b(
    feature="commands: broken UTF-8 becomes U+FFFD",
    call="sandbox.commands.run(f'printf \"{long_str}\"')",
    source=f"{SDK}/test_run.py",
)
def test_run_with_broken_utf8(sbx: Sandbox) -> None:
    long_str = "a" * 8191 + "\\xe2"
    result = sbx.commands.run(f'printf "{long_str}"')
    assert result.exit_code == 0
    assert result.stdout == ("a" * 8191 + "\ufffd")


@pytest.mark.e2b(
    feature="commands: multiline output",
    call="sandbox.commands.run('echo \"Hello,\\nWorld!\"')",
    source=f"{SDK}/test_run.py",
)
def test_run_with_multiline_string(sbx: Sandbox) -> None:
    text = "Hello,\nWorld!"
    cmd = sbx.commands.run(f'echo "{text}"')
    assert cmd.exit_code == 0
    assert cmd.stdout == f"{text}\n"


@pytest.mark.e2b(
    feature="commands: timeout that is long enough",
    call="sandbox.commands.run('echo \"Hello, World!\"', timeout=10)",
    source=f"{SDK}/test_run.py",
)
def test_run_with_timeout(sbx: Sandbox) -> None:
    cmd = sbx.commands.run('echo "Hello, World!"', timeout=10)
    assert cmd.exit_code == 0


@pytest.mark.e2b(
    feature="commands: timeout raises TimeoutException",
    call='sandbox.commands.run("sleep 10", timeout=2)',
    source=f"{SDK}/test_run.py",
)
def test_run_with_too_short_timeout(sbx: Sandbox) -> None:
    with pytest.raises(TimeoutException):
        sbx.commands.run("sleep 10", timeout=2)


@pytest.mark.e2b(
    feature="commands: timeout while iterating a background handle",
    call='cmd = sandbox.commands.run("sleep 10", timeout=2, background=True); for _ in cmd',
    source=f"{SDK}/test_run.py",
)
def test_run_with_too_short_timeout_iterating(sbx: Sandbox) -> None:
    cmd = sbx.commands.run("sleep 10", timeout=2, background=True)
    with pytest.raises(TimeoutException):
        for _ in cmd:
            pass


@pytest.mark.e2b(
    feature="commands: non-zero exit raises CommandExitException",
    call="sbx.commands.run(cmd) -> CommandExitException.exit_code",
    source="e2b-dev/E2B:packages/python-sdk/tests/sync/sandbox_sync/test_internet_access.py",
)
def test_non_zero_exit_raises(sbx: Sandbox) -> None:
    with pytest.raises(CommandExitException) as exc_info:
        sbx.commands.run("echo oops >&2; exit 3")
    assert exc_info.value.exit_code != 0
    assert exc_info.value.stderr == "oops\n"


@pytest.mark.e2b(
    feature="commands: ls -l",
    call="sandbox.commands.run('ls -l')",
    source=f"{DOCS}/commands",
)
def test_docs_ls(sbx: Sandbox) -> None:
    result = sbx.commands.run("ls -l")
    assert result.exit_code == 0
    assert result.stdout.startswith("total")


@pytest.mark.e2b(
    feature="commands: runs as the sandbox user",
    call='sandbox.commands.run("whoami")',
    source=f"{DOCS}/sandbox/connect",
)
def test_whoami(sbx: Sandbox) -> None:
    r = sbx.commands.run("whoami")
    assert r.stdout.strip() == "user"


@pytest.mark.e2b(
    feature="commands: cwd in the workspace",
    call='sandbox.commands.run("pwd")',
    source="e2b-dev/E2B:packages/python-sdk/tests/sync/sandbox_sync/files/test_info.py",
)
def test_pwd_is_home(sbx: Sandbox) -> None:
    current_path = sbx.commands.run("pwd")
    assert current_path.stdout.strip() == "/home/user"


@pytest.mark.e2b(
    feature="commands: cwd=",
    call="sandbox.commands.run(f'ln -s {file_name} {symlink_name}', cwd=test_dir)",
    source="e2b-dev/E2B:packages/python-sdk/tests/sync/sandbox_sync/files/test_info.py",
)
def test_run_with_cwd(sbx: Sandbox) -> None:
    test_dir = "test-cwd-entry"
    file_name = "test.txt"
    content = "Hello, World!"
    sbx.files.make_dir(test_dir)
    sbx.files.write(f"{test_dir}/{file_name}", content)
    symlink_name = "symlink_to_test.txt"
    sbx.commands.run(f"ln -s {file_name} {symlink_name}", cwd=test_dir)
    assert sbx.files.read(f"{test_dir}/{symlink_name}") == content


@pytest.mark.e2b(
    feature="commands: run as root",
    call='sandbox.commands.run("whoami", user="root")',
    source="e2b-dev/code-interpreter:python/tests/sync/test_systemd.py",
)
@pytest.mark.xfail(
    strict=True,
    reason="hardened by default: code runs as an unprivileged user and user='root' is "
    "refused; SandboxConfig(user='0:0') runs everything as root (docs/security.md)",
)
def test_run_as_root(sbx: Sandbox) -> None:
    result = sbx.commands.run("whoami", user="root")
    assert result.stdout.strip() == "root"


# -- streaming ----------------------------------------------------------------------


@pytest.mark.e2b(
    feature="commands: on_stdout / on_stderr callbacks",
    call="sandbox.commands.run(cmd, on_stdout=..., on_stderr=...)",
    source=f"{DOCS}/commands/streaming",
)
def test_docs_streaming(sbx: Sandbox) -> None:
    out: list[str] = []
    err: list[str] = []
    result = sbx.commands.run(
        "echo hello; sleep 1; echo world",
        on_stdout=lambda data: out.append(data),
        on_stderr=lambda data: err.append(data),
    )
    assert "".join(out) == "hello\nworld\n"
    assert err == []
    assert result.stdout == "hello\nworld\n"


# -- background ---------------------------------------------------------------------


@pytest.mark.e2b(
    feature="commands: background handle iterated, then killed",
    call="command = sandbox.commands.run(cmd, background=True); for stdout, stderr, _ in command",
    source=f"{DOCS}/commands/background",
)
def test_docs_background(sbx: Sandbox) -> None:
    # The documented command sleeps 10 s between the two echoes; 1 s keeps the suite quick.
    command = sbx.commands.run("echo hello; sleep 1; echo world", background=True)
    seen = []
    for stdout, stderr, _ in command:
        if stdout:
            seen.append(stdout)
        if stderr:
            seen.append(stderr)
    command.kill()
    assert "".join(seen) == "hello\nworld\n"


@pytest.mark.e2b(
    feature="commands: kill by pid",
    call="sandbox.commands.kill(pid)",
    source=f"{SDK}/test_cmd_kill.py",
)
def test_kill_process(sbx: Sandbox) -> None:
    cmd = sbx.commands.run("sleep 10", background=True)
    pid = cmd.pid
    sbx.commands.kill(pid)
    with pytest.raises(CommandExitException):
        sbx.commands.run(f"kill -0 {pid}")


@pytest.mark.e2b(
    feature="commands: kill a pid that does not exist",
    call="sandbox.commands.kill(999999)",
    source=f"{SDK}/test_cmd_kill.py",
)
def test_kill_non_existing_process(sbx: Sandbox) -> None:
    non_existing_pid = 999999
    assert not sbx.commands.kill(non_existing_pid)


@pytest.mark.e2b(
    feature="commands: list running commands",
    call="sandbox.commands.list()",
    source=f"{SDK}/test_cmd_list.py",
)
def test_list_processes(sbx: Sandbox) -> None:
    c1 = sbx.commands.run("sleep 10", background=True)
    c2 = sbx.commands.run("sleep 10", background=True)
    try:
        processes = sbx.commands.list()
        assert len(processes) >= 2
        pids = [p.pid for p in processes]
        assert c1.pid in pids
        assert c2.pid in pids
    finally:
        c1.kill()
        c2.kill()


@pytest.mark.e2b(
    feature="commands: connect to a running command",
    call="sandbox.commands.connect(pid)",
    source=f"{SDK}/test_cmd_connect.py",
)
def test_connect_to_process(sbx: Sandbox) -> None:
    cmd = sbx.commands.run("sleep 10", background=True)
    try:
        pid = cmd.pid
        process_info = sbx.commands.connect(pid)
        assert process_info.pid == pid
    finally:
        cmd.kill()


@pytest.mark.e2b(
    feature="commands: connect to a pid that does not exist",
    call="sandbox.commands.connect(999999) -> NotFoundException",
    source=f"{SDK}/test_cmd_connect.py",
)
def test_connect_to_non_existing_process(sbx: Sandbox) -> None:
    non_existing_pid = 999999
    with pytest.raises(NotFoundException):
        sbx.commands.connect(non_existing_pid)


@pytest.mark.e2b(
    feature="commands: wait() fails once the sandbox is killed",
    call="cmd.wait() after sandbox.kill()",
    source=f"{SDK}/test_sandbox_killed_during_run.py",
)
def test_kill_sandbox_while_command_is_running() -> None:
    with Sandbox.create() as sandbox:
        cmd = sandbox.commands.run("sleep 60", background=True)
        sandbox.kill()
        with pytest.raises(TimeoutException):
            cmd.wait()


# -- stdin --------------------------------------------------------------------------


def _first_stdout(cmd: CommandHandle) -> str | None:
    """The first chunk the handle yields, as E2B's tests read it (then stop)."""
    for stdout, _, _ in cmd:
        return stdout
    return None


@pytest.mark.e2b(
    feature="stdin: send_stdin by pid",
    call='sandbox.commands.send_stdin(cmd.pid, "Hello, World!")',
    source=f"{SDK}/test_send_stdin.py",
)
def test_send_stdin_to_process(sbx: Sandbox) -> None:
    cmd = sbx.commands.run("cat", background=True, stdin=True)
    try:
        sbx.commands.send_stdin(cmd.pid, "Hello, World!")
        assert _first_stdout(cmd) == "Hello, World!"
    finally:
        cmd.kill()


@pytest.mark.e2b(
    feature="stdin: send bytes",
    call='sandbox.commands.send_stdin(cmd.pid, b"Hello, World!")',
    source=f"{SDK}/test_send_stdin.py",
)
def test_send_bytes_stdin_to_process(sbx: Sandbox) -> None:
    cmd = sbx.commands.run("cat", background=True, stdin=True)
    try:
        sbx.commands.send_stdin(cmd.pid, b"Hello, World!")
        assert _first_stdout(cmd) == "Hello, World!"
    finally:
        cmd.kill()


@pytest.mark.e2b(
    feature="stdin: send_stdin on the handle",
    call='cmd.send_stdin("Hello, World!")',
    source=f"{SDK}/test_send_stdin.py",
)
def test_send_stdin_via_command_handle(sbx: Sandbox) -> None:
    cmd = sbx.commands.run("cat", background=True, stdin=True)
    try:
        cmd.send_stdin("Hello, World!")
        assert _first_stdout(cmd) == "Hello, World!"
    finally:
        cmd.kill()


@pytest.mark.e2b(
    feature="stdin: close_stdin ends cat, wait() returns",
    call="cmd.close_stdin(); cmd.wait()",
    source=f"{SDK}/test_send_stdin.py",
)
def test_close_stdin_via_command_handle(sbx: Sandbox) -> None:
    cmd = sbx.commands.run("cat", background=True, stdin=True)
    cmd.send_stdin("Hello, World!")
    cmd.close_stdin()
    result = cmd.wait()
    assert result.exit_code == 0
    assert result.stdout == "Hello, World!"


@pytest.mark.e2b(
    feature="stdin: special characters",
    call='sandbox.commands.send_stdin(cmd.pid, "!@#$%^&*()_+")',
    source=f"{SDK}/test_send_stdin.py",
)
def test_send_special_characters_to_process(sbx: Sandbox) -> None:
    cmd = sbx.commands.run("cat", background=True, stdin=True)
    try:
        sbx.commands.send_stdin(cmd.pid, "!@#$%^&*()_+")
        assert _first_stdout(cmd) == "!@#$%^&*()_+"
    finally:
        cmd.kill()


@pytest.mark.e2b(
    feature="stdin: multiline string",
    call='sandbox.commands.send_stdin(cmd.pid, "Hello,\\nWorld!")',
    source=f"{SDK}/test_send_stdin.py",
)
def test_send_multiline_string_to_process(sbx: Sandbox) -> None:
    cmd = sbx.commands.run("cat", background=True, stdin=True)
    try:
        sbx.commands.send_stdin(cmd.pid, "Hello,\nWorld!")
        assert _first_stdout(cmd) == "Hello,\nWorld!"
    finally:
        cmd.kill()


# -- environment variables ------------------------------------------------------------


@pytest.mark.e2b(
    feature="envs: per command",
    call='sandbox.commands.run("echo $FOO", envs={"FOO": "bar"})',
    source=f"{SDK}/test_env_vars.py",
)
def test_command_envs(sbx: Sandbox) -> None:
    cmd = sbx.commands.run("echo $FOO", envs={"FOO": "bar"})
    assert cmd.stdout.strip() == "bar"


@pytest.mark.e2b(
    feature="envs: per command, not kept for the next (checked through sudo)",
    call="sandbox.commands.run('sudo echo \"$FOO\"')",
    source=f"{SDK}/test_env_vars.py",
)
@pytest.mark.xfail(
    strict=True,
    reason="hardened by default: there is no sudo (an unprivileged user under "
    "no-new-privileges; docs/security.md)",
)
def test_bash_command_scoped_env_vars(sbx: Sandbox) -> None:
    cmd = sbx.commands.run("echo $FOO", envs={"FOO": "bar"})
    assert cmd.exit_code == 0
    assert cmd.stdout.strip() == "bar"
    cmd2 = sbx.commands.run('sudo echo "$FOO"')
    assert cmd2.exit_code == 0
    assert cmd2.stdout.strip() == ""


@pytest.mark.e2b(
    feature="envs: per command, read by python3",
    call="sandbox.commands.run(\"python3 -c ...os.environ['FOO']...\", envs={'FOO': 'bar'})",
    source=f"{SDK}/test_env_vars.py",
)
def test_python_command_scoped_env_vars(sbx: Sandbox) -> None:
    cmd = sbx.commands.run(
        "python3 -c \"import os; print(os.environ['FOO'])\"", envs={"FOO": "bar"}
    )
    assert cmd.exit_code == 0
    assert cmd.stdout.strip() == "bar"


@pytest.mark.e2b(
    feature="envs: per command, documented form",
    call="sandbox.commands.run('echo $MY_VAR', envs={'MY_VAR': '123'})",
    source=f"{DOCS}/sandbox/environment-variables",
)
def test_docs_command_envs(sbx: Sandbox) -> None:
    result = sbx.commands.run("echo $MY_VAR", envs={"MY_VAR": "123"})
    assert result.stdout == "123\n"


@pytest.mark.e2b(
    feature="envs: E2B_SANDBOX_ID is set",
    call='sandbox.commands.run("echo $E2B_SANDBOX_ID")',
    source=f"{DOCS}/sandbox/environment-variables",
)
def test_docs_sandbox_id_env(sbx: Sandbox) -> None:
    result = sbx.commands.run("echo $E2B_SANDBOX_ID")
    assert result.stdout.strip() == sbx.sandbox_id
