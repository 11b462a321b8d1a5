"""The examples run as users would run them: offline, in their own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_example

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_to_the_end(image: str, tmp_path: Path) -> None:
    out = run_example("demo.py", tmp_path)
    assert "13.54" in out  # state carried across calls
    assert "IndexError" in out
    assert "chart.png:" in out
    assert "SandboxTimeoutError" in out
    assert "[8] Done" in out
    assert (ROOT / "out" / "chart.png").read_bytes().startswith(b"\x89PNG")


def test_langchain_agent(image: str, tmp_path: Path) -> None:
    out = run_example("langchain_agent.py", tmp_path)
    assert "[2, 3, 5, 13, 89, 233, 1597, 28657, 514229]" in out
    assert "Wrote /home/user/fib_primes.txt" in out
    assert "agent answer:" in out


def test_langchain_install(image: str, tmp_path: Path) -> None:
    out = run_example("langchain_install.py", tmp_path)
    assert "Successfully installed tinypkg-1.0" in out
    assert "[step 2] run_code -> success\n    [result]\n    42" in out
    assert "'denied.test:8080' matches no allow_out rule\n    HTTP 403" in out
    assert "allowed GET pypi.test:8080 rule='pypi.test': allowed by allow_out rule" in out
    assert "denied  GET denied.test:8080 rule=None: 'denied.test:8080' matches no" in out
    assert "agent answer:" in out


def test_deepagents_agent(image: str, tmp_path: Path) -> None:
    pytest.importorskip("deepagents")  # Deep Agents needs Python 3.11+
    out = run_example("deepagents_agent.py", tmp_path)
    assert "uploaded /home/user/data/poem.txt: ok" in out
    assert "[ls] ['/home/user/data/poem.txt']" in out
    assert "[write_file] Updated file /home/user/wordcount.py" in out
    assert "[execute] the 8\n    is 3\n    and 2" in out  # computed in the sandbox
    assert "/home/user/data/poem.txt:" in out  # grep found the lines there
    assert "agent answer: The three most common words are 'the' (8)" in out


def test_autogpt_loop_replays_the_model(image: str, tmp_path: Path) -> None:
    out = run_example("autogpt_loop.py", tmp_path)
    assert "[result]\n    3.5" in out
    assert "5050" in out
    assert "final answer: The median is 3.5" in out


def test_crewai_crew_kickoff(image: str, tmp_path: Path) -> None:
    out = run_example("crewai_crew.py", tmp_path)
    assert "crew answer: The average of 2, 4, 6 and 8 is 5.0." in out
    assert "sandbox used: none" not in out  # the agent's tool call ran in a sandbox


def test_data_analysis_csv_in_chart_out(image: str, tmp_path: Path) -> None:
    out = run_example("data_analysis.py", tmp_path)
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
