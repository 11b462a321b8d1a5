"""E2B's ``Result.chart`` on the host: chart dicts as E2B's JSON has them become typed
charts, and malformed ones (the sandbox is untrusted) become ``chart=None``.

matplotlib is not installed where these engine-free tests run, so real figures are in
``tests/engine/test_charts_engine.py``; here the agent's side is its figure-free
helpers, and the local backend carries chart dicts the kernel is made to send.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from e2b_tools import (
    BarChart,
    BarData,
    BoxAndWhiskerChart,
    Chart,
    ChartType,
    Execution,
    LineChart,
    PieChart,
    PointData,
    Result,
    Sandbox,
    ScaleType,
    ScatterChart,
    SuperChart,
)
from e2b_tools._charts import parse_chart
from e2b_tools.agent import charts as agent_charts

LINE: dict[str, Any] = {
    "type": "line",
    "title": "Plot of sin(x) and cos(x)",
    "x_label": "Time (s)",
    "x_unit": "s",
    "y_label": "Amplitude (Hz)",
    "y_unit": "Hz",
    "x_ticks": ["2023-09-01T00:00:00+00:00"],
    "x_tick_labels": ["2023-09-01"],
    "x_scale": "datetime",
    "y_ticks": [-1.0, 0.0, 1.0],
    "y_tick_labels": ["\u22121", "0", "1"],
    "y_scale": "linear",
    "elements": [
        {"label": "sin(x)", "points": [["2023-09-01", 0.0], ["2023-09-01", 0.06]]},
        {"label": "cos(x)", "points": [["2023-09-01", 1.0]], "total_points": 100},
    ],
}
BAR = {
    "type": "bar",
    "title": "Book Sales by Authors",
    "x_label": "Authors",
    "y_label": "Number of Books Sold",
    "x_unit": None,
    "y_unit": None,
    "elements": [
        {"label": "Author A", "group": "Books Sold", "value": 100.0},
        {"label": "Author B", "group": "Books Sold", "value": None},
    ],
}
PIE = {
    "type": "pie",
    "title": "Will I wake up early tomorrow?",
    "elements": [
        {"label": "No", "angle": 324.0, "radius": 1.0},
        {"label": "No, in blue", "angle": 36.0, "radius": 1.0},
    ],
}
BOX = {
    "type": "box_and_whisker",
    "title": "Exam Scores Distribution",
    "x_label": "Class",
    "y_label": "Score",
    "elements": [
        {
            "label": "Class B",
            "min": 84.0,
            "first_quartile": 84.75,
            "median": 88.0,
            "third_quartile": 90.5,
            "max": 95.0,
            "outliers": [76.0],
        }
    ],
}
SCATTER = {
    "type": "scatter",
    "title": None,
    "x_label": "A",
    "y_label": "B",
    "x_scale": "linear",
    "y_scale": "asinh",
    "elements": [{"label": "Dataset 1", "points": [[0.5, 0.25], [None, 1.0]]}],
    "truncated": True,
}
SUPER = {
    "type": "superchart",
    "title": "Multiple Charts Example",
    "elements": [LINE, SCATTER, {"type": "unknown", "title": "img", "elements": []}],
}


def test_each_kind_of_chart_becomes_its_e2b_class() -> None:
    line = parse_chart(LINE)
    assert isinstance(line, LineChart) and line.type == ChartType.LINE == "line"
    assert (line.x_unit, line.y_unit, line.x_scale) == ("s", "Hz", ScaleType.DATETIME)
    sin, cos = line.elements
    assert isinstance(sin, PointData) and sin.points == [("2023-09-01", 0.0), ("2023-09-01", 0.06)]
    assert (sin.total_points, cos.total_points) == (2, 100)
    assert not line.truncated

    bar = parse_chart(BAR)
    assert isinstance(bar, BarChart)
    assert bar.elements == [
        BarData(label="Author A", group="Books Sold", value=100),
        BarData(label="Author B", group="Books Sold", value=None),
    ]

    pie = parse_chart(PIE)
    assert isinstance(pie, PieChart) and [w.angle for w in pie.elements] == [324, 36]

    box = parse_chart(BOX)
    assert isinstance(box, BoxAndWhiskerChart)
    (b,) = box.elements
    assert (b.min, b.first_quartile, b.median, b.third_quartile, b.max) == (84, 84.75, 88, 90.5, 95)
    assert b.outliers == [76]

    scatter = parse_chart(SCATTER)
    assert isinstance(scatter, ScatterChart) and scatter.truncated
    assert scatter.y_scale == ScaleType.ASINH and scatter.elements[0].points[1] == (None, 1.0)

    superchart = parse_chart(SUPER)
    assert isinstance(superchart, SuperChart) and superchart.title == "Multiple Charts Example"
    assert [type(c) for c in superchart.elements] == [LineChart, ScatterChart, Chart]
    assert superchart.elements[2].type == ChartType.UNKNOWN


def test_to_dict_and_dumps_give_the_data_as_sent() -> None:
    sent = {**SUPER, "a_key_of_a_later_version": [1]}
    chart = parse_chart(sent)
    assert chart is not None and chart.to_dict() == sent
    result = Result.from_mime_bundle({"text/plain": "<Figure>", "e2b/chart": sent}, False)
    assert result.formats() == ["text", "chart"] and result["chart"] is result.chart
    assert result.model_dump(mode="json")["chart"] == sent
    assert json.loads(Execution(results=[result]).to_json())["results"][0]["chart"] == sent
    made = PieChart(title="made here")
    assert made.to_dict() == {
        "type": "pie",
        "title": "made here",
        "elements": [],
        "truncated": False,
    }


def test_an_unknown_scale_reads_as_unknown() -> None:
    chart = parse_chart({**LINE, "x_scale": "my-custom-scale", "y_scale": 3})
    assert isinstance(chart, LineChart)
    assert (chart.x_scale, chart.y_scale) == (ScaleType.UNKNOWN, ScaleType.UNKNOWN)


MALFORMED: list[Any] = [
    None,
    {},
    [],
    "line",
    {"title": "no type"},
    {"type": "radar", "elements": []},
    {"type": None},
    {"type": "line", "elements": "not a list"},
    {"type": "line", "elements": [{"label": "a", "points": [[1, 2, 3]]}]},
    {"type": "line", "elements": [{"label": "a", "points": [[1, {"x": 1}]]}]},
    {"type": "line", "elements": [{"points": [[1, 2]]}]},
    {"type": "line", "x_ticks": [[1]]},
    {"type": "bar", "elements": [{"label": 1, "group": "g", "value": 1}]},
    {"type": "bar", "elements": [{"label": "a", "group": "g", "value": "lots"}]},
    {"type": "pie", "elements": [{"label": "a", "angle": 90}]},
    {"type": "box_and_whisker", "elements": [{"label": "a", "min": 1}]},
    {"type": "box_and_whisker", "elements": [{**BOX["elements"][0], "outliers": ["x"]}]},  # type: ignore[index]
    {"type": "superchart", "elements": [SUPER]},  # no superchart in a superchart
    {"type": "superchart", "elements": [{"type": "line", "elements": 5}]},
    {"type": "superchart", "elements": "charts"},
    {"type": "unknown", "title": ["a"]},
    {"type": "pie", "truncated": "maybe"},
]


@pytest.mark.parametrize("data", MALFORMED, ids=lambda d: json.dumps(d)[:60])
def test_malformed_chart_data_gives_no_chart(data: Any) -> None:
    assert parse_chart(data) is None
    result = Result.from_mime_bundle({"text/plain": "<Figure>", "e2b/chart": data}, False)
    assert result.chart is None
    assert Result(chart=data).chart is None
    json.loads(Execution(results=[result]).to_json())


def test_a_deeply_nested_chart_gives_no_chart() -> None:
    deep: dict[str, Any] = {"type": "line"}
    for _ in range(100_000):
        deep = {"type": "superchart", "elements": [deep]}
    assert parse_chart(deep) is None


def test_charts_cross_the_channel(local_sandbox: Sandbox) -> None:
    """The kernel's chart dicts reach ``Result.chart`` (display(raw=True) sends a bundle
    as the kernel sends a figure's), and a malformed one costs the chart only."""
    execution = local_sandbox.run_code(
        f"""
        bar = {json.dumps(BAR).replace("null", "None")}
        display({{"text/plain": "<Figure>", "image/png": "iVBORw0K", "e2b/chart": bar}}, raw=True)
        bad = {{"type": "bar", "elements": 7}}
        display({{"text/plain": "<Figure>", "e2b/chart": bad}}, raw=True)
        display({{"text/plain": "<Figure>", "e2b/chart": "[1, 2"}}, raw=True)
        """
    )
    assert execution.error is None, execution.error
    good, bad, broken = execution.results
    assert isinstance(good.chart, BarChart) and good.formats() == ["text", "png", "chart"]
    assert good.chart.to_dict() == BAR
    assert bad.chart is None and bad.formats() == ["text"]
    assert broken.chart is None and broken.text == "<Figure>"


