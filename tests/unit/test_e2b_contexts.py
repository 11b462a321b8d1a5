"""E2B's code contexts and JavaScript kernel, as E2B's own tests use them: string results
as text, ESM ``import`` statements, contexts by id, the default contexts listed, and
``run_code``/``create_code_context`` with E2B's parameters.

The cells run in the real kernels, through the local backend (no isolation); node is
needed for the JavaScript ones.
"""

from __future__ import annotations

import inspect
import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from local_backend import LocalBackend

from e2b_tools import (
    AsyncSandbox,
    Context,
    InvalidArgumentError,
    InvalidArgumentException,
    Sandbox,
)

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

# E2B's run_code parameters, in E2B's order (code_interpreter_async.py).
E2B_RUN_CODE = [
    "code",
    "language",
    "context",
    "on_stdout",
    "on_stderr",
    "on_result",
    "on_error",
    "envs",
    "timeout",
    "request_timeout",
]


@pytest.fixture(scope="module")
def js(backend: LocalBackend) -> Iterator[Sandbox]:
    """One sandbox for the JavaScript cells of this module (each test uses its own names)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    sbx = Sandbox.create(backend=backend, timeout=300)
    try:
        yield sbx
    finally:
        sbx.kill()


def run_js(sbx: Sandbox, code: str) -> Any:
    execution = sbx.run_code(code, language="js")
    assert execution.error is None, execution.error
    return execution


def node_kernels_of(sbx: Sandbox) -> int:
    """How many kernel_node.js processes run in ``sbx``'s workspace (asked from Python)."""
    code = (
        "import os\n"
        "n = 0\n"
        "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
        "    try:\n"
        "        argv = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
        "        cwd = os.readlink(f'/proc/{pid}/cwd')\n"
        "    except OSError:\n"
        "        continue\n"
        "    n += b'kernel_node.js' in argv and cwd == os.getcwd()\n"
        "n"
    )
    return int(sbx.run_code(code).text or "-1")


# -- 1. JavaScript results as E2B shows them ----------------------------------------------
def test_a_javascript_string_result_is_its_own_text(js: Sandbox) -> None:
    assert run_js(js, "'Hello'").text == "Hello"
    # E2B's test_js_top_level_await
    assert run_js(js, "\n    await Promise.resolve('Hello World!')\n    ").text == "Hello World!"
    assert run_js(js, '"it\'s"').text == "it's"
    assert run_js(js, "'two\\nlines'").text == "two\nlines"
    assert run_js(js, "''").text == ""
    assert run_js(js, "typeof 1").text == "number"


def test_other_javascript_values_as_util_inspect_shows_them(js: Sandbox) -> None:
    assert run_js(js, "40 + 2").text == "42"
    assert run_js(js, "10n ** 3n").text == "1000n"
    assert run_js(js, "null").text == "null"
    assert run_js(js, "[1, 'a']").text == "[ 1, 'a' ]"  # strings inside values stay quoted
    obj = run_js(js, "({ a: 1, s: 'x' })").results[0]
    assert obj.text == "{ a: 1, s: 'x' }" and obj.json == {"a": 1, "s": "x"}
    assert run_js(js, "undefined").results == []
    shown = run_js(js, "display('shown'); 1").results
    assert [r.text for r in shown] == ["shown", "1"] and not shown[0].is_main_result


def test_a_huge_javascript_string_is_capped_in_the_sandbox(js: Sandbox) -> None:
    text = run_js(js, "'z'.repeat(5 * 2 ** 20)").text or ""
    assert 2**20 <= len(text) < 2**20 + 200
    assert "characters omitted by e2b-tools" in text
    assert text.startswith("zzz") and text.endswith("zzz")


# -- 2. ESM import statements ---------------------------------------------------------------
def test_e2b_esm_import_test_passes(js: Sandbox) -> None:
    # E2B's test_js_esm_imports, as written there (an indented cell).
    execution = run_js(
        js,
        """
    import { readFileSync } from 'fs'
    console.log(typeof readFileSync)
    """,
    )
    assert execution.logs.stdout == ["function\n"]


