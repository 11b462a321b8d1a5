"""E2B snippets for ``run_code``: results, logs, errors, rich outputs, streaming
callbacks, languages and per-execution environment variables."""

# The snippets call E2B's API as documented, parts this package lacks included: running
# them, not the type checker, says what works.
# mypy: disable-error-code="attr-defined, call-arg, arg-type, call-overload, dict-item"

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator

import pytest

from e2b_tools import OutputMessage, Result, Sandbox, TimeoutException

CI = "e2b-dev/code-interpreter:python/tests"
DOCS = "https://e2b.dev/docs"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.e2b(
    feature="run_code: state across calls",
    call='sandbox.run_code("x+=1; x").text',
    source="e2b-dev/code-interpreter:python/README.md",
)
def test_readme_first_sandbox() -> None:
    with Sandbox.create() as sandbox:
        sandbox.run_code("x = 1")
        execution = sandbox.run_code("x+=1; x")
        assert execution.text == "2"


@pytest.mark.e2b(
    feature="run_code: text of the last expression",
    call='sandbox.run_code("x =1; x").text',
    source=f"{CI}/sync/test_basic.py",
)
def test_basic(sbx: Sandbox) -> None:
    result = sbx.run_code("x =1; x")
    assert result.text == "1"


@pytest.mark.e2b(
    feature="run_code: statefulness",
    call='sandbox.run_code("test_stateful+=1; test_stateful")',
    source=f"{CI}/sync/test_statefulness.py",
)
def test_stateful(sbx: Sandbox) -> None:
    sbx.run_code("test_stateful = 1")
    result = sbx.run_code("test_stateful+=1; test_stateful")
    assert result.text == "2"


@pytest.mark.e2b(
    feature="run_code: IPython shell escape",
    call='sandbox.run_code("!pwd").logs.stdout',
    source=f"{CI}/sync/test_bash.py",
)
def test_bang_pwd(sbx: Sandbox) -> None:
    result = sbx.run_code("!pwd")
    assert "".join(result.logs.stdout).strip() == "/home/user"


@pytest.mark.e2b(
    feature="run_code: print output in logs",
    call="sbx.run_code('print(\"Hello, world!\")').logs",
    source=f"{DOCS}/code-interpreting/supported-languages/python",
)
def test_python_hello(sbx: Sandbox) -> None:
    execution = sbx.run_code('print("Hello, world!")')
    assert execution.logs.stdout == ["Hello, world!\n"]
    assert execution.logs.stderr == []
    assert execution.error is None


@pytest.mark.e2b(
    feature="run_code: error name, value and traceback",
    call="execution.error.name / .value / .traceback",
    source=f"{DOCS}/code-interpreting/analyze-data-with-ai",
)
def test_error_fields(sbx: Sandbox) -> None:
    execution = sbx.run_code("1 / 0")
    assert execution.error is not None
    assert execution.error.name == "ZeroDivisionError"
    assert execution.error.value == "division by zero"
    assert "ZeroDivisionError" in execution.error.traceback


@pytest.mark.e2b(
    feature="streaming: on_result callback",
    call="sandbox.run_code(code, on_result=...)",
    source=f"{CI}/sync/test_callbacks.py",
)
def test_on_result_callback(sbx: Sandbox) -> None:
    results = []
    execution = sbx.run_code("x = 1;x", on_result=lambda result: results.append(result))
    assert len(results) == 1
    assert execution.results[0].text == "1"


@pytest.mark.e2b(
    feature="streaming: on_error callback",
    call="sandbox.run_code(code, on_error=...)",
    source=f"{CI}/sync/test_callbacks.py",
)
def test_on_error_callback(sbx: Sandbox) -> None:
    errors = []
    execution = sbx.run_code("xyz", on_error=lambda error: errors.append(error))
    assert len(errors) == 1
    assert execution.error is not None
    assert execution.error.name == "NameError"


