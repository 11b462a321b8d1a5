"""The E2B SDK versions integrations pin, unchanged, against ``e2b-tools serve`` on the
Docker Engine (issue 15): ``e2b`` 2.31.0 + ``e2b-code-interpreter`` 2.8.1 (what
openai-agents[e2b] pins), 2.20.3 + 2.6.2 (crewai-tools[e2b]'s ``~=``), and the latest
(``tests/e2b-sdk-requirements.txt``). Each runs ``tests/serve-scripts/sdk_checks.py`` in
its side venv (``tests/serve-pins/``): create, commands (foreground, exit code,
background + kill, stdin), binary files, list by metadata, kill, and ``run_code`` where
the version can reach the interpreter.

Mode A sets ``E2B_API_URL``, ``E2B_SANDBOX_URL`` and ``E2B_API_KEY``. Code interpreters
before 2.9 ignore ``E2B_SANDBOX_URL`` and call ``https://49999-<id>.<domain>`` unless
``E2B_DEBUG=true`` (Mode D), which sends them to ``http://localhost:49999``: serve's
interpreter listener. What debug mode does to the rest depends on ``e2b``: from 2.31
``create`` makes no API call and every request names ``debug_sandbox_id`` (serve's one
shared sandbox, ``ServeSettings.debug_sandbox``); 2.20 still creates a real sandbox and
the interpreter request is routed by its ``X-Access-Token``, but ``kill`` and
``set_timeout`` are skipped client-side.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import Served, e2b_sdk_python, run_e2b_sdk, serving, side_python

from e2b_tools_serve import ServeSettings

KEY = "e2b_" + "5c" * 20
AUTH = {"X-API-KEY": KEY}
PINS = Path(__file__).resolve().parents[1] / "serve-pins"
CHECKS = (Path(__file__).resolve().parents[1] / "serve-scripts" / "sdk_checks.py").read_text()
DEBUG_PORT = 49999

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="the E2B SDK side venvs are built for Python 3.11+"
)


def sdk_python(pin: str) -> Path:
    """The side venv's python for ``pin`` (``latest``, or a file in ``serve-pins``)."""
    return e2b_sdk_python() if pin == "latest" else side_python(PINS / f"{pin}.txt")


def settings_for(image: str, *, debug_sandbox: bool = False) -> ServeSettings:
    """Both E2B templates (``base``, ``code-interpreter-v1``) on the test image."""
    return ServeSettings(
        api_key=KEY,
        templates={"base": image, "code-interpreter-v1": image},
        debug_sandbox=debug_sandbox,
    )


@contextlib.contextmanager
def debug_serving(settings: ServeSettings) -> Iterator[Served]:
    """:func:`serving` with the interpreter on E2B's debug port 49999 (skip if taken)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", DEBUG_PORT))
        except OSError:
            pytest.skip(f"port {DEBUG_PORT} (E2B's debug interpreter port) is taken")
    with serving(settings, interpreter_port=DEBUG_PORT) as served:
        yield served


def run_checks(served: Served, pin: str, mode: str, **env: str) -> dict[str, Any]:
    """``sdk_checks.py`` in ``pin``'s venv, in Mode ``mode``."""
    full_env = {"SERVE_CHECK_MODE": mode, "SERVE_CHECK_TAG": uuid.uuid4().hex, **env}
    return run_e2b_sdk(served, CHECKS, KEY, timeout=300, python=sdk_python(pin), env=full_env)


def assert_envd_checks(out: dict[str, Any]) -> None:
    """The commands and files checks every version passes, in every mode."""
    assert out["echo"] == "bar\n/tmp\n", out
    assert out["exit_code"] == [3, "out\n", "err\n"], out
    assert out["background_kill"] == [True, True, False], out
    assert out["stdin_line"] == "hello stdin\n", out
    assert out["files"] == [True, "héllo\n", ["blob.bin"], False], out


RUN_CODE = ["42", ["side\n"], "43", "ZeroDivisionError"]
"""``x = 41; print('side'); x + 1``, then ``x + 2`` (state kept), then ``1 / 0``."""


