"""Write docs/e2b-compatibility.md from the E2B compatibility suite (tests/compat).

Runs the suite against the engine and reads its JUnit report, or reads a report made
earlier::

    python scripts/e2b_compat_table.py                      # runs tests/compat (about a minute)
    pytest tests/compat --junitxml=report.xml
    python scripts/e2b_compat_table.py --junit report.xml   # reads that report

Each test of the suite is one of E2B's documented snippets with only the import
changed; its ``@pytest.mark.e2b(feature=, call=, source=)`` record reaches the report as
JUnit properties (tests/compat/conftest.py). A passing test *passes*, an
``xfail(strict=True)`` is a *deliberate difference* (its reason says why), anything else
*fails*: a feature the library still lacks.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "tests" / "compat"
PAGE = ROOT / "docs" / "e2b-compatibility.md"

PASSES = "passes"
DIFFERENT = "deliberate difference"
FAILS = "fails"

AREAS = {
    "test_compat_lifecycle": "Sandbox lifecycle, metadata, metrics and network",
    "test_compat_code": "Running code",
    "test_compat_contexts": "Code contexts",
    "test_compat_commands": "Commands",
    "test_compat_files": "Filesystem",
    "test_compat_async": "Async API",
}


@dataclass
class Row:
    """One snippet of the suite and how it fared."""

    area: str
    test: str
    feature: str
    call: str
    source: str
    status: str
    difference: str


def run_suite(junit: Path) -> None:
    """Run tests/compat with a JUnit report; a failing test is a result, not an error."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        str(SUITE.relative_to(ROOT)),
    ]
    subprocess.run(cmd, cwd=ROOT, check=False)
    if not junit.is_file():
        raise SystemExit(f"the suite wrote no report ({' '.join(cmd)}); see its output above")


def _one_line(text: str, limit: int = 140) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = re.sub(r"\b(?:\w+\.)+(\w+(?:Error|Exception|Exit)\b)", r"\1", line)  # short names
    # Sandbox ids differ from run to run; the page should not.
    line = re.sub(r"\s*\[sandbox [0-9a-f]+\]", "", line)
    line = re.sub(r"\b[0-9a-f]{12}\b", "<sandbox id>", line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _outcome(case: ET.Element) -> tuple[str, str]:
    """(status, difference) of one JUnit testcase."""
    for tag in ("failure", "error"):
        element = case.find(tag)
        if element is not None:
            message = element.get("message") or element.text or tag
            return FAILS, _one_line(message)
    skipped = case.find("skipped")
    if skipped is not None:
        if skipped.get("type") == "pytest.xfail":
            return DIFFERENT, ""
        return FAILS, "skipped: " + _one_line(skipped.get("message") or "")
    return PASSES, ""


def parse_junit(path: Path) -> list[Row]:
    """The suite's snippets in run order, from a JUnit report of tests/compat."""
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") or "" for p in case.iter("property")}
        if "e2b_feature" not in props:
            continue
        module = case.get("classname", "").rpartition(".")[2]
        status, difference = _outcome(case)
        if status == DIFFERENT:
            difference = props.get("e2b_difference", "")
        rows.append(
            Row(
                area=AREAS.get(module, module),
                test=f"{module}.py::{case.get('name')}",
                feature=props["e2b_feature"],
                call=props.get("e2b_call", ""),
                source=props.get("e2b_source", ""),
                status=status,
                difference=difference,
            )
        )
    if not rows:
        raise SystemExit(f"{path} holds no test of the E2B compatibility suite")
    order = list(AREAS.values())
    return sorted(rows, key=lambda r: order.index(r.area) if r.area in order else len(order))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return f"`{_cell(text)}`" if text else ""


def source_link(source: str) -> str:
    """A Markdown link for ``owner/repo:path`` or a URL."""
    if source.startswith("http"):
        label = source.split("://", 1)[1].removeprefix("www.")
        return f"[{label}]({source})"
    repo, _, path = source.partition(":")
    url = f"https://github.com/{repo}/blob/main/{path}"
    return f"[{repo.split('/')[1]}: {path.rsplit('/', 1)[-1]}]({url})"


def render(rows: list[Row]) -> str:
    """The whole page."""
    passed = sum(r.status == PASSES for r in rows)
    different = sum(r.status == DIFFERENT for r in rows)
    failed = sum(r.status == FAILS for r in rows)
    runnable = len(rows) - different
    lines = [
        "# E2B compatibility",
        "",
        "<!-- Generated by scripts/e2b_compat_table.py from tests/compat; do not edit. -->",
        "",
        "E2B's documented Python snippets (its docs, the `e2b-dev/code-interpreter` README",
        "and tests, the `e2b-dev/E2B` Python SDK tests), each re-typed as one test in",
        "`tests/compat/` with only the import changed: `from e2b_tools import Sandbox`",
        "instead of `from e2b_code_interpreter import Sandbox` or `from e2b import ...`.",
        "A deliberate difference is a snippet that needs E2B's cloud or the public internet,",
        "or that the hardened defaults refuse; the list below says why for each. A snippet",
        "that *fails* is a feature still missing here.",
        "",
        f"**{passed} of {len(rows)} snippets pass ({100 * passed / len(rows):.0f}%)**; "
        f"{different} are deliberate differences and {failed} fail, so "
        f"{100 * passed / runnable:.0f}% of the {runnable} snippets that apply here pass.",
        "",
        "Regenerate with `python scripts/e2b_compat_table.py` (runs the suite on the engine).",
    ]
    for area in dict.fromkeys(r.area for r in rows):
        lines += ["", f"## {area}", ""]
        lines += [
            "| feature | E2B call | here | difference | source |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in rows:
            if r.area != area:
                continue
            # A deliberate difference names its kind here, its reason in the list below.
            shown = r.difference.partition(":")[0] if r.status == DIFFERENT else r.difference
            lines.append(
                f"| {_cell(r.feature)} | {_code(r.call)} | {r.status} | "
                f"{_cell(shown)} | {source_link(r.source)} |"
            )
    lines += ["", "## Deliberate differences", ""]
    lines += [
        "Sandboxes here are offline by default (E2B's have the internet), run code as an",
        "unprivileged user on a read-only root filesystem, and live on your engine rather",
        "than behind E2B's public endpoints. Each snippet that meets one of these:",
    ]
    by_kind: dict[str, list[Row]] = {}
    for r in rows:
        if r.status == DIFFERENT:
            by_kind.setdefault(r.difference.partition(":")[0], []).append(r)
    for kind, members in by_kind.items():
        lines += ["", f"### {kind[0].upper()}{kind[1:]} ({len(members)})", ""]
        for r in members:
            reason = r.difference.partition(": ")[2]
            lines.append(f"- **{r.feature}** ({_code(r.call)}): {reason}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run (or read) the suite and write the page; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junit", type=Path, help="read this JUnit report of tests/compat")
    parser.add_argument("--output", type=Path, default=PAGE, help=f"default: {PAGE}")
    args = parser.parse_args(argv)
    if args.junit is not None:
        rows = parse_junit(args.junit)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            junit = Path(tmp) / "compat.xml"
            run_suite(junit)
            rows = parse_junit(junit)
    args.output.write_text(render(rows))
    passed = sum(r.status == PASSES for r in rows)
    print(f"wrote {args.output}: {passed} of {len(rows)} snippets pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
