"""E2B's ``Result.chart`` from real matplotlib figures in the default image.

The cells are E2B's own chart examples (``python/tests/charts/`` of
e2b-dev/code-interpreter), and the values asserted are the ones E2B's tests expect.
The host side (parsing, malformed data) is covered engine-free in
``tests/unit/test_charts.py``.
"""

from __future__ import annotations

import datetime
import json

import pytest

from e2b_tools import (
    BarChart,
    BoxAndWhiskerChart,
    Chart,
    ChartType,
    LineChart,
    PieChart,
    Result,
    Sandbox,
    ScaleType,
    ScatterChart,
    SuperChart,
)
from e2b_tools.agent.charts import ELEMENT_LIMIT, POINT_LIMIT


def _shown(sandbox: Sandbox, code: str) -> Result:
    """The one result of ``code``, which shows one figure."""
    execution = sandbox.run_code(code, timeout=120)
    assert execution.error is None, execution.error
    (result,) = execution.results
    assert result.png
    return result


LINE = """
import numpy as np
import matplotlib.pyplot as plt
import datetime

dates = [datetime.date(2023, 9, 1) + datetime.timedelta(seconds=i) for i in range(100)]
x = np.linspace(0, 2*np.pi, 100)
y_sin = np.sin(x)
y_cos = np.cos(x)

plt.figure(figsize=(10, 6))
plt.plot(dates, y_sin, label='sin(x)')
plt.plot(dates, y_cos, label='cos(x)')
plt.xlabel("Time (s)")
plt.ylabel("Amplitude (Hz)")
plt.title('Plot of sin(x) and cos(x)')
plt.show()
"""


def test_line_chart_of_two_lines_over_dates(sandbox: Sandbox) -> None:
    chart = _shown(sandbox, LINE).chart
    assert isinstance(chart, LineChart)
    assert chart.type == ChartType.LINE
    assert chart.title == "Plot of sin(x) and cos(x)"
    assert (chart.x_label, chart.y_label) == ("Time (s)", "Amplitude (Hz)")
    assert (chart.x_unit, chart.y_unit) == ("s", "Hz")
    assert chart.x_scale == "datetime" and chart.y_scale == ScaleType.LINEAR
    assert all(isinstance(x, str) for x in chart.x_ticks)
    datetime.datetime.fromisoformat(str(chart.x_ticks[0]))
    assert all(isinstance(y, float) for y in chart.y_ticks)
    assert all(isinstance(label, str) for label in chart.x_tick_labels + chart.y_tick_labels)
    sin, cos = chart.elements
    assert (sin.label, cos.label) == ("sin(x)", "cos(x)")
    assert len(sin.points) == len(cos.points) == 100 == sin.total_points
    assert all(isinstance(x, str) and isinstance(y, float) for x, y in sin.points)
    assert sin.points[0] == ("2023-09-01", 0.0)
    assert not chart.truncated


def test_log_and_categorical_scales(sandbox: Sandbox) -> None:
    log = _shown(
        sandbox,
        """
        import numpy as np
        import matplotlib.pyplot as plt
        x = np.linspace(0, 100, 100)
        plt.plot(x, np.exp(x), label='y = e^x')
        plt.axhline(1e10)  # a reference line, not data
        plt.yscale('log')
        plt.xlabel('X-axis')
        plt.ylabel('Y-axis (log scale)')
        plt.title('Chart with Log Scale on Y-axis')
        plt.legend()
        plt.grid(True)
        plt.show()
        """,
    ).chart
    assert isinstance(log, LineChart)
    assert (log.x_scale, log.y_scale) == ("linear", "log")
    assert (log.x_unit, log.y_unit) == (None, "log scale")
    (line,) = log.elements
    assert line.label == "y = e^x" and len(line.points) == 100
    assert all(isinstance(x, float) and isinstance(y, float) for x, y in line.points)

    categories = _shown(
        sandbox,
        """
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3, 4, 5], ['A', 'B', 'C', 'D', 'E'])
        plt.show()
        """,
    ).chart
    assert isinstance(categories, LineChart)
    assert (categories.x_scale, categories.y_scale) == ("linear", "categorical")
    assert categories.y_tick_labels == ["A", "B", "C", "D", "E"]
    (line,) = categories.elements
    assert line.label == "Line 0"  # matplotlib's unlabelled line, named as E2B names it
    assert line.points == [(1.0, "A"), (2.0, "B"), (3.0, "C"), (4.0, "D"), (5.0, "E")]


def test_bar_chart(sandbox: Sandbox) -> None:
    chart = _shown(
        sandbox,
        """
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
        """,
    ).chart
    assert isinstance(chart, BarChart)
    assert chart.type == ChartType.BAR and chart.title == "Book Sales by Authors"
    assert (chart.x_label, chart.y_label) == ("Authors", "Number of Books Sold")
    assert chart.x_unit is None and chart.y_unit is None
    assert [bar.value for bar in chart.elements] == [100, 200, 300, 400]
    assert [bar.label for bar in chart.elements] == [f"Author {c}" for c in "ABCD"]
    assert [bar.group for bar in chart.elements] == ["Books Sold"] * 4


