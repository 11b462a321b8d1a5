"""E2B's documented snippets against the real image: pandas and matplotlib results,
shell lines and magics as the sandbox user (issue 13)."""

from __future__ import annotations

import json

from e2b_tools import Sandbox


def test_dataframe_gives_e2b_data(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        """
        import pandas as pd
        df = pd.DataFrame({"a": [1, None], "when": pd.to_datetime(["2024-01-02", "2024-03-04"])})
        df
        """,
        timeout=120,
    )
    assert execution.error is None, execution.error
    (result,) = execution.results
    assert result.formats() == ["text", "html", "data"]
    assert result.data == {"a": [1.0, None], "when": ["2024-01-02T00:00:00", "2024-03-04T00:00:00"]}
    assert json.loads(execution.to_json())["results"][0]["data"] == result.data


def test_a_chart_comes_as_png_with_its_chart_data(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        """
        %matplotlib inline
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3])
        plt.show()
        """,
        timeout=120,
    )
    assert execution.error is None, execution.error
    (result,) = execution.results
    assert result.png and result.chart is not None
    assert result.chart.type == "line"  # tests/engine/test_charts_engine.py has more


def test_shell_lines_and_magics_run_as_the_user(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        """
        who = !whoami
        %cd /tmp
        !pwd
        who
        """
    )
    assert execution.error is None, execution.error
    assert execution.logs.stdout == ["/tmp\n", "/tmp\n"]
    assert execution.text == "['user']"
    execution = sandbox.run_code("%pip --version")
    assert "".join(execution.logs.stdout).startswith("pip ")


def test_ipythons_own_display_and_pil_show_give_results(sandbox: Sandbox) -> None:
    """User code imports ``display`` from IPython (outside an IPython shell it would
    only print) and calls PIL's ``Image.show()``; both give results, as in E2B."""
    raw = sandbox.run_code(
        "from IPython.display import display, HTML\n"
        'display({"text/plain": "hi", "text/html": "<b>hi</b>"}, raw=True)\n'
        'display(HTML("<i>there</i>"))',
        timeout=120,
    )
    assert raw.error is None, raw.error
    assert [r.html for r in raw.results] == ["<b>hi</b>", "<i>there</i>"]
    assert raw.logs.stdout == []  # not printed
    image = sandbox.run_code(
        'from PIL import Image\nImage.new("RGB", (8, 8), "red").show()', timeout=120
    )
    assert image.error is None, image.error
    (shown,) = image.results
    assert shown.png_bytes() is not None and shown.png_bytes().startswith(b"\x89PNG")
