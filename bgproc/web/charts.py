"""The Stats page's pictures, drawn on the server as SVG text: nothing to build, nothing
fetched, and legible without scripts.

Pure: series in (:mod:`bgproc.store.hourly`'s hours), markup out. Every text put in it
(a process name is anyone's text) is escaped here, since the page inserts the SVG as is.
Each chart names itself for screen readers (``<title>``, ``<desc>``) and each bar or point
has a ``<title>`` tooltip; the page puts the figures beside it as a table too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from bgproc.statuses import RunStatus
from bgproc.store.hourly import HourCounts, HourDurations
from bgproc.timing.walltime import HOUR

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 84, 16, 34, 58  # margins: y labels, legend above, x labels below
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
MAX_X_LABELS = 12
INK, MUTED, GRID = "#1d2330", "#5b6475", "#d8dce3"  # style.css's --fg, --muted, --line
# The pages' colours (style.css: --ok, --bad, --accent, --warn) and a lighter or darker shade
# of the same family where two statuses share one, so that stacked bars stay apart.
STATUS_COLOURS = {
    RunStatus.success: "#1b7a3a",
    RunStatus.error: "#b3261e",
    RunStatus.killed: "#e0776f",
    RunStatus.lost: "#6e1510",
    RunStatus.skipped: "#9a6700",
    RunStatus.misfired: "#d9a62e",
    RunStatus.expired: "#6b4a00",
    RunStatus.processing: "#1f5fbf",
    RunStatus.queued: "#8fb3e8",
}
P50_COLOUR, MAX_COLOUR = "#1f5fbf", "#5b6475"
# (unit, milliseconds in one): a duration axis speaks the unit its longest value reads best in
UNITS = (("ms", 1), ("s", 1000), ("min", 60_000), ("h", 3_600_000))


def _text(x: float, y: float, words: str, anchor: str = "middle", **extra: str) -> str:
    """A label; ``extra`` attributes by keyword (``font_size`` for font-size, ``class_``)."""
    names = {key: key.rstrip("_").replace("_", "-") for key in extra}
    attrs = "".join(f' {names[key]}="{escape(value)}"' for key, value in extra.items())
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{attrs}>'
            f"{escape(words)}</text>")  # fmt: skip


def _svg(ident: str, title: str, summary: str, body: list[str]) -> str:
    """The chart's frame: its name and summary for assistive technology, its styles."""
    ident = escape(ident)
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{ident}" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" aria-labelledby="{ident}-title {ident}-desc" '
        f'font-family="system-ui, sans-serif" font-size="12" fill="{INK}">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(summary)}</desc>',
        *body,
        "</svg>",
    ])  # fmt: skip


def _nothing(ident: str, title: str, message: str) -> str:
    """A chart with nothing to draw says so, in the place the chart would take."""
    return _svg(ident, title, message, [
        f'<rect x="{LEFT}" y="{TOP}" width="{PLOT_W}" height="{PLOT_H}" fill="none" '
        f'stroke="{GRID}"/>',
        _text(LEFT + PLOT_W / 2, TOP + PLOT_H / 2, message, fill=MUTED, font_size="16",
              class_="empty"),
    ])  # fmt: skip


def nice_step(top: float, ticks: int = 5) -> float:
    """The round step (1, 2 or 5 times a power of ten) that cuts ``[0, top]`` in about
    ``ticks`` parts, so the y labels read 0, 5, 10… rather than 0, 4.6, 9.2…"""
    if top <= 0:
        return 1.0
    rough = top / ticks
    power = 10 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= rough)


def _runs(count: int, kind: str = "runs") -> str:
    """``1 run``, ``3 runs``, ``1 finished run``."""
    return f"{count} {kind[:-1] if count == 1 else kind}"


def _number(value: float) -> str:
    return f"{value:.10g}"


