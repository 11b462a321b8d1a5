"""E2B's own SDK tests, vendored unchanged in ``tests/e2b_upstream/`` (see its NOTICE),
run against ``e2b-tools serve`` on the Docker Engine: the python-sdk's sync commands
and files tests and the code interpreter's sync basics, with the real ``e2b`` 2.63.0 +
``e2b-code-interpreter`` 2.11.5 in a side venv (``tests/e2b_upstream/requirements.txt``).

They run in a pytest of their own (their conftest files, ``tests/e2b_upstream/pytest.ini``)
with ``E2B_API_URL``, ``E2B_SANDBOX_URL`` and ``E2B_API_KEY`` pointing at a serve whose
``base`` and ``code-interpreter-v1`` templates are the default image; a JUnit report
counts the outcomes. ``tests/e2b_upstream/expected.txt`` names every test that cannot
pass here, with its reason: ``xfail`` (strict: a fixed feature fails the run until the
line goes), ``xfail-out`` (the same, for features outside "commands, files, code
interpreter basics"), ``flaky`` (a race: non-strict) and ``skip`` (cannot run at all).
Every selected test counts in the pass rate.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
from helpers import serving, side_python

from e2b_tools_serve import ServeSettings

KEY = "e2b_" + "3d" * 20
UPSTREAM = Path(__file__).resolve().parents[1] / "e2b_upstream"
MIN_PASS_RATE = 0.9
XPASS = "xfail-marked test passes unexpectedly"  # pytest's JUnit text for a non-strict XPASS

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="the latest e2b SDK needs Python 3.11"
)


def _upstream_conftest() -> ModuleType:
    """Our ``tests/e2b_upstream/conftest.py`` (its ``expected.txt`` reader), loaded by
    path: it is a conftest of the side run, not a module of this suite."""
    spec = importlib.util.spec_from_file_location("e2b_upstream_conftest", UPSTREAM / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Outcomes:
    """The JUnit report's test cases by outcome (node ids as ``expected.txt`` has them)."""

    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    xfailed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.passed) + len(self.failed) + len(self.xfailed) + len(self.skipped)


def _node_id(case: ET.Element) -> str:
    """``a/b/test_x.py::test_y`` from JUnit's ``classname="a.b.test_x"`` and ``name``."""
    module = case.get("classname", "").replace(".", "/")
    return f"{module}.py::{case.get('name')}"


def read_junit(path: Path) -> Outcomes:
    """Sort a JUnit XML report's test cases into :class:`Outcomes`."""
    out = Outcomes()
    for case in ET.parse(path).getroot().iter("testcase"):
        node = _node_id(case)
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        skipped = case.find("skipped")
        if problem is not None:
            out.failed[node] = (problem.get("message") or "").splitlines()[0][:300]
        elif skipped is not None and skipped.get("message") == XPASS:
            out.passed.append(node)  # a ``flaky`` one that passed this time
        elif skipped is not None and skipped.get("type") == "pytest.xfail":
            out.xfailed[node] = skipped.get("message") or ""
        elif skipped is not None:
            out.skipped[node] = skipped.get("message") or ""
        else:
            out.passed.append(node)
    return out


def test_expected_list_is_well_formed() -> None:
    """Every ``expected.txt`` line names a kind and gives a reason."""
    expected = _upstream_conftest().read_expected()
    assert expected
    for node, (kind, reason) in expected.items():
        assert kind in ("xfail", "xfail-out", "flaky", "skip"), node
        assert len(reason) > 10, node


@pytest.mark.parametrize(
    "line",
    [
        "xfail a/test_x.py::test_y",  # no reason
        "xfail a/test_x.py::test_y | ",  # empty reason
        "maybe a/test_x.py::test_y | a reason long enough",  # unknown kind
        "xfail | a reason long enough",  # no node id
    ],
)
def test_expected_list_rejects_malformed_lines(tmp_path: Path, line: str) -> None:
    """A line without a kind, node id or reason stops the run instead of being skipped."""
    path = tmp_path / "expected.txt"
    path.write_text(f"# a comment\n\n{line}\n")
    with pytest.raises(ValueError, match=r"expected\.txt:3"):
        _upstream_conftest().read_expected(path)


@pytest.mark.timeout(2400)
def test_upstream_sdk_tests(image: str, tmp_path: Path) -> None:
    """The vendored tests pass at >= 90 % of all selected, with no unexpected failure
    and no unexpected pass; each xfail and skip is listed with its reason."""
    python = side_python(UPSTREAM / "requirements.txt")
    expected = _upstream_conftest().read_expected()
    report = tmp_path / "upstream.xml"
    settings = ServeSettings(api_key=KEY, templates={"base": image, "code-interpreter-v1": image})
    with serving(settings, kill_wait=120.0) as served:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "E2B_API_URL": served.api,
            "E2B_SANDBOX_URL": served.sandbox,
            "E2B_API_KEY": KEY,
        }
        done = subprocess.run(
            [str(python), "-m", "pytest", ".", "-q", f"--junitxml={report}"],
            cwd=UPSTREAM,
            env=env,
            capture_output=True,
            text=True,
            timeout=2300,
        )
    assert report.exists(), done.stdout[-5000:] + done.stderr[-5000:]
    out = read_junit(report)
    summary = done.stdout.strip().splitlines()[-1:] if done.stdout.strip() else []
    print(
        f"\nupstream: {out.total} selected, {len(out.passed)} passed, "
        f"{len(out.xfailed)} xfailed, {len(out.skipped)} skipped, "
        f"{len(out.failed)} failed; {summary}"
    )
    assert out.failed == {}, done.stdout[-8000:]
    assert all(reason for reason in out.xfailed.values())
    assert all(reason for reason in out.skipped.values())
    # Every selected test counts, the features outside the scope too.
    assert len(out.passed) >= MIN_PASS_RATE * out.total, (len(out.passed), out.total)
    assert set(out.xfailed) | set(out.skipped) <= set(expected)
    assert done.returncode == 0, done.stdout[-8000:]