@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("pin", "versions"),
    [
        ("latest", ["2.63.0", "2.11.5"]),
        ("e2b-2-31", ["2.31.0", "2.8.1"]),
        ("e2b-2-20", ["2.20.3", "2.6.2"]),
    ],
)
def test_mode_a_drives_commands_files_and_lifecycle(
    image: str, pin: str, versions: list[str]
) -> None:
    with serving(settings_for(image)) as served:
        out = run_checks(served, pin, "A")
        sandbox_id = out.get("id")
        assert out["versions"] == versions
        assert isinstance(sandbox_id, str) and len(sandbox_id) == 20, out
        assert_envd_checks(out)
        # 2.20 has no close_stdin.
        assert out["close_stdin"] == ("n/a" if pin == "e2b-2-20" else "5"), out
        assert out["listed"] == [sandbox_id], out
        assert (out["killed"], out["running_after_kill"]) == (True, False), out
        assert out["connect_after_kill"] in {"SandboxNotFoundException", "NotFoundException"}
        if pin == "latest":
            assert out["jupyter_url"] == served.sandbox
            assert out["run_code"] == RUN_CODE, out
        else:
            # Hard-coded: Mode A cannot reach the interpreter (the script never calls it).
            assert out["jupyter_url"] == f"https://49999-{sandbox_id}.e2b.app"
            assert "run_code" not in out


@pytest.mark.timeout(900)
def test_mode_d_with_e2b_2_31_uses_the_shared_debug_sandbox(image: str) -> None:
    with debug_serving(settings_for(image, debug_sandbox=True)) as served:
        out = run_checks(served, "e2b-2-31", "D", E2B_DEBUG="true")
        assert out["id"] == "debug_sandbox_id", out
        assert out["jupyter_url"] == f"http://localhost:{DEBUG_PORT}"
        assert_envd_checks(out)
        assert out["close_stdin"] == "5", out
        assert out["run_code"] == RUN_CODE, out
        # Debug mode skips kill client-side: the shared sandbox lives on.
        assert out["running_after_kill"] is True, out
        with httpx.Client(base_url=served.api, timeout=30) as http:
            assert len(http.get("/v2/sandboxes", headers=AUTH).json()) <= 1


NAMELESS = """
    import json
    from e2b_code_interpreter import Sandbox

    sbx = Sandbox.create()
    out = {"id": sbx.sandbox_id}
    for name, call in [("run", lambda: sbx.commands.run("echo hi")),
                       ("code", lambda: sbx.run_code("1"))]:
        try:
            call()
            out[name] = "ok"
        except Exception as exc:
            out[name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
"""


@pytest.mark.timeout(600)
def test_mode_d_without_debug_sandbox_says_how_to_enable_it(image: str) -> None:
    with debug_serving(settings_for(image)) as served:
        out = run_e2b_sdk(
            served, NAMELESS, KEY, 120, python=sdk_python("e2b-2-31"), env={"E2B_DEBUG": "true"}
        )
        with httpx.Client(base_url=served.api, timeout=30) as http:
            listed = http.get("/v2/sandboxes", headers=AUTH).json()
    assert out["id"] == "debug_sandbox_id"
    assert "debug-sandbox" in out["run"] and "debug-sandbox" in out["code"], out
    assert listed == []


TWO_SANDBOXES = """
    import json
    from e2b_code_interpreter import Sandbox

    a, b = Sandbox.create(timeout=300), Sandbox.create(timeout=300)
    a.run_code("who = 'a'")
    b.run_code("who = 'b'")
    out = {
        "ids": [a.sandbox_id, b.sandbox_id],
        "who": [a.run_code("who").text, b.run_code("who").text],
        "hostname": [s.run_code("import socket; socket.gethostname()").text
                     == s.commands.run("hostname").stdout.strip() for s in (a, b)],
        "killed": [a.kill(), b.kill()],
    }
    print(json.dumps(out))
"""


@pytest.mark.timeout(900)
def test_mode_d_with_e2b_2_20_routes_the_interpreter_by_access_token(image: str) -> None:
    with debug_serving(settings_for(image)) as served:
        out = run_checks(served, "e2b-2-20", "D", E2B_DEBUG="true")
        assert len(out["id"]) == 20, out  # a real sandbox, made through E2B_API_URL
        assert out["jupyter_url"] == f"http://localhost:{DEBUG_PORT}"
        assert_envd_checks(out)
        assert out["run_code"] == RUN_CODE, out

        two = run_e2b_sdk(
            served,
            TWO_SANDBOXES,
            KEY,
            300,
            python=sdk_python("e2b-2-20"),
            env={"E2B_DEBUG": "true"},
        )
        assert two["who"] == ["a", "b"] and two["hostname"] == [True, True], two
        with httpx.Client(base_url=served.api, timeout=30) as http:
            listed = {s["sandboxID"] for s in http.get("/v2/sandboxes", headers=AUTH).json()}
        # e2b 2.20 skips kill in debug mode (it returns True without a call): the
        # sandboxes live until their timeout, or until serve kills them.
        assert {out["id"], *two["ids"]} <= listed


