"""``e2b-tools serve``'s envd process service on the Docker Engine, driven by the real
E2B SDK (side venv) in a subprocess: foreground and background commands, binary
stdout, stdin, ``connect`` after a dropped stream, a timeout that really kills the
process in the container, signals, and a sandbox killed under a running command.
Engine-free checks: ``tests/unit/test_serve_process.py``."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from helpers import Served, run_e2b_sdk, serving

from e2b_tools_serve import ServeSettings

KEY = "e2b_" + "7b" * 20

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="the latest e2b SDK needs Python 3.11"
)


@pytest.fixture
def server(image: str) -> Iterator[Served]:
    """The server on the Docker backend; every sandbox it made is killed after."""
    with serving(ServeSettings(api_key=KEY, templates={"base": image})) as served:
        yield served


SCRIPT = """
import json, threading, time
from e2b import (
    Sandbox, CommandExitException, TimeoutException, SandboxException,
)

out = {}
sbx = Sandbox.create(timeout=120)
r = sbx.commands.run("echo hi; echo oops >&2; whoami")
out["fg"] = [r.stdout, r.stderr]
try:
    sbx.commands.run("exit 7")
except CommandExitException as exc:
    out["exit"] = [exc.exit_code, exc.error]
chunks = []
sbx.commands.run("head -c 3 /dev/urandom >/dev/null; printf 'x\\\\x80y'", on_stdout=chunks.append)
out["binary"] = "".join(chunks)

h = sbx.commands.run("cat", background=True, stdin=True)
sbx.commands.send_stdin(h.pid, "fed")
sbx.commands.close_stdin(h.pid)
out["stdin"] = h.wait().stdout

bg = sbx.commands.run("echo start; sleep 1; echo later; sleep 30", background=True)
time.sleep(0.3)
bg.disconnect()
follower = sbx.commands.connect(bg.pid)
seen = []
for stdout, _, _ in follower:
    seen.append(stdout)
    if "later" in "".join(s or "" for s in seen):
        break
out["followed"] = "".join(s or "" for s in seen)
out["kill"] = [sbx.commands.kill(bg.pid), sbx.commands.kill(bg.pid)]

def running(args):  # no procps needed: read /proc
    probe = (
        "for p in /proc/[0-9]*; do tr '\\\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"
        f" | grep -c '^{args} $' || true"
    )
    return sbx.commands.run(probe).stdout.strip()

control = sbx.commands.run("sleep 986", background=True)
out["probe_sees"] = running("sleep 986")
control.kill()
try:
    sbx.commands.run("sleep 987", timeout=1)
except TimeoutException:
    out["timeout"] = True
out["ps_after_timeout"] = running("sleep 987")

victim = sbx.commands.run("sleep 60", background=True)
threading.Timer(1.0, sbx.kill).start()
try:
    victim.wait()
except Exception as exc:
    out["killed_mid_stream"] = [type(exc).__name__, str(exc)]
print(json.dumps(out))
"""


@pytest.mark.timeout(300)
def test_the_real_sdk_runs_commands_in_docker(server: Served) -> None:
    out = run_e2b_sdk(server, SCRIPT, KEY, timeout=240)
    assert out["fg"][0].startswith("hi\n") and out["fg"][1] == "oops\n"
    assert out["exit"] == [7, "exit status 7"]
    assert out["binary"] == "x\ufffdy"
    assert out["stdin"] == "fed"
    assert "later" in out["followed"] and "start" not in out["followed"]
    assert out["kill"] == [True, False]
    assert out["probe_sees"] == "1"
    assert out["timeout"] is True and out["ps_after_timeout"] == "0"
    name, message = out["killed_mid_stream"]
    assert name == "SandboxNotRunningException", message
    assert "killed or reached its end of life while the request was in flight" in message
