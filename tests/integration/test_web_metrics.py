"""/metrics on real SQLite/PostgreSQL and Redis, read back with prometheus_client's parser.

Runs are recorded as workers and beat record them, workers and beats are their
announcements in Redis, a queue holds messages: the exposition must say so, by name,
without a parameter anywhere in it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from bgproc.installation import Installation
from bgproc.services.control import BeatInfo, WorkerInfo
from bgproc.statuses import Channel, RunStatus
from bgproc.web.app import create_app
from bgproc.web.auth import Access
from tests.e2e.services import free_port
from tests.integration.test_web_api import BEARER, DAILY, TOKEN, Web, web_app  # noqa: F401

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, metric: str, /, **labels: str) -> float | None:
    return found.get((metric, frozenset(labels.items())))


def test_metrics_tell_runs_workers_beats_queues_and_last_successes(web: Web) -> None:
    # Given a scheduled request with a secret, one that never succeeded, and their runs
    paid = web.cli.ok("request", "create", "test.secret", "--param", "token=s3cret", *DAILY,
                      "--name", "close day").out.strip()  # fmt: skip
    never = web.cli.ok("request", "create", "sample.echo", *DAILY).out.strip()
    now = datetime.now(UTC).replace(microsecond=0)
    ends = [now - timedelta(minutes=30), now - timedelta(minutes=20)]

    def ran(ended: datetime, duration_ms: int, **fields: object) -> int:
        due = ended - timedelta(milliseconds=duration_ms + 30)  # started 30 ms late
        values = {"request_id": int(paid), "process": "test.secret",
                  "params": {"token": "s3cret"}, "channel": Channel.scheduler,
                  "status": RunStatus.success, "scheduled_at": due, "queued_at": due,
                  "started_at": ended - timedelta(milliseconds=duration_ms),
                  "ended_at": ended, "duration_ms": duration_ms}  # fmt: skip
        return web.run(**{**values, **fields})

    ran(ends[0], 200)
    ran(ends[1], 3000)
    ran(now - timedelta(minutes=10), 40, status=RunStatus.error, error="boom")
    ran(now - timedelta(hours=2), 5)  # before the window: not counted
    web.run(process="sample.sleep", status=RunStatus.processing, ended_at=None, duration_ms=None)
    web.run(process="sample.sleep", status=RunStatus.lost, started_at=now, ended_at=now)
    web.run(request_id=int(never), process="sample.echo", status=RunStatus.misfired,
            started_at=None, duration_ms=None, scheduled_at=now, ended_at=now)  # fmt: skip
    # And a live worker, the beat holding the lock, two messages waiting
    control, settings = web.installation.control, web.installation.settings
    control.announce(WorkerInfo("w1@h", "h", 42, ("celery",), 2, "prefork", now, now))
    control.announce_beat(BeatInfo("h:1", "h", 1, True, now - timedelta(hours=1), now))
    control.redis.set(settings.beat_lock_key, "token", ex=60)
    control.broker.lpush(settings.key_prefix + "celery", "m1", "m2")

    # When Prometheus scrapes
    answer = web.client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(answer.text)

    # Then every figure is there, by name
    runs = "bgproc_recent_runs"
    assert value(found, runs, process="test.secret", status="success") == 2
    assert value(found, runs, process="test.secret", status="error") == 1
    assert value(found, runs, process="sample.sleep", status="lost") == 1
    assert value(found, runs, process="sample.echo", status="misfired") == 1
    assert value(found, "bgproc_recent_window_capped") == 0
    duration = "bgproc_recent_run_duration_seconds_bucket"
    assert value(found, duration, process="test.secret", le="0.1") == 1  # the 40 ms error
    assert value(found, duration, process="test.secret", le="0.5") == 2
    assert value(found, duration, process="test.secret", le="5.0") == 3
    assert value(found, duration, process="test.secret", le="+Inf") == 3
    assert value(found, "bgproc_recent_run_duration_seconds_gsum", process="test.secret") == 3.24
    lateness = "bgproc_recent_start_lateness_seconds_bucket"
    assert value(found, lateness, process="test.secret", le="0.01") == 0
    assert value(found, lateness, process="test.secret", le="0.05") == 3
    assert value(found, "bgproc_runs_processing", process="sample.sleep") == 1
    assert value(found, "bgproc_queue_messages", queue="celery") == 2
    assert value(found, "bgproc_workers") == 1
    assert value(found, "bgproc_beat_lock_held") == 1
    assert value(found, "bgproc_beat_holds_lock", beat="h:1") == 1
    assert value(found, "bgproc_up", service="database") == 1
    assert value(found, "bgproc_up", service="redis") == 1
    # And each scheduled request's last success, none for one that never succeeded
    close_day = {"request": paid, "name": "close day", "process": "test.secret"}
    last = "bgproc_request_last_success_timestamp_seconds"
    assert value(found, last, **close_day) == ends[1].timestamp()
    assert value(found, last, request=never, name="", process="sample.echo") is None
    created = value(found, "bgproc_request_created_timestamp_seconds", **close_day)
    assert created is not None and abs(created - now.timestamp()) < 60
    # And no parameter shows, secret or not
    assert "s3cret" not in answer.text and "token" not in answer.text


def test_metrics_speak_openmetrics_and_are_read_like_the_api(web: Web) -> None:
    web.run()
    accept = {"accept": "application/openmetrics-text; version=1.0.0"}
    answer = web.client.get("/metrics", headers=accept)
    assert answer.headers["content-type"].startswith("application/openmetrics-text")
    assert answer.text.endswith("# EOF\n")
    assert "bgproc_recent_run_duration_seconds_gcount" in answer.text
    app = create_app(web.installation, Access(TOKEN, reads_open=False))
    with TestClient(app, base_url="http://bgproc.example") as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=BEARER).status_code == 200
    refused = web.client.get("/metrics", headers={"host": "evil.example"})
    assert refused.status_code == 403


def test_with_redis_away_metrics_still_tell_the_database_figures(web: Web) -> None:
    web.run()
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = replace(web.installation.settings, broker_url=dead, redbeat_url=dead)
    installation = Installation(settings, interactive=True)
    app = create_app(installation, Access(TOKEN, reads_open=True))
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        answer = client.get("/metrics")
    installation.engine.dispose()
    assert answer.status_code == 200, answer.text
    found = samples(answer.text)
    assert value(found, "bgproc_up", service="redis") == 0
    assert value(found, "bgproc_up", service="database") == 1
    assert value(found, "bgproc_recent_runs", process="sample.echo", status="success") == 1
    assert value(found, "bgproc_workers") is None  # unknown, not 0: no false alarm