EXPIRY = """
    import json, time
    from e2b import Sandbox
    from e2b_code_interpreter import Sandbox as CodeSandbox

    def outcome(call):
        try:
            call()
            return "ok"
        except Exception as exc:
            return type(exc).__name__

    sbx = Sandbox.create(timeout=4)
    out = {"before": sbx.commands.run("echo up").stdout}
    deadline = time.monotonic() + 20
    while sbx.is_running() and time.monotonic() < deadline:
        time.sleep(0.5)
    out["expired"] = not sbx.is_running()
    out["run"] = outcome(lambda: sbx.commands.run("echo hi"))
    out["read"] = outcome(lambda: sbx.files.read("/etc/hostname"))
    out["connect"] = outcome(lambda: Sandbox.connect(sbx.sandbox_id))
    out["code"] = outcome(lambda: CodeSandbox.connect(sbx.sandbox_id))
    print(json.dumps(out))
"""


@pytest.mark.timeout(600)
def test_the_latest_sdk_sees_a_sandbox_expire(image: str) -> None:
    with serving(settings_for(image)) as served:
        out = run_e2b_sdk(served, EXPIRY, KEY, 300)
        assert listed_ids(served) == []
    gone = {"SandboxNotRunningException", "SandboxNotFoundException"}
    assert out["before"] == "up\n" and out["run"] in gone and out["read"] in gone, out
    assert out["connect"] == out["code"] == "SandboxNotFoundException", out
    assert out["expired"] is True, out


GONE_MID_CALL = """
    import json, time
    from e2b import Sandbox

    sbx = Sandbox.create(timeout=120)
    handle = sbx.commands.run("sleep 60", background=True)
    out = {"killed": Sandbox.kill(sbx.sandbox_id)}
    started = time.monotonic()
    try:
        handle.wait()
        out["wait"] = "ok"
    except Exception as exc:
        out["wait"] = type(exc).__name__
    out["seconds"] = time.monotonic() - started
    out["running"] = sbx.is_running()
    try:
        sbx.commands.run("echo hi")
        out["run"] = "ok"
    except Exception as exc:
        out["run"] = type(exc).__name__
    print(json.dumps(out))
"""


@pytest.mark.timeout(600)
def test_a_command_stream_ends_when_its_sandbox_is_killed(image: str) -> None:
    with serving(settings_for(image)) as served:
        out = run_e2b_sdk(served, GONE_MID_CALL, KEY, 300)
        assert listed_ids(served) == []
    assert out["killed"] is True and out["running"] is False, out
    # The open stream ends at once, not when its 60 s command would have.
    assert out["wait"] == out["run"] == "SandboxNotRunningException", out
    assert out["seconds"] < 30, out


TIMEOUTS = """
    import json
    from e2b import Sandbox

    sbx = Sandbox.create(timeout=120)
    out = []
    for _ in range(5):
        try:
            sbx.commands.run("sleep 10", timeout=1)
            out.append("ok")
        except Exception as exc:
            out.append(type(exc).__name__)
    sbx.kill()
    print(json.dumps({"outcomes": out}))
"""


@pytest.mark.timeout(600)
def test_e2b_2_20_command_timeouts_raise_timeout_exception(image: str) -> None:
    with serving(settings_for(image)) as served:
        out = run_e2b_sdk(served, TIMEOUTS, KEY, 300, python=sdk_python("e2b-2-20"))
    assert out["outcomes"] == ["TimeoutException"] * 5, out


def listed_ids(served: Served) -> list[str]:
    """The ids of the sandboxes the server lists."""
    with httpx.Client(base_url=served.api, timeout=30) as http:
        return [s["sandboxID"] for s in http.get("/v2/sandboxes", headers=AUTH).json()]
