"""The Stats page: ``monitor stats`` as a table, and pictures of the same window drawn on
the server (:mod:`bgproc.web.charts`) — runs per hour by status, a process's durations.

One window for all three, read as ``monitor stats --hourly --since`` reads it (24 h by
default), from the same services as the CLI and ``/api/v1/stats[/hourly]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response

from bgproc.services.hourly import hourly_stats, hourly_window
from bgproc.services.runfilters import process_filter
from bgproc.statuses import RunStatus
from bgproc.web import charts
from bgproc.web.api import Web, zone_of
from bgproc.web.pages import render

DEFAULT_SINCE = "24h"


def stats_page(web: Web, request: Request, form: Mapping[str, Any]) -> Response:
    """The table of ``monitor stats``, then the charts; the duration chart is of the chosen
    process, else of the busiest in the window (the one most likely to be asked about)."""
    installation, zone = web.installation, zone_of(web.installation)
    since = request.query_params.get("since") or DEFAULT_SINCE
    process = process_filter(request.query_params.get("process") or None)
    start, until = hourly_window(since, zone, datetime.now(UTC))
    rows = installation.runs.stats(process=process, since=start)
    busiest = max(rows, key=lambda row: row.total).process if rows else None
    chosen = process or busiest
    figures = hourly_stats(installation.runs, start, until, process, durations_of=chosen)
    durations = None
    if chosen is not None:
        durations = Markup(charts.durations_chart(chosen, figures.durations, zone))
    return render(
        web, request, "stats.html", since=since, process=process or "", rows=rows,
        shown=[s.value for s in RunStatus if any(row.counts[s.value] for row in rows)],
        hour_shown=[s.value for s in RunStatus if any(h.counts[s.value] for h in figures.hours)],
        figures=figures, runs_svg=Markup(charts.runs_chart(figures.hours, zone)),
        durations_svg=durations, hour_span=lambda hour: charts.hour_span(hour, zone),
        query=lambda **words: urlencode({k: v for k, v in words.items() if v}),
    )  # fmt: skip
