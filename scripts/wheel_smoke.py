"""Build the wheel and sdist, install the wheel in a fresh venv per extra, smoke-test it.

What a user gets from ``pip install e2b-tools[extra]`` is the wheel, not this
checkout: files left out of the package, a dependency missing from an extra or an import
that only works from the source tree all pass the test suite and fail there. So this
builds the sdist, then the wheel from the sdist (``python -m build``), and for each
extra makes a new venv, installs the wheel with that extra alone and runs a short
program from a directory outside the checkout that uses a real sandbox. The core venv
also builds an image from the wheel (the slim variant, seconds once the base exists)
and checks that the wheel's agent is the one the default image was built with.

Usage: ``python scripts/wheel_smoke.py [--extra NAME ...] [--keep]`` (``make
wheel-smoke``; ``make test`` runs it after the suite). Needs a Docker Engine and the
default image. Fails if any labelled container made during the run is left behind.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "wheel-smoke"

# What each venv runs. They print one line each that the check below looks for.
_CORE = """
import subprocess, sys, e2b_tools
from e2b_tools import AsyncSandbox, Sandbox
from e2b_tools.images import SLIM_IMAGE, build_image

assert "site-packages" in e2b_tools.__file__, e2b_tools.__file__
# The wheel's agent is the one the default image carries: up to date, nothing to build.
assert build_image(log=print) == "e2b-tools/sandbox:" + e2b_tools.__version__
# An image built from the wheel's own files: the slim variant, removed first.
subprocess.run(["docker", "image", "rm", "-f", SLIM_IMAGE], check=True, capture_output=True)
subprocess.run(["e2b-tools", "image", "build", "--variant", "slim"], check=True)
with Sandbox.create(SLIM_IMAGE) as sbx:
    assert sbx.run_code("6 * 7").text == "42"
with Sandbox.create() as sbx:
    sbx.files.write("a/b.txt", "hello")
    assert sbx.commands.run("cat a/b.txt").stdout == "hello"
    assert sbx.run_code("import pandas; pandas.Series([1, 2]).sum()").text == "3"

import asyncio
async def main() -> str:
    async with await AsyncSandbox.create() as sbx:
        return (await sbx.run_code("console.log(1 + 1)", language="javascript")).logs.stdout[0]
assert asyncio.run(main()).strip() == "2"
out = subprocess.run(["e2b-tools", "--help"], check=True, capture_output=True, text=True)
assert "image" in out.stdout
print("SMOKE OK core")
"""

_LANGCHAIN = """
from e2b_tools_langchain import SandboxToolkit
with SandboxToolkit() as toolkit:
    tools = {t.name: t for t in toolkit.get_tools()}
    out = tools["run_code"].invoke({"code": "6 * 7"})
    assert "42" in out, out
print("SMOKE OK langchain")
"""

_CREWAI = """
from e2b_tools_crewai import SandboxTools
with SandboxTools() as tools:
    by_name = {t.name: t for t in tools.all()}
    out = by_name["run_shell"].run(command="echo crew")
    assert "crew" in out, out
print("SMOKE OK crewai")
"""

_MCP = """
import asyncio, sys
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main() -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "e2b_tools_mcp"])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        names = {t.name for t in (await session.list_tools()).tools}
        assert "run_code" in names, names
        result = await session.call_tool("run_code", {"code": "6 * 7"})
        text = result.content[0].text
        assert not result.isError and "42" in text, text
asyncio.run(main())
print("SMOKE OK mcp")
"""

_DEEPAGENTS = """
from e2b_tools_langchain import E2BToolsSandbox
with E2BToolsSandbox.create() as backend:
    response = backend.execute("echo deep")
    assert response.exit_code == 0 and "deep" in response.output, response
print("SMOKE OK deepagents")
"""

_OPENAI_AGENTS = """
import asyncio
from pathlib import Path
from agents.sandbox import Manifest
from e2b_tools_openai_agents import E2BToolsSandboxClient

async def main() -> None:
    client = E2BToolsSandboxClient()
    session = await client.create(manifest=Manifest())
    try:
        await session.start()
        result = await session.exec("echo agents && exit 3")
        assert (result.exit_code, result.stdout) == (3, b"agents\\n"), result
    finally:
        await session.aclose()
        await client.delete(session)
asyncio.run(main())
print("SMOKE OK openai-agents")
"""

_SMOLAGENTS = """
from e2b_tools_smolagents import E2BToolsExecutor
executor = E2BToolsExecutor()
try:
    executor.run_code_raise_errors("x = 6")
    out = executor.run_code_raise_errors("x * 7")
    assert str(out.output) == "42" and not out.is_final_answer, out
finally:
    executor.cleanup()
print("SMOKE OK smolagents")
"""

_SERVE = """
import json, socket, subprocess, time, urllib.error, urllib.request
ports = []
for _ in range(3):  # free loopback ports: API, envd, interpreter
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        ports.append(str(probe.getsockname()[1]))
key = "e2b_" + "ab" * 20
env = subprocess.run(
    ["e2b-tools", "serve", "--print-env", "--api-key", key, "--envd-port", ports[1]],
    check=True, capture_output=True, text=True,
).stdout
assert f"E2B_SANDBOX_URL=http://127.0.0.1:{ports[1]}" in env and key in env, env
server = subprocess.Popen(
    ["e2b-tools", "serve", "--api-key", key, "--port", ports[0], "--envd-port", ports[1],
     "--interpreter-port", ports[2]]
)


