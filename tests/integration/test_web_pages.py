"""The pages on real SQLite and Redis: untrusted text escaped, secrets masked, forms refused
field by field with nothing written, Etendo's buttons."""

from __future__ import annotations

import re
from typing import Any

from bgproc.statuses import RunStatus
from bgproc.web import pages
from bgproc.web.auth import SESSION_COOKIE, Access
from tests.integration.test_web_api import (  # noqa: F401 (fixture `web`)
    TOKEN,
    Web,
    at_hour,
    web_app,
)

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def operator(web: Web) -> str:
    """Log the client in; the CSRF token its forms carry."""
    web.client.cookies.set(SESSION_COOKIE, Access(TOKEN, True).session_value)
    return Access(TOKEN, True).csrf_value


def test_logs_params_and_errors_are_escaped_and_secrets_masked(web: Web) -> None:
    shown = web.run(process="test.secret", params={"token": "s3cret", "user": SCRIPT},
                    log=f"line 1\n{SCRIPT}\n", error=SCRIPT)  # fmt: skip
    for path in (f"/runs/{shown}", "/monitor"):
        page = web.client.get(path).text
        assert SCRIPT not in page and "s3cret" not in page
    page = web.client.get(f"/runs/{shown}").text
    assert page.count(ESCAPED) >= 3  # the log line, the param and the error
    assert "token=***" in page
    web.cli.ok("request", "create", "test.secret", "--param", "token=s3cret",
               "--param", f"user={SCRIPT}", "--no-schedule")  # fmt: skip
    request_page = web.client.get("/requests/1").text
    assert SCRIPT not in request_page and "s3cret" not in request_page and ESCAPED in request_page
    edit = web.client.get("/requests/1/edit").text
    assert "token=***" in edit and "s3cret" not in edit


def test_an_invalid_form_field_is_named_beside_it_and_nothing_is_written(web: Web) -> None:
    csrf = operator(web)
    form = {"csrf": csrf, "target": "sample.echo", "timing": "scheduled", "frequency": "monthly",
            "day": "32", "at": "10:00", "tz": "Europe/Madrid", "misfire": "run-once"}  # fmt: skip
    answer = web.client.post("/requests/new", data=form)
    assert answer.status_code == 400
    assert re.search(r'id="f-day"[^>]*aria-invalid="true"', answer.text)
    assert 'id="day-error" role="alert">must be between 1 and 31 (got 32)' in answer.text
    assert web.cli.ok("request", "list", "--json").json() == []
    assert web.cli.redis_keys() == []


def test_create_edit_and_the_request_buttons(web: Web) -> None:
    csrf = operator(web)
    form = {"csrf": csrf, "target": "test.secret", "params": "token=s3cret\nuser=ana",
            "timing": "scheduled", "frequency": "weekly", "days": ["mon", "wed"], "at": "09:00",
            "tz": "Europe/Madrid", "misfire": "run-once", "schedule": "on"}  # fmt: skip
    made = web.client.post("/requests/new", data=form, follow_redirects=False)
    assert made.status_code == 303 and made.headers["location"] == "/requests/1"
    edited = {**form, "params": "token=***\nuser=bea", "name": "renamed"}
    web.client.post("/requests/1/edit", data=edited)
    stored = web.installation.requests.get(1, reveal=True)
    assert stored.params == {"token": "s3cret", "user": "bea"} and stored.name == "renamed"
    assert stored.timing.days == ("mon", "wed")
    refused = web.client.post("/requests/1/delete", data={"csrf": csrf})
    assert refused.status_code == 409 and "unschedule it first" in refused.text
    web.client.post("/requests/1/unschedule", data={"csrf": csrf})
    assert web.cli.ok("request", "show", "1", "--json").json()["status"] == "unscheduled"
    web.client.post("/requests/1/delete", data={"csrf": csrf})
    assert web.client.get("/requests/1").status_code == 404


