"""``e2b-tools serve`` on the Docker Engine, driven by the real E2B JavaScript SDKs
(``e2b`` and ``@e2b/code-interpreter`` from npm, pinned in ``tests/js/package.json`` and
its lock) with nothing but ``E2B_API_URL``, ``E2B_SANDBOX_URL`` and ``E2B_API_KEY`` set.

``tests/js/sdk.mjs`` runs every check once per module (commands, files, the code
interpreter, lifecycle, a wrong key) and prints one JSON object; each test below asserts
one check of it, so a failure names the exact call. The packages are installed with
``npm ci`` into ``build/js-sdk/<digest of package.json + lock>/`` on first use and kept
while the lock is unchanged. Skipped when ``node`` or ``npm`` is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import serving

from e2b_tools_serve import ServeSettings

KEY = "e2b_" + "5c" * 20
JS_DIR = Path(__file__).resolve().parents[1] / "js"
CACHE = Path(__file__).resolve().parents[2] / "build" / "js-sdk"
NODE = shutil.which("node")
NPM = shutil.which("npm")
MIN_NODE = (20, 18, 1)  # the SDKs' "engines" field


def _node_version() -> tuple[int, ...]:
    if NODE is None:
        return ()
    raw = subprocess.run([NODE, "--version"], capture_output=True, text=True, check=True)
    return tuple(int(part) for part in re.findall(r"\d+", raw.stdout)[:3])


pytestmark = [
    pytest.mark.skipif(NODE is None or NPM is None, reason="node and npm are needed"),
    pytest.mark.skipif(
        NODE is not None and _node_version() < MIN_NODE,
        reason="the E2B JS SDKs need node >= 20.18.1",
    ),
    pytest.mark.timeout(900),
]


def js_sdk(timeout: float = 600) -> Path:
    """The directory holding the pinned JS SDKs' ``node_modules``, installed with
    ``npm ci`` on first use (its name is the digest of ``package.json`` and the lock)."""
    files = [JS_DIR / "package.json", JS_DIR / "package-lock.json"]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
    home = CACHE / digest
    if (home / ".installed").exists():
        return home
    CACHE.mkdir(parents=True, exist_ok=True)
    # Install beside the final place and rename, so concurrent sessions never see a
    # half-filled node_modules.
    staging = Path(tempfile.mkdtemp(prefix=f"{digest}-", dir=CACHE))
    try:
        for f in files:
            shutil.copy2(f, staging / f.name)
        assert NPM is not None
        done = subprocess.run(
            [NPM, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
        (staging / ".installed").touch()
        if home.exists() and not (home / ".installed").exists():
            shutil.rmtree(home)  # left by an interrupted or manual install
        try:
            staging.rename(home)
        except OSError:  # another session finished first
            if not (home / ".installed").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return home


@pytest.fixture(scope="module")
def out(image: str) -> Iterator[dict[str, Any]]:
    """The results of ``tests/js/sdk.mjs`` run once against a server on the Docker
    backend; every sandbox it made is killed after."""
    home = js_sdk()
    # The script must sit beside node_modules: ESM resolves packages from its own path.
    script = home / f"sdk-{os.getpid()}.mjs"
    shutil.copy2(JS_DIR / "sdk.mjs", script)
    settings = ServeSettings(api_key=KEY, templates={"base": image, "code-interpreter-v1": image})
    try:
        with serving(settings) as served:
            env = {
                "PATH": os.environ.get("PATH", ""),
                "HOME": os.environ.get("HOME", "/tmp"),
                "E2B_API_URL": served.api,
                "E2B_SANDBOX_URL": served.sandbox,
                "E2B_API_KEY": KEY,
            }
            assert NODE is not None
            done = subprocess.run(
                [NODE, str(script)],
                cwd=home,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
    finally:
        script.unlink(missing_ok=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{done.stderr}"
    result = dict(json.loads(lines[-1]))
    assert "fatal" not in result, result["fatal"]
    yield result


def ok(out: dict[str, Any], name: str) -> Any:
    """The value check ``name`` recorded; fails with its error when it raised."""
    assert name in out, f"{name}: not run (an earlier step stopped the script)"
    value = out[name]
    if isinstance(value, dict) and set(value) == {"error"}:
        pytest.fail(f"{name} raised {value['error']}")
    return value


# ---- commands ----


def test_create_with_metadata(out: dict[str, Any]) -> None:
    assert ok(out, "create")["ok"] is True
    assert ok(out, "create_base")["id"] != out["create"]["id"]


def test_run_foreground(out: dict[str, Any]) -> None:
    assert ok(out, "run") == {"stdout": "hello\n/home/user\n", "stderr": "oops\n", "exitCode": 0}
    assert ok(out, "run_envs_cwd") == "hey\n/tmp\n"


def test_nonzero_exit_raises_command_exit_error_with_the_output(out: dict[str, Any]) -> None:
    got = ok(out, "exit_error")
    assert got["raised"] == "CommandExitError" and got["isCommandExitError"] is True
    assert (got["exitCode"], got["stdout"], got["stderr"]) == (3, "partial\n", "bad\n")


def test_missing_cwd_is_an_invalid_argument(out: dict[str, Any]) -> None:
    got = ok(out, "missing_cwd")
    assert got["raised"] == "InvalidArgumentError", got
    assert "/no/such/dir" in got["message"]


def test_output_streams_to_callbacks(out: dict[str, Any]) -> None:
    got = ok(out, "stream")
    assert got["joined"] == got["stdout"] == "line1\nline2\nline3\n"
    assert got["stderr"] == "err1\nerr2\nerr3\n"
    assert got["chunks"] >= 2, "stdout arrived in one piece: not streamed"


def test_command_timeout_raises_and_kills_the_command(out: dict[str, Any]) -> None:
    assert ok(out, "timeout") == {"raised": "TimeoutError", "left": 0}


def test_output_flood_arrives_whole_and_in_order(out: dict[str, Any]) -> None:
    # seq 1..10**6 is 6,888,896 bytes, plus the final echo's newline.
    assert ok(out, "flood") == {"length": 6888897, "chunks": True, "first": "1", "ordered": True}


def test_parallel_commands(out: dict[str, Any]) -> None:
    got = ok(out, "parallel")
    assert got["outs"] == [f"job{i}\n" for i in range(8)]
    assert got["overlapped"] is True, "8 half-second commands ran one after another"


def test_background_command_is_listed_and_killed(out: dict[str, Any]) -> None:
    got = ok(out, "background_kill")
    assert got["pidIsNumber"] and got["listed"] and got["killed"] is True
    assert got["waited"]["raised"] == "CommandExitError", got["waited"]
    assert got["listedAfter"] is False
    assert got["killedAgain"] is False


def test_background_output_and_wait(out: dict[str, Any]) -> None:
    got = ok(out, "background_output")
    assert got == {"stdout": "done-bg\n", "callback": "done-bg\n", "exitCode": 0}


def test_stdin(out: dict[str, Any]) -> None:
    assert ok(out, "stdin") == "got:hi there\n"
    assert ok(out, "stdin_close") == "abcde\n[eof]\n"


def test_connect_to_a_running_command(out: dict[str, Any]) -> None:
    assert ok(out, "connect_command") == {"pidMatches": True, "stdout": "attached\n"}


# ---- files ----


def test_text_file_round_trip(out: dict[str, Any]) -> None:
    got = ok(out, "text")
    assert got == {
        "same": True,
        "relative": True,
        "name": "hello.txt",
        "path": "/home/user/hello.txt",
    }


def test_binary_10_mib_round_trips_byte_exact(out: dict[str, Any]) -> None:
    assert ok(out, "upload_arraybuffer") == {"sandboxSha": True}
    size = 10 * 1024 * 1024 + 7
    assert ok(out, "download_bytes") == {"isUint8Array": True, "length": size, "same": True}
    assert ok(out, "upload_blob_octet") == {"sandboxSha": True, "isBlob": True, "same": True}
    assert ok(out, "upload_gzip") == {"sandboxSha": True}
    assert ok(out, "stream_both_ways") == {"length": size, "same": True}


def test_binary_made_in_the_sandbox_reads_back_exact(out: dict[str, Any]) -> None:
    got = ok(out, "sandbox_made_binary")
    assert got == {"length": 256 + 10 * 1024 * 1024, "same": True, "head": [0, 1, 2, 3]}


def test_empty_file(out: dict[str, Any]) -> None:
    assert ok(out, "empty_file") == {"text": "", "bytes": 0}


def test_write_many_files_at_once(out: dict[str, Any]) -> None:
    assert ok(out, "write_many") == {"count": 2, "a": "A", "b": [0, 255, 1]}


def test_dirs_list_exists_rename_remove(out: dict[str, Any]) -> None:
    got = ok(out, "dirs")
    assert (got["made"], got["madeAgain"]) == (True, False)
    assert got["listed"] == [
        ["a.txt", "file", "/home/user/d/a.txt"],
        ["sub", "dir", "/home/user/d/sub"],
    ]
    assert got["deep"] == ["/home/user/d/a.txt", "/home/user/d/sub"]
    assert got["info"] == {"name": "a.txt", "type": "file", "size": 1}
    assert got["existed"] is True
    assert got["renamed"] == {"name": "b.txt", "path": "/home/user/d/b.txt"}
    assert got["after"] == [False, True]
    assert got["removed"] is True and got["missing"] is False


def test_presigned_urls(out: dict[str, Any]) -> None:
    got = ok(out, "presigned")
    assert (got["upload"], got["download"], got["text"]) == (200, 200, "signed ✓")
    assert (got["forged"], got["unsigned"]) == (401, 401)


def test_reading_a_missing_file_or_a_directory_fails(out: dict[str, Any]) -> None:
    assert ok(out, "read_missing")["raised"] == "FileNotFoundError"
    assert ok(out, "read_dir")["raised"] == "InvalidArgumentError"


# ---- code interpreter ----


def test_run_code_keeps_state(out: dict[str, Any]) -> None:
    got = ok(out, "code_state")
    assert got == {"text": "42", "stdout": ["hi\n"], "stderr": ["warn\n"], "error": None}


def test_run_code_callbacks(out: dict[str, Any]) -> None:
    got = ok(out, "code_callbacks")
    assert got["stdout"] == "0\n1\n2\n"
    assert got["results"] == ["last"]  # E2B strips the repr's quotes from text/plain


def test_matplotlib_gives_a_png(out: dict[str, Any]) -> None:
    got = ok(out, "png")
    assert got["error"] is None
    assert got["head"] == [0x89, 0x50, 0x4E, 0x47], got["formats"]


def test_run_code_error(out: dict[str, Any]) -> None:
    got = ok(out, "code_error")
    assert got == {"name": "ZeroDivisionError", "value": "division by zero", "traceback": True}


def test_run_code_timeout_then_the_next_call_works(out: dict[str, Any]) -> None:
    got = ok(out, "code_timeout")
    assert got["timedOut"]["raised"] == "TimeoutError", got
    assert got["nextText"] == "41"


def test_code_contexts(out: dict[str, Any]) -> None:
    got = ok(out, "contexts")
    assert got["language"] == "python"
    assert got["cwd"] == "/tmp\n"
    assert got["y"] == "5"
    assert got["notInDefault"] == "NameError"
    assert got["listed"] is True
    assert got["afterRestart"] == "NameError"
    assert got["listedAfter"] is False
    assert got["removedRun"] == "NotFoundError"


def test_run_code_javascript(out: dict[str, Any]) -> None:
    assert ok(out, "code_js") == {"text": "42", "error": None}


def test_run_code_refuses_context_and_language(out: dict[str, Any]) -> None:
    assert ok(out, "code_both")["raised"] == "InvalidArgumentError"


# ---- lifecycle ----


def test_list_by_metadata(out: dict[str, Any]) -> None:
    got = ok(out, "list")
    main, other = out["create"]["id"], out["create_base"]["id"]
    assert got["mine"] == [main]
    assert got["both"] == sorted([main, other])
    assert got["none"] == 0
    assert {"run", "role"} <= set(got["metadata"]) and got["metadata"]["role"] == "main"


def test_set_timeout_moves_the_end(out: dict[str, Any]) -> None:
    assert 550 <= ok(out, "set_timeout")["secondsLeft"] <= 600


def test_get_info(out: dict[str, Any]) -> None:
    got = ok(out, "get_info")
    assert got["sandboxId"] == out["create"]["id"]
    assert got["templateId"] == "code-interpreter-v1"
    assert got["state"] == "running" and got["running"] is True
    assert got["metadata"]["role"] == "main"
    assert got["startedAtIsDate"] is True


def test_connect(out: dict[str, Any]) -> None:
    got = ok(out, "connect")
    assert got == {"sandboxId": out["create"]["id"], "stdout": "héllo ✓ wörld\n", "x": "41"}


def test_a_sandbox_killed_mid_command_fails_the_call(out: dict[str, Any]) -> None:
    got = ok(out, "killed_mid_call")
    assert got["killed"] is True
    # As on E2B: the call ends at once with envd's "connection … ended before the stream
    # completed", which this SDK raises as a TimeoutError, not a hang.
    assert got["raised"] == "TimeoutError", got
    assert "ended before the stream completed" in got["message"]


def test_kill(out: dict[str, Any]) -> None:
    got = ok(out, "kill")
    assert got["again"] is False and got["running"] is False
    assert got["connect"] == got["info"] == got["command"] == "SandboxNotFoundError", got
    assert ok(out, "final_kill") == {"killed": True, "left": 0}


def test_wrong_key_is_an_authentication_error(out: dict[str, Any]) -> None:
    got = ok(out, "wrong_key")
    assert got["create"] == "AuthenticationError" and got["createIsAuth"] is True
    assert got["list"] == "AuthenticationError"
