"""E2B snippets for code contexts: create, list, restart and remove (by object or by
id), and running code in one."""

# The snippets call E2B's API as documented, parts this package lacks included: running
# them, not the type checker, says what works.
# mypy: disable-error-code="attr-defined, call-arg, arg-type, call-overload, dict-item"

from __future__ import annotations

import pytest

from e2b_tools import InvalidArgumentException, Sandbox

CI = "e2b-dev/code-interpreter:python/tests/sync"
DOCS = "https://e2b.dev/docs/code-interpreting/contexts"


@pytest.mark.e2b(
    feature="contexts: create one",
    call="sandbox.create_code_context()",
    source=f"{CI}/test_kernels.py",
)
def test_create_new_kernel(sbx: Sandbox) -> None:
    sbx.create_code_context()


@pytest.mark.e2b(
    feature="contexts: a new context is listed last",
    call="sandbox.create_code_context(); sandbox.list_code_contexts()[-1]",
    source=f"{CI}/test_contexts.py",
)
def test_create_context_with_no_options(sbx: Sandbox) -> None:
    context = sbx.create_code_context()
    contexts = sbx.list_code_contexts()
    last_context = contexts[-1]
    assert last_context.id == context.id
    assert last_context.language == context.language
    assert last_context.cwd == context.cwd


@pytest.mark.e2b(
    feature="contexts: language and cwd",
    call='sandbox.create_code_context(language="python", cwd="/root")',
    source=f"{CI}/test_contexts.py",
)
def test_create_context_with_options(sbx: Sandbox) -> None:
    context = sbx.create_code_context(language="python", cwd="/root")
    contexts = sbx.list_code_contexts()
    last_context = contexts[-1]
    assert last_context.id == context.id
    assert last_context.language == context.language
    assert last_context.cwd == context.cwd


@pytest.mark.e2b(
    feature="contexts: create with a request timeout, run code in it",
    call="sandbox.create_code_context(cwd=..., language=..., request_timeout=60_000)",
    source=DOCS,
)
def test_docs_create_and_run(sbx: Sandbox) -> None:
    context = sbx.create_code_context(
        cwd="/home/user",
        language="python",
        request_timeout=60_000,
    )
    result = sbx.run_code('print("Hello, world!")', context=context)
    assert result.logs.stdout == ["Hello, world!\n"]


@pytest.mark.e2b(
    feature="contexts: list shows the default python and javascript ones",
    call="sandbox.list_code_contexts()",
    source=f"{CI}/test_contexts.py",
)
def test_list_contexts() -> None:
    # The default contexts are listed before any code ran: a fresh sandbox.
    with Sandbox.create() as sandbox:
        contexts = sandbox.list_code_contexts()
        languages = [context.language for context in contexts]
        assert "python" in languages
        assert "javascript" in languages


@pytest.mark.e2b(
    feature="contexts: remove by id",
    call="sandbox.remove_code_context(context.id)",
    source=f"{CI}/test_contexts.py",
)
def test_remove_context_by_id(sbx: Sandbox) -> None:
    context = sbx.create_code_context()
    sbx.remove_code_context(context.id)
    contexts = sbx.list_code_contexts()
    assert context.id not in [ctx.id for ctx in contexts]


@pytest.mark.e2b(
    feature="contexts: remove by object",
    call="sandbox.remove_code_context(context)",
    source=DOCS,
)
def test_remove_context_by_object(sbx: Sandbox) -> None:
    context = sbx.create_code_context()
    sbx.remove_code_context(context)
    assert context.id not in [ctx.id for ctx in sbx.list_code_contexts()]


@pytest.mark.e2b(
    feature="contexts: restart by id clears state",
    call="sandbox.restart_code_context(context.id)",
    source=f"{CI}/test_contexts.py",
)
def test_restart_context_by_id(sbx: Sandbox) -> None:
    context = sbx.create_code_context()
    sbx.run_code("x = 1", context=context)
    sbx.restart_code_context(context.id)
    execution = sbx.run_code("x", context=context)
    assert execution.error is not None
    assert execution.error.name == "NameError"
    assert execution.error.value == "name 'x' is not defined"


@pytest.mark.e2b(
    feature="contexts: restart by object clears state",
    call="sandbox.restart_code_context(context)",
    source=DOCS,
)
def test_restart_context_by_object(sbx: Sandbox) -> None:
    context = sbx.create_code_context()
    sbx.run_code("x = 1", context=context)
    sbx.restart_code_context(context)
    execution = sbx.run_code("x", context=context)
    assert execution.error is not None
    assert execution.error.name == "NameError"


@pytest.mark.e2b(
    feature="contexts: contexts do not share variables",
    call="sandbox.run_code('x', context=context)",
    source=f"{CI}/test_kernels.py",
)
def test_independence_of_kernels(sbx: Sandbox) -> None:
    context = sbx.create_code_context()
    sbx.run_code("x = 1")
    r = sbx.run_code("x", context=context)
    assert r.error is not None
    assert r.error.value == "name 'x' is not defined"


@pytest.mark.e2b(
    feature="contexts: context and language together are refused",
    call="sandbox.run_code(code, language='js', context=python_context)",
    source=f"{CI}/test_kernels.py",
)
def test_pass_context_and_language(sbx: Sandbox) -> None:
    context = sbx.create_code_context(language="python")
    with pytest.raises(InvalidArgumentException):
        sbx.run_code("console.log('Hello, World!')", language="js", context=context)
