"""Charts of the Queues page, drawn on the server as SVG from the per-minute series (jobs/stats.py).

The last hour per minute and the last 24 hours per 15 minutes: photos done and failed, queued depth, and
the median wait of each queue. No JavaScript; each bar and point has a tooltip (an SVG <title>).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from redis import Redis

from jobs import stats
from jobs.enqueue import QUEUE_NAMES

WIDTH, HEIGHT = 640, 170
LEFT, RIGHT, TOP, BOTTOM = 48, 10, 24, 22  # margins for the axis labels
COLORS = {"done": "#417690", "failed": "#ba2121", "high": "#417690", "default": "#e0a500", "low": "#79aec8"}


@dataclass
class Window:
    title: str
    step_label: str
    done_failed: SafeString
    queued: SafeString
    wait: SafeString


def windows(connection: Redis, now: float | None = None) -> list[Window]:
    hour = stats.series(connection, 60, step=1, now=now)
    day = stats.series(connection, 24 * 60, step=15, now=now)
    return [_window("Last hour", "per minute", hour), _window("Last 24 hours", "per 15 minutes", day)]


def _window(title: str, step_label: str, points: list[stats.Point]) -> Window:
    times = [timezone.localtime(point.start) for point in points]
    return Window(
        title=title,
        step_label=step_label,
        done_failed=bars(
            f"Photos done and failed, {step_label}",
            times,
            {"done": [p.done for p in points], "failed": [p.failed for p in points]},
        ),
        queued=lines(
            "Queued jobs (deepest in each step)", times, {q: [p.depth.get(q) for p in points] for q in QUEUE_NAMES}
        ),
        wait=lines(
            "Median wait before a worker takes a job",
            times,
            {q: [p.median_wait.get(q) for p in points] for q in QUEUE_NAMES},
            unit="s",
        ),
    )


def _frame(title: str, times: list[datetime], top: float, unit: str, names: list[str]) -> list[str]:
    """The chart's box, title, legend, y scale (0 and top) and a few time labels."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<text x="{LEFT}" y="14" class="chart-title">{escape(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{_number(top)}{unit}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    x = WIDTH - RIGHT
    for name in reversed(names):  # the legend, right-aligned above the plot
        x -= 8 + 7 * len(name)
        parts.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{COLORS.get(name, "#666")}"/>')
        parts.append(f'<text x="{x + 13}" y="15">{escape(name)}</text>')
        x -= 12
    for index in _ticks(len(times)):
        tick_x = LEFT + plot_w * (index + 0.5) / len(times)
        parts.append(f'<text x="{tick_x:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{times[index]:%H:%M}</text>')
    return parts


def bars(title: str, times: list[datetime], series: dict[str, list[int]]) -> SafeString:
    """Stacked bars, one per step."""
    totals = [sum(values) for values in zip(*series.values(), strict=True)]
    top = _nice(max(totals, default=0))
    parts = _frame(title, times, top, "", list(series))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(times), 1)
    for index, when in enumerate(times):
        base = TOP + plot_h
        for name, values in series.items():
            if not values[index]:
                continue
            height = plot_h * values[index] / top
            base -= height
            parts.append(
                f'<rect x="{LEFT + slot * index + slot * 0.1:.1f}" y="{base:.1f}" width="{slot * 0.8:.1f}" '
                f'height="{height:.1f}" fill="{COLORS[name]}">'
                f"<title>{when:%H:%M} {name}: {values[index]}</title></rect>"
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (numbers and escaped text only)


def lines(title: str, times: list[datetime], series: dict[str, list[float | None]], unit: str = "") -> SafeString:
    """One line per series; a step with no value breaks the line (nothing was measured then)."""
    top = _nice(max((v for values in series.values() for v in values if v is not None), default=0))
    parts = _frame(title, times, top, unit, list(series))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(times), 1)
    for name, values in series.items():
        path: list[str] = []
        for index, value in enumerate(values):
            if value is None:
                path.append("")  # a gap
                continue
            x, y = LEFT + slot * (index + 0.5), TOP + plot_h - plot_h * value / top
            path.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{COLORS[name]}">'
                f"<title>{times[index]:%H:%M} {name}: {_number(value)}{unit}</title></circle>"
            )
        for run in " ".join(path).split("  "):
            if run.strip().count(",") > 1:
                parts.append(
                    f'<polyline points="{run.strip()}" fill="none" stroke="{COLORS[name]}" stroke-width="1.5"/>'
                )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (numbers and escaped text only)


def _ticks(count: int, labels: int = 5) -> list[int]:
    if count <= 1:
        return list(range(count))
    return sorted({round(i * (count - 1) / (labels - 1)) for i in range(labels)})


def _nice(value: float) -> float:
    """A round top for the y scale, at least 1."""
    if value <= 1:
        return 1
    for top in (2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000):
        if value <= top:
            return top
    return value


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
