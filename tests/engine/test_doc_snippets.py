"""Every ```python block of README.md and docs/*.md runs, as a reader would run it.

The blocks of one page run in order in one namespace, in a fresh interpreter (so a
snippet's global state never reaches this process), with a temporary directory as cwd,
no API keys in the environment and a real Docker Engine. A block directly preceded by
``<!-- snippet: skip (reason) -->`` is not run; the reason is required. A block may use
top-level ``await`` (it then runs in its own ``asyncio.run``). After each page, no
labelled container made by the page's process may remain.

``>>>`` doctest blocks: the docs have none (``tests/unit/test_docs.py`` checks that), so
only fenced Python blocks are in scope; the library's own docstring examples are
another matter.

The parser here is stdlib-only; ``tests/unit/test_docs.py`` loads it by path to check
every page without an engine.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE_TIMEOUT = 600
"""Seconds one page's blocks may take together."""

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_SKIP = re.compile(r"^<!--\s*snippet:\s*skip\b(.*?)-->\s*$")
_REASON = re.compile(r"^\s*\((.*)\)\s*$")


class SnippetSyntaxError(ValueError):
    """A page whose fences or skip markers are malformed."""


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    """Path relative to the repository root."""
    index: int
    """Position among the page's ```python blocks, from 0."""
    line: int
    """Line number (1-based) of the block's first code line."""
    language: str
    source: str
    skip_reason: str | None
    """The marker's reason when the block is skipped; None when it runs."""


def pages() -> list[Path]:
    """README.md and every docs page, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def page_id(path: Path) -> str:
    """The page's path relative to the repository (as given when outside it)."""
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def parse_page(text: str, page: str) -> list[Block]:
    """Every fenced block of ``text`` (all languages), or SnippetSyntaxError for an
    unterminated fence, a skip marker without a reason, or one not followed by a
    ```python block."""
    lines = text.splitlines()
    blocks: list[Block] = []
    python_index = 0
    i = 0
    pending_skip: tuple[int, str] | None = None  # (line of the marker, reason)
    while i < len(lines):
        line = lines[i]
        skip = _SKIP.match(line.strip())
        if skip:
            reason_match = _REASON.match(skip.group(1))
            reason = reason_match.group(1).strip() if reason_match else ""
            if not reason:
                raise SnippetSyntaxError(
                    f"{page}:{i + 1}: skip marker without a reason; write "
                    "<!-- snippet: skip (why it cannot run) -->"
                )
            pending_skip = (i + 1, reason)
            i += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if pending_skip is not None and line.strip():
                raise SnippetSyntaxError(
                    f"{page}:{pending_skip[0]}: skip marker not directly followed by a "
                    "```python block"
                )
            i += 1
            continue
        indent, marker, info = fence.groups()
        language = info.strip().split(" ")[0].lower() if info.strip() else ""
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if close and close.group(2).startswith(marker) and not close.group(3).strip():
                break
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        else:
            raise SnippetSyntaxError(f"{page}:{start + 1}: unterminated ``` fence")
        i += 1
        if pending_skip is not None and language != "python":
            raise SnippetSyntaxError(
                f"{page}:{pending_skip[0]}: skip marker before a ```{language} block "
                "(only ```python blocks run)"
            )
        blocks.append(
            Block(
                page=page,
                index=python_index if language == "python" else -1,
                line=start + 2,
                language=language,
                source="\n".join(body) + "\n",
                skip_reason=pending_skip[1] if pending_skip else None,
            )
        )
        if language == "python":
            python_index += 1
        pending_skip = None
    if pending_skip is not None:
        raise SnippetSyntaxError(f"{page}:{pending_skip[0]}: skip marker at the end of the page")
    return blocks


def python_blocks(path: Path) -> list[Block]:
    blocks = parse_page(path.read_text(encoding="utf-8"), page_id(path))
    return [b for b in blocks if b.language == "python"]


# Runs in the page's own interpreter: each block compiled with its real file name and
# line numbers (tracebacks point into the .md file), executed in one namespace.
_DRIVER = r"""
import ast, asyncio, inspect, json, sys, traceback
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__main__", "__builtins__": __builtins__}
for block in blocks:
    print(f"--- block {block['index']} (line {block['line']}) ---", flush=True)
    source = "\n" * (block["line"] - 1) + block["source"]
    try:
        code = compile(source, block["path"], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        if code.co_flags & inspect.CO_COROUTINE:
            asyncio.run(eval(code, namespace))
        else:
            exec(code, namespace)
    except BaseException:
        sys.stdout.flush()
        with open(sys.argv[2], "w", encoding="utf-8") as report:
            json.dump({"failed": block["index"], "traceback": traceback.format_exc()}, report)
        sys.exit(1)
"""


