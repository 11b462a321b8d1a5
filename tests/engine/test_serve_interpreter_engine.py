"""``e2b-tools serve``'s code interpreter on the Docker Engine, driven by the real E2B
SDK (``e2b_code_interpreter``, side venv) in a subprocess: a matplotlib PNG and its
chart, state, errors, bash, contexts, a client-side timeout that interrupts the run in
the container (its side effect never happens) so the next call keeps the state, and a
sandbox killed mid-run. Engine-free checks: ``tests/unit/test_serve_interpreter.py``."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from helpers import Served, run_e2b_sdk, serving

from e2b_tools_serve import ServeSettings

KEY = "e2b_" + "9d" * 20

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="the latest e2b SDK needs Python 3.11"
)


@pytest.fixture
def served(image: str) -> Iterator[Served]:
    """A serve on the Docker Engine; every sandbox it made is killed after."""
    templates: dict[str, str | None] = {"base": image, "code-interpreter-v1": image}
    settings = ServeSettings(api_key=KEY, templates=templates)
    with serving(settings, start_wait=10.0, stop_wait=15.0, kill_wait=60.0) as url:
        yield url


SCRIPT = """
import base64, json, time
from e2b_code_interpreter import Sandbox
from e2b.exceptions import TimeoutException

out = {}
sbx = Sandbox.create(timeout=180)
try:
    plot = (
        "import matplotlib.pyplot as plt\\n"
        "plt.plot([1, 2, 3], [2, 4, 6])\\nplt.title('line')\\nplt.show()"
    )
    results = sbx.run_code(plot).results
    png = next(r.png for r in results if r.png)
    out["png"] = base64.b64decode(png)[:8].hex()
    out["chart"] = [getattr(getattr(r, "chart", None), "title", None) for r in results]
    out["state"] = [sbx.run_code("n = 20").error, sbx.run_code("n + 22").text]
    out["error"] = sbx.run_code("1/0").error.name
    out["bash"] = sbx.run_code("echo $HOME", language="bash").logs.stdout
    ctx = sbx.create_code_context(cwd="/tmp")
    out["ctx_cwd"] = sbx.run_code("import os\\nos.getcwd()", context=ctx).text
    sbx.run_code("v = 1", context=ctx)
    sbx.restart_code_context(ctx)
    out["restarted"] = sbx.run_code("'v' in dir()", context=ctx).text
    sbx.remove_code_context(ctx)

    slow = "import time\\ntime.sleep(3)\\nopen('/tmp/marker', 'w').write('ran')"
    try:
        sbx.run_code(slow, timeout=1)
    except TimeoutException as exc:
        out["timeout"] = type(exc).__name__
    time.sleep(4)
    out["marker"] = sbx.run_code("import os\\nos.path.exists('/tmp/marker')").text
    try:
        sbx.run_code("while True: pass", timeout=1)
    except TimeoutException as exc:
        out["busy_timeout"] = type(exc).__name__
    out["after"] = sbx.run_code("n * 2").text
finally:
    sbx.kill()
print(json.dumps(out))
"""


@pytest.mark.timeout(420)
def test_the_real_sdk_runs_code_in_docker(served: Served) -> None:
    out = run_e2b_sdk(served, SCRIPT, KEY, timeout=360)
    assert out["png"] == "89504e470d0a1a0a"  # the PNG signature
    assert "line" in out["chart"]
    assert out["state"] == [None, "42"] and out["error"] == "ZeroDivisionError"
    assert out["bash"] == ["/home/user\n"]
    assert out["ctx_cwd"] == "/tmp" and out["restarted"] == "False"
    assert out["timeout"] == "TimeoutException" and out["marker"] == "False"
    assert out["busy_timeout"] == "TimeoutException" and out["after"] == "40"


KILLED = """
import json, threading, time
from e2b_code_interpreter import Sandbox
from e2b.exceptions import TimeoutException

out = {}
sbx = Sandbox.create(timeout=120)
sbx.run_code("1")
threading.Timer(2.0, lambda: Sandbox.kill(sbx.sandbox_id)).start()
try:
    sbx.run_code("import time\\ntime.sleep(60)")
except TimeoutException as exc:
    out["killed"] = str(exc)
out["running"] = sbx.is_running()
print(json.dumps(out))
"""


@pytest.mark.timeout(300)
def test_a_container_killed_mid_run(served: Served) -> None:
    out = run_e2b_sdk(served, KILLED, KEY, timeout=240)
    assert "sandbox was killed" in out["killed"] and out["running"] is False