@pytest.mark.e2b(
    feature="streaming: on_stdout callback",
    call="sandbox.run_code(code, on_stdout=...)",
    source=f"{CI}/sync/test_callbacks.py",
)
def test_on_stdout_callback(sbx: Sandbox) -> None:
    stdout = []
    execution = sbx.run_code("print('Hello from e2b')", on_stdout=lambda out: stdout.append(out))
    assert len(stdout) == 1
    assert execution.logs.stdout == ["Hello from e2b\n"]


@pytest.mark.e2b(
    feature="streaming: on_stderr callback",
    call="sandbox.run_code(code, on_stderr=...)",
    source=f"{CI}/sync/test_callbacks.py",
)
def test_on_stderr_callback(sbx: Sandbox) -> None:
    stderr = []
    execution = sbx.run_code(
        'import sys;print("This is an error message", file=sys.stderr)',
        on_stderr=lambda err: stderr.append(err),
    )
    assert len(stderr) == 1
    assert execution.logs.stderr == ["This is an error message\n"]


@pytest.mark.e2b(
    feature="streaming: OutputMessage.line",
    call="sandbox.run_code('print(1)', on_stdout=f); out[0].line",
    source=f"{CI}/sync/test_streaming.py",
)
def test_streaming_output_line(sbx: Sandbox) -> None:
    out: list[OutputMessage] = []

    def test(line: OutputMessage) -> None:
        out.append(line)

    sbx.run_code("print(1)", on_stdout=test)
    assert len(out) == 1
    assert out[0].line == "1\n"


@pytest.mark.e2b(
    feature="streaming: stderr OutputMessage.line",
    call="sandbox.run_code(code, on_stderr=out.append)",
    source=f"{CI}/sync/test_streaming.py",
)
def test_streaming_error_line(sbx: Sandbox) -> None:
    out: list[OutputMessage] = []
    sbx.run_code("import sys;print(1, file=sys.stderr)", on_stderr=out.append)
    assert len(out) == 1
    assert out[0].line == "1\n"


@pytest.mark.e2b(
    feature="streaming: results of a chart and a value",
    call="sandbox.run_code(code, on_result=out.append)",
    source=f"{CI}/sync/test_streaming.py",
)
def test_streaming_results(sbx: Sandbox) -> None:
    code = """
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.linspace(0, 20, 100)
    y = np.sin(x)

    plt.plot(x, y)
    plt.show()

    x
    """
    out: list[Result] = []
    sbx.run_code(code, on_result=out.append)
    assert len(out) == 2


@pytest.mark.e2b(
    feature="streaming: stdout and stderr in order, with error flags",
    call="sandbox.run_code(code, on_error=..., on_stdout=..., on_stderr=...)",
    source=f"{DOCS}/code-interpreting/streaming",
)
def test_docs_streaming_stdout_stderr(sbx: Sandbox) -> None:
    # The documented code sleeps 3 s between prints; 0.2 s keeps the suite quick.
    code_to_run = """
  import time
  import sys
  print("This goes first to stdout")
  time.sleep(0.2)
  print("This goes later to stderr", file=sys.stderr)
  time.sleep(0.2)
  print("This goes last")
"""
    seen: list[tuple[str, object]] = []
    sbx.run_code(
        code_to_run,
        on_error=lambda error: seen.append(("error", error)),
        on_stdout=lambda data: seen.append(("stdout", data)),
        on_stderr=lambda data: seen.append(("stderr", data)),
    )
    assert [(kind, msg.line, msg.error) for kind, msg in seen] == [
        ("stdout", "This goes first to stdout\n", False),
        ("stderr", "This goes later to stderr\n", True),
        ("stdout", "This goes last\n", False),
    ]
    assert all(msg.timestamp > 0 for _, msg in seen)