def test_every_import_form_binds_and_the_names_outlive_the_cell(js: Sandbox) -> None:
    code = (
        'import fs from "fs"\n'
        'import * as pathNs from "node:path"\n'
        'import os, { cpus, EOL as eol } from "os"\n'
        'import "util"\n'
        "[typeof fs.readFileSync, pathNs.sep, typeof cpus, eol === os.EOL]"
    )
    assert run_js(js, code).text == "[ 'function', '/', 'function', true ]"
    assert run_js(js, "typeof fs.statSync + ' ' + typeof pathNs.join").text == ("function function")
    assert run_js(js, "require('fs') === fs").text == "true"  # require still works
    assert run_js(js, "typeof require('node:os').cpus").text == "function"


def test_imports_load_local_files_and_packages_from_the_working_directory(
    js: Sandbox,
) -> None:
    files = {
        "lib/cjs.js": "module.exports = { add: (a, b) => a + b }; module.exports.tag = 'cjs';",
        "lib/esm.mjs": "export const twice = (x) => 2 * x; export default 'esm-default';",
        "lib/data.json": json.dumps({"answer": 42}),
        # A CommonJS package, and one that only has an `import` entry (ESM only).
        "node_modules/cjspkg/package.json": json.dumps({"name": "cjspkg", "main": "main.js"}),
        "node_modules/cjspkg/main.js": "exports.hello = () => 'hi from cjs';",
        "node_modules/esmonly/package.json": json.dumps(
            {"name": "esmonly", "type": "module", "exports": {".": {"import": "./index.js"}}}
        ),
        "node_modules/esmonly/index.js": "export const hello = () => 'hi from esm';",
    }
    for path, text in files.items():
        js.files.write(path, text)
    code = (
        "import { add, tag } from './lib/cjs.js'\n"
        "import label, { twice } from './lib/esm.mjs'\n"
        "import data from './lib/data.json' with { type: 'json' }\n"
        "import { hello as cjsHello } from 'cjspkg'\n"
        "import { hello as esmHello } from 'esmonly'\n"
        "[add(1, 2), tag, label, twice(4), data.answer, cjsHello(), esmHello()].join(',')"
    )
    assert run_js(js, code).text == "3,cjs,esm-default,8,42,hi from cjs,hi from esm"
    unexported = js.run_code("import 'esmonly/private.js'", language="js").error
    assert unexported is not None and "'./private.js' is not defined by \"exports\"" in (
        unexported.value
    )


def test_import_calls_resolve_like_import_statements(js: Sandbox) -> None:
    js.files.write("lib/dyn.mjs", "export const value = 'dynamic';")
    assert run_js(js, "(await import('./lib/dyn.mjs')).value").text == "dynamic"
    # import() inside a function defined now and called in a later cell.
    run_js(js, "async function loadOs() { return import('node:os') }")
    assert run_js(js, "typeof (await loadOs()).cpus").text == "function"


def test_export_before_a_declaration_is_dropped(js: Sandbox) -> None:
    run_js(js, "export const exported = 5\nexport function exportedFn() { return 7 }\nexport {}")
    assert run_js(js, "exported + exportedFn()").text == "12"


def test_importing_a_missing_module_is_a_readable_error(js: Sandbox) -> None:
    execution = js.run_code("import x from 'no-such-package-e2b'\nx", language="js")
    error = execution.error
    assert error is not None
    assert error.name == "Error"
    assert "Cannot find module 'no-such-package-e2b'" in error.value
    assert "npm install no-such-package-e2b" in error.value
    assert "kernel_node" not in error.traceback and "node:internal" not in error.traceback
    missing_file = js.run_code("import './no/such/file.mjs'", language="js").error
    assert missing_file is not None and "no/such/file.mjs" in missing_file.value
    builtin = js.run_code("import { noSuchExport } from 'fs'", language="js").error
    assert builtin is not None and builtin.name == "SyntaxError"
    assert "does not provide an export named 'noSuchExport'" in builtin.value


def test_import_text_inside_strings_and_comments_is_not_rewritten(js: Sandbox) -> None:
    assert run_js(js, "const s1 = \"import fs from 'nope'\"; s1").text == "import fs from 'nope'"
    code = (
        "import { sep } from 'path'\n"
        "// import gone from 'no-such-package-e2b'\n"
        "const s2 = `import x from \"nope\"; import('nope')`\n"
        "s2 + sep"
    )
    assert run_js(js, code).text == "import x from \"nope\"; import('nope')/"


