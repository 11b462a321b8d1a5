"""Rich results, code contexts and live streaming, against real sandboxes."""

from __future__ import annotations

import base64
import threading
import time

import pytest

from e2b_tools import InvalidArgumentError, Sandbox


def test_plt_show_and_open_figures_come_back_as_png(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3])\nplt.show()\nprint('after show')\n"
        "plt.figure()\nplt.bar([1], [2])\n"
        "'done'",
        timeout=120,
    )
    assert execution.error is None, execution.error
    pngs = [r for r in execution.results if r.png]
    assert len(pngs) == 2  # the shown one, then the one left open
    assert all(r.formats() == ["text", "png", "chart"] for r in pngs)  # chart: E2B's data
    assert base64.b64decode(pngs[0].png or "").startswith(b"\x89PNG")
    assert execution.text == "done"
    assert execution.logs.stdout == ["after show\n"]
    # Shown figures are closed: nothing is shown twice.
    assert sandbox.run_code("len(plt.get_fignums())").text == "0"


def test_a_trailing_figure_is_the_main_result_once(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([3, 1])\nfig",
        timeout=120,
    )
    assert len(execution.results) == 1
    assert execution.results[0].is_main_result
    assert execution.results[0].png_bytes() is not None


def test_dataframe_html_and_display(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})\ndisplay(df, 'note')\ndf.a.sum()"
    )
    first, second, main = execution.results
    assert first.formats() == ["text", "html", "data"] and "<table" in (first.html or "")
    assert first.data == {"a": [1, 2]}
    assert not first.is_main_result
    assert second.text == "note"
    assert main.is_main_result and main.text == "3"


def test_contexts_are_isolated(sandbox: Sandbox) -> None:
    sandbox.files.make_dir("proj")
    a = sandbox.create_code_context()
    b = sandbox.create_code_context(cwd="proj")
    assert a.id != b.id and b.cwd == "/home/user/proj"
    sandbox.run_code("x = 'a'", context=a)
    sandbox.run_code("x = 'b'", context=b)
    sandbox.run_code("x = 'default'")
    assert sandbox.run_code("x", context=a).text == "a"
    assert sandbox.run_code("x", context=b).text == "b"
    assert sandbox.run_code("import os; os.getcwd()", context=b).text == "/home/user/proj"
    assert sandbox.run_code("x").text == "default"
    ids = {c.id for c in sandbox.list_code_contexts()}
    assert {a.id, b.id} <= ids
    sandbox.restart_code_context(a)
    assert sandbox.run_code("'x' in globals()", context=a).text == "False"
    sandbox.remove_code_context(b)
    with pytest.raises(InvalidArgumentError, match="no code context"):
        sandbox.run_code("1", context=b)
    with pytest.raises(InvalidArgumentError, match="available: python"):
        sandbox.create_code_context(language="cobol")


def test_first_chunk_arrives_while_the_code_still_runs(sandbox: Sandbox) -> None:
    arrivals: list[float] = []
    finished: list[float] = []

    def run() -> None:
        sandbox.run_code(
            "import time\nprint('first', flush=True)\ntime.sleep(3)\nprint('last')",
            on_stdout=lambda _chunk: arrivals.append(time.monotonic()),
        )
        finished.append(time.monotonic())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert len(arrivals) == 2 and finished
    # The first chunk came seconds before the call returned, not with the result.
    assert finished[0] - arrivals[0] > 2


def test_tool_returns_shown_charts_as_artifacts(image: str) -> None:
    from e2b_tools.tools import Toolkit

    with Toolkit() as kit:
        out = kit.get("run_code").run(
            code="import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.show()"
        )
        assert [a.mime_type for a in out.artifacts] == ["image/png"]
        assert "returned as an artifact" in out.text
        assert "base64" not in out.text and "<Figure" not in out.text
