"""Chart data of a figure shown as a result: E2B's ``Result.chart`` and its classes.

When code shows a matplotlib figure, the sandbox sends its data along with the PNG
(see ``e2b_tools/agent/charts.py``) and :class:`~e2b_tools.Result` exposes it as
``result.chart``: a :class:`LineChart`, :class:`ScatterChart`, :class:`BarChart`,
:class:`PieChart`, :class:`BoxAndWhiskerChart`, a :class:`SuperChart` of those (one
per subplot), or a plain :class:`Chart` of type ``unknown`` for a plot with data of
another kind. Names, fields and enum values are E2B's (``e2b_code_interpreter.charts``);
``to_dict()`` gives the data as it came.

The data comes from the sandbox, so it is untrusted: :func:`parse_chart` validates it
and gives None for anything malformed, never an exception.

Two additions of ours, since the sandbox bounds what it sends (10,000 points and 1,000
elements per figure): ``Chart.truncated`` is True when something was left out, and
``PointData.total_points`` says how many points a sampled series had.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializeAsAny,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core.core_schema import SerializerFunctionWrapHandler

Coordinate = float | str | None
"""One coordinate of a point: a number, an ISO date or a category (None for NaN)."""


class ChartType(str, Enum):
    """Kind of a chart (E2B's ``ChartType``)."""

    LINE = "line"
    SCATTER = "scatter"
    BAR = "bar"
    PIE = "pie"
    BOX_AND_WHISKER = "box_and_whisker"
    SUPERCHART = "superchart"
    UNKNOWN = "unknown"


class ScaleType(str, Enum):
    """Scale of an axis (E2B's ``ScaleType``); a scale not listed reads as ``UNKNOWN``."""

    LINEAR = "linear"
    DATETIME = "datetime"
    CATEGORICAL = "categorical"
    LOG = "log"
    SYMLOG = "symlog"
    LOGIT = "logit"
    FUNCTION = "function"
    FUNCTIONLOG = "functionlog"
    ASINH = "asinh"
    UNKNOWN = "unknown"


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Chart(_Data):
    """Data extracted from a chart, to rebuild it or reason about it (E2B's ``Chart``).

    Example:
        >>> a = {"label": "a", "angle": 270, "radius": 1}
        >>> b = {"label": "b", "angle": 90, "radius": 1}
        >>> chart = parse_chart({"type": "pie", "title": "Share", "elements": [a, b]})
        >>> chart.type, [(e.label, e.angle) for e in chart.elements]
        (<ChartType.PIE: 'pie'>, [('a', 270.0), ('b', 90.0)])
    """

    type: ChartType
    """Kind of chart."""
    title: str | None = None
    """Title of the plot (a superchart's: the figure's title)."""
    elements: list[Any] = Field(default_factory=list)
    """The chart's data: lines, bars, wedges, boxes, or a superchart's charts."""
    truncated: bool = False
    """True when the sandbox left data out to bound the result (not in E2B)."""

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The chart's data as the sandbox sent it (E2B's ``to_dict``): JSON data."""
        return self._raw or self.model_dump(mode="json")

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> Any:
        return self._raw or handler(self)


class Chart2D(Chart):
    """A chart with two axes (E2B's ``Chart2D``)."""

    x_label: str | None = None
    """Label of the x axis (for horizontal bars and boxes: of the category axis)."""
    y_label: str | None = None
    """Label of the y axis (the value axis)."""
    x_unit: str | None = None
    """Unit named in the x label: ``"s"`` for ``"Time (s)"`` or ``"Time [s]"``."""
    y_unit: str | None = None
    """Unit named in the y label."""


class PointData(_Data):
    """One line or one set of scattered points (E2B's ``PointData``)."""

    label: str
    """Legend label (``"Line 0"``, ... for unlabelled lines)."""
    points: list[tuple[Coordinate, Coordinate]]
    """The ``(x, y)`` points; dates as ISO text."""
    total_points: int
    """Points of the series; more than ``len(points)`` when evenly sampled (not in E2B)."""

    @model_validator(mode="before")
    @classmethod
    def _count(cls, data: Any) -> Any:
        if isinstance(data, dict) and "total_points" not in data:
            points = data.get("points")
            return {**data, "total_points": len(points) if isinstance(points, list) else 0}
        return data


class PointChart(Chart2D):
    """A chart of points on two axes (E2B's ``PointChart``)."""

    x_ticks: list[float | str] = Field(default_factory=list)
    """Positions of the x axis ticks (ISO dates on a datetime axis)."""
    x_tick_labels: list[str] = Field(default_factory=list)
    """Texts of the x axis ticks."""
    x_scale: ScaleType = ScaleType.LINEAR
    """Scale of the x axis."""
    y_ticks: list[float | str] = Field(default_factory=list)
    """Positions of the y axis ticks."""
    y_tick_labels: list[str] = Field(default_factory=list)
    """Texts of the y axis ticks."""
    y_scale: ScaleType = ScaleType.LINEAR
    """Scale of the y axis."""
    elements: list[PointData] = Field(default_factory=list)
    """One entry per line or set of points."""

    @field_validator("x_scale", "y_scale", mode="before")
    @classmethod
    def _scale(cls, value: Any) -> ScaleType:
        try:
            return ScaleType(value)
        except ValueError:
            return ScaleType.UNKNOWN


class LineChart(PointChart):
    """Lines (``plt.plot``)."""

    type: Literal[ChartType.LINE] = ChartType.LINE


class ScatterChart(PointChart):
    """Scattered points (``plt.scatter``)."""

    type: Literal[ChartType.SCATTER] = ChartType.SCATTER


class BarData(_Data):
    """One bar (E2B's ``BarData``)."""

    label: str
    """Its category: the tick label under it."""
    group: str
    """Its set of bars: the label given to ``bar()`` (``"Group 0"``, ... if none)."""
    value: float | None
    """Its height (its width for horizontal bars); None for NaN."""


class BarChart(Chart2D):
    """Bars (``plt.bar``, ``plt.barh``, ``plt.hist``)."""

    type: Literal[ChartType.BAR] = ChartType.BAR
    elements: list[BarData] = Field(default_factory=list)
    """One entry per bar, set by set."""


class PieData(_Data):
    """One wedge of a pie (E2B's ``PieData``)."""

    label: str
    """Its label."""
    angle: float
    """Its angle in degrees (360 for the whole pie)."""
    radius: float
    """Its radius."""


class PieChart(Chart):
    """A pie (``plt.pie``)."""

    type: Literal[ChartType.PIE] = ChartType.PIE
    elements: list[PieData] = Field(default_factory=list)
    """One entry per wedge."""


class BoxAndWhiskerData(_Data):
    """One box of a box plot (E2B's ``BoxAndWhiskerData``)."""

    label: str
    """Its category: the tick label under it."""
    min: float
    """End of the lower whisker."""
    first_quartile: float
    """Bottom of the box."""
    median: float
    """The median line."""
    third_quartile: float
    """Top of the box."""
    max: float
    """End of the upper whisker."""
    outliers: list[float] = Field(default_factory=list)
    """Points beyond the whiskers."""


class BoxAndWhiskerChart(Chart2D):
    """A box plot (``plt.boxplot``)."""

    type: Literal[ChartType.BOX_AND_WHISKER] = ChartType.BOX_AND_WHISKER
    elements: list[BoxAndWhiskerData] = Field(default_factory=list)
    """One entry per box."""


class SuperChart(Chart):
    """A figure of several plots: one chart per subplot (E2B's ``SuperChart``)."""

    type: Literal[ChartType.SUPERCHART] = ChartType.SUPERCHART
    elements: list[SerializeAsAny[Chart]] = Field(default_factory=list)
    """The subplots' charts, in the figure's order."""

    @field_validator("elements", mode="before")
    @classmethod
    def _charts(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [_chart(item, nested=True) if isinstance(item, dict) else item for item in value]


ChartTypes = LineChart | ScatterChart | BarChart | PieChart | BoxAndWhiskerChart | SuperChart
"""The chart classes :func:`parse_chart` returns besides a plain :class:`Chart` (E2B's)."""

_CLASSES: dict[str, type[Chart]] = {
    "line": LineChart,
    "scatter": ScatterChart,
    "bar": BarChart,
    "pie": PieChart,
    "box_and_whisker": BoxAndWhiskerChart,
    "superchart": SuperChart,
    "unknown": Chart,
}


def _chart(data: dict[str, Any], nested: bool = False) -> Chart:
    kind = data.get("type")
    cls = _CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None or (nested and cls is SuperChart):
        raise ValueError(f"not a chart type: {kind!r}")
    chart = cls.model_validate(data)
    chart._raw = data
    return chart


def parse_chart(data: Any) -> Chart | None:
    """The chart in ``data`` (an ``e2b/chart`` dict), or None when it is empty or
    malformed. Never raises: the data comes from the sandbox."""
    if not isinstance(data, dict) or not data:
        return None
    try:
        return _chart(data)
    except Exception:
        return None