def test_misplaced_imports_and_syntax_errors_point_at_the_cell(js: Sandbox) -> None:
    nested = js.run_code("function f() {\n  import x from 'fs'\n}", language="js").error
    assert nested is not None and nested.name == "SyntaxError"
    assert "Cannot use import statement outside a module" in nested.value
    assert "import x from 'fs'" in nested.traceback and "async" not in nested.traceback
    # Node would only say "outside a module"; the actual mistake is named instead.
    broken = js.run_code("import fs from 'fs'\nconst y = ;", language="js").error
    assert broken is not None and broken.name == "SyntaxError"
    assert "Unexpected token" in broken.value and "<cell-" in broken.traceback
    assert "const y = ;" in broken.traceback
    # Line numbers stay the cell's own after the rewrite.
    thrown = js.run_code("import fs from 'fs'\n\nnull.x", language="js").error
    assert thrown is not None and thrown.name == "TypeError"
    assert ":3:" in thrown.traceback


def test_a_deeply_nested_cell_mentioning_import_still_runs(js: Sandbox) -> None:
    # Deep enough for acorn's recursion to give up where node's parser does not.
    deep = 1200
    code = "const deepLabel = 'import';\n" + "(" * deep + "1" + ")" * deep
    assert run_js(js, code).text == "1"


# TypeScript keeping value imports for later cells: tests/engine/test_languages.py
# (this machine has no typescript package; the image has).


# -- 3. contexts by id -------------------------------------------------------------------
def test_restart_and_remove_take_a_context_id(local_sandbox: Sandbox) -> None:
    ctx = local_sandbox.create_code_context()
    local_sandbox.run_code("kept = 1", context=ctx)
    restarted = local_sandbox.restart_code_context(ctx.id)
    assert restarted.id == ctx.id
    assert local_sandbox.run_code("'kept' in globals()", context=ctx).text == "False"
    local_sandbox.remove_code_context(ctx.id)
    assert ctx.id not in {c.id for c in local_sandbox.list_code_contexts()}
    with pytest.raises(InvalidArgumentError, match="no code context"):
        local_sandbox.remove_code_context(ctx.id)
    with pytest.raises(InvalidArgumentError, match="no code context"):
        local_sandbox.restart_code_context("no-such-context")
    with pytest.raises(InvalidArgumentError, match="Context or its id"):
        local_sandbox.restart_code_context("")


# -- 4. language and context together ----------------------------------------------------
def test_language_and_context_together_is_e2b_invalid_argument(local_sandbox: Sandbox) -> None:
    # E2B's test_pass_context_and_language.
    context = local_sandbox.create_code_context(language="python")
    with pytest.raises(InvalidArgumentException, match="not both"):
        local_sandbox.run_code("console.log('Hello, World!')", language="js", context=context)
    with pytest.raises(InvalidArgumentError):
        local_sandbox.run_code("1", "python", context)  # E2B's positional order
    assert local_sandbox.run_code("1 + 1", context=context).text == "2"
    assert local_sandbox.run_code("1 + 1", None, context).text == "2"


# -- 5. default contexts listed ----------------------------------------------------------
@needs_node
def test_a_new_sandbox_lists_python_and_javascript_without_starting_node(
    local_sandbox: Sandbox,
) -> None:
    contexts = local_sandbox.list_code_contexts()
    # E2B's test_list_contexts.
    assert [c.language for c in contexts][:2] == ["python", "javascript"]
    assert all(c.cwd == contexts[0].cwd for c in contexts)
    assert node_kernels_of(local_sandbox) == 0
    javascript = contexts[1]
    local_sandbox.run_code("var viaLanguage = 3", language="javascript")
    assert node_kernels_of(local_sandbox) == 1
    # The listed context is the language's default one.
    assert local_sandbox.run_code("viaLanguage", context=javascript).text == "3"
    assert [c.id for c in local_sandbox.list_code_contexts()][:2] == [c.id for c in contexts]


@needs_node
def test_the_listed_javascript_context_restarts_and_works_before_first_use(
    local_sandbox: Sandbox,
) -> None:
    javascript = local_sandbox.list_code_contexts()[1]
    assert local_sandbox.restart_code_context(javascript).language == "javascript"
    assert local_sandbox.run_code("typeof process", context=javascript).text == "object"


