"""The data of a matplotlib figure as E2B's chart (the ``e2b/chart`` result format).

:func:`figure_chart` reads a Figure that is being shown and returns the dict that
E2B's SDK exposes as ``Result.chart``: one Axes gives a ``line``, ``scatter``, ``bar``,
``pie`` or ``box_and_whisker`` chart (``unknown``, with no elements, for anything
else that has data), several give a ``superchart`` of those. A blank figure gives
None, and so does any failure: extraction never raises into the kernel.

Standard library only: matplotlib's classes are taken from ``sys.modules``, where
they are as soon as a Figure exists.

Bounds, so a huge plot costs neither the kernel nor the host: at most
``POINT_LIMIT`` points (box outliers included) and ``ELEMENT_LIMIT`` elements in a
figure's chart, shared fairly between series and subplots, ``AXES_LIMIT`` subplots,
``TICK_LIMIT`` ticks per axis and ``LABEL_LIMIT`` characters per text. A series over
its share is sampled evenly (first and last points kept) and says how long it was in
``total_points``; a chart that lost anything has ``"truncated": true``.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

POINT_LIMIT = 10_000
ELEMENT_LIMIT = 1_000
AXES_LIMIT = 100
TICK_LIMIT = 100
LABEL_LIMIT = 200

# A unit in an axis label: "Time (s)" or "Price [EUR]" (E2B's convention).
_UNIT = re.compile(r"\s\(([^)]*)\)|\[([^\]]*)\]")
_MARKERS_ONLY = ("None", "none", "", " ")
Chart = Dict[str, Any]


def figure_chart(figure: Any) -> Optional[Chart]:
    """E2B's chart dict of ``figure``; None when it is blank or cannot be read."""
    try:
        return _figure(figure)
    except Exception:
        return None


class _Budget:
    """What one chart may still hold, and whether it had to leave anything out."""

    def __init__(self, points: int, elements: int) -> None:
        self.points = points
        self.elements = elements
        self.truncated = False

    def take(self, items: Sequence[Any]) -> Sequence[Any]:
        """The first elements of ``items`` that fit."""
        kept = items[: max(self.elements, 0)]
        self.elements -= len(kept)
        self.truncated |= len(kept) < len(items)
        return kept

    def text(self, value: Any) -> str:
        text = str(value)
        if len(text) > LABEL_LIMIT:
            self.truncated = True
            return text[: LABEL_LIMIT - 1] + "\u2026"
        return text


