"""Stateful Python through the agent, against real sandboxes."""

from __future__ import annotations

import pytest

from e2b_tools import InvalidArgumentError, Sandbox, SandboxTimeoutError


def test_state_persists_across_calls(sandbox: Sandbox) -> None:
    assert sandbox.run_code("import math\nx = 41").error is None
    execution = sandbox.run_code("x + 1")
    assert execution.text == "42"
    assert execution.results[0].is_main_result
    assert sandbox.run_code("math.sqrt(16)").text == "4.0"


def test_files_written_by_code_persist(sandbox: Sandbox) -> None:
    sandbox.run_code("open('notes.txt', 'w').write('kept')")
    assert sandbox.run_code("open('notes.txt').read()").text == "kept"
    assert sandbox.files.read("notes.txt") == "kept"


def test_stdout_stderr_and_result_order(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        "import sys, os\nprint('one')\nsys.stderr.write('two\\n')\nos.system('echo three')\n7"
    )
    assert "".join(execution.logs.stdout) == "one\nthree\n"
    assert "".join(execution.logs.stderr) == "two\n"
    assert execution.text == "7"


def test_no_result_for_none_or_statement(sandbox: Sandbox) -> None:
    assert sandbox.run_code("y = 3").results == []
    assert sandbox.run_code("None").results == []


def test_exception_comes_back_as_error(sandbox: Sandbox) -> None:
    execution = sandbox.run_code("def f():\n    return 1 / 0\n\nf()")
    assert execution.error is not None
    assert execution.error.name == "ZeroDivisionError"
    assert execution.error.value == "division by zero"
    assert "in f" in execution.error.traceback
    assert "return 1 / 0" in execution.error.traceback
    # The kernel's own frames are not shown to the user.
    assert "kernel_python" not in execution.error.traceback


def test_syntax_error(sandbox: Sandbox) -> None:
    execution = sandbox.run_code("def broken(:\n  pass")
    assert execution.error is not None
    assert execution.error.name == "SyntaxError"


def test_rich_repr_formats(sandbox: Sandbox) -> None:
    sandbox.run_code(
        "class H:\n"
        "    def _repr_html_(self):\n        return '<b>hi</b>'\n"
        "    def __repr__(self):\n        return 'H()'"
    )
    result = sandbox.run_code("H()").results[0]
    assert result.text == "H()"
    assert result.html == "<b>hi</b>"
    assert result.formats() == ["text", "html"]


def test_top_level_await(sandbox: Sandbox) -> None:
    execution = sandbox.run_code("import asyncio\nawait asyncio.sleep(0.01)\n'awaited'")
    assert execution.error is None
    assert execution.text == "awaited"


def test_envs_for_one_call_and_for_the_sandbox(image: str) -> None:
    with Sandbox.create(envs={"GLOBAL_VAR": "g"}) as sbx:
        code = "import os\n(os.environ.get('GLOBAL_VAR'), os.environ.get('CALL_VAR'))"
        assert sbx.run_code(code, envs={"CALL_VAR": "c"}).text == "('g', 'c')"
        assert sbx.run_code(code).text == "('g', None)"
        # The agent's own settings do not leak into user code.
        assert sbx.run_code("[k for k in os.environ if k.startswith('E2B_TOOLS')]").text == "[]"


def test_timeout_interrupts_and_keeps_state(sandbox: Sandbox) -> None:
    sandbox.run_code("kept = 'yes'")
    with pytest.raises(SandboxTimeoutError, match="interrupted with KeyboardInterrupt") as info:
        sandbox.run_code("print('started')\nwhile True: pass", timeout=1)
    assert info.value.execution is not None
    assert info.value.execution.logs.stdout == ["started\n"]
    assert info.value.execution.error is not None
    assert info.value.execution.error.name == "KeyboardInterrupt"
    assert sandbox.run_code("kept").text == "yes"


def test_timeout_restarts_a_context_that_ignores_interrupts(sandbox: Sandbox) -> None:
    sandbox.run_code("lost = 1")
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
    with pytest.raises(SandboxTimeoutError, match="killed and restarted"):
        sandbox.run_code(code, timeout=1)
    execution = sandbox.run_code("'lost' in globals()")
    assert execution.text == "False"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import os\nos._exit(3)", "exited with code 3"),
        ("import ctypes\nctypes.string_at(0)", "SIGSEGV"),
    ],
)
def test_dead_context_is_reported_and_replaced(sandbox: Sandbox, code: str, expected: str) -> None:
    sandbox.run_code("before = 1")
    execution = sandbox.run_code(code)
    assert execution.error is not None
    assert execution.error.name == "ContextDied"
    assert expected in execution.error.value
    assert execution.context_restarted
    after = sandbox.run_code("'before' in globals(), 2 + 2")
    assert after.error is None
    assert after.text == "(False, 4)"


def test_streaming_callbacks(sandbox: Sandbox) -> None:
    seen: list[str] = []
    results: list[str] = []
    errors: list[str] = []
    sandbox.run_code(
        "print('a')\nprint('b')\n3",
        on_stdout=seen.append,
        on_result=lambda r: results.append(r.text or ""),
    )
    sandbox.run_code("raise ValueError('bad')", on_error=lambda e: errors.append(e.name))
    assert "".join(seen) == "a\nb\n"
    assert results == ["3"]
    assert errors == ["ValueError"]


def test_bad_arguments(sandbox: Sandbox) -> None:
    with pytest.raises(InvalidArgumentError, match="available: python"):
        sandbox.run_code("1", language="cobol")
    with pytest.raises(InvalidArgumentError):
        sandbox.run_code("1", timeout=-1)
    assert sandbox.run_code("1", timeout=0).text == "1"  # 0: no limit, as in E2B


def test_huge_code_and_unicode(sandbox: Sandbox) -> None:
    big = "data = [" + ",".join(str(i) for i in range(200_000)) + "]\nlen(data)"
    assert sandbox.run_code(big).text == "200000"
    assert sandbox.run_code("'héllo ✓ 🐍'").text == "héllo ✓ 🐍"


def test_matplotlib_uses_agg_and_saves(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        "import matplotlib\nimport matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3])\nplt.savefig('chart.png')\nmatplotlib.get_backend()",
        timeout=120,
    )
    assert execution.error is None, execution.error
    assert execution.text == "agg" or execution.text == "Agg"
    assert sandbox.files.read("chart.png", format="bytes").startswith(b"\x89PNG")