def test_every_page_renders(web: Web) -> None:
    web.cli.ok("group", "create", "nightly", "--step", "sample.echo")
    parent = web.run(process="group:nightly", status=RunStatus.processing, ended_at=None)
    web.run(group_run_id=parent)
    for path in ("/requests", "/requests/new", "/monitor", "/monitor?status=success&since=2h",
                 f"/runs/{parent}", "/workers", "/processes", "/groups", "/groups/nightly",
                 "/login", "/stats", "/stats?since=7d&process=sample.echo"):  # fmt: skip
        answer = web.client.get(path)
        assert answer.status_code == 200, (path, answer.text[-500:])
    assert "Steps" in web.client.get(f"/runs/{parent}").text
    bad_filter = web.client.get("/monitor?since=yesterday")
    assert bad_filter.status_code == 400 and "since" in bad_filter.text


def test_a_yearly_request_round_trips_through_the_form(web: Web) -> None:
    csrf = operator(web)
    form = {"csrf": csrf, "target": "sample.echo", "timing": "scheduled", "frequency": "yearly",
            "month": "2", "day": "last", "at": "18:00", "tz": "Europe/Madrid",
            "misfire": "run-once"}  # fmt: skip
    made = web.client.post("/requests/new", data=form, follow_redirects=False)
    assert made.status_code == 303, made.text
    assert "February" in web.client.get("/requests/1").text
    edit = web.client.get("/requests/1/edit").text
    assert re.search(r'id="f-month" name="month" value="2"', edit)
    assert re.search(r'<option selected>yearly</option>', edit)


def test_the_stats_page_draws_the_windows_runs_per_hour_and_durations(web: Web) -> None:
    web.run(**at_hour(1, process=SCRIPT, duration_ms=1500))
    web.run(**at_hour(1, process=SCRIPT, duration_ms=2500, status=RunStatus.error))
    web.run(**at_hour(2, process=SCRIPT, duration_ms=500))
    web.run(**at_hour(4, duration_ms=100))
    web.run(**at_hour(30, duration_ms=100))  # before the window
    page = web.client.get("/stats").text
    assert '<a href="/stats" aria-current="page">Stats</a>' in page
    assert SCRIPT not in page and ESCAPED in page
    runs, durations = re.findall(r"<svg .*?</svg>", page, re.S)
    assert runs.count('<g class="bar">') == 3  # hours 1, 2 and 4 back
    assert "2 runs (1 success, 1 error)" in runs
    assert "hour (Europe/Madrid)" in runs
    # the busiest process's durations, in seconds: 2 points, the 2 hours it ran in
    assert f"Duration per hour of {ESCAPED}" in page and "The busiest process" in page
    assert durations.count('<g class="point">') == 2 and "duration (s)" in durations
    table = re.search(r'<table id="stats-table">.*?</table>', page, re.S)
    assert table is not None and table.group().count("<tr>") == 3  # header, 2 processes
    echo = web.client.get("/stats?process=sample.echo&since=48h").text
    runs, durations = re.findall(r"<svg .*?</svg>", echo, re.S)
    assert runs.count('<g class="bar">') == 2 and durations.count('<g class="point">') == 2
    assert "The busiest process" not in echo and "duration (ms)" in durations
    empty = web.client.get("/stats?since=1m").text
    assert empty.count("No runs in this window") >= 2 and "Duration per hour" not in empty
    refused = web.client.get("/stats?since=40d")
    assert refused.status_code == 400 and "since" in refused.text


def test_the_requests_page_goes_a_page_at_a_time(web: Web, monkeypatch: Any) -> None:
    monkeypatch.setattr(pages, "REQUESTS_PER_PAGE", 2)
    for number in range(5):
        web.cli.ok("request", "create", "sample.echo", "--param", f"n={number}", "--no-schedule")
    first = web.client.get("/requests").text
    assert 'href="/requests/2"' in first and 'href="/requests/3"' not in first
    assert 'href="/requests?after=2">Next page' in first and "First page" not in first
    last = web.client.get("/requests?after=4").text
    assert 'href="/requests/5"' in last and 'href="/requests/4"' not in last
    assert "Next page" not in last and 'href="/requests">First page' in last
