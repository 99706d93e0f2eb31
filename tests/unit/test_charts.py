"""The Stats page's SVG charts, pure: series in, markup out — one bar per hour with runs,
labelled axes with units, every text escaped, and an empty window said in words."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bgproc.statuses import RunStatus
from bgproc.store.hourly import HourCounts, HourDurations
from bgproc.web import charts

SVG = "{http://www.w3.org/2000/svg}"
MADRID = ZoneInfo("Europe/Madrid")
START = datetime(2030, 1, 7, 0, tzinfo=UTC)  # 01:00 in Madrid
SCRIPT = "<script>alert(1)</script>"
STYLE = Path(charts.__file__).parent / "static" / "style.css"


def hours(*figures: dict[str, int]) -> list[HourCounts]:
    zeros = {s.value: 0 for s in RunStatus}
    return [HourCounts(START + timedelta(hours=i), {**zeros, **f}) for i, f in enumerate(figures)]


def parsed(svg: str) -> ET.Element:
    """The chart as XML: it must be well-formed to be drawn at all."""
    return ET.fromstring(svg)


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_one_stacked_bar_per_hour_with_runs_and_a_tooltip_each() -> None:
    given = hours({"success": 3, "error": 1}, {}, {"success": 2}, {"lost": 1, "killed": 2})
    root = parsed(charts.runs_chart(given, MADRID))
    bars = root.findall(f"{SVG}g[@class='bar']")
    assert len(bars) == 3  # the empty hour has none
    assert [len(bar.findall(f"{SVG}rect")) for bar in bars] == [2, 1, 2]
    tooltip = bars[0].find(f"{SVG}title")
    assert tooltip is not None
    assert tooltip.text == "Mon 07 Jan 01:00–02:00: 4 runs (3 success, 1 error)"
    assert bars[1].findtext(f"{SVG}title") == "Mon 07 Jan 03:00–04:00: 2 runs (2 success)"
    single = parsed(charts.runs_chart(hours({"error": 1}), MADRID))
    assert single.findtext(f"{SVG}g/{SVG}title", "").endswith(": 1 run (1 error)")
    colours = {r.get("data-status"): r.get("fill") for bar in bars for r in bar.iter(f"{SVG}rect")}
    assert colours == {s: charts.STATUS_COLOURS[RunStatus(s)] for s in
                       ("success", "error", "lost", "killed")}  # fmt: skip


def test_bar_heights_follow_the_counts() -> None:
    root = parsed(charts.runs_chart(hours({"success": 4}, {"success": 2}), MADRID))
    heights = [float(r.get("height", 0)) for r in root.iter(f"{SVG}rect") if r.get("data-status")]
    assert heights[0] == pytest.approx(2 * heights[1], abs=0.1)


def test_axes_are_labelled_with_units_and_the_zone() -> None:
    root = parsed(charts.runs_chart(hours(*[{"success": 7}] * 24), MADRID))
    shown = texts(root)
    assert "runs" in shown and "hour (Europe/Madrid)" in shown
    assert {"0", "2", "4", "6", "8"} <= set(shown)  # round counts up to the busiest hour
    assert "04:00" in shown and "03:00" not in shown  # every other hour: 12 labels at most
    assert "Mon 07 Jan" in shown and "Tue 08 Jan" in shown
    assert len([t for t in shown if re.fullmatch(r"\d\d:\d\d", t)]) <= charts.MAX_X_LABELS
    assert "success" in shown  # the legend


def test_the_chart_names_itself_for_screen_readers() -> None:
    root = parsed(charts.runs_chart(hours({"success": 3}), MADRID, ident="c1"))
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c1-title c1-desc"
    assert root.findtext(f"{SVG}title") == "Runs per hour by status"
    assert root.findtext(f"{SVG}desc", "").startswith("3 runs from Mon 07 Jan 01:00–02:00")


def test_empty_windows_say_so_instead_of_drawing() -> None:
    for svg in (charts.runs_chart([], MADRID), charts.runs_chart(hours({}, {}), MADRID)):
        root = parsed(svg)
        assert "No runs in this window" in texts(root)
        assert root.findall(f"{SVG}g[@class='bar']") == []
    nothing = [HourDurations(START, 0, None, None)]
    root = parsed(charts.durations_chart("sample.echo", nothing, MADRID))
    assert "No finished runs of sample.echo in this window" in texts(root)


def test_a_process_name_is_escaped_everywhere() -> None:
    series = [HourDurations(START, 2, 1500.0, 2500), HourDurations(START + timedelta(hours=1),
              0, None, None)]  # fmt: skip
    for svg in (charts.durations_chart(SCRIPT, series, MADRID),
                charts.durations_chart(SCRIPT, series[1:], MADRID)):  # fmt: skip
        assert "<script" not in svg
        root = parsed(svg)
        assert SCRIPT in (root.findtext(f"{SVG}title") or "")
    hostile = charts.runs_chart(hours({"success": 1}), MADRID, ident='"><script>')
    assert "<script" not in hostile


def test_durations_read_in_the_unit_that_fits_with_a_point_per_hour() -> None:
    series = [HourDurations(START + timedelta(hours=i), n, p50, top) for i, (n, p50, top) in
              enumerate([(3, 1200.0, 4000), (0, None, None), (1, 900.0, 900), (2, 2000.0, 7500)])]
    root = parsed(charts.durations_chart("sample.sleep", series, MADRID))
    points = root.findall(f"{SVG}g[@class='point']")
    assert len(points) == 3
    assert points[0].findtext(f"{SVG}title") == (
        "Mon 07 Jan 01:00–02:00: 3 finished runs, p50 1.2 s, max 4 s")
    shown = texts(root)
    assert "duration (s)" in shown and "0 s" in shown and "8 s" in shown
    # the gap hour breaks the lines: p50 and max each one segment of the two last hours
    assert len(root.findall(f"{SVG}polyline")) == 2
    assert charts.duration_unit(450) == ("ms", 1)
    assert charts.duration_unit(3 * 60_000) == ("min", 60_000)
    assert charts.duration_unit(5 * 3_600_000) == ("h", 3_600_000)


def test_nice_steps_are_round() -> None:
    assert [charts.nice_step(top) for top in (1, 3, 7, 46, 230, 0.8)] == [
        0.2, 1, 2, 10, 50, 0.2]  # fmt: skip


def test_status_colours_are_the_pages() -> None:
    """The bars' colours are those style.css gives each status family."""
    css = dict(re.findall(r"--(ok|bad|accent|warn): (#[0-9a-f]{6})", STYLE.read_text()))
    assert charts.STATUS_COLOURS[RunStatus.success] == css["ok"]
    assert charts.STATUS_COLOURS[RunStatus.error] == css["bad"]
    assert charts.STATUS_COLOURS[RunStatus.processing] == css["accent"]
    assert charts.STATUS_COLOURS[RunStatus.skipped] == css["warn"]
    assert set(charts.STATUS_COLOURS) == set(RunStatus)