def _env(home: Path) -> dict[str, str]:
    # OTEL_SDK_DISABLED: set for the whole session by the CrewAI tests' quiet import
    # (CREWAI_DISABLE_TELEMETRY keeps CrewAI quiet without it); a reader's tracing
    # snippet must see OpenTelemetry as a user has it.
    dropped = ("E2B_API_KEY", "OTEL_SDK_DISABLED")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and k not in dropped}
    # Frameworks write settings and caches under HOME; keep them out of the real one.
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_CACHE_HOME=str(home / "cache"),
        CREWAI_STORAGE_DIR="e2b-tools-doc-snippets",
        PYTHONUNBUFFERED="1",
    )
    return env


def _left_behind(owner: str) -> list[str]:
    """Names of labelled containers whose owner label is ``owner`` (host:pid)."""
    import docker

    from e2b_tools.backends.docker import LABEL_OWNER, LABEL_SANDBOX

    client = docker.from_env()
    try:
        deadline = time.monotonic() + 15
        while True:
            left = [
                c
                for c in client.api.containers(all=True, filters={"label": LABEL_SANDBOX})
                if (c.get("Labels") or {}).get(LABEL_OWNER) == owner
            ]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # auto-removal of a just-killed container is asynchronous
        for c in left:  # the session must not fail again for this page's leftovers
            client.api.remove_container(c["Id"], force=True)
        return [c["Names"][0].lstrip("/") for c in left]
    finally:
        client.close()


def _failure(path: Path, blocks: list[Block], report: Path, stdout: str, stderr: str) -> str:
    """Which block failed (page, index, line), its code and traceback, and the output."""
    try:
        info = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    output = f"--- stdout ---\n{stdout[-4000:]}\n--- stderr ---\n{stderr[-4000:]}"
    if isinstance(info, dict) and "failed" in info:
        block = next(b for b in blocks if b.index == info["failed"])
        return (
            f"{page_id(path)}: block {block.index} (line {block.line}) failed\n"
            f"--- its code ---\n{block.source}--- traceback ---\n{info['traceback']}{output}"
        )
    return f"{page_id(path)}: the page's interpreter failed outside its blocks\n{output}"


@dataclasses.dataclass
class PageRun:
    """The outcome of one page's blocks in their own interpreter."""

    pid: int
    returncode: int | None
    """None when the page ran past its timeout (and was killed)."""
    stdout: str
    stderr: str
    failure: str | None
    """Page, block index, line, code and traceback of the failure; None if all ran."""


def run_page(path: Path, blocks: list[Block], tmp_path: Path, timeout: float) -> PageRun:
    """Run ``blocks`` of ``path`` in order, in one namespace, in a fresh interpreter with
    ``tmp_path/cwd`` as its working directory and no API keys in its environment."""
    work = tmp_path / "cwd"
    work.mkdir(parents=True, exist_ok=True)
    spec = tmp_path / "blocks.json"
    report = tmp_path / "failure.json"
    report.unlink(missing_ok=True)
    spec.write_text(
        json.dumps(
            [
                {"index": b.index, "line": b.line, "source": b.source, "path": str(path)}
                for b in blocks
            ]
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, str(spec), str(report)],
        cwd=work,
        env=_env(tmp_path / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        started = re.findall(r"^--- block (\d+) \(line (\d+)\) ---$", stdout, re.MULTILINE)
        where = f"block {started[-1][0]} (line {started[-1][1]})" if started else "start-up"
        message = f"{page_id(path)}: timed out after {timeout:g}s in {where}"
        return PageRun(proc.pid, None, stdout, stderr, f"{message}\n{stdout[-4000:]}")
    failure = None
    if proc.returncode != 0:
        failure = _failure(path, blocks, report, stdout, stderr)
    return PageRun(proc.pid, proc.returncode, stdout, stderr, failure)


PAGES = [p for p in pages() if p.is_file()]


@pytest.mark.timeout(PAGE_TIMEOUT + 60)
@pytest.mark.parametrize("path", PAGES, ids=[page_id(p) for p in PAGES])
def test_page_snippets_run(path: Path, image: str, tmp_path: Path) -> None:
    blocks = [b for b in python_blocks(path) if b.skip_reason is None]
    if not blocks:
        return  # nothing to run (its fences are checked in tests/unit/test_docs.py)
    run = run_page(path, blocks, tmp_path, PAGE_TIMEOUT)
    # Sandboxes carry their creator's host:pid, so other tests' containers are not counted.
    left = _left_behind(f"{socket.gethostname()}:{run.pid}")
    leak = f"{page_id(path)}: its snippets left sandbox container(s) behind: {left}"
    if run.failure is not None:
        pytest.fail(run.failure + (f"\n{leak}" if left else ""))
    assert not left, leak
