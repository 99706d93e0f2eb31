"""/api/v1 on real SQLite/PostgreSQL and Redis: every document equals the CLI's ``--json``.

The app runs in-process (Starlette's TestClient), beside the in-process CLI, on the same
database and Redis key prefix; workers and beats are their announcements in Redis, as
live ones leave them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event, update
from starlette.testclient import TestClient

from bgproc.errors import NotFound
from bgproc.installation import Installation
from bgproc.progress import Progress
from bgproc.services.control import BeatInfo, WorkerInfo
from bgproc.settings import Settings
from bgproc.statuses import Channel, RunStatus
from bgproc.store.models import ProcessRun
from bgproc.store.transitions import NewRun
from bgproc.timing.walltime import utc_hour
from bgproc.web.app import create_app
from bgproc.web.auth import CSRF_HEADER, SESSION_COOKIE, Access
from bgproc.web.live import LogPoller
from tests.integration.cli_harness import StoreCli, isolated

TOKEN = "operator-token-for-tests"
BEARER = {"authorization": f"Bearer {TOKEN}"}
LOCAL = "http://127.0.0.1:8765"
DAILY = ["--timing", "scheduled", "--frequency", "daily", "--at", "09:30",
         "--start", "2030-01-07T00:00"]  # fmt: skip


@dataclass
class Web:
    cli: StoreCli
    installation: Installation
    client: TestClient

    def same(self, path: str, *command: str) -> Any:
        """The API's document at ``path`` equals ``bgproc COMMAND --json``; it."""
        answer = self.client.get(path)
        assert answer.status_code == 200, answer.text
        assert answer.json() == self.cli.ok(*command, "--json").json()
        return answer.json()

    def post(self, path: str, body: Any = None, **options: Any) -> Any:
        return self.client.post(path, json=body, headers=BEARER, **options)

    def run(self, **fields: Any) -> int:
        now = datetime.now(UTC)
        values = {"process": "sample.echo", "params": {}, "status": RunStatus.success,
                  "channel": Channel.direct, "scheduled_at": now, "queued_at": now,
                  "started_at": now, "ended_at": now, "duration_ms": 5, "worker": "w1@h",
                  "task_id": uuid.uuid4().hex, "log": "hello\n"}  # fmt: skip
        return self.installation.runs.record(NewRun(**{**values, **fields}))


@pytest.fixture(name="web")
def web_app(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Web]:
    for harness in isolated(
        StoreCli, db_url, monkeypatch, capsys, "tests.integration.secret_processes"
    ):
        installation = Installation(Settings.from_env(), interactive=True)
        app = create_app(installation, Access(TOKEN, reads_open=True))
        with TestClient(app, base_url=LOCAL) as client:
            yield Web(harness, installation, client)
        installation.engine.dispose()


def test_requests_documents_equal_the_clis(web: Web) -> None:
    created = web.post("/api/v1/requests", {
        "process": "test.secret", "params": {"token": "s3cret", "user": "<b>ana</b>"},
        "timing": "scheduled", "frequency": "weekly", "days": ["mon", "fri"], "at": "09:30",
        "start": "2030-01-07T00:00", "name": "weekly"})  # fmt: skip
    assert created.status_code == 201, created.text
    number = created.json()["id"]
    assert created.json()["params"] == {"token": "***", "user": "<b>ana</b>"}
    assert created.json() == web.cli.ok("request", "show", str(number), "--json").json()
    other = web.cli.ok("request", "create", "sample.echo", *DAILY, "--no-schedule").out.strip()

    web.same("/api/v1/requests", "request", "list")
    web.same("/api/v1/requests?status=unscheduled", "request", "list", "--status", "unscheduled")
    web.same("/api/v1/requests?process=sample.echo", "request", "list", "--process", "sample.echo")
    web.same("/api/v1/requests?limit=1", "request", "list", "--limit", "1")
    web.same(f"/api/v1/requests?after={number}", "request", "list", "--after", str(number))
    assert web.client.get("/api/v1/requests?limit=0").json()["error"]["field"] == "limit"
    web.same(f"/api/v1/requests/{other}?next=3", "request", "show", other, "--next", "3")

    changed = web.client.patch(f"/api/v1/requests/{other}", json={"name": "renamed"},
                               headers=BEARER)  # fmt: skip
    assert changed.status_code == 200 and changed.json()["name"] == "renamed"
    assert changed.json() == web.cli.ok("request", "show", other, "--json").json()

    scheduled = web.post(f"/api/v1/requests/{other}/schedule").json()
    assert scheduled["status"] == "scheduled"
    assert web.post(f"/api/v1/requests/{other}/schedule").status_code == 409
    assert web.client.delete(f"/api/v1/requests/{other}", headers=BEARER).status_code == 409
    unscheduled = web.post(f"/api/v1/requests/{other}/unschedule").json()
    shown = web.cli.ok("request", "show", other, "--json").json()
    assert unscheduled == {k: v for k, v in shown.items() if k != "next_runs"}
    gone = web.client.delete(f"/api/v1/requests/{other}", headers=BEARER)
    assert gone.json() == {"id": int(other), "deleted": True}
    assert web.client.get(f"/api/v1/requests/{other}").status_code == 404