def test_horizontal_and_grouped_bars(sandbox: Sandbox) -> None:
    horizontal = _shown(
        sandbox,
        """
        import matplotlib.pyplot as plt
        plt.barh(['a', 'b', 'c'], [3, 1, 2])
        plt.xlabel('Weight [kg]')
        plt.ylabel('Fruit')
        plt.show()
        """,
    ).chart
    assert isinstance(horizontal, BarChart)
    # As in E2B, x is the category axis whichever way the bars go.
    assert (horizontal.x_label, horizontal.y_label, horizontal.y_unit) == (
        "Fruit",
        "Weight [kg]",
        "kg",
    )
    assert [(b.label, b.group, b.value) for b in horizontal.elements] == [
        ("a", "Group 0", 3),
        ("b", "Group 0", 1),
        ("c", "Group 0", 2),
    ]

    grouped = _shown(
        sandbox,
        """
        import numpy as np
        import matplotlib.pyplot as plt
        x = np.arange(2)
        plt.bar(x - 0.2, [1, 2], 0.4, label='2023')
        plt.bar(x + 0.2, [3, 4], 0.4, label='2024')
        plt.xticks(x, ['north', 'south'])
        plt.show()
        """,
    ).chart
    assert isinstance(grouped, BarChart)
    assert [(b.label, b.group, b.value) for b in grouped.elements] == [
        ("north", "2023", 1),
        ("south", "2023", 2),
        ("north", "2024", 3),
        ("south", "2024", 4),
    ]


def test_pie_chart(sandbox: Sandbox) -> None:
    chart = _shown(
        sandbox,
        """
        import matplotlib.pyplot as plt
        categories = ["No", "No, in blue"]
        sizes = [90, 10]
        fig, ax = plt.subplots(figsize=(8, 8))
        plt.xlabel("x")
        plt.ylabel("y")
        ax.pie(sizes, labels=categories, autopct='%1.1f%%', startangle=90,
               colors=plt.cm.Pastel1.colors[:len(categories)])
        ax.axis('equal')
        plt.title('Will I wake up early tomorrow?')
        plt.show()
        """,
    ).chart
    assert isinstance(chart, PieChart)
    assert chart.title == "Will I wake up early tomorrow?"
    assert [(w.label, w.angle, w.radius) for w in chart.elements] == [
        ("No", 324, 1),
        ("No, in blue", 36, 1),
    ]


def test_scatter_chart(sandbox: Sandbox) -> None:
    chart = _shown(
        sandbox,
        """
        import matplotlib.pyplot as plt
        import numpy as np
        N = 5
        plt.xlabel("A")
        plt.ylabel("B")
        plt.scatter(np.random.rand(N), np.random.rand(N), c='blue', label='Dataset 1')
        plt.scatter(np.random.rand(2*N), np.random.rand(2*N), c='red', label='Dataset 2')
        plt.show()
        """,
    ).chart
    assert isinstance(chart, ScatterChart)
    assert chart.title is None and (chart.x_label, chart.y_label) == ("A", "B")
    assert (chart.x_scale, chart.y_scale) == ("linear", "linear")
    assert all(isinstance(t, float) for t in chart.x_ticks + chart.y_ticks)
    first, second = chart.elements
    assert (first.label, len(first.points)) == ("Dataset 1", 5)
    assert (second.label, len(second.points)) == ("Dataset 2", 10)
    assert all(isinstance(p, tuple) and 0 <= p[0] <= 1 for p in first.points)  # type: ignore[operator]


BOXES = """
import matplotlib.pyplot as plt
data = {
    'Class A': [85, 90, 78, 92, 88],
    'Class B': [95, 89, 76, 91, 84, 87],
    'Class C': [75, 82, 88, 79, 86]
}
fig, ax = plt.subplots(figsize=(10, 6))
ax.set_title('Exam Scores Distribution')
ax.set_xlabel('Class')
ax.set_ylabel('Score')
ax.boxplot(data.values(), labels=data.keys(), OPTIONS)
plt.show()
"""


@pytest.mark.parametrize(
    "options",
    [
        "patch_artist=True",  # E2B's example
        "",  # boxes drawn as lines
        "vert=False, showmeans=True",
        "notch=True, showmeans=True, meanline=True",
    ],
)
def test_box_and_whisker_chart(sandbox: Sandbox, options: str) -> None:
    chart = _shown(sandbox, BOXES.replace("OPTIONS", options)).chart
    assert isinstance(chart, BoxAndWhiskerChart)
    assert chart.type == ChartType.BOX_AND_WHISKER
    assert chart.title == "Exam Scores Distribution"
    # As for bars, x is the category axis: with vert=False that is matplotlib's y axis.
    expected = ("Score", "Class") if "vert=False" in options else ("Class", "Score")
    assert (chart.x_label, chart.y_label) == expected
    assert chart.x_unit is None and chart.y_unit is None
    boxes = chart.elements
    assert [box.label for box in boxes] == ["Class A", "Class B", "Class C"]
    assert [box.outliers for box in boxes] == [[], [76], []]
    assert [box.min for box in boxes] == [78, 84, 75]
    assert [box.first_quartile for box in boxes] == [85, 84.75, 79]
    assert [box.median for box in boxes] == [88, 88, 82]
    assert [box.third_quartile for box in boxes] == [90, 90.5, 86]
    assert [box.max for box in boxes] == [92, 95, 88]