@pytest.mark.e2b(
    feature="streaming: on_result gets a bar chart",
    call="sandbox.run_code(code_to_run, on_result=...)",
    source=f"{DOCS}/code-interpreting/streaming",
)
def test_docs_streaming_result_chart(sbx: Sandbox) -> None:
    code_to_run = """
import matplotlib.pyplot as plt

categories = ['Category A', 'Category B', 'Category C', 'Category D']
values = [10, 20, 15, 25]

plt.figure(figsize=(10, 6))
plt.bar(categories, values, color='green')
plt.xlabel('Categories')
plt.ylabel('Values')
plt.title('Values by Category')

plt.show()
"""
    results: list[Result] = []
    sbx.run_code(code_to_run, on_result=lambda result: results.append(result))
    assert len(results) == 1
    assert results[0].png


@pytest.mark.e2b(
    feature="charts: static chart as base64 PNG",
    call="execution.results[0].png",
    source=f"{DOCS}/code-interpreting/create-charts-visualizations/static-charts",
)
def test_static_chart_png(sbx: Sandbox) -> None:
    code_to_run = """
import matplotlib.pyplot as plt

plt.plot([1, 2, 3, 4])
plt.ylabel('some numbers')
plt.show()
"""
    execution = sbx.run_code(code_to_run)
    first_result = execution.results[0]
    assert first_result.png
    assert base64.b64decode(first_result.png).startswith(PNG_MAGIC)


@pytest.mark.e2b(
    feature="charts: plt.show() gives png and text, nothing extra",
    call="result.results[0].png / .text / .extra",
    source=f"{CI}/sync/test_display_data.py",
)
def test_display_data(sbx: Sandbox) -> None:
    result = sbx.run_code(
        """
        import matplotlib.pyplot as plt
        import numpy as np

        x = np.linspace(0, 20, 100)
        y = np.sin(x)

        plt.plot(x, y)
        plt.show()
        """
    )
    data = result.results[0]
    assert data.png
    assert data.text
    assert not data.extra


@pytest.mark.e2b(
    feature="charts: interactive chart data (type, title, elements)",
    call="execution.results[0].chart",
    source=f"{DOCS}/code-interpreting/create-charts-visualizations/interactive-charts",
)
def test_interactive_bar_chart(sbx: Sandbox) -> None:
    code = """
import matplotlib.pyplot as plt

authors = ['Author A', 'Author B', 'Author C', 'Author D']
sales = [100, 200, 300, 400]

plt.figure(figsize=(10, 6))
plt.bar(authors, sales, label='Books Sold', color='blue')
plt.xlabel('Authors')
plt.ylabel('Number of Books Sold')
plt.title('Book Sales by Authors')

plt.tight_layout()
plt.show()
"""
    execution = sbx.run_code(code)
    chart = execution.results[0].chart
    assert chart is not None
    assert chart.type == "bar"
    assert chart.title == "Book Sales by Authors"
    assert chart.x_label == "Authors"
    assert chart.y_label == "Number of Books Sold"
    assert [e.value for e in chart.elements] == [100, 200, 300, 400]


@pytest.mark.e2b(
    feature="charts: chart type in Execution.to_json()",
    call="result.to_json()",
    source=f"{CI}/charts/test_json.py",
)
def test_to_json_chart(sbx: Sandbox) -> None:
    code = """
import matplotlib.pyplot as plt
import numpy as np

N = 5
x = np.random.rand(N)
y = np.random.rand(N)

plt.xlabel("A")

plt.scatter(x, y, c='blue', label='Dataset')

plt.show()
"""
    result = sbx.run_code(code)
    serialized = result.to_json()
    assert isinstance(serialized, str)
    assert json.loads(serialized)["results"][0]["chart"]["type"] == "scatter"


@pytest.mark.e2b(
    feature="rich results: pandas DataFrame data",
    call="result.results[0].data",
    source=f"{CI}/sync/test_data.py",
)
def test_dataframe_data(sbx: Sandbox) -> None:
    result = sbx.run_code(
        """
        import pandas as pd
        pd.DataFrame({"a": [1, 2, 3]})
        """
    )
    data = result.results[0]
    assert data.data
    assert "a" in data.data
    assert len(data.data["a"]) == 3