def call(port, path, method="GET", body=None, headers=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, headers=headers or {},
        data=None if body is None else json.dumps(body).encode(),
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


try:
    for _ in range(100):
        try:
            status, body = call(ports[0], "/sandboxes")
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise AssertionError("e2b-tools serve did not answer")
    assert status == 401 and json.loads(body)["code"] == 401, (status, body)
    auth = {"X-API-KEY": key, "Content-Type": "application/json"}
    status, body = call(ports[0], "/v2/sandboxes", "POST", {"templateID": "base"}, auth)
    assert status == 201, (status, body)
    made = json.loads(body)
    sandbox = {"E2b-Sandbox-Id": made["sandboxID"], "X-Access-Token": made["envdAccessToken"]}
    assert call(ports[1], "/health", headers=sandbox)[0] == 204
    status, body = call(
        ports[1], "/process.Process/List", "POST", {},
        {**sandbox, "Content-Type": "application/json"},
    )
    assert status == 200 and json.loads(body).get("processes", []) == [], (status, body)
    assert call(ports[0], f"/sandboxes/{made['sandboxID']}", "DELETE", headers=auth)[0] == 204
    assert call(ports[1], "/health", headers=sandbox)[0] == 502
finally:
    server.terminate()
    server.wait(30)
print("SMOKE OK serve")
"""

SMOKES: dict[str, str] = {
    "": _CORE,
    "langchain": _LANGCHAIN,
    "crewai": _CREWAI,
    "mcp": _MCP,
    "deepagents": _DEEPAGENTS,
    "openai-agents": _OPENAI_AGENTS,
    "smolagents": _SMOLAGENTS,
    "serve": _SERVE,
}


def _run(cmd: list[str], **kwargs: object) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def build(out: Path) -> Path:
    """The sdist, then the wheel built from it; returns the wheel."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)]
    _run(cmd, stdout=subprocess.DEVNULL)
    sdists = list(out.glob("*.tar.gz"))
    wheels = list(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    print(f"built {sdists[0].name} and {wheels[0].name}")
    return wheels[0]


def smoke(wheel: Path, extra: str, code: str) -> float:
    """Install ``wheel[extra]`` in a new venv and run ``code`` there; returns seconds."""
    started = time.monotonic()
    label = extra or "core"
    venv = WORK / f"venv-{label}"
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    spec = f"{wheel}[{extra}]" if extra else str(wheel)
    _run([str(python), "-m", "pip", "install", "-qq", "--disable-pip-version-check", spec])
    with tempfile.TemporaryDirectory(prefix=f"e2b-tools-smoke-{label}-") as home:
        env = {
            "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": home,  # CrewAI and others write settings under HOME
            "CREWAI_DISABLE_TELEMETRY": "true",
            "OTEL_SDK_DISABLED": "true",
        }
        if "DOCKER_HOST" in os.environ:
            env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
        proc = subprocess.run(
            [str(python), "-c", textwrap.dedent(code)],
            cwd=home,  # outside the checkout: only the installed package can be imported
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if proc.returncode != 0 or f"SMOKE OK {label}" not in proc.stdout:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
        raise SystemExit(f"wheel smoke test failed for the {label!r} install")
    return time.monotonic() - started


def _left_behind(since: float) -> list[str]:
    """Sandbox containers made since ``since`` (epoch seconds) that still exist."""
    import docker

    from e2b_tools.backends.docker import LABEL_SANDBOX

    client = docker.from_env()
    try:
        containers = client.api.containers(all=True, filters={"label": LABEL_SANDBOX})
    finally:
        client.close()
    return [c["Id"][:12] for c in containers if c["Created"] >= int(since) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="append", choices=[e or "core" for e in SMOKES])
    parser.add_argument("--keep", action="store_true", help="keep the venvs in build/")
    args = parser.parse_args()
    chosen = [("" if e == "core" else e) for e in args.extra] if args.extra else list(SMOKES)
    started = time.time()
    wheel = build(WORK / "dist")
    timings = {}
    try:
        for extra in chosen:
            timings[extra or "core"] = smoke(wheel, extra, SMOKES[extra])
            print(f"ok: {extra or 'core'} in {timings[extra or 'core']:.0f}s", flush=True)
    finally:
        time.sleep(2)  # auto-removal of killed containers is asynchronous
        left = _left_behind(started)
        if not args.keep:
            for venv in WORK.glob("venv-*"):
                shutil.rmtree(venv, ignore_errors=True)
    if left:
        subprocess.run(["docker", "rm", "-f", *left], capture_output=True)
        raise SystemExit(f"wheel smoke test left {len(left)} sandbox container(s) behind")
    summary = ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
    print(f"wheel smoke test passed ({summary}); no sandbox container left behind")


if __name__ == "__main__":
    main()
