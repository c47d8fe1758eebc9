"""Charts as data for the SVG templates (templates/console/_charts.html): no JavaScript, no external library.

Each function returns coordinates in a fixed viewBox; the template draws them and CSS scales the SVG.
Labels are plain strings the template escapes like any other text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 76, 12, 12, 28
SERIES_CLASSES = 6  # .series-0 ... .series-5 in console.css


def _scale_max(values: Sequence[float]) -> float:
    top = max(values, default=0)
    return top if top > 0 else 1


def _grid(top_value: float, fmt: Any) -> list[dict[str, Any]]:
    plot = HEIGHT - TOP - BOTTOM
    return [
        {"y": round(TOP + plot * (1 - fraction), 1), "label": fmt(top_value * fraction)} for fraction in (0, 0.5, 1)
    ]


def _x_labels(labels: Sequence[str], xs: Sequence[float]) -> list[dict[str, Any]]:
    if not labels:
        return []
    step = max(1, len(labels) // 6)
    return [{"x": round(xs[i], 1), "label": labels[i]} for i in range(0, len(labels), step)]


def bar_chart(labels: Sequence[str], values: Sequence[float], fmt: Any = str, title: str = "") -> dict[str, Any]:
    """One bar per label; each bar has a <title> tooltip with its label and value."""
    top = _scale_max(values)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(values), 1)
    bars, centres = [], []
    for index, value in enumerate(values):
        height = plot_h * value / top
        x = LEFT + index * slot + slot * 0.15
        centres.append(x + slot * 0.35)
        bars.append(
            {
                "x": round(x, 1),
                "y": round(TOP + plot_h - height, 1),
                "w": round(slot * 0.7, 1),
                "h": round(max(height, 0.5 if value else 0), 1),
                "title": f"{labels[index]}: {fmt(value)}",
            }
        )
    return {**_frame("bar", title, top, fmt, labels, centres), "bars": bars}


def _frame(kind: str, title: str, top: float, fmt: Any, labels: Sequence[str], xs: Sequence[float]) -> dict[str, Any]:
    """What every chart's template needs besides its marks: size, plot edges, grid and x labels."""
    return {
        "kind": kind,
        "title": title,
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "bottom": HEIGHT - BOTTOM,
        "right": WIDTH - RIGHT,
        "grid": _grid(top, fmt),
        "x_labels": _x_labels(labels, xs),
    }


def line_chart(
    labels: Sequence[str], series: dict[str, Sequence[float]], fmt: Any = str, title: str = ""
) -> dict[str, Any]:
    """One polyline per series over shared x labels, with a legend."""
    top = _scale_max([value for values in series.values() for value in values])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    count = max(len(labels), 1)
    xs = [LEFT + (plot_w * index / (count - 1) if count > 1 else plot_w / 2) for index in range(count)]
    lines = []
    for number, (name, values) in enumerate(series.items()):
        if count == 1 and values:  # one reading: a flat line across the plot, not an invisible dot
            values, xs = [values[0], values[0]], [LEFT, LEFT + plot_w]
        points = " ".join(
            f"{xs[i]:.1f},{TOP + plot_h - plot_h * value / top:.1f}" for i, value in enumerate(values[: len(xs)])
        )
        lines.append(
            {
                "name": name,
                "points": points,
                "path": "M" + points.replace(" ", " L") if points else "",
                "css": f"series-{number % SERIES_CLASSES}",
                "last": fmt(values[-1]) if values else "",
            }
        )
    return {**_frame("line", title, top, fmt, labels, xs), "lines": lines}


def sparkline(values: Sequence[float], width: int = 120, height: int = 28, top: float | None = None) -> str:
    """An SVG path for a small trend line (empty when there are no values)."""
    if not values:
        return ""
    top = top or _scale_max(values)
    step = width / max(len(values) - 1, 1)
    points = [f"{i * step:.1f},{height - 2 - (height - 4) * min(v, top) / top:.1f}" for i, v in enumerate(values)]
    return "M" + " L".join(points)


def human_bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def human_rate(value: float) -> str:
    """Bytes per second as bits per second (how uplinks are sold)."""
    bits = value * 8
    for unit in ("bit/s", "kbit/s", "Mbit/s", "Gbit/s"):
        if abs(bits) < 1000 or unit == "Gbit/s":
            return f"{bits:.0f} {unit}" if unit == "bit/s" else f"{bits:.1f} {unit}"
        bits /= 1000
    return f"{bits:.1f} Gbit/s"


def money(cents: float) -> str:
    return f"{cents / 100:,.2f}"