def test_preview_equals_the_clis(web: Web) -> None:
    words = {"timing": "scheduled", "frequency": "cron", "cron": "0 15 10 ? * 6#3",
             "tz": "Europe/Madrid", "start": "2030-01-01T00:00"}  # fmt: skip
    query = "&".join(f"{k}={v}" for k, v in words.items()).replace("#", "%23").replace("?", "%3F")
    flags = [part for k, v in words.items() for part in (f"--{k}", v)]
    web.same(f"/api/v1/preview?{query}&count=4", "preview", *flags, "--count", "4")


def test_runs_documents_equal_the_clis(web: Web) -> None:
    ids = [web.run(params={"token": "s3cret"}, process="test.secret") for _ in range(3)]
    failed = web.run(status=RunStatus.error, error="<script>alert(1)</script>")
    web.same("/api/v1/runs", "monitor", "list")
    web.same("/api/v1/runs?status=error", "monitor", "list", "--status", "error")
    web.same("/api/v1/runs?process=test.secret&limit=2", "monitor", "list", "--process",
             "test.secret", "--limit", "2")  # fmt: skip
    page = web.client.get("/api/v1/runs?limit=2")
    assert [r["id"] for r in page.json()] == [failed, ids[-1]]
    assert f"before={ids[-1]}" in page.headers["link"]
    web.same(f"/api/v1/runs?before={ids[-1]}", "monitor", "list", "--before", str(ids[-1]))
    shown = web.same(f"/api/v1/runs/{ids[0]}", "monitor", "show", str(ids[0]))
    assert shown["params"] == {"token": "***"}
    web.same("/api/v1/stats", "monitor", "stats")
    log = web.client.get(f"/api/v1/runs/{ids[0]}/log?offset=2").json()
    assert log == {"text": "llo\n", "end": 6, "finished": True, "restarted": False}


def at_hour(back: int, **fields: Any) -> dict[str, Any]:
    """A finished run's times a minute into the UTC hour ``back`` hours before this one."""
    instant = utc_hour(datetime.now(UTC)) - timedelta(hours=back) + timedelta(minutes=1)
    return {"scheduled_at": instant, "queued_at": instant, "started_at": instant,
            "ended_at": instant, **fields}  # fmt: skip


def test_hourly_stats_count_each_hour_and_equal_the_clis(web: Web) -> None:
    web.run(**at_hour(1, duration_ms=100))
    web.run(**at_hour(1, duration_ms=300, status=RunStatus.error))
    web.run(**at_hour(1, process="sample.sleep", duration_ms=9000))
    web.run(**at_hour(3, duration_ms=200))
    web.run(**at_hour(3, duration_ms=400))
    web.run(**at_hour(5, status=RunStatus.misfired, started_at=None, queued_at=None,
                      duration_ms=None))  # placed by its due time: it never started
    web.run(**at_hour(30))  # before the default window (24 h)
    hour = utc_hour(datetime.now(UTC))
    since = (hour - timedelta(hours=23)).astimezone(ZoneInfo("Europe/Madrid"))
    words = since.strftime("%Y-%m-%dT%H:%M")
    doc = web.same(f"/api/v1/stats/hourly?since={words}", "monitor", "stats", "--hourly",
                   "--since", words)  # fmt: skip
    assert len(doc["hours"]) == 24 and doc["durations_of"] is None and doc["durations"] == []
    found = {h["hour"]: {k: n for k, n in h["counts"].items() if n} for h in doc["hours"]}
    assert {k: v for k, v in found.items() if v} == {
        (hour - timedelta(hours=1)).isoformat(): {"success": 2, "error": 1},
        (hour - timedelta(hours=3)).isoformat(): {"success": 2},
        (hour - timedelta(hours=5)).isoformat(): {"misfired": 1},
    }
    table = web.same(f"/api/v1/stats?since={words}", "monitor", "stats", "--since", words)
    assert sum(h["total"] for h in doc["hours"]) == sum(row["total"] for row in table) == 6
    echo = web.same(f"/api/v1/stats/hourly?since={words}&process=sample.echo", "monitor",
                    "stats", "--hourly", "--since", words, "--process", "sample.echo")  # fmt: skip
    timed = {h["hour"]: (h["runs"], h["p50_ms"], h["max_ms"]) for h in echo["durations"]}
    assert timed[(hour - timedelta(hours=1)).isoformat()] == (2, 200.0, 300)
    assert timed[(hour - timedelta(hours=3)).isoformat()] == (2, 300.0, 400)
    assert timed[(hour - timedelta(hours=5)).isoformat()] == (0, None, None)
    assert sum(h["total"] for h in echo["hours"]) == 5
    default = web.client.get("/api/v1/stats/hourly").json()
    assert len(default["hours"]) == 25  # 24 h back from now: the hour it falls in to now's
    assert sum(h["total"] for h in default["hours"]) == 6  # not the run of 30 h ago
    refused = web.client.get("/api/v1/stats/hourly?since=40d")
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "since"


