"""JavaScript and TypeScript contexts, against real sandboxes."""

from __future__ import annotations

import pytest

from e2b_tools import InvalidArgumentError, Sandbox, SandboxTimeoutError


def test_javascript_state_results_and_console(sandbox: Sandbox) -> None:
    assert sandbox.run_code("let n = 40; const add = (a, b) => a + b;", language="js").text is None
    execution = sandbox.run_code("console.log('hi'); add(n, 2)", language="javascript")
    assert execution.text == "42"
    assert execution.logs.stdout == ["hi\n"]
    assert sandbox.run_code("({a: 1, b: [1, 2]})", language="js").results[0].formats() == [
        "text",
        "json",
    ]
    assert sandbox.run_code("'str'", language="js").text == "str"  # as in E2B


def test_javascript_top_level_await_keeps_declarations(sandbox: Sandbox) -> None:
    code = (
        "const v = await new Promise((r) => setTimeout(() => r(5), 10));\n"
        "function twice() { return v * 2 }\n"
        "twice()"
    )
    assert sandbox.run_code(code, language="js").text == "10"
    assert sandbox.run_code("twice() + v", language="js").text == "15"


def test_javascript_errors_and_timeouts(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        "function f() { throw new TypeError('bad input') }\nf()", language="js"
    )
    assert execution.error is not None
    assert (execution.error.name, execution.error.value) == ("TypeError", "bad input")
    assert "at f (<cell-" in execution.error.traceback
    assert (
        "node:" not in execution.error.traceback and "kernel_node" not in execution.error.traceback
    )
    sandbox.run_code("var kept = 'yes'", language="js")
    with pytest.raises(SandboxTimeoutError, match="interrupted"):
        sandbox.run_code("while (true) {}", language="js", timeout=1)
    assert sandbox.run_code("kept", language="js").text == "yes"


def test_typescript_is_transpiled_in_the_sandbox(sandbox: Sandbox) -> None:
    code = (
        "interface Point { x: number; y: number }\n"
        "enum Color { Red, Green, Blue }\n"
        "const p: Point = { x: 3, y: 4 };\n"
        "function norm(q: Point): number { return Math.hypot(q.x, q.y) }\n"
        "norm(p) + Color.Blue"
    )
    assert sandbox.run_code(code, language="ts").text == "7"
    assert sandbox.run_code("norm({ x: 6, y: 8 })", language="typescript").text == "10"


def test_languages_have_separate_state(sandbox: Sandbox) -> None:
    sandbox.run_code("shared = 'python'")
    sandbox.run_code("var shared = 'js'", language="js")
    assert sandbox.run_code("shared").text == "python"
    assert sandbox.run_code("shared", language="js").text == "js"
    ctx = sandbox.create_code_context(language="js")
    assert sandbox.run_code("typeof shared", context=ctx).text == "undefined"


def test_unknown_language_lists_the_available_ones(sandbox: Sandbox) -> None:
    with pytest.raises(
        InvalidArgumentError, match="available: python, bash, javascript, typescript, c, cpp"
    ):
        sandbox.run_code("1", language="cobol")


def test_bash_is_stateful(sandbox: Sandbox) -> None:
    sandbox.files.make_dir("work")
    setup = 'cd work && export GREETING=hello && greet() { echo "$GREETING $1"; }'
    assert sandbox.run_code(setup, language="bash").error is None
    execution = sandbox.run_code("pwd; greet world", language="sh")
    assert "".join(execution.logs.stdout) == "/home/user/work\nhello world\n"
    # Per-call variables do not stick; stdin cannot swallow the next request.
    assert sandbox.run_code(
        "echo ${ONCE:-unset}", language="bash", envs={"ONCE": "1"}
    ).logs.stdout == ["1\n"]
    assert sandbox.run_code("read line; echo ${ONCE:-unset}", language="bash").logs.stdout == [
        "unset\n"
    ]


def test_bash_errors_and_interrupts(sandbox: Sandbox) -> None:
    failed = sandbox.run_code("ls /nope", language="bash")
    assert failed.error is not None and failed.error.name == "NonZeroExit"
    assert "code 2" in failed.error.value
    assert "No such file" in "".join(failed.logs.stderr)
    sandbox.run_code("KEEP=me", language="bash")
    with pytest.raises(SandboxTimeoutError, match="variables were kept"):
        sandbox.run_code("sleep 60", language="bash", timeout=1)
    assert sandbox.run_code("echo $KEEP", language="bash").logs.stdout == ["me\n"]


def test_c_and_cpp_are_built_and_run_per_call(sandbox: Sandbox) -> None:
    c = sandbox.run_code(
        '#include <stdio.h>\n#include <math.h>\nint main(void) { printf("%.0f\\n", sqrt(1764)); }',
        language="c",
    )
    assert c.error is None and c.logs.stdout == ["42\n"]
    cpp = sandbox.run_code(
        "#include <iostream>\n#include <vector>\n"
        "int main() { std::vector<int> v{1, 2, 3}; std::cout << v.size() << '\\n'; return 3; }",
        language="c++",
    )
    assert cpp.logs.stdout == ["3\n"]
    assert cpp.error is not None and cpp.error.value == "the program exited with code 3"
    broken = sandbox.run_code("int main(void) { return oops; }", language="c")
    assert broken.error is not None and broken.error.name == "CompileError"
    assert "oops" in "".join(broken.logs.stderr)
    with pytest.raises(SandboxTimeoutError, match="c program was killed"):
        sandbox.run_code("int main(void) { for (;;); }", language="c", timeout=2)
    with pytest.raises(InvalidArgumentError, match="stateless"):
        sandbox.create_code_context(language="c")


def test_programs_can_be_executed_from_the_workspace(sandbox: Sandbox) -> None:
    sandbox.files.write("hello.sh", "#!/bin/sh\necho executable\n")
    assert sandbox.commands.run("chmod +x hello.sh && ./hello.sh").stdout == "executable\n"


def test_typescript_keeps_value_imports_for_later_cells(sandbox: Sandbox) -> None:
    run = sandbox.run_code("import fs from 'fs'\nimport type { Stats } from 'fs'", language="ts")
    assert run.error is None, run.error
    later = sandbox.run_code("const f: string = typeof fs.readFileSync; f", language="ts")
    assert later.text == "function"