def _y_axis(top: float, step: float, label: Callable[[float], str], title: str) -> list[str]:
    """Grid lines and labels from 0 to ``top`` (a multiple of ``step``), and the axis title."""
    parts = []
    count = round(top / step)
    for i in range(count + 1):
        y = TOP + PLOT_H - PLOT_H * i / count
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{GRID}"/>')  # fmt: skip
        parts.append(_text(LEFT - 6, y + 4, label(step * i), anchor="end", fill=MUTED))
    middle = TOP + PLOT_H / 2
    parts.append(_text(14, middle, title, transform=f"rotate(-90 14 {middle:.1f})"))
    return parts


def _stride(count: int) -> int:
    """Hours between two x labels: at most :data:`MAX_X_LABELS` of them."""
    strides = (1, 2, 3, 4, 6, 12, 24, 48, 72, 168, 336, 744)
    return next(s for s in strides if count / s <= MAX_X_LABELS)


def _x_axis(hours: Sequence[datetime], zone: ZoneInfo, x_of: Callable[[int], float]) -> list[str]:
    """Local hour labels on round hours (a date under the first and each new day's), the
    zone in the axis title."""
    parts = [f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{TOP + PLOT_H}" y2="{TOP + PLOT_H}" '
             f'stroke="{MUTED}"/>']  # fmt: skip
    stride, last_day = _stride(len(hours)), None
    for i, hour in enumerate(hours):
        local = hour.astimezone(zone)
        if local.hour % min(stride, 24) or (stride > 24 and local.toordinal() % (stride // 24)):
            continue
        x = x_of(i)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + PLOT_H}" '
                     f'y2="{TOP + PLOT_H + 4}" stroke="{MUTED}"/>')  # fmt: skip
        parts.append(_text(x, TOP + PLOT_H + 16, local.strftime("%H:%M"), fill=MUTED))
        if local.date() != last_day:
            parts.append(_text(x, TOP + PLOT_H + 30, local.strftime("%a %d %b"), fill=MUTED))
            last_day = local.date()
    parts.append(_text(LEFT + PLOT_W / 2, HEIGHT - 6, f"hour ({zone.key})"))
    return parts


def _legend(entries: Sequence[tuple[str, str]]) -> list[str]:
    """Colour keys above the plot, right-aligned."""
    parts, x = [], float(WIDTH - RIGHT)
    for name, colour in reversed(entries):
        x -= 7.5 * len(name) + 24
        parts.append(f'<rect x="{x:.1f}" y="10" width="12" height="12" fill="{colour}"/>')
        parts.append(_text(x + 16, 20, name, anchor="start"))
    return parts


def hour_span(hour: datetime, zone: ZoneInfo) -> str:
    """``Mon 07 Jan 14:00–15:00``: one bar's hour as its tooltip names it, in ``zone``."""
    start, end = hour.astimezone(zone), (hour + HOUR).astimezone(zone)
    return f"{start:%a %d %b %H:%M}–{end:%H:%M}"


def runs_chart(hours: Sequence[HourCounts], zone: ZoneInfo, ident: str = "runs-chart") -> str:
    """Runs per hour, stacked by status; a ``<title>`` per bar tells its figures."""
    title = "Runs per hour by status"
    total = sum(hour.total for hour in hours)
    if not total:
        return _nothing(ident, title, "No runs in this window")
    present = [s for s in STATUS_COLOURS if any(hour.counts.get(s.value) for hour in hours)]
    busiest = max(hours, key=lambda hour: hour.total)
    step = max(nice_step(busiest.total), 1.0)
    top = step * math.ceil(busiest.total / step)
    band = PLOT_W / len(hours)
    width = max(band * 0.8, 1.0)

    def x_of(i: int) -> float:
        return LEFT + band * (i + 0.5)

    body = _y_axis(top, step, _number, "runs")
    for i, hour in enumerate(hours):
        if not hour.total:
            continue
        told = ", ".join(f"{hour.counts[s.value]} {s.value}" for s in present
                         if hour.counts.get(s.value))  # fmt: skip
        body.append(f'<g class="bar"><title>{escape(hour_span(hour.hour, zone))}: '
                    f"{_runs(hour.total)} ({escape(told)})</title>")  # fmt: skip
        y = TOP + PLOT_H
        for status in present:
            count = hour.counts.get(status.value, 0)
            if not count:
                continue
            height = PLOT_H * count / top
            y -= height
            body.append(f'<rect x="{x_of(i) - width / 2:.1f}" y="{y:.1f}" width="{width:.1f}" '
                        f'height="{height:.1f}" fill="{STATUS_COLOURS[status]}" '
                        f'data-status="{status.value}"/>')  # fmt: skip
        body.append("</g>")
    body += _x_axis([hour.hour for hour in hours], zone, x_of)
    body += _legend([(s.value, STATUS_COLOURS[s]) for s in present])
    summary = (f"{_runs(total)} from {hour_span(hours[0].hour, zone)} to "
               f"{hour_span(hours[-1].hour, zone)}; the busiest hour, "
               f"{hour_span(busiest.hour, zone)}, had {busiest.total}.")  # fmt: skip
    return _svg(ident, title, summary, body)