def test_registry_groups_workers_queues_beats_equal_the_clis(web: Web) -> None:
    web.cli.ok("group", "create", "nightly", "--step", "sample.echo who=<i>x</i>")
    web.same("/api/v1/processes", "processes")
    web.same("/api/v1/groups", "group", "list")
    web.same("/api/v1/groups/nightly", "group", "show", "nightly")
    now = datetime.now(UTC)
    control = web.installation.control
    control.announce(WorkerInfo("w1@h", "h", 42, ("celery",), 2, "prefork", now, now))
    web.run(status=RunStatus.processing, ended_at=None, duration_ms=None, worker="w1@h")
    assert web.same("/api/v1/workers", "monitor", "workers")[0]["running"]
    web.same("/api/v1/queues", "monitor", "queues")
    health = web.client.get("/api/v1/health")  # no beat: unhealthy, a stable document
    checked = web.cli("health", "--json")
    assert (health.status_code, checked.code) == (503, 1)
    assert health.json() == checked.json() and not health.json()["healthy"]
    control.announce_beat(BeatInfo("h:1", "h", 1, True, now - timedelta(hours=1), now))
    web.same("/api/v1/beats", "monitor", "beats")


def test_refusals_are_json_naming_the_field(web: Web) -> None:
    monthly = {"process": "sample.echo", "timing": "scheduled", "frequency": "monthly",
               "day": 32, "at": "10:00"}  # fmt: skip
    bad = web.post("/api/v1/requests", monthly)
    assert bad.status_code == 400
    assert bad.json() == {"error": {"field": "day", "message": "must be between 1 and 31 (got 32)"}}
    unknown = web.post("/api/v1/requests", {"process": "sample.echo", "colour": "red"})
    assert unknown.json()["error"]["field"] == "colour"
    assert web.post("/api/v1/requests", [1]).json()["error"]["field"] == "body"
    assert web.client.get("/api/v1/runs?status=nope").json()["error"]["field"] == "status"
    assert web.client.get("/api/v1/runs/999").status_code == 404
    assert web.client.get("/api/v1/groups/none").status_code == 404
    assert web.cli.ok("request", "list", "--json").json() == []  # nothing written


def test_the_retry_fields_are_taken_refused_and_changed_as_the_clis(web: Web) -> None:
    later = {"process": "sample.fail", "timing": "later", "start": "2030-01-07T00:00",
             "schedule": False}  # fmt: skip
    for body, field in (
        ({"retries": "x"}, "retries"),
        ({"retries": 2, "retry_backoff": "0s"}, "retry-backoff"),
        ({"retries": 2, "retry_max": 1.5}, "retry-max"),
        ({"retries": 2, "retry_jitter": "yes"}, "retry-jitter"),
        ({"retry_backoff": 30}, "retry-backoff"),
    ):
        bad = web.post("/api/v1/requests", {**later, **body})
        assert (bad.status_code, bad.json()["error"]["field"]) == (400, field), body
    assert web.cli.ok("request", "list", "--json").json() == []  # nothing written
    made = web.post("/api/v1/requests", {**later, "retries": 2, "retry_backoff": 90,
                                         "retry_jitter": True})  # fmt: skip
    assert made.status_code == 201, made.text
    number = made.json()["id"]
    assert made.json()["retry"]["backoff_s"] == 90 and made.json()["retry"]["jitter"] is True
    changed = web.client.patch(f"/api/v1/requests/{number}", json={"retry_max": "1h"},
                               headers=BEARER)  # fmt: skip
    assert changed.status_code == 200 and changed.json()["retry"]["max_s"] == 3600
    web.same(f"/api/v1/requests/{number}", "request", "show", str(number))