def test_created_contexts_list_last(local_sandbox: Sandbox) -> None:
    # E2B's test_create_context_with_no_options / with_options.
    local_sandbox.files.make_dir("test")
    made = local_sandbox.create_code_context(language="python", cwd="test")
    last = local_sandbox.list_code_contexts()[-1]
    assert (last.id, last.language, last.cwd) == (made.id, "python", made.cwd)
    assert made.cwd.endswith("/test")
    plain = local_sandbox.create_code_context()
    assert local_sandbox.list_code_contexts()[-1] == plain and plain.language == "python"


# -- 6. create_code_context(cwd, language, request_timeout) --------------------------------
def test_create_code_context_takes_e2b_arguments_in_e2b_order(local_sandbox: Sandbox) -> None:
    local_sandbox.files.make_dir("proj")
    workdir = local_sandbox.list_code_contexts()[0].cwd
    ctx = local_sandbox.create_code_context(f"{workdir}/proj", "python", 5.0)
    assert (ctx.language, ctx.cwd) == ("python", f"{workdir}/proj")
    cwd = local_sandbox.run_code("import os; print(os.getcwd())", context=ctx).logs.stdout
    assert cwd == [f"{workdir}/proj\n"]
    timed = local_sandbox.create_code_context(cwd="proj", language="bash", request_timeout=5)
    assert timed.language == "bash"
    # This package's former order: a language name alone is still the language.
    assert local_sandbox.create_code_context("bash").language == "bash"
    with pytest.raises(InvalidArgumentError):
        local_sandbox.create_code_context(cwd="no/such/dir")


# -- 7. timeout=0 and timeout=None -------------------------------------------------------
@pytest.mark.asyncio
async def test_timeout_none_is_the_default_and_zero_no_limit(backend: LocalBackend) -> None:
    sbx = await AsyncSandbox.create(backend=backend)
    try:
        sent: list[Any] = []
        fold = sbx._channel.fold

        async def spy(op: str, fields: dict[str, Any], timeout: Any, **kw: Any) -> Any:
            sent.append((fields["timeout"], timeout))
            return await fold(op, fields, timeout, **kw)

        sbx._channel.fold = spy  # type: ignore[method-assign]
        assert (await sbx.run_code("1", timeout=None)).text == "1"
        assert (await sbx.run_code("1", timeout=0)).text == "1"
        assert (await sbx.run_code("1", timeout=2.5, request_timeout=1)).text == "1"
        assert (await sbx.run_code("1")).text == "1"
        agent_limits = [agent for agent, _host in sent]
        assert agent_limits == [300.0, None, 2.5, 300.0]
        assert sent[1][1] is None and sent[2][1] > 2.5  # the host waits past the agent
        with pytest.raises(InvalidArgumentError, match=">= 0"):
            await sbx.run_code("1", timeout=-1)
    finally:
        await sbx.kill()


# -- 8. signatures -----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [AsyncSandbox, Sandbox])
def test_signatures_follow_e2b(cls: type) -> None:
    run = inspect.signature(cls.run_code).parameters
    positional = [
        name
        for name, p in run.items()
        if name != "self" and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    ]
    assert positional == E2B_RUN_CODE
    assert run["language"].default is None and run["context"].default is None
    assert run["save_output"].kind is inspect.Parameter.KEYWORD_ONLY
    create = list(inspect.signature(cls.create_code_context).parameters)
    assert create == ["self", "cwd", "language", "request_timeout"]
    for name in ("restart_code_context", "remove_code_context"):
        annotation = str(inspect.signature(getattr(cls, name)).parameters["context"].annotation)
        assert "str" in annotation and "Context" in annotation


def test_context_is_e2b_shaped() -> None:
    ctx = Context(id="python-1", language="python", cwd="/home/user")
    assert (ctx.id, ctx.language, ctx.cwd) == ("python-1", "python", "/home/user")


def test_bash_envs_hold_for_one_call_then_the_sandbox_value_is_back(
    backend: LocalBackend,
) -> None:
    with Sandbox.create(backend=backend, envs={"WIDE": "supertest"}) as sbx:

        def echo(line: str, **envs: str) -> str:
            out = sbx.run_code(line, language="bash", envs=envs or None).logs.stdout
            return "".join(out).strip()

        assert echo("echo $WIDE", WIDE="over") == "over"
        assert echo("echo $WIDE") == "supertest"
        assert echo("echo ${FRESH-unset}", FRESH="a b'c $x") == "a b'c $x"
        assert echo("echo ${FRESH-unset}") == "unset"
