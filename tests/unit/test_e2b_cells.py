"""E2B's documented snippets work as written: cells read as IPython reads them, E2B's
result fields, ``to_json`` shapes and streaming messages (issue 13).

The cells run in the real Python kernel, through the local backend (no isolation).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from local_backend import LocalBackend

from e2b_tools import (
    AsyncSandbox,
    Execution,
    ExecutionError,
    Logs,
    OutputMessage,
    Result,
    Sandbox,
)
from e2b_tools.agent.shell import SHELL_NAME, parse_cell, transform_cell


@pytest.fixture
def backend() -> Iterator[LocalBackend]:
    with LocalBackend() as local:
        yield local


@pytest_asyncio.fixture
async def sbx(backend: LocalBackend) -> AsyncIterator[AsyncSandbox]:
    sandbox = await AsyncSandbox.create(backend=backend)
    try:
        yield sandbox
    finally:
        await sandbox.kill()


# -- cells as IPython reads them -------------------------------------------------------
@pytest.mark.asyncio
async def test_an_indented_cell_is_dedented(sbx: AsyncSandbox) -> None:
    # As E2B's docs write cells: inside an indented triple-quoted string.
    code = """
        x = 1
        if x:
            y = x + 1
        y
    """
    execution = await sbx.run_code(code)
    assert execution.error is None, execution.error
    assert execution.text == "2"


def test_transform_leaves_valid_python_alone() -> None:
    code = 'x = ("a %s"\n     % 1)\nprint("!not a command")\n'
    assert transform_cell(code) == code


def test_parse_cell_parses_a_plain_cell_once_and_leaves_rewrites_to_the_kernel() -> None:
    code, tree = parse_cell("  x = 1\n  x", filename="<cell-7>")
    assert code == "x = 1\nx" and tree is not None
    assert [type(node).__name__ for node in tree.body] == ["Assign", "Expr"]
    rewritten, none = parse_cell("!echo hi\nx = 1")
    assert none is None and rewritten.startswith(f"{SHELL_NAME}.system('echo hi')")
    assert parse_cell("%%bash\necho hi")[1] is None
    assert parse_cell("def f(:\n")[1] is None  # the kernel reports the SyntaxError


@pytest.mark.asyncio
async def test_bang_lines_run_in_a_shell_and_stream_as_stdout(sbx: AsyncSandbox) -> None:
    chunks: list[str] = []
    execution = await sbx.run_code(
        "n = 3\n!echo out {n * 2} $n\n!echo err >&2\nfor i in range(2):\n    !echo loop {i}",
        on_stdout=chunks.append,
    )
    assert execution.error is None, execution.error
    # stderr merged into stdout, as a notebook shows a command's output
    assert execution.logs.stdout == ["out 6 3\n", "err\n", "loop 0\n", "loop 1\n"]
    assert chunks == execution.logs.stdout


@pytest.mark.asyncio
async def test_captured_command_output_and_exit_code(sbx: AsyncSandbox) -> None:
    execution = await sbx.run_code(
        "files = !printf 'a\\nb\\n'\n!false\n(files, files.s, _exit_code)"
    )
    assert execution.error is None, execution.error
    assert execution.text == "(['a', 'b'], 'a b', 1)"
    # What does not resolve reaches the shell as written.
    execution = await sbx.run_code("!echo $HOME_NOT_A_PY_NAME-{x}- && awk 'BEGIN {print 7}'")
    assert execution.logs.stdout == ["-{x}-\n", "7\n"]


@pytest.mark.asyncio
async def test_line_magics(sbx: AsyncSandbox) -> None:
    await sbx.run_code("import os\nos.mkdir('sub')")
    execution = await sbx.run_code("%cd sub")
    assert execution.logs.stdout[0].rstrip().endswith("/sub")
    assert (await sbx.run_code("%pwd")).text == execution.logs.stdout[0].rstrip()
    await sbx.run_code("%cd ..")
    execution = await sbx.run_code("%env GREETING=hello\nv = %env GREETING\nv")
    assert execution.logs.stdout == ["env: GREETING=hello\n"]
    assert execution.text == "hello"
    assert (await sbx.run_code("import os; os.environ['GREETING']")).text == "hello"
    execution = await sbx.run_code("%matplotlib inline\n%time x = sum(range(10))\nx")
    assert execution.text == "45"
    assert "Wall time:" in "".join(execution.logs.stdout)
    execution = await sbx.run_code("%pip --version")
    assert execution.error is None, execution.error
    assert "".join(execution.logs.stdout).startswith("pip ")


@pytest.mark.asyncio
async def test_automagic_in_a_one_line_cell(sbx: AsyncSandbox) -> None:
    execution = await sbx.run_code("pip --version")
    assert execution.error is None, execution.error
    assert "".join(execution.logs.stdout).startswith("pip ")
    # A name the code defined is Python again, as in IPython.
    assert (await sbx.run_code("pip = 5\npip")).text == "5"
    assert (await sbx.run_code("pip - 1")).text == "4"


@pytest.mark.asyncio
async def test_an_unknown_magic_is_a_usage_error(sbx: AsyncSandbox) -> None:
    execution = await sbx.run_code("%no_such_magic 1")
    assert execution.error is not None
    assert execution.error.name == "UsageError"
    assert (
        execution.error.traceback == "UsageError: Line magic function `%no_such_magic` not found."
    )


@pytest.mark.asyncio
async def test_cell_magics(sbx: AsyncSandbox, backend: LocalBackend) -> None:
    execution = await sbx.run_code(
        """
        %%bash
        echo "from $(basename $0)"
        echo oops >&2
        """
    )
    assert execution.error is None, execution.error
    assert execution.logs.stdout == ["from bash\n"]
    assert execution.logs.stderr == ["oops\n"]
    failed = await sbx.run_code("%%sh\nexit 3")
    assert failed.error is not None and failed.error.name == "CalledProcessError"
    execution = await sbx.run_code("%%writefile notes.txt\nline one\n")
    assert execution.logs.stdout == ["Writing notes.txt\n"]
    assert (await sbx.run_code("open('notes.txt').read()")).text == repr("line one\n")[1:-1]
    execution = await sbx.run_code("%%html\n<b>bold</b>")
    assert [r.html for r in execution.results] == ["<b>bold</b>"]


@pytest.mark.asyncio
async def test_existing_behaviour_is_kept(sbx: AsyncSandbox) -> None:
    execution = await sbx.run_code("def f():\n    1 / 0\n\nf()")
    assert execution.error is not None
    assert "e2b_tools" not in execution.error.traceback
    assert 'File "<cell-1>", line 2, in f' in execution.error.traceback
    execution = await sbx.run_code("class H:\n    def _repr_html_(self): return '<i>h</i>'\nH()")
    assert execution.results[0].formats() == ["text", "html"]


# -- display(raw=True) and E2B's result fields ----------------------------------------
@pytest.mark.asyncio
async def test_display_raw_sends_the_bundle_as_a_result(sbx: AsyncSandbox) -> None:
    execution = await sbx.run_code(
        "display({'text/plain': 'J', 'application/json': {'a': [1, 2]}}, raw=True)\n"
        "display({'text/html': '<p/>', 'text/plain': 'h'}, raw=True, exclude=['text/plain'])"
    )
    assert execution.error is None, execution.error
    assert execution.logs.stdout == []
    first, second = execution.results
    assert first.text == "J" and first.json == {"a": [1, 2]} and not first.is_main_result
    assert second.formats() == ["html"]


@pytest.mark.asyncio
async def test_json_and_dataframe_data(sbx: AsyncSandbox) -> None:
    # pandas is not on the test machine: a stand-in with DataFrame's name and module.
    execution = await sbx.run_code(
        """
        class DataFrame:
            __module__ = "pandas.core.frame"
            size = 4
            def to_dict(self, orient):
                return {"a": [1, float("nan")], 2: ["x", None]}
            def _repr_html_(self):
                return "<table></table>"
        class J:
            def _repr_json_(self):
                return {"k": [1, 2]}
        display(J())
        DataFrame()
        """
    )
    assert execution.error is None, execution.error
    as_json, table = execution.results
    assert as_json.json == {"k": [1, 2]}
    assert as_json.formats() == ["text", "json"]
    assert table.data == {"a": [1, None], "2": ["x", None]}
    assert table.formats() == ["text", "html", "data"]
    assert table["data"] == table.data and table.chart is None


def test_result_json_is_e2bs_field() -> None:
    result = Result(json={"a": 1})
    assert result.json == {"a": 1}
    assert result.model_dump(by_alias=True)["json"] == {"a": 1}
    parsed = Result.from_mime_bundle({"application/json": '{"b": 2}'}, False)
    assert parsed.json == {"b": 2}  # JSON sent as text (the JavaScript kernel)


def test_to_json_shapes_match_e2b() -> None:
    execution = Execution(
        results=[
            Result(text="1", is_main_result=True),
            Result(html="<b/>", json={"a": 1}, extra={"x/y": "z"}),
        ],
        logs=Logs(stdout=["out\n"], stderr=["err\n"]),
        error=ExecutionError(name="ValueError", value="bad", traceback="tb"),
    )
    assert json.loads(execution.logs.to_json()) == {"stdout": ["out\n"], "stderr": ["err\n"]}
    assert execution.error is not None
    assert json.loads(execution.error.to_json()) == {
        "name": "ValueError",
        "value": "bad",
        "traceback": "tb",
    }
    data = json.loads(execution.to_json())
    assert data["results"] == [
        {"text": "1"},
        {"html": "<b/>", "json": {"a": 1}, "x/y": "z", "text": None},
    ]
    # As E2B's: logs and error are themselves JSON texts.
    assert json.loads(data["logs"]) == {"stdout": ["out\n"], "stderr": ["err\n"]}
    assert json.loads(data["error"])["name"] == "ValueError"
    assert json.loads(Execution().to_json())["error"] is None


# -- streaming callbacks --------------------------------------------------------------
@pytest.mark.asyncio
async def test_callbacks_get_e2bs_types(sbx: AsyncSandbox) -> None:
    out: list[OutputMessage] = []
    err: list[OutputMessage] = []
    results: list[Result] = []
    errors: list[ExecutionError] = []
    before = time.time_ns()
    await sbx.run_code(
        "import sys\nprint('hello')\nprint('oops', file=sys.stderr)\n7\nraise ValueError('v')",
        on_stdout=out.append,
        on_stderr=err.append,
        on_result=results.append,
        on_error=errors.append,
    )
    (message,) = out
    assert isinstance(message, OutputMessage) and isinstance(message, str)
    assert message == "hello\n" and message.line == "hello\n" and not message.error
    assert isinstance(message.timestamp, int) and before <= message.timestamp <= time.time_ns()
    assert err[0].line == "oops\n" and err[0].error
    assert str(err[0]) == "oops\n"
    assert results == [] and [e.name for e in errors] == ["ValueError"]
    await sbx.run_code("7", on_result=results.append)
    assert isinstance(results[0], Result) and results[0].text == "7"
    # Commands' callbacks still get text.
    chunks: list[str] = []
    await sbx.commands.run("echo hi", on_stdout=chunks.append)
    assert chunks == ["hi\n"]


def test_an_e2b_docs_snippet_runs_unchanged(backend: LocalBackend, tmp_path: Path) -> None:
    # From E2B's docs, with only the import changed (and the local backend).
    with Sandbox.create(backend=backend) as sandbox:
        sandbox.run_code("!echo installing")
        execution = sandbox.run_code(
            """
            import json
            data = {"a": 1}
            print(json.dumps(data))
            data["a"] + 1
            """,
            on_stdout=lambda data: print(data.line, end=""),
        )
        assert execution.text == "2"
        assert execution.logs.stdout == ['{"a": 1}\n']
        assert json.loads(execution.to_json())["results"][0]["text"] == "2"