def test_actions_need_the_operator_and_refuse_cross_site_requests(web: Web) -> None:
    body = {"process": "sample.echo", "timing": "immediate"}
    assert web.client.post("/api/v1/requests", json=body).status_code == 401
    web.client.cookies.set(SESSION_COOKIE, Access(TOKEN, True).session_value)
    assert web.client.post("/api/v1/requests", json=body).status_code == 403  # no CSRF token
    csrf = {CSRF_HEADER: Access(TOKEN, True).csrf_value}
    evil = web.client.post("/api/v1/requests", json=body,
                           headers={**csrf, "origin": "https://evil.example"})  # fmt: skip
    assert evil.status_code == 403
    fields = {"target": "sample.echo", "timing": "immediate"}
    form = web.client.post("/requests/new", data=fields, follow_redirects=False,
                           headers={"origin": "https://evil.example"})  # fmt: skip
    assert form.status_code == 403
    assert web.cli.ok("request", "list", "--json").json() == []
    rebinding = web.client.get("/api/v1/requests", headers={"host": "evil.example"})
    assert rebinding.status_code == 403
    made = web.client.post("/api/v1/requests", json=body, headers={**csrf, "origin": LOCAL})
    assert made.status_code == 201


def test_reading_needs_the_token_off_loopback(web: Web) -> None:
    app = create_app(web.installation, Access(TOKEN, reads_open=False))
    with TestClient(app, base_url="http://bgproc.example") as client:
        assert client.get("/api/v1/runs").status_code == 401
        assert client.get("/api/v1/runs", headers=BEARER).status_code == 200
        page = client.get("/monitor", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/monitor"
        login = client.post("/login", data={"token": TOKEN, "next": "/monitor"},
                            follow_redirects=False)  # fmt: skip
        assert login.status_code == 303
        assert "samesite=strict" in login.headers["set-cookie"].lower()
        assert "httponly" in login.headers["set-cookie"].lower()
        assert client.get("/monitor").status_code == 200


def test_the_openapi_description_names_every_endpoint(web: Web) -> None:
    described = web.client.get("/api/v1/openapi.json").json()
    assert described["openapi"].startswith("3.")
    assert {"/api/v1/runs", "/api/v1/requests/{id}", "/api/v1/runs/{id}/kill"} <= set(
        described["paths"]
    )
    assert "security" in described["paths"]["/api/v1/requests"]["post"]
    hourly = described["paths"]["/api/v1/stats/hourly"]["get"]
    assert hourly["summary"].startswith("bgproc monitor stats --hourly --json")
    assert {p["name"] for p in hourly["parameters"]} == {"process", "since"}


def _events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """The (name, data) of each server-sent event read from ``lines``."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


def _grow(engine: Engine, number: int, text: str, **values: Any) -> None:
    """What a worker's recorder does: the log longer, maybe a new status or progress."""
    table = ProcessRun.__table__
    with engine.begin() as connection:
        connection.execute(
            update(table).where(table.c.id == number).values(log=table.c.log + text, **values)
        )


def test_a_log_stream_sends_what_the_log_grows_by_its_progress_and_its_end(web: Web) -> None:
    # Given a running run whose log and progress grow while it is followed
    now = datetime.now(UTC)
    first = Progress(1, 4, "working", now, now, 1)
    number = web.run(status=RunStatus.processing, ended_at=None, duration_ms=None, log="one\n")
    engine = web.installation.engine
    _grow(engine, number, "", progress=first.as_json())
    web.client.app.state.log_poller.poll_s = 0.02
    seen: list[tuple[str, Any]] = []
    with web.client.stream("GET", f"/api/v1/runs/{number}/log/stream?offset=2") as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        for event in _events(answer.iter_lines()):
            seen.append(event)
            if len(seen) == 2:
                _grow(engine, number, "two\n",
                      progress=first.after(2, 4, "working", now + timedelta(seconds=1)).as_json())
            elif len(seen) == 4:
                _grow(engine, number, "three\n", status=RunStatus.success)  # fmt: skip
    # Then the stream told the progress and the text from the offset on, then the end
    progress = [data["done"] for name, data in seen if name == "progress"]
    text = "".join(data["text"] for name, data in seen if name == "log")
    assert progress == [1, 2] and text == "e\ntwo\nthree\n"
    assert seen[-1] == ("end", {"end": len("one\ntwo\nthree\n")})


def test_many_streams_of_a_few_runs_cost_one_read_per_tick(web: Web) -> None:
    # Given 50 followers of one run and 10 of another, at two different offsets
    one = web.run(status=RunStatus.processing, log="0123456789")
    other = web.run(status=RunStatus.processing, log="abc")
    poller = LogPoller(web.installation.runs, poll_s=0.01)
    reads: list[dict[int, set[int]]] = []
    statements: list[str] = []
    read_logs = web.installation.runs.read_logs

    def counted(wanted: dict[int, set[int]]) -> Any:
        reads.append(wanted)
        return read_logs(wanted)

    poller.runs = SimpleNamespace(read_logs=counted)  # type: ignore[assignment]
    engine = web.installation.engine

    def statement(*args: Any) -> None:
        statements.append(args[2])

    async def tick(wanted: list[tuple[int, int]]) -> list[Any]:
        return await asyncio.gather(*(poller.next_chunk(n, offset) for n, offset in wanted))

    event.listen(engine, "before_cursor_execute", statement)
    try:
        # When nothing grew: one read of the store, one statement for all of them
        quiet = asyncio.run(tick([(one, 10)] * 50 + [(other, 3)] * 10))
        assert len(reads) == 1 and reads[0] == {one: {10}, other: {3}}
        assert len([s for s in statements if "bgproc_run" in s]) == 1
        assert {(c.text, c.end, c.finished) for c in quiet} == {("", 10, False), ("", 3, False)}
        # And when one log grew: still one read, the new text once per offset
        _grow(engine, one, "ab")
        reads.clear()
        statements.clear()
        grown = asyncio.run(tick([(one, 10)] * 40 + [(one, 4)] * 10 + [(other, 3)] * 10))
        assert len(reads) == 1
        assert len([s for s in statements if "bgproc_run" in s]) == 3
        assert [c.text for c in grown[:1] + grown[40:41]] == ["ab", "456789ab"]
        assert {c.end for c in grown[:50]} == {12}
    finally:
        event.remove(engine, "before_cursor_execute", statement)


def test_a_stream_of_a_missing_run_is_refused_and_a_deleted_one_says_so(web: Web) -> None:
    assert web.client.get("/api/v1/runs/999999/log/stream").status_code == 404
    number = web.run(status=RunStatus.processing)
    chunk = asyncio.run(LogPoller(web.installation.runs, poll_s=0.01).next_chunk(number, 0))
    assert chunk.text == "hello\n"
    web.installation.runs.forget(number)
    with pytest.raises(NotFound):
        asyncio.run(LogPoller(web.installation.runs, poll_s=0.01).next_chunk(number, 0))


def test_calendar_documents_equal_the_clis_and_requests_take_calendars(web: Web) -> None:
    created = web.post("/api/v1/calendars", {"name": "es", "tz": "Europe/Madrid",
                                             "dates": ["2030-01-08"], "yearly": ["12-25"]})
    assert created.status_code == 201, created.text
    assert created.json() == web.cli.ok("calendar", "show", "es", "--json").json()
    web.same("/api/v1/calendars", "calendar", "list")
    web.same("/api/v1/calendars/es", "calendar", "show", "es")
    bad = web.post("/api/v1/calendars", {"name": "x", "windows": ["15:00-13:00"]})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "window"

    request = web.post("/api/v1/requests", {
        "process": "sample.echo", "timing": "scheduled", "frequency": "daily", "at": "09:30",
        "start": "2030-01-07T00:00", "calendars": ["es"], "on_excluded": "next-business-day",
        "schedule": False})  # fmt: skip
    assert request.status_code == 201, request.text
    document = request.json()
    assert (document["calendars"], document["on_excluded"]) == (["es"], "next-business-day")
    assert "2030-01-08T09:30:00+01:00" not in document["next_runs"]
    number = document["id"]
    preview = web.client.get("/api/v1/preview?timing=scheduled&frequency=daily&at=09:30"
                             "&start=2030-01-07T00:00&calendar=es&count=3").json()
    assert preview["next_runs"][:2] == ["2030-01-07T09:30:00+01:00", "2030-01-09T09:30:00+01:00"]

    cleared = web.client.patch(f"/api/v1/requests/{number}", json={"calendars": []},
                               headers=BEARER)  # fmt: skip
    assert cleared.status_code == 200 and cleared.json()["calendars"] == []
    changed = web.client.patch("/api/v1/calendars/es", json={"dates": []}, headers=BEARER)
    assert changed.status_code == 200 and changed.json()["dates"] == []
    gone = web.client.delete("/api/v1/calendars/es", headers=BEARER)
    assert gone.status_code == 200 and gone.json()["deleted"] is True