def _figure(fig: Any) -> Optional[Chart]:
    axes = [ax for ax in fig.get_axes() if ax.get_label() != "<colorbar>"]
    if not any(ax.has_data() for ax in axes):
        return None
    if len(axes) == 1:
        return _axes_chart(axes[0], _Budget(POINT_LIMIT, ELEMENT_LIMIT))
    shown = axes[:AXES_LIMIT]
    budgets = [_Budget(POINT_LIMIT // len(shown), ELEMENT_LIMIT // len(shown)) for _ in shown]
    if hasattr(fig, "get_suptitle"):
        title = fig.get_suptitle()
    else:  # matplotlib before 3.8
        suptitle = getattr(fig, "_suptitle", None)
        title = suptitle.get_text() if suptitle is not None else ""
    chart: Chart = {
        "type": "superchart",
        "title": _Budget(0, 0).text(title) if title else None,
        "elements": [_axes_chart(ax, budget) for ax, budget in zip(shown, budgets)],
    }
    if len(axes) > len(shown):
        chart["truncated"] = True
    return chart


def _axes_chart(ax: Any, budget: _Budget) -> Chart:
    mpl = _Matplotlib()
    lines = [line for line in ax.lines if not _is_reference_line(ax, line)]
    collections, patches = list(ax.collections), list(ax.patches)
    chart: Chart = {"type": "unknown", "elements": []}
    if len(ax.images) or len(ax.tables) or len(ax.artists):
        pass  # an image, a table or another artist: no kind of chart E2B knows
    elif not collections and all(isinstance(p, mpl.PathPatch) for p in patches) and lines:
        boxes = _boxes(ax, patches, lines, budget)
        if boxes is not None:
            chart = boxes
        elif not patches:
            chart = _point_chart(ax, "line", _line_series(lines, budget), budget)
    elif collections and not patches and not lines:
        if all(isinstance(c, mpl.PathCollection) for c in collections):
            series = _scatter_series(collections, budget)
            chart = _point_chart(ax, "scatter", series, budget)
    elif patches and not collections and not lines:
        if all(isinstance(p, mpl.Wedge) for p in patches):
            chart = {"type": "pie", "elements": _wedges(patches, budget)}
        elif all(isinstance(p, mpl.Rectangle) for p in patches):
            bars = [c for c in ax.containers if isinstance(c, mpl.BarContainer)]
            if bars:
                chart = _bars(ax, bars, budget)
    chart = {"type": chart.pop("type"), "title": _title(ax, budget), **chart}
    if budget.truncated:
        chart["truncated"] = True
    return chart


class _Matplotlib:
    """The artist classes the extractor tells apart (loaded with any Axes)."""

    def __init__(self) -> None:
        modules = sys.modules
        self.PathPatch = modules["matplotlib.patches"].PathPatch
        self.Rectangle = modules["matplotlib.patches"].Rectangle
        self.Wedge = modules["matplotlib.patches"].Wedge
        self.PathCollection = modules["matplotlib.collections"].PathCollection
        self.BarContainer = modules["matplotlib.container"].BarContainer


def _is_reference_line(ax: Any, line: Any) -> bool:
    """``axhline``/``axvline`` and the like: drawn in axes, not data, coordinates."""
    return line.get_transform() is not ax.transData


def _title(ax: Any, budget: _Budget) -> Optional[str]:
    title = ax.get_title()
    return budget.text(title) if title else None


def _axis_labels(ax: Any, budget: _Budget, swap: bool = False) -> Chart:
    """E2B's ``x_label``/``y_label`` and the units in them; ``swap`` for horizontal
    bars and boxes, whose categories are on the y axis."""
    labels = [ax.get_xlabel(), ax.get_ylabel()]
    if swap:
        labels.reverse()
    out: Chart = {}
    for name, label in zip("xy", labels):
        match = _UNIT.search(label)
        out[f"{name}_label"] = budget.text(label) if label else None
        out[f"{name}_unit"] = budget.text(match.group(1) or match.group(2)) if match else None
    return out


# --- points: line and scatter charts -------------------------------------------------


def _point_chart(ax: Any, kind: str, series: List[Tuple[str, Any, Any]], budget: _Budget) -> Chart:
    """A line or scatter chart of ``series``: ``(label, xs, ys)``."""
    chart: Chart = {"type": kind, **_axis_labels(ax, budget)}
    dates = {}
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        kind_of_axis = _converter_kind(axis)
        dates[name] = kind_of_axis == "dates"
        locs = axis.get_majorticklocs()
        budget.truncated |= len(locs) > TICK_LIMIT
        locs = list(locs[:TICK_LIMIT])
        labels = axis.get_major_formatter().format_ticks(locs) if locs else []
        chart[f"{name}_ticks"] = [_value(t, dates[name]) for t in locs]
        chart[f"{name}_tick_labels"] = [budget.text(label) for label in labels]
        if kind_of_axis == "dates":
            chart[f"{name}_scale"] = "datetime"
        elif kind_of_axis == "category":
            chart[f"{name}_scale"] = "categorical"
        else:
            chart[f"{name}_scale"] = str(axis.get_scale())
    sizes = [min(len(xs), len(ys)) for _, xs, ys in series]
    elements = []
    for (label, xs, ys), size, share in zip(series, sizes, _shares(sizes, budget.points)):
        points = [
            [_value(xs[i], dates["x"]), _value(ys[i], dates["y"])] for i in _sample(size, share)
        ]
        element: Chart = {"label": budget.text(label), "points": points}
        if len(points) < size:
            element["total_points"] = size
            budget.truncated = True
        elements.append(element)
    budget.points -= sum(len(e["points"]) for e in elements)
    chart["elements"] = elements
    return chart


def _line_series(lines: List[Any], budget: _Budget) -> List[Tuple[str, Any, Any]]:
    series = []
    for line in budget.take(lines):
        label = str(line.get_label())
        if label.startswith("_child") and label[6:].isdigit():
            label = f"Line {label[6:]}"  # matplotlib's name for an unlabelled line
        series.append((label, _array(line.get_xdata()), _array(line.get_ydata())))
    return series


def _scatter_series(collections: List[Any], budget: _Budget) -> List[Tuple[str, Any, Any]]:
    series = []
    for collection in budget.take(collections):
        offsets = _array(collection.get_offsets())
        xs, ys = (offsets[:, 0], offsets[:, 1]) if len(offsets) else ([], [])
        series.append((str(collection.get_label()), xs, ys))
    return series


def _converter_kind(axis: Any) -> str:
    getter = getattr(axis, "get_converter", None)
    converter = getter() if getter is not None else getattr(axis, "converter", None)
    module = type(converter).__module__ if converter is not None else ""
    return {"matplotlib.dates": "dates", "matplotlib.category": "category"}.get(module, "")


def _array(data: Any) -> Any:
    """``data`` indexable by position without copying (NumPy arrays stay as they are)."""
    if isinstance(data, (list, tuple)):
        return data
    numpy = sys.modules.get("numpy")
    return numpy.asarray(data) if numpy is not None else list(data)


def _shares(sizes: List[int], budget: int) -> List[int]:
    """Split ``budget`` between series fairly: short ones whole, long ones equally."""
    shares = [0] * len(sizes)
    left = max(budget, 0)
    order = sorted(range(len(sizes)), key=sizes.__getitem__)
    for done, i in enumerate(order):
        shares[i] = min(sizes[i], left // (len(order) - done))
        left -= shares[i]
    return shares


def _sample(size: int, share: int) -> Sequence[int]:
    """``share`` indices spread evenly over ``range(size)``, both ends included."""
    if share >= size:
        return range(size)
    if share <= 1:
        return range(share)
    step = (size - 1) / (share - 1)
    return [round(k * step) for k in range(share)]


def _value(value: Any, dates: bool) -> Any:
    """A coordinate as JSON: numbers as floats (NaN and infinities as null), dates and
    date numbers as ISO text, anything else as text."""
    if isinstance(value, str):
        return value[:LABEL_LIMIT]
    kind = type(value).__name__
    if kind == "datetime64":
        return str(value.astype("datetime64[s]"))
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)[:LABEL_LIMIT]
    if not math.isfinite(number):
        return None
    if dates:
        try:
            return str(sys.modules["matplotlib.dates"].num2date(number).isoformat())
        except (ValueError, OverflowError):  # past the years a datetime holds
            pass
    return number


def _number(value: Any) -> Optional[float]:
    number = float(value)
    return number if math.isfinite(number) else None


# --- bars, pies and boxes -------------------------------------------------------------


def _namer(axis: Any, budget: _Budget) -> Callable[[float], str]:
    """What names a bar or box at a position on ``axis``: the tick label there, on a
    category axis (named ticks) the nearest one's, else the position itself."""
    locs = list(axis.get_majorticklocs()[:TICK_LIMIT])
    labels = axis.get_major_formatter().format_ticks(locs) if locs else []
    named = _converter_kind(axis) == "category" or (
        type(axis.get_major_locator()).__name__ == "FixedLocator"
        and not all(_is_number(label) for label in labels)
    )
    dates = _converter_kind(axis) == "dates"

    def name(at: float) -> str:
        nearest: Optional[Tuple[float, str]] = None
        for loc, label in zip(locs, labels):
            if math.isclose(loc, at, rel_tol=1e-9, abs_tol=1e-9):
                return budget.text(label)
            if named and (nearest is None or abs(loc - at) < nearest[0]):
                nearest = (abs(loc - at), label)
        if nearest is not None:
            return budget.text(nearest[1])
        value = _value(at, dates)
        return f"{value:.6g}" if isinstance(value, float) else str(value)

    return name


def _is_number(text: str) -> bool:
    try:
        float(text.replace("\u2212", "-"))
    except ValueError:
        return False
    return True


def _bars(ax: Any, containers: List[Any], budget: _Budget) -> Chart:
    horizontal = getattr(containers[0], "orientation", None) == "horizontal"
    chart: Chart = {"type": "bar", **_axis_labels(ax, budget, swap=horizontal)}
    name = _namer(ax.yaxis if horizontal else ax.xaxis, budget)
    elements = []
    for container in containers:
        group = str(container.get_label())
        if group.startswith("_container") and group[10:].isdigit():
            group = f"Group {group[10:]}"  # matplotlib's name for an unlabelled set
        for rect in budget.take(list(container)):
            if horizontal:
                at, value = rect.get_y() + rect.get_height() / 2, rect.get_width()
            else:
                at, value = rect.get_x() + rect.get_width() / 2, rect.get_height()
            elements.append(
                {"label": name(at), "group": budget.text(group), "value": _number(value)}
            )
    chart["elements"] = elements
    return chart


def _wedges(wedges: List[Any], budget: _Budget) -> List[Chart]:
    return [
        {
            "label": budget.text(wedge.get_label()),
            "angle": float(f"{abs(wedge.theta2 - wedge.theta1):.6g}"),
            "radius": float(wedge.r),
        }
        for wedge in budget.take(wedges)
    ]


def _boxes(ax: Any, patches: List[Any], lines: List[Any], budget: _Budget) -> Optional[Chart]:
    """A ``boxplot`` read back from its artists, or None when they are not one.

    Each box (a PathPatch, or a closed line when ``patch_artist`` is off) spans the
    quartiles; a drawn segment across it is the median, one along the value axis
    beyond it a whisker, one across it outside the box a cap; markers beyond the
    whiskers are outliers (markers inside them are means). Anything else: not a box.
    """
    outlines: List[List[Tuple[float, float]]] = []
    parts = []
    examined = 0
    for index, artist in enumerate([*patches, *lines]):
        is_patch = index < len(patches)
        if is_patch:
            xys = _vertices(artist.get_path())
        else:
            xys = zip(artist.get_xdata(), artist.get_ydata())
        examined += len(artist.get_path().vertices) if is_patch else len(artist.get_xdata())
        if examined > POINT_LIMIT:
            return None  # more points than any box plot we would send
        pts = _pairs(xys)
        if pts is None:
            return None
        drawn = is_patch or artist.get_linestyle() not in _MARKERS_ONLY
        if is_patch or (drawn and len(pts) >= 5 and pts[0] == pts[-1] and not patches):
            outlines.append(pts)
        else:
            parts.append((drawn, pts))
    if not outlines or any(len(o) < 4 for o in outlines):
        return None
    for vertical in (True, False):
        elements = _read_boxes(outlines, parts, vertical)
        if elements is not None:
            break
    else:
        return None
    chart: Chart = {"type": "box_and_whisker", **_axis_labels(ax, budget, swap=not vertical)}
    name = _namer(ax.xaxis if vertical else ax.yaxis, budget)
    outliers = [box.pop("outliers") for box in elements]
    shares = _shares([len(o) for o in outliers], budget.points)
    for box, values, share in zip(elements, outliers, shares):
        box["label"] = name(box["label"])
        box["outliers"] = [values[i] for i in _sample(len(values), share)]
        budget.points -= len(box["outliers"])
        budget.truncated |= share < len(values)
    chart["elements"] = list(budget.take(elements))
    return chart


def _vertices(path: Any) -> Any:
    codes = path.codes
    if codes is None:
        return path.vertices
    # A CLOSEPOLY vertex (code 79) is a placeholder, not a point.
    return [xy for xy, code in zip(path.vertices, codes) if code != 79]


def _pairs(points: Any) -> Optional[List[Tuple[float, float]]]:
    try:
        pts = [(float(x), float(y)) for x, y in points]
    except (TypeError, ValueError):
        return None
    return pts if all(math.isfinite(a) and math.isfinite(b) for a, b in pts) else None


def _read_boxes(
    outlines: List[List[Tuple[float, float]]],
    parts: List[Tuple[bool, List[Tuple[float, float]]]],
    vertical: bool,
) -> Optional[List[Chart]]:
    """Boxes with ``p`` the position axis and ``v`` the value axis (x and y if
    ``vertical``); None when some artist does not fit the pattern."""
    boxes: List[Dict[str, Any]] = []
    for pts in outlines:
        ps = [p if vertical else v for p, v in pts]
        vs = [v if vertical else p for p, v in pts]
        span = (min(ps), max(ps))
        boxes.append({"p": span, "v": (min(vs), max(vs)), "along": [], "across": [], "fly": []})
    for drawn, pts in parts:
        pv = [(p, v) if vertical else (v, p) for p, v in pts]
        if not pv:
            continue
        ps, vs = [p for p, _ in pv], [v for _, v in pv]
        box = next((b for b in boxes if _inside(ps, b["p"])), None)
        if box is None:
            return None
        if not drawn:
            box["fly"].extend(vs)
        elif len(pv) == 2 and ps[0] == ps[1]:
            box["along"].append(vs)
        elif len(pv) == 2 and vs[0] == vs[1]:
            box["across"].append(vs[0])
        else:
            return None
    elements = []
    for box in boxes:
        element = _read_box(box)
        if element is None:
            return None
        elements.append(element)
    return elements


def _read_box(box: Dict[str, Any]) -> Optional[Chart]:
    """One box's statistics. The whiskers run from the quartiles outwards (a notched
    box may reach past its quartiles, so they come from the whiskers when drawn); the
    caps sit at the whiskers' ends; the median is a line across between the quartiles
    (the first strictly between them: a cap may sit on a quartile, and means follow)."""
    low, high = box["v"]
    middle = (low + high) / 2
    lower = [vs for vs in box["along"] if max(vs) <= middle]
    upper = [vs for vs in box["along"] if min(vs) >= middle]
    if len(lower) > 1 or len(upper) > 1 or len(lower) + len(upper) != len(box["along"]):
        return None
    q1, q3 = (max(lower[0]) if lower else low), (min(upper[0]) if upper else high)
    least, most = (min(lower[0]) if lower else q1), (max(upper[0]) if upper else q3)
    medians = [v for v in box["across"] if q1 <= v <= q3]
    if not medians:
        return None
    return {
        "label": (box["p"][0] + box["p"][1]) / 2,  # a position until labelled
        "min": least,
        "first_quartile": q1,
        "median": next((m for m in medians if q1 < m < q3), medians[-1]),
        "third_quartile": q3,
        "max": most,
        "outliers": [v for v in box["fly"] if v < least or v > most],
    }


def _inside(values: List[float], span: Tuple[float, float]) -> bool:
    slack = 1e-9 * max(1.0, abs(span[0]), abs(span[1]))
    return all(span[0] - slack <= x <= span[1] + slack for x in values)