# --- the agent's extractor, without matplotlib -----------------------------------------


def test_the_extractor_never_raises() -> None:
    class Weird:
        def get_axes(self) -> list[Any]:
            raise RuntimeError("hostile figure")

    for figure in (None, object(), Weird(), "figure"):
        assert agent_charts.figure_chart(figure) is None


@pytest.mark.parametrize(
    ("sizes", "budget", "expected"),
    [
        ([5, 10], 100, [5, 10]),
        ([10_000_000, 2], 10_000, [9_998, 2]),
        ([7, 7, 7], 10, [3, 3, 4]),
        ([1, 1], 0, [0, 0]),
        ([], 10, []),
    ],
)
def test_points_are_shared_fairly(sizes: list[int], budget: int, expected: list[int]) -> None:
    assert agent_charts._shares(sizes, budget) == expected


def test_a_sample_spans_the_series() -> None:
    assert list(agent_charts._sample(5, 10)) == [0, 1, 2, 3, 4]
    assert list(agent_charts._sample(10_000_000, 3)) == [0, 5_000_000, 9_999_999]
    picked = list(agent_charts._sample(10_000_000, agent_charts.POINT_LIMIT))
    assert len(picked) == agent_charts.POINT_LIMIT == len(set(picked))
    assert picked[0] == 0 and picked[-1] == 9_999_999 and picked == sorted(picked)
    assert list(agent_charts._sample(4, 1)) == [0] and list(agent_charts._sample(4, 0)) == []


def test_coordinates_become_json() -> None:
    import datetime

    value = agent_charts._value
    assert value(1, False) == 1.0 and isinstance(value(1, False), float)
    assert value(float("nan"), False) is None and value(float("inf"), False) is None
    assert value(datetime.date(2023, 9, 1), False) == "2023-09-01"
    assert value("x" * 10_000, False) == "x" * agent_charts.LABEL_LIMIT
    assert value(object, False).startswith("<class")


@pytest.mark.parametrize(
    ("label", "unit"),
    [
        ("Time (s)", "s"),
        ("Price [EUR]", "EUR"),
        ("Y-axis (log scale)", "log scale"),
        ("Authors", None),
        ("f(x)", None),  # no space before the parenthesis: not a unit
    ],
)
def test_units_come_from_labels(label: str, unit: str | None) -> None:
    match = agent_charts._UNIT.search(label)
    assert (match.group(1) or match.group(2) if match else None) == unit