def test_two_subplots_give_a_superchart(sandbox: Sandbox) -> None:
    chart = _shown(
        sandbox,
        """
        import matplotlib.pyplot as plt
        import numpy as np
        x1 = np.linspace(0, 10, 100)
        fig, axs = plt.subplots(1, 2, figsize=(10, 8))
        fig.suptitle('Multiple Charts Example', fontsize=16)
        axs[0].plot(x1, np.sin(x1), 'r')
        axs[0].set_title('Sine Wave')
        axs[0].grid(True)
        axs[1].scatter(np.random.rand(5), np.random.rand(5), c='blue', label='Dataset 1')
        axs[1].set_xlabel('X')
        axs[1].set_ylabel('Y')
        axs[1].set_title('Scatter Plot')
        axs[1].grid(True)
        plt.show()
        """,
    ).chart
    assert isinstance(chart, SuperChart)
    assert chart.type == ChartType.SUPERCHART and chart.title == "Multiple Charts Example"
    line, scatter = chart.elements
    assert isinstance(line, LineChart) and line.title == "Sine Wave"
    assert line.x_label is None and line.y_label is None
    assert [len(e.points) for e in line.elements] == [100]
    assert isinstance(scatter, ScatterChart) and scatter.title == "Scatter Plot"
    assert (scatter.x_label, scatter.y_label) == ("X", "Y")
    assert [len(e.points) for e in scatter.elements] == [5]


def test_other_figures_give_an_unknown_chart_or_none(sandbox: Sandbox) -> None:
    image = _shown(
        sandbox,
        """
        import matplotlib.pyplot as plt
        import numpy as np
        plt.imshow(np.random.rand(8, 8))
        plt.colorbar()
        plt.title('Noise')
        plt.show()
        """,
    ).chart
    # E2B's rule: a plot with data of no known kind is an "unknown" chart, no elements.
    assert type(image) is Chart
    assert (image.type, image.title, image.elements) == (ChartType.UNKNOWN, "Noise", [])

    circles = _shown(
        sandbox,
        """
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots()
        ax.add_artist(plt.Circle((0, 0), 1, fill=False))
        ax.add_artist(plt.Circle((0, 0), 2, fill=False))
        plt.title('Two Concentric Circles')
        plt.show()
        """,
    ).chart
    assert circles is not None and circles.type == ChartType.UNKNOWN

    blank = _shown(sandbox, "import matplotlib.pyplot as plt\nplt.subplots()\nplt.show()")
    assert blank.chart is None and blank.formats() == ["text", "png"]


def test_a_huge_plot_gives_a_bounded_chart(sandbox: Sandbox) -> None:
    result = _shown(
        sandbox,
        """
        import numpy as np
        import matplotlib.pyplot as plt
        x = np.arange(10_000_000)
        plt.plot(x, x * 0.5, label='big')
        plt.plot([0, 1], [2, 3], label='small')
        for i in range(1500):
            plt.plot([i], [i])
        plt.show()
        """,
    )
    chart = result.chart
    assert isinstance(chart, LineChart) and chart.truncated
    assert len(chart.elements) == ELEMENT_LIMIT
    big, small = chart.elements[:2]
    assert big.total_points == 10_000_000 and len(big.points) < POINT_LIMIT
    assert big.points[0] == (0.0, 0.0) and big.points[-1] == (9_999_999.0, 4_999_999.5)
    assert small.points == [(0.0, 2.0), (1.0, 3.0)] and small.total_points == 2
    assert sum(len(e.points) for e in chart.elements) == POINT_LIMIT
    assert len(json.dumps(chart.to_dict())) < 1 << 20


def test_a_failed_extraction_leaves_the_chart_out(sandbox: Sandbox) -> None:
    result = _shown(
        sandbox,
        """
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3])
        def broken():
            raise RuntimeError("no data for you")
        plt.gca().has_data = broken
        plt.show()
        """,
    )
    assert result.chart is None and result.formats() == ["text", "png"]


def test_charts_of_displayed_and_trailing_figures_and_to_json(sandbox: Sandbox) -> None:
    execution = sandbox.run_code(
        """
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots()
        ax.scatter([1, 2], [3, 4], label='Dataset')
        display(fig)
        fig2, ax2 = plt.subplots()
        ax2.bar(['a'], [1])
        fig2
        """,
        timeout=120,
    )
    assert execution.error is None, execution.error
    shown, trailing = execution.results
    assert isinstance(shown.chart, ScatterChart) and not shown.is_main_result
    assert isinstance(trailing.chart, BarChart) and trailing.is_main_result
    results = json.loads(execution.to_json())["results"]
    assert [r["chart"]["type"] for r in results] == ["scatter", "bar"]
    assert results[0]["chart"] == shown.chart.to_dict()