@pytest.mark.e2b(
    feature="rich results: display(..., raw=True) with a custom MIME bundle",
    call="execution.results[0].formats()",
    source=f"{CI}/sync/test_custom_repr_object.py",
)
def test_custom_repr_latex(sbx: Sandbox) -> None:
    code = """
from IPython.display import display

display({'text/latex': r'\\text{CustomReprObject}'}, raw=True)
"""
    execution = sbx.run_code(code)
    assert execution.results, f"no result; stdout: {execution.logs.stdout}"
    assert execution.results[0].formats() == ["latex"]


@pytest.mark.e2b(
    feature="rich results: PIL image.show() as PNG",
    call="execution.results[0].png",
    source=f"{CI}/images/test_images.py",
)
def test_pil_image_show(sbx: Sandbox) -> None:
    code = """
    import numpy
    from PIL import Image

    imarray = numpy.random.rand(16,16,3) * 255
    image = Image.fromarray(imarray.astype('uint8')).convert('RGBA')

    image.show()
    print("Image shown.")
    """
    execution = sbx.run_code(code)
    assert execution.results, "image.show() gave no result"
    image = execution.results[0].png
    assert image


@pytest.mark.e2b(
    feature="rich results: PIL image as the last expression",
    call="execution.results[0].png",
    source=f"{CI}/images/test_images.py",
)
def test_pil_image_last_expression(sbx: Sandbox) -> None:
    code = """
    import numpy
    from PIL import Image

    imarray = numpy.random.rand(16,16,3) * 255
    image = Image.fromarray(imarray.astype('uint8')).convert('RGBA')

    image
    """
    execution = sbx.run_code(code)
    image = execution.results[0].png
    assert image


@pytest.mark.e2b(
    feature="run_code: execution_count",
    call="sandbox.run_code(...).execution_count",
    source=f"{CI}/sync/test_execution_count.py",
)
def test_execution_count() -> None:
    # Counts per context from the sandbox's start, so this one needs a fresh sandbox.
    with Sandbox.create() as sandbox:
        sandbox.run_code("echo 'E2B is awesome!'")
        result = sandbox.run_code("!pwd")
        assert result.execution_count == 2


@pytest.mark.e2b(
    feature="run_code: timeout raises, the next call still runs",
    call="sandbox.run_code(code, timeout=3)",
    source=f"{CI}/sync/test_interrupt.py",
)
def test_timeout_then_next_call(sbx: Sandbox) -> None:
    with pytest.raises(TimeoutException):
        sbx.run_code("import time; time.sleep(300)", timeout=3)
    result = sbx.run_code("1 + 1", timeout=10)
    assert result.text == "2"


@pytest.mark.e2b(
    feature="run_code: sandbox killed during an execution",
    call="sandbox.run_code(...) while sandbox.kill() runs",
    source=f"{CI}/sync/test_killed.py",
)
def test_killed_during_execution() -> None:
    with Sandbox.create() as sandbox:
        timer = threading.Timer(2.0, sandbox.kill)
        timer.start()
        try:
            with pytest.raises(TimeoutException):
                sandbox.run_code("import time; time.sleep(300)", timeout=300)
        finally:
            timer.cancel()


# -- languages ---------------------------------------------------------------------


@pytest.mark.e2b(
    feature="languages: Python cwd",
    call='sandbox.run_code("from pathlib import Path; print(Path.cwd())")',
    source=f"{CI}/sync/test_cwd.py",
)
def test_cwd_python(sbx: Sandbox) -> None:
    result = sbx.run_code("from pathlib import Path; print(Path.cwd())")
    assert "".join(result.logs.stdout).strip() == "/home/user"


@pytest.mark.e2b(
    feature="languages: JavaScript string result",
    call='sandbox.run_code("process.cwd()", language="js").text',
    source=f"{CI}/sync/test_cwd.py",
)
def test_cwd_javascript(sbx: Sandbox) -> None:
    result = sbx.run_code("process.cwd()", language="js")
    assert result.text == "/home/user"