def duration_unit(longest_ms: float) -> tuple[str, int]:
    """The unit a duration axis reads best in: its longest value at least 1 of it."""
    return next(((n, ms) for n, ms in reversed(UNITS) if longest_ms >= 2 * ms), UNITS[0])


def durations_chart(
    process: str, hours: Sequence[HourDurations], zone: ZoneInfo, ident: str = "durations-chart"
) -> str:
    """``process``'s median and longest duration per hour, as points joined while hours
    follow one another (a gap: an hour without a finished run)."""
    title = f"Duration per hour of {process}: p50 and max"
    timed = [hour for hour in hours if hour.runs]
    if not timed:
        return _nothing(ident, title, f"No finished runs of {process} in this window")
    longest = max(hour.max_ms or 0 for hour in timed)
    unit, unit_ms = duration_unit(longest)
    step = nice_step(longest / unit_ms)
    top = step * max(math.ceil(longest / unit_ms / step), 1)
    band = PLOT_W / len(hours)

    def x_of(i: int) -> float:
        return LEFT + band * (i + 0.5)

    def y_of(ms: float) -> float:
        return TOP + PLOT_H - PLOT_H * ms / unit_ms / top

    body = _y_axis(top, step, lambda v: f"{_number(v)} {unit}", f"duration ({unit})")
    for field, colour, dash in (("max_ms", MAX_COLOUR, "4 3"), ("p50_ms", P50_COLOUR, "")):
        runs: list[list[str]] = [[]]
        for i, hour in enumerate(hours):
            value = getattr(hour, field)
            if value is None:
                runs.append([])
            else:
                runs[-1].append(f"{x_of(i):.1f},{y_of(value):.1f}")
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        body += [f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                 f'stroke-width="1.5"{dashes}/>' for run in runs if len(run) > 1]  # fmt: skip
    for i, hour in enumerate(hours):
        if not hour.runs or hour.p50_ms is None or hour.max_ms is None:
            continue
        told = (f"{hour_span(hour.hour, zone)}: {_runs(hour.runs, 'finished runs')}, "
                f"p50 {_number(round(hour.p50_ms / unit_ms, 3))} {unit}, "
                f"max {_number(round(hour.max_ms / unit_ms, 3))} {unit}")  # fmt: skip
        x = x_of(i)
        body += [
            f'<g class="point"><title>{escape(told)}</title>',
            f'<rect x="{x - 3:.1f}" y="{y_of(hour.max_ms) - 3:.1f}" width="6" height="6" '
            f'fill="{MAX_COLOUR}"/>',
            f'<circle cx="{x:.1f}" cy="{y_of(hour.p50_ms):.1f}" r="3.5" fill="{P50_COLOUR}"/>',
            "</g>",
        ]
    body += _x_axis([hour.hour for hour in hours], zone, x_of)
    body += _legend([("p50", P50_COLOUR), ("max", MAX_COLOUR)])
    slowest = max(timed, key=lambda hour: hour.max_ms or 0)
    summary = (f"{_runs(sum(hour.runs for hour in timed), 'finished runs')} of {process} in "
               f"{len(timed)} of {len(hours)} hours; the longest, "
               f"{_number(round(longest / unit_ms, 3))} {unit}, in "
               f"{hour_span(slowest.hour, zone)}.")  # fmt: skip
    return _svg(ident, title, summary, body)
