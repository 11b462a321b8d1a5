"""The examples run as users would run them: offline, in their own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_example(name: str, tmp_path: Path) -> str:
    # Offline: no real model, and langchain_install.py serves its own index.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OPENAI_") and k != "E2B_TOOLS_INDEX_URL"
    }
    # CrewAI writes settings and a task database under HOME; keep them out of the real one.
    env.update(
        HOME=str(tmp_path),
        XDG_DATA_HOME=str(tmp_path / "data"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        CREWAI_STORAGE_DIR="e2b-tools-tests",
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_demo_runs_to_the_end(image: str, tmp_path: Path) -> None:
    out = _run_example("demo.py", tmp_path)
    assert "13.54" in out  # state carried across calls
    assert "IndexError" in out
    assert "chart.png:" in out
    assert "SandboxTimeoutError" in out
    assert "[8] Done" in out
    assert (ROOT / "out" / "chart.png").read_bytes().startswith(b"\x89PNG")


def test_langchain_agent(image: str, tmp_path: Path) -> None:
    out = _run_example("langchain_agent.py", tmp_path)
    assert "[2, 3, 5, 13, 89, 233, 1597, 28657, 514229]" in out
    assert "Wrote /home/user/fib_primes.txt" in out
    assert "agent answer:" in out


def test_langchain_install(image: str, tmp_path: Path) -> None:
    out = _run_example("langchain_install.py", tmp_path)
    assert "Successfully installed tinypkg-1.0" in out
    assert "[step 2] run_code -> success\n    [result]\n    42" in out
    assert "'denied.test:8080' matches no allow_out rule\n    HTTP 403" in out
    assert "allowed GET pypi.test:8080 rule='pypi.test': allowed by allow_out rule" in out
    assert "denied  GET denied.test:8080 rule=None: 'denied.test:8080' matches no" in out
    assert "agent answer:" in out


def test_deepagents_agent(image: str, tmp_path: Path) -> None:
    pytest.importorskip("deepagents")  # Deep Agents needs Python 3.11+
    out = _run_example("deepagents_agent.py", tmp_path)
    assert "uploaded /home/user/data/poem.txt: ok" in out
    assert "[ls] ['/home/user/data/poem.txt']" in out
    assert "[write_file] Updated file /home/user/wordcount.py" in out
    assert "[execute] the 8\n    is 3\n    and 2" in out  # computed in the sandbox
    assert "/home/user/data/poem.txt:" in out  # grep found the lines there
    assert "agent answer: The three most common words are 'the' (8)" in out


def test_autogpt_loop_replays_the_model(image: str, tmp_path: Path) -> None:
    out = _run_example("autogpt_loop.py", tmp_path)
    assert "[result]\n    3.5" in out
    assert "5050" in out
    assert "final answer: The median is 3.5" in out


def test_crewai_crew_kickoff(image: str, tmp_path: Path) -> None:
    out = _run_example("crewai_crew.py", tmp_path)
    assert "crew answer: The average of 2, 4, 6 and 8 is 5.0." in out
    assert "sandbox used: none" not in out  # the agent's tool call ran in a sandbox


def test_data_analysis_csv_in_chart_out(image: str, tmp_path: Path) -> None:
    out = _run_example("data_analysis.py", tmp_path)
    assert "[result]\n    north" in out or "[result]\nnorth" in out, out
    assert "returned as an artifact" in out
    assert (ROOT / "out" / "sales.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("module", "extra"),
    [("e2b_tools_langchain", "langchain"), ("e2b_tools_crewai", "crewai")],
)
def test_adapter_without_its_extra_names_the_extra(module: str, extra: str) -> None:
    blocked = "langchain_core" if extra == "langchain" else "crewai"
    code = (
        "import sys\n"
        f"sys.modules[{blocked!r}] = None  # as if the extra were not installed\n"
        f"try:\n    import {module}\nexcept ImportError as exc:\n    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert f"pip install 'e2b-tools[{extra}]'" in proc.stdout


def test_core_import_pulls_in_no_framework() -> None:
    code = (
        "import sys, e2b_tools, e2b_tools.tools, e2b_tools_autogpt\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'langchain', 'crewai', 'openai', 'litellm')]\n"
        "print(bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