@pytest.mark.e2b(
    feature="languages: TypeScript string result",
    call='sandbox.run_code("process.cwd()", language="ts").text',
    source=f"{CI}/sync/test_cwd.py",
)
def test_cwd_typescript(sbx: Sandbox) -> None:
    result = sbx.run_code("process.cwd()", language="ts")
    assert result.text == "/home/user"


@pytest.mark.e2b(
    feature="languages: bash cwd",
    call='sandbox.run_code("pwd", language="bash")',
    source=f"{CI}/sync/test_cwd.py",
)
def test_cwd_bash(sbx: Sandbox) -> None:
    result = sbx.run_code("pwd", language="bash")
    assert "".join(result.logs.stdout).strip() == "/home/user"


@pytest.mark.e2b(
    feature="languages: JavaScript console.log",
    call='sandbox.run_code("console.log(\'Hello, World!\')", language="js")',
    source=f"{CI}/sync/test_default_kernels.py",
)
def test_js_kernel(sbx: Sandbox) -> None:
    execution = sbx.run_code("console.log('Hello, World!')", language="js")
    assert execution.logs.stdout == ["Hello, World!\n"]


@pytest.mark.e2b(
    feature="languages: JavaScript ES module imports",
    call='sandbox.run_code("import { readFileSync } from \'fs\' ...", language="js")',
    source=f"{CI}/sync/test_default_kernels.py",
)
def test_js_esm_imports(sbx: Sandbox) -> None:
    execution = sbx.run_code(
        """
    import { readFileSync } from 'fs'
    console.log(typeof readFileSync)
    """,
        language="js",
    )
    assert execution.logs.stdout == ["function\n"]


@pytest.mark.e2b(
    feature="languages: JavaScript top-level await",
    call='sandbox.run_code("await Promise.resolve(\'Hello World!\')", language="js").text',
    source=f"{CI}/sync/test_default_kernels.py",
)
def test_js_top_level_await(sbx: Sandbox) -> None:
    execution = sbx.run_code(
        """
    await Promise.resolve('Hello World!')
    """,
        language="js",
    )
    assert execution.text == "Hello World!"


@pytest.mark.e2b(
    feature="languages: TypeScript",
    call='sandbox.run_code("const message: string = ...", language="ts")',
    source=f"{CI}/sync/test_default_kernels.py",
)
def test_ts_kernel(sbx: Sandbox) -> None:
    execution = sbx.run_code(
        "const message: string = 'Hello, World!'; console.log(message)", language="ts"
    )
    assert execution.logs.stdout == ["Hello, World!\n"]


@pytest.mark.e2b(
    feature="languages: bash",
    call='sbx.run_code("echo \'Hello, world!\'", language="bash")',
    source=f"{DOCS}/code-interpreting/supported-languages/bash",
)
def test_bash_language(sbx: Sandbox) -> None:
    execution = sbx.run_code("echo 'Hello, world!'", language="bash")
    assert execution.logs.stdout == ["Hello, world!\n"]


@pytest.mark.e2b(
    feature="languages: TypeScript with an npm package from the internet",
    call='sbx.commands.run("npm install axios"); sbx.run_code(..., language="ts")',
    source=f"{DOCS}/code-interpreting/supported-languages/javascript",
)
@pytest.mark.xfail(
    strict=True,
    run=False,
    reason="offline by default: needs the public internet (the npm registry, "
    "api.github.com); this suite never leaves the host",
)
def test_ts_axios_from_internet(sbx: Sandbox) -> None:
    sbx.commands.run("npm install axios")
    execution = sbx.run_code(
        """
  import axios from "axios";

  const url: string = "https://api.github.com/status";
  const response = await axios.get(url);
  response.data;
""",
        language="ts",
    )
    assert execution.results


# -- environment variables per execution ----------------------------------------------


