"""Docs that are generated from code stay in step with it."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    """Load scripts/<name> (registered in sys.modules, as dataclasses need)."""
    module_name = f"_script_{Path(name).stem}"
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "scripts" / name)
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = gen
    spec.loader.exec_module(gen)
    return gen


def test_tools_reference_is_current() -> None:
    gen = _script("gen_tools_doc.py")
    committed = (ROOT / "docs" / "tools.md").read_text()
    assert committed == gen.render(), "docs/tools.md is stale: run python scripts/gen_tools_doc.py"
    languages = (ROOT / "docs" / "languages.md").read_text()
    assert languages == gen.render_languages(), "docs/languages.md is stale: run make docs"


def test_configuration_reference_is_current() -> None:
    gen = _script("gen_config_doc.py")
    committed = (ROOT / "docs" / "configuration.md").read_text()
    assert committed == gen.render(), (
        "docs/configuration.md is stale: run python scripts/gen_config_doc.py"
    )


def test_configuration_reference_covers_every_field_and_variable() -> None:
    from e2b_tools import SandboxConfig

    gen = _script("gen_config_doc.py")
    page = gen.render()
    for name in SandboxConfig.model_fields:
        assert f"| `{name}` |" in page, name
    # Every os.environ read on the host side is found, and described.
    assert {"DOCKER_HOST", "E2B_TOOLS_ENGINE_TIMEOUT", "E2B_TOOLS_SUBNET_POOL"} <= (
        gen.environment_reads()
    )
    for name in gen.environment_reads():
        assert f"| `{name}` |" in page, name


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.get_overloads is 3.11+")
def test_sync_api_is_current() -> None:
    gen = _script("gen_sync.py")
    committed = (ROOT / "e2b_tools" / "_sync.py").read_text()
    assert committed == gen.render(), "e2b_tools/_sync.py is stale: run make sync"


def test_docs_name_only_existing_files() -> None:
    readme = (ROOT / "README.md").read_text()
    for line in readme.splitlines():
        if line.startswith("- `docs/"):
            page = line.split("`")[1]
            assert (ROOT / page).is_file(), page


def _snippets() -> ModuleType:
    """The docs snippet parser of tests/engine/test_doc_snippets.py (stdlib only)."""
    path = ROOT / "tests" / "engine" / "test_doc_snippets.py"
    if "_doc_snippet_parser" in sys.modules:
        return sys.modules["_doc_snippet_parser"]
    spec = importlib.util.spec_from_file_location("_doc_snippet_parser", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_doc_snippet_parser"] = module
    spec.loader.exec_module(module)
    return module


def test_every_page_parses_and_each_skip_has_a_reason() -> None:
    snippets = _snippets()
    for path in snippets.pages():
        if not path.is_file():
            continue
        blocks = snippets.python_blocks(path)  # raises on a bad fence or marker
        for block in blocks:
            if block.skip_reason is not None:
                assert block.skip_reason.strip(), f"{block.page}:{block.line}"
            compile(
                block.source,
                f"{block.page}:{block.line}",
                "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            )


def test_docs_have_no_doctest_blocks() -> None:
    # Only ```python blocks run; a `>>>` example in a page would silently go unchecked.
    snippets = _snippets()
    for path in snippets.pages():
        if path.is_file():
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                assert not line.lstrip().startswith(">>> "), f"{path.name}:{n}: use ```python"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# t\n\n```python\nx = 1\n", "unterminated"),
        ("<!-- snippet: skip -->\n```python\nx = 1\n```\n", "without a reason"),
        ("<!-- snippet: skip () -->\n```python\nx = 1\n```\n", "without a reason"),
        ("<!-- snippet: skip (  ) -->\n```python\nx = 1\n```\n", "without a reason"),
        ("<!-- snippet: skip (key) -->\ntext\n```python\nx = 1\n```\n", "not directly followed"),
        ("<!-- snippet: skip (key) -->\n```bash\nls\n```\n", "```bash"),
        ("<!-- snippet: skip (key) -->\n", "end of the page"),
        ("```python\nx = 1\n``\n", "unterminated"),  # two backticks do not close
        ("````python\nx = 1\n```\n", "unterminated"),  # nor a shorter fence
    ],
)
def test_malformed_pages_are_refused(text: str, message: str) -> None:
    snippets = _snippets()
    with pytest.raises(snippets.SnippetSyntaxError, match=message):
        snippets.parse_page(text, "page.md")


def test_blocks_carry_index_line_and_reason() -> None:
    snippets = _snippets()
    text = (
        "# Page\n\n```python\na = 1\n```\n\n```bash\nls\n```\n\n"
        "<!-- snippet: skip (needs an API key) -->\n```python\nb = 2\n```\n\n"
        "- item\n\n  ```python\n  c = a + 1\n  ```\n\n````python\nd = '```'\n````\n"
    )
    blocks = [b for b in snippets.parse_page(text, "p.md") if b.language == "python"]
    assert [(b.index, b.line, b.skip_reason) for b in blocks] == [
        (0, 4, None),
        (1, 13, "needs an API key"),
        (2, 19, None),
        (3, 23, None),
    ]
    assert blocks[2].source == "c = a + 1\n"
    assert blocks[3].source == "d = '```'\n"


def test_page_runner_shares_a_namespace_and_reports_the_failing_block(tmp_path: Path) -> None:
    # The engine test's runner, on a page that needs no engine: blocks share globals,
    # top-level await works, cwd is a fresh directory, no API key leaks in, and a failure
    # names the page, the block and the line in the .md file.
    snippets = _snippets()
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n```python\nimport os\nx = 41\nopen('made.txt', 'w').write('hi')\n```\n\n"
        "<!-- snippet: skip (shows a failure) -->\n```python\nraise SystemExit(3)\n```\n\n"
        "```python\nimport asyncio\nawait asyncio.sleep(0)\nprint(x + 1, os.listdir('.'))\n"
        "print(sorted(k for k in os.environ if k.startswith('OPENAI_')))\n```\n\n"
        "```python\ny = 1\n\n\nraise ValueError('boom')\n```\n"
    )
    blocks = [b for b in snippets.python_blocks(page) if b.skip_reason is None]
    run = snippets.run_page(page, blocks, tmp_path / "run", timeout=60)
    assert run.returncode == 1
    assert "42 ['made.txt']\n[]\n" in run.stdout
    assert run.failure is not None
    assert f"{snippets.page_id(page)}: block 3 (line 22) failed" in run.failure
    assert f'File "{page}", line 25' in run.failure  # the real line in the page
    assert "ValueError: boom" in run.failure


def test_page_runner_stops_a_page_at_its_timeout(tmp_path: Path) -> None:
    snippets = _snippets()
    page = tmp_path / "slow.md"
    page.write_text("```python\nimport time\n```\n\n```python\ntime.sleep(60)\n```\n")
    run = snippets.run_page(page, snippets.python_blocks(page), tmp_path / "run", timeout=3)
    assert run.returncode is None
    assert run.failure is not None and "timed out after 3s in block 1 (line 6)" in run.failure