@pytest.mark.e2b(
    feature="envs: per execution (Python)",
    call="sandbox.run_code(code, envs={'FOO': 'bar'}, language='python')",
    source=f"{CI}/sync/env_vars/test_python.py",
)
def test_env_per_execution_python(sbx: Sandbox) -> None:
    result = sbx.run_code("import os; os.getenv('FOO')", envs={"FOO": "bar"}, language="python")
    result_empty = sbx.run_code("import os; os.getenv('FOO', 'default')", language="python")
    assert result.text is not None
    assert result.text.strip() == "bar"
    assert result_empty.text is not None
    assert result_empty.text.strip() == "default"


@pytest.mark.e2b(
    feature="envs: per execution (JavaScript)",
    call="sandbox.run_code('process.env.FOO', envs={'FOO': 'bar'}, language='javascript')",
    source=f"{CI}/sync/env_vars/test_js.py",
)
def test_env_per_execution_js(sbx: Sandbox) -> None:
    result = sbx.run_code("process.env.FOO", envs={"FOO": "bar"}, language="javascript")
    result_empty = sbx.run_code("process.env.FOO || 'default'", language="javascript")
    assert result.text is not None
    assert result.text.strip() == "bar"
    assert result_empty.text is not None
    assert result_empty.text.strip() == "default"


@pytest.mark.e2b(
    feature="envs: per execution (bash)",
    call="sandbox.run_code('echo $FOO', envs={'FOO': 'bar'}, language='bash')",
    source=f"{CI}/sync/env_vars/test_bash.py",
)
def test_env_per_execution_bash(sbx: Sandbox) -> None:
    result = sbx.run_code("echo $FOO", envs={"FOO": "bar"}, language="bash")
    result_empty = sbx.run_code("echo ${FOO:-default}", language="bash")
    assert result.logs.stdout[0] == "bar\n"
    assert result_empty.logs.stdout[0] == "default\n"


@pytest.mark.e2b(
    feature="envs: per execution, printed",
    call="sandbox.run_code(code, envs={'MY_VAR': 'my_value'})",
    source=f"{DOCS}/sandbox/environment-variables",
)
def test_docs_env_run_code(sbx: Sandbox) -> None:
    result = sbx.run_code('import os; print(os.environ.get("MY_VAR"))', envs={"MY_VAR": "my_value"})
    assert result.logs.stdout == ["my_value\n"]


@pytest.fixture(scope="module")
def env_sandbox() -> Iterator[Sandbox]:
    """E2B's ``Sandbox.create(template=template, envs={"TEST_ENV_VAR": "supertest"})``
    (``template`` is their test template; the default image here)."""
    sandbox = Sandbox.create(envs={"TEST_ENV_VAR": "supertest"})
    try:
        yield sandbox
    finally:
        sandbox.kill()


@pytest.mark.e2b(
    feature="envs: sandbox-wide (Python)",
    call="Sandbox.create(envs={'TEST_ENV_VAR': 'supertest'}); run_code(...)",
    source=f"{CI}/sync/env_vars/test_python.py",
)
def test_env_on_sandbox_python(env_sandbox: Sandbox) -> None:
    result = env_sandbox.run_code("import os; os.getenv('TEST_ENV_VAR')", language="python")
    assert result.text is not None
    assert result.text.strip() == "supertest"


@pytest.mark.e2b(
    feature="envs: sandbox-wide (JavaScript)",
    call="Sandbox.create(envs=...); run_code('process.env.TEST_ENV_VAR', language='javascript')",
    source=f"{CI}/sync/env_vars/test_js.py",
)
def test_env_on_sandbox_js(env_sandbox: Sandbox) -> None:
    result = env_sandbox.run_code("process.env.TEST_ENV_VAR", language="javascript")
    assert result.text is not None
    assert result.text.strip() == "supertest"


@pytest.mark.e2b(
    feature="envs: sandbox-wide (bash)",
    call="Sandbox.create(envs=...); run_code('echo $TEST_ENV_VAR', language='bash')",
    source=f"{CI}/sync/env_vars/test_bash.py",
)
def test_env_on_sandbox_bash(env_sandbox: Sandbox) -> None:
    result = env_sandbox.run_code("echo $TEST_ENV_VAR", language="bash")
    assert result.logs.stdout[0] == "supertest\n"


@pytest.mark.e2b(
    feature="envs: per execution overrides sandbox-wide (Python)",
    call="sandbox.run_code(code, language='python', envs={'TEST_ENV_VAR': 'overwrite'})",
    source=f"{CI}/sync/env_vars/test_python.py",
)
def test_env_overwrite_python(env_sandbox: Sandbox) -> None:
    result = env_sandbox.run_code(
        "import os; os.getenv('TEST_ENV_VAR')",
        language="python",
        envs={"TEST_ENV_VAR": "overwrite"},
    )
    result_global_default = env_sandbox.run_code(
        "import os; os.getenv('TEST_ENV_VAR')", language="python"
    )
    assert result.text is not None
    assert result.text.strip() == "overwrite"
    assert result_global_default.text is not None
    assert result_global_default.text.strip() == "supertest"


@pytest.mark.e2b(
    feature="envs: per execution overrides sandbox-wide (bash)",
    call="sandbox.run_code('echo $TEST_ENV_VAR', language='bash', envs={...})",
    source=f"{CI}/sync/env_vars/test_bash.py",
)
def test_env_overwrite_bash(env_sandbox: Sandbox) -> None:
    result = env_sandbox.run_code(
        "echo $TEST_ENV_VAR", language="bash", envs={"TEST_ENV_VAR": "overwrite"}
    )
    result_global_default = env_sandbox.run_code("echo $TEST_ENV_VAR", language="bash")
    assert result.logs.stdout[0] == "overwrite\n"
    assert result_global_default.logs.stdout[0] == "supertest\n"


# -- packages -----------------------------------------------------------------------


@pytest.mark.e2b(
    feature="packages: pip install at run time",
    call='sbx.commands.run("pip install cowsay"); sbx.run_code("import cowsay ...")',
    source=f"{DOCS}/quickstart/install-custom-packages",
)
@pytest.mark.xfail(
    strict=True,
    run=False,
    reason="offline by default: needs the package index; create the sandbox with a "
    "network policy that allows your index (docs/network.md)",
)
def test_pip_install_at_run_time(sbx: Sandbox) -> None:
    sbx.commands.run("pip install cowsay")
    execution = sbx.run_code(
        """
  import cowsay
  cowsay.cow("Hello, world!")
"""
    )
    assert "Hello, world!" in "".join(execution.logs.stdout)


@pytest.mark.e2b(
    feature="packages: npm install at run time",
    call='sbx.commands.run("npm install cowsay"); sbx.run_code(..., language="javascript")',
    source=f"{DOCS}/quickstart/install-custom-packages",
)
@pytest.mark.xfail(
    strict=True,
    run=False,
    reason="offline by default: needs the npm registry; create the sandbox with a "
    "network policy that allows it (docs/network.md)",
)
def test_npm_install_at_run_time(sbx: Sandbox) -> None:
    sbx.commands.run("npm install cowsay")
    execution = sbx.run_code(
        """
  import { say } from 'cowsay'
  console.log(say('Hello, world!'))
""",
        language="javascript",
    )
    assert "Hello, world!" in "".join(execution.logs.stdout)


@pytest.mark.e2b(
    feature="packages: apt-get install at run time",
    call='sbx.commands.run("apt-get update && apt-get install -y curl git")',
    source=f"{DOCS}/quickstart/install-custom-packages",
)
@pytest.mark.xfail(
    strict=True,
    run=False,
    reason="hardened by default: needs root and the internet, while code runs as an "
    "unprivileged user on a read-only root filesystem, offline; put system packages in "
    "a custom image (docs/images.md)",
)
def test_apt_get_at_run_time(sbx: Sandbox) -> None:
    sbx.commands.run("apt-get update && apt-get install -y curl git")
