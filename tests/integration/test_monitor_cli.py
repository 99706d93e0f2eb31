"""The monitor commands on real SQLite and PostgreSQL, through the real CLI entry, in-process.

This is about the queries and the command line, not workers: runs are written straight into
the store (``RunStore.record`` or SQL), as a worker would have left them, then read back
with ``bgproc monitor …``.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import make_url

from bgproc.statuses import Channel, RequestStatus, RunStatus
from bgproc.store.db import session_scope
from bgproc.store.models import ProcessRequest, ProcessRun
from bgproc.store.runs import LogChunk, RunStore
from bgproc.store.runview import TERMINAL, RunView
from bgproc.store.transitions import NewRun
from cli import monitor, output
from tests.integration.cli_harness import Cli as CliHarness

NOW = datetime.now(UTC).replace(microsecond=0)
MADRID = ZoneInfo("Europe/Madrid")
SPEC_FIELDS = {  # design §4, every one of them
    "id",
    "request_id",
    "process",
    "params",
    "status",
    "scheduled_at",
    "queued_at",
    "started_at",
    "ended_at",
    "duration_ms",
    "worker",
    "attempt",
    "log",
    "error",
    "traceback",
    "result",
    "task_id",
    "channel",
    "group_run_id",
    "progress",  # ctx.progress (issue 16)
    "retry",  # issue 17: the attempt's place among its fire's retries (null outside them)
    "start_by",  # issue 17: by when a queued run must start, or it expires (null: no deadline)
    "overdue_at",  # issue 17: when it went past its maximum runtime (null: it did not)
}
TIME_FIELDS = ("scheduled_at", "queued_at", "started_at", "ended_at")


@dataclass
class Cli(CliHarness):
    """The harness, plus the ids a ``monitor list`` prints."""

    def ids(self, *args: str) -> list[int]:
        return [run["id"] for run in self.ok("monitor", "list", "--json", *args).json()]


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    monkeypatch.setenv("BGPROC_DATABASE_URL", db_url)
    monkeypatch.setenv("BGPROC_TIMEZONE", "Europe/Madrid")
    monkeypatch.setenv("BGPROC_IMPORTS", "tests.integration.secret_processes")
    monkeypatch.setenv("BGPROC_KEY_PREFIX", f"test-{uuid.uuid4().hex[:10]}:")
    monkeypatch.setattr(output.console(), "width", 200)  # tables unfolded, to read cells
    return Cli(capsys)


@pytest.fixture
def store(engine: Engine) -> RunStore:
    return RunStore(engine)


def add(
    store: RunStore,
    at: datetime,
    process: str = "sample.echo",
    status: RunStatus = RunStatus.success,
    duration_ms: int | None = None,
    **fields: Any,
) -> int:
    """A run as a worker would have left it: one that never started is placed by its
    queueing (queued) or due time (misfired, skipped); a finished one ended after it ran."""
    values: dict[str, Any] = {
        "process": process,
        "params": {},
        "status": status,
        "channel": Channel.scheduler,
        "worker": "w1",
        "task_id": uuid.uuid4().hex,
    }
    if status is RunStatus.queued:
        values.update(queued_at=at, worker=None)
    elif status in (RunStatus.misfired, RunStatus.skipped):
        values.update(scheduled_at=at, ended_at=at + timedelta(seconds=1), worker=None)
    else:
        values.update(scheduled_at=at, queued_at=at, started_at=at)
        if status in TERMINAL:
            values.update(
                ended_at=at + timedelta(milliseconds=duration_ms or 0), duration_ms=duration_ms
            )
    values.update(fields)
    return store.record(NewRun(**values))


def add_request(engine: Engine, status: RequestStatus, updated: datetime) -> int:
    with session_scope(engine) as session:
        row = ProcessRequest(
            process="sample.echo",
            params={},
            timing={"v": 1, "timing": "immediate", "tz": "UTC"},
            status=status,
            created_at=updated,
            updated_at=updated,
        )
        session.add(row)
        session.flush()
        return row.id


def remaining_ids(engine: Engine, model: type[ProcessRun] | type[ProcessRequest]) -> set[int]:
    with session_scope(engine) as session:
        return set(session.scalars(select(model.id)))


def test_list_filters_newest_first_in_pages(cli: Cli, store: RunStore, engine: Engine) -> None:
    request = add_request(engine, RequestStatus.scheduled, NOW)
    old_echo = add(store, NOW - timedelta(days=10), duration_ms=1500, request_id=request)
    old_fail = add(
        store,
        NOW - timedelta(days=9),
        "sample.fail",
        RunStatus.error,
        300,
        error="RuntimeError: boom\nsecond line",
    )
    misfired = add(store, NOW - timedelta(days=5), status=RunStatus.misfired, request_id=request)
    mid_echo = add(store, NOW - timedelta(days=3), duration_ms=800, request_id=request)
    queued = add(store, NOW - timedelta(hours=1), "sample.fail", RunStatus.queued)
    processing = add(store, NOW - timedelta(minutes=30), "sample.sleep", RunStatus.processing)

    listed = cli.ok("monitor", "list", "--json").json()
    assert [run["id"] for run in listed] == [
        processing,
        queued,
        mid_echo,
        misfired,
        old_fail,
        old_echo,
    ]
    for run in listed:
        assert "log" not in run and "traceback" not in run  # a page of logs could be megabytes
        for field in TIME_FIELDS:
            if run[field] is not None:
                assert datetime.fromisoformat(run[field]).utcoffset() is not None

    assert cli.ids("--process", "sample.echo") == [mid_echo, misfired, old_echo]
    assert cli.ids("--status", "ERROR") == [old_fail]
    assert cli.ids("--request", str(request)) == [mid_echo, misfired, old_echo]
    assert cli.ids("--process", "sample.echo", "--status", "success", "--since", "4d") == [mid_echo]
    # A run that never started is placed by its queueing or due time.
    assert cli.ids("--since", "4d") == [processing, queued, mid_echo]
    window = ("--since", (NOW - timedelta(days=6)).isoformat(), "--until", "4d")
    assert cli.ids(*window) == [misfired]
    # A time without offset is wall-clock time in BGPROC_TIMEZONE.
    wall = (NOW - timedelta(days=9, hours=12)).astimezone(MADRID).replace(tzinfo=None)
    assert cli.ids("--until", wall.isoformat(timespec="seconds")) == [old_echo]

    pages: list[int] = []
    page = cli.ok("monitor", "list", "--json", "--limit", "4")
    hint = cli.ok("monitor", "list", "--limit", "4").err
    assert hint == f"more: --before {page.json()[-1]['id']}\n"
    while ids := [run["id"] for run in page.json()]:
        pages += ids
        page = cli.ok("monitor", "list", "--json", "--limit", "4", "--before", str(ids[-1]))
    assert pages == [run["id"] for run in listed]

    table = cli.ok("monitor", "list", "--status", "error").out
    assert "when (Europe/Madrid)" in table and "RuntimeError: boom" in table
    assert "second line" not in table
    local = (NOW - timedelta(days=9)).astimezone(MADRID).isoformat(sep=" ")
    assert local in table and "300 ms" in table


def test_every_path_of_the_list_query_gives_the_same_pages(store: RunStore, engine: Engine) -> None:
    request = add_request(engine, RequestStatus.scheduled, NOW)
    processes = ("sample.echo", "sample.fail", "sample.fail", "sample.sleep")
    statuses = (RunStatus.success, RunStatus.error, RunStatus.misfired)
    for n in range(30):
        add(
            store,
            NOW - timedelta(hours=30 - n + (n % 4) * 5),  # ids and times not in the same order
            processes[n % 4],
            statuses[n % 3],
            10 * n,
            request_id=request if n % 5 == 0 else None,
        )
    everything = store.list(limit=1000)
    assert [v.id for v in everything] == sorted((v.id for v in everything), reverse=True)
    since, until = NOW - timedelta(hours=20), NOW - timedelta(hours=8)
    cases: list[tuple[dict[str, Any], Any]] = [
        ({}, lambda v: True),
        ({"process": "sample.fail"}, lambda v: v.process == "sample.fail"),
        ({"status": RunStatus.error}, lambda v: v.status is RunStatus.error),
        ({"request_id": request}, lambda v: v.request_id == request),
        ({"since": since}, lambda v: v.when >= since),
        ({"since": since, "until": until}, lambda v: since <= v.when < until),
        (
            {"process": "sample.sleep", "status": RunStatus.misfired},
            lambda v: v.process == "sample.sleep" and v.status is RunStatus.misfired,
        ),
    ]
    for filters, keep in cases:
        expected = [v.id for v in everything if keep(v)]
        assert expected, filters
        for probe_runs in (1, 4, 10_000):  # the id-ordered probe, the index fallback, both
            for limit in (3, 1000):
                pages: list[RunView] = []
                while True:
                    before = pages[-1].id if pages else None
                    page = store.list(
                        **filters, limit=limit, before_id=before, probe_runs=probe_runs
                    )
                    if not page:
                        break
                    pages += page
                assert [v.id for v in pages] == expected, (filters, probe_runs, limit)


def test_secret_params_are_masked_in_every_output(cli: Cli, store: RunStore) -> None:
    secret = add(store, NOW, "test.secret", params={"token": "hunter2", "user": "ana"})
    gone = add(store, NOW, "gone.process", params={"token": "kept-as-stored"})

    outputs = [
        cli.ok("monitor", "list").out,
        cli.ok("monitor", "list", "--json").out,
        cli.ok("monitor", "list", "--process", "test.secret", "--json").out,
        cli.ok("monitor", "show", str(secret)).out,
        cli.ok("monitor", "show", str(secret), "--json").out,
    ]
    assert not [out for out in outputs if "hunter2" in out]
    assert cli.ok("monitor", "show", str(secret), "--json").json()["params"] == {
        "token": "***",
        "user": "ana",
    }
    assert "token=***, user=ana" in cli.ok("monitor", "show", str(secret)).out
    # A process no longer registered has no declaration left to tell its secrets.
    assert cli.ok("monitor", "show", str(gone), "--json").json()["params"] == {
        "token": "kept-as-stored"
    }


def test_show_has_every_field_and_the_end_of_the_log(
    cli: Cli, store: RunStore, engine: Engine
) -> None:
    request = add_request(engine, RequestStatus.scheduled, NOW)
    group = add(store, NOW - timedelta(hours=2), "sample.echo", RunStatus.processing)
    lines = "".join(f"line {n}\n" for n in range(1, 31))
    run = add(
        store,
        NOW - timedelta(hours=1),
        "sample.fail",
        RunStatus.error,
        1234,
        request_id=request,
        group_run_id=group,
        attempt=2,
        worker="w9",
        error="RuntimeError: boom",
        traceback="Traceback (most recent call last):\nRuntimeError: boom",
        result={"rows": 3},
        log=lines,
    )

    shown = cli.ok("monitor", "show", str(run), "--json").json()
    assert set(shown) == SPEC_FIELDS
    assert shown["group_run_id"] == group and shown["request_id"] == request
    assert (shown["attempt"], shown["worker"], shown["duration_ms"]) == (2, "w9", 1234)
    assert shown["result"] == {"rows": 3} and shown["log"] == lines
    assert shown["status"] == "error" and shown["channel"] == "scheduler"
    assert datetime.fromisoformat(shown["started_at"]) == NOW - timedelta(hours=1)
    assert all(datetime.fromisoformat(shown[f]).utcoffset() is not None for f in TIME_FIELDS)

    table = cli.ok("monitor", "show", str(run)).out
    assert "1.2 s" in table and "RuntimeError: boom" in table and "w9" in table
    assert '{"rows": 3}' in table  # the result as JSON, as --json has it (not a Python repr)
    assert "line 30" in table and "line 11" in table and "line 10" not in table  # the tail
    assert f"last 20 of 30 lines: bgproc monitor log {run}" in table
    assert (NOW - timedelta(hours=1)).astimezone(MADRID).isoformat(sep=" ") in table

    assert cli.ok("monitor", "log", str(run)).out == lines


def test_show_says_where_a_queued_runs_message_is(cli: Cli, store: RunStore) -> None:
    # a message in no queue and with no worker (workers and queues are tests/e2e's)
    run = add(store, NOW, status=RunStatus.queued)
    shown = cli.ok("monitor", "show", str(run), "--json").json()
    assert shown["message"]["place"] == "nowhere"
    assert "neither in a queue nor with a worker" in cli.ok("monitor", "show", str(run)).out
    ended = add(store, NOW, status=RunStatus.success)
    assert "message" not in cli.ok("monitor", "show", str(ended), "--json").json()


def test_show_of_a_queued_run_answers_without_redis(
    cli: Cli, store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BGPROC_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens
    run = add(store, NOW, status=RunStatus.queued)
    assert cli.ok("monitor", "show", str(run), "--json").json()["message"]["place"] == "unknown"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_reading_commands_answer_while_a_writer_holds_sqlites_write_lock(
    cli: Cli, store: RunStore, engine: Engine, db_url: str
) -> None:
    # Given a run, a request, and a worker (or beat) inside a write transaction
    run = add(store, NOW, duration_ms=5, log="a line\n")
    request = add_request(engine, RequestStatus.unscheduled, NOW)
    writer = sqlite3.connect(str(make_url(db_url).database), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        # Then every command that only reads answers (one that wanted the write lock too
        # would wait out the busy timeout, then fail with "database is locked")
        for command in (
            ("monitor", "list"),
            ("monitor", "show", str(run)),
            ("monitor", "log", str(run)),
            ("monitor", "stats"),
            ("request", "list"),
            ("request", "show", str(request)),
            ("group", "list"),
        ):
            cli.ok(*command)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_stats_agree_with_the_list(cli: Cli, store: RunStore) -> None:
    for n, ms in enumerate(range(100, 1001, 100)):
        add(store, NOW - timedelta(hours=20 - n), "sample.echo", RunStatus.success, ms)
    add(store, NOW - timedelta(hours=5), "sample.echo", RunStatus.error, 5000)
    add(store, NOW - timedelta(hours=4), "sample.echo", RunStatus.error, 7000)
    add(store, NOW - timedelta(hours=3), "sample.echo", RunStatus.skipped)
    add(store, NOW - timedelta(hours=2), "sample.echo", RunStatus.processing)
    queued = add(store, NOW - timedelta(hours=1), "sample.echo", RunStatus.queued)
    add(store, NOW - timedelta(days=3), "sample.fail", RunStatus.error, 40)
    add(store, NOW - timedelta(days=2), "sample.fail", RunStatus.killed, 60)

    stats = {row["process"]: row for row in cli.ok("monitor", "stats", "--json").json()}
    assert sorted(stats) == ["sample.echo", "sample.fail"]
    echo = stats["sample.echo"]
    for process, row in stats.items():
        for status in RunStatus:
            assert row["counts"][status.value] == len(
                cli.ids("--process", process, "--status", status.value, "--limit", "1000")
            )
        assert row["total"] == len(cli.ids("--process", process))
    assert echo["counts"]["success"] == 10 and echo["finished"] == 13 and echo["ran"] == 12
    assert echo["success_rate"] == pytest.approx(10 / 12)  # the skipped one did not run
    # 100..1000, 5000, 7000: the median between 600 and 700, p95 between 5000 and 7000.
    assert echo["p50_ms"] == pytest.approx(650.0)
    assert echo["p95_ms"] == pytest.approx(5900.0)
    assert echo["max_ms"] == 7000
    assert echo["last_run_id"] == queued == cli.ids("--process", "sample.echo")[0]
    assert datetime.fromisoformat(echo["last_run_at"]) == NOW - timedelta(hours=1)
    fail = stats["sample.fail"]
    assert (fail["p50_ms"], fail["p95_ms"], fail["max_ms"]) == (50.0, pytest.approx(59.0), 60)
    assert fail["success_rate"] == 0.0

    recent = cli.ok("monitor", "stats", "--since", "90m", "--json").json()
    assert [(row["process"], row["total"]) for row in recent] == [("sample.echo", 1)]
    assert recent[0]["counts"]["queued"] == 1 and recent[0]["p50_ms"] is None
    only = cli.ok("monitor", "stats", "--process", "sample.fail", "--json").json()
    assert only == [stats["sample.fail"]]
    both = cli.ok("monitor", "stats", "--process", "sample.fail", "--since", "60h", "--json")
    assert [(row["process"], row["counts"]["killed"], row["total"]) for row in both.json()] == [
        ("sample.fail", 1, 1)
    ]
    assert cli.ok("monitor", "stats", "--process", "nothing.here", "--json").json() == []

    table = cli.ok("monitor", "stats").out
    assert "650 ms" in table and "5.9 s" in table and "7.0 s" in table and "83.3%" in table
    assert "processing" in table and "lost" not in table  # only the statuses that occur


def test_success_rate_counts_only_the_runs_that_ran(cli: Cli, store: RunStore) -> None:
    # Given a process that never failed, with fires that did not run beside its successes,
    # and a process none of whose fires ran
    for hour in range(6):
        add(store, NOW - timedelta(hours=10 - hour), "sample.echo", RunStatus.success, 100)
    add(store, NOW - timedelta(hours=3), "sample.echo", RunStatus.misfired)
    add(store, NOW - timedelta(hours=2), "sample.echo", RunStatus.skipped)
    add(store, NOW - timedelta(hours=1), "sample.sleep", RunStatus.misfired)

    # Then its rate is 100 %: misfired and skipped are counts apart, not failures
    stats = {row["process"]: row for row in cli.ok("monitor", "stats", "--json").json()}
    echo, sleep = stats["sample.echo"], stats["sample.sleep"]
    assert (echo["success_rate"], echo["ran"], echo["total"]) == (1.0, 6, 8)
    assert (echo["counts"]["misfired"], echo["counts"]["skipped"]) == (1, 1)
    # and with no run that ran there is no rate at all
    assert (sleep["success_rate"], sleep["ran"], sleep["counts"]["misfired"]) == (None, 0, 1)
    table = cli.ok("monitor", "stats").out.splitlines()
    (echo_line,) = [line for line in table if "sample.echo" in line]
    (sleep_line,) = [line for line in table if "sample.sleep" in line]
    assert "100.0%" in echo_line and "%" not in sleep_line


def days(n: int) -> datetime:
    return NOW - timedelta(days=n)


def test_prune_keeps_etendo_defaults_and_never_live_runs(
    cli: Cli, store: RunStore, engine: Engine
) -> None:
    done = add_request(engine, RequestStatus.complete, NOW - timedelta(days=16))
    recent_done = add_request(engine, RequestStatus.complete, NOW - timedelta(days=10))
    planned = add_request(engine, RequestStatus.scheduled, NOW - timedelta(days=100))
    pruned_now = {
        add(store, days(16), status=RunStatus.success, duration_ms=5),
        add(store, days(31), status=RunStatus.error, duration_ms=5),
        add(store, days(40), status=RunStatus.killed, duration_ms=5),
        add(store, days(40), status=RunStatus.misfired),
    }
    group = add(store, days(20), status=RunStatus.success, duration_ms=9)
    child = add(store, days(20), status=RunStatus.error, duration_ms=3, group_run_id=group)
    pruned_later = {
        add(store, days(14), status=RunStatus.success, duration_ms=5),
        add(store, days(29), status=RunStatus.error, duration_ms=5),
        add(store, days(1), status=RunStatus.success, duration_ms=5, request_id=done),
    }
    live = {
        add(store, days(100), status=RunStatus.queued),
        add(store, days(100), status=RunStatus.processing),
    }

    assert cli("monitor", "prune", "--older-than", "0d").code == 2  # refused: nothing deleted
    by_status = {"success": 2, "error": 1, "killed": 1, "misfired": 1}
    counts = {"success_runs": 2, "other_runs": 3, "child_runs": 1, "requests": 1,
              "runs_by_status": by_status}  # fmt: skip
    # A dry run tells what the same rules would delete, and deletes nothing
    everything = remaining_ids(engine, ProcessRun), remaining_ids(engine, ProcessRequest)
    assert cli.ok("monitor", "prune", "--dry-run", "--json").json() == {**counts, "dry_run": True}
    assert cli.ok("monitor", "prune", "--dry-run").out.strip() == (
        "would prune 5 finished runs (success 2, error 1, killed 1, misfired 1), "
        "1 group step run with them, 1 complete request (dry run: nothing deleted)"
    )
    assert (remaining_ids(engine, ProcessRun), remaining_ids(engine, ProcessRequest)) == everything
    pruned = cli.ok("monitor", "prune", "--json").json()
    assert pruned == {**counts, "dry_run": False}
    assert remaining_ids(engine, ProcessRun) == pruned_later | live
    assert remaining_ids(engine, ProcessRun).isdisjoint(pruned_now | {group, child})
    assert remaining_ids(engine, ProcessRequest) == {recent_done, planned}
    with session_scope(engine) as session:  # the runs of a deleted request keep their history
        unlinked = session.scalar(select(func.count()).where(ProcessRun.request_id.is_(None)))
    assert unlinked == len(pruned_later | live)

    assert cli.ok("monitor", "prune").out.strip() == (
        "pruned 0 finished runs, 0 group step runs with them, 0 complete requests"
    )
    assert cli.ok("monitor", "prune", "--older-than", "1h", "--dry-run").out.strip() == (
        "would prune 3 finished runs (success 2, error 1), 0 group step runs with them, "
        "1 complete request (dry run: nothing deleted)"
    )
    assert cli.ok("monitor", "prune", "--older-than", "1h").out.strip() == (
        "pruned 3 finished runs (success 2, error 1), 0 group step runs with them, "
        "1 complete request"
    )
    assert remaining_ids(engine, ProcessRun) == live
    assert remaining_ids(engine, ProcessRequest) == {planned}

    # A million rows go in short batches; any batch size gives the same result.
    for n in range(5):
        add(store, days(40 + n), status=RunStatus.lost)
    assert store.prune(now=NOW, batch_size=2).other_runs == 5
    assert remaining_ids(engine, ProcessRun) == live


def test_log_follow_prints_what_is_appended_until_the_run_ends(
    cli: Cli, store: RunStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = add(store, NOW, "sample.spam", RunStatus.processing, log="line 1\n")
    monkeypatch.setattr(monitor, "FOLLOW_POLL_S", 0.02)
    reads: list[LogChunk] = []
    progress = threading.Condition()
    read_log = RunStore.read_log

    def spy(self: RunStore, run_id: int, offset: int = 0) -> LogChunk:
        chunk = read_log(self, run_id, offset)
        with progress:
            reads.append(chunk)
            progress.notify_all()
        return chunk

    def follower_has_read(text: str) -> bool:
        return any(chunk.text.endswith(text) for chunk in reads)

    def append(text: str) -> None:
        with session_scope(engine) as session:
            session.execute(
                update(ProcessRun)
                .where(ProcessRun.id == run)
                .values(log=func.coalesce(ProcessRun.log, "").concat(text))
            )

    def wait_until_read(text: str) -> None:
        with progress:
            assert progress.wait_for(lambda: follower_has_read(text), 10), text

    def worker() -> None:
        """Appends each line only once the follower has read the one before, then ends."""
        try:
            for n in (2, 3):
                wait_until_read(f"line {n - 1}\n")
                append(f"line {n}\n")
            wait_until_read("line 3\n")
        finally:
            with session_scope(engine) as session:
                session.execute(
                    update(ProcessRun)
                    .where(ProcessRun.id == run)
                    .values(status=RunStatus.success, ended_at=NOW, duration_ms=5)
                )

    monkeypatch.setattr(RunStore, "read_log", spy)
    thread = threading.Thread(target=worker)
    thread.start()
    followed = cli("monitor", "log", str(run), "--follow")
    thread.join(10)

    assert followed.code == 0, followed.err
    assert followed.out == "line 1\nline 2\nline 3\n"
    assert [chunk.text for chunk in reads if chunk.text] == ["line 1\n", "line 2\n", "line 3\n"]
    assert reads[-1].finished and not any(chunk.finished for chunk in reads[:-1])
    # A log that became shorter than what was read is given again from its start.
    again = store.read_log(run, 1000)
    assert (again.text, again.end, again.restarted) == ("line 1\nline 2\nline 3\n", 21, True)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("list", "--status", "nope"), 2, "status: 'nope' is not one of: queued,"),
        (
            ("list", "--since", "yesterday"),
            2,
            "since: 'yesterday' is not a date-time or a "
            "duration back from now (use 2h, 30m or 2027-01-31T09:30)",
        ),
        (("list", "--since", "+10m"), 2, "since: '+10m' is in the future ("),
        (("stats", "--since", "2199-01-01"), 2, "since: '2199-01-01' is in the future ("),
        (("list", "--until", "2h", "--since", "1h"), 2, "until: must be later than --since"),
        (("list", "--limit", "0"), 2, "limit: must be between 1 and 1000"),
        (("list", "--limit", "many"), 2, "limit: 'many' is not a whole number"),
        (("list", "--request", "x"), 2, "request: 'x' is not a whole number"),
        (("list", "--limit=--5"), 2, "limit: '--5' is not a whole number"),
        (("show", "9" * 30), 2, f"run id: must be between 1 and 999999999999 (got {'9' * 30})"),
        (("list", "--before", "0"), 2, "before: must be between 1"),
        (("stats", "--since", "soon"), 2, "since: 'soon' is not a date-time"),
        (("prune", "--older-than", "5x"), 2, "older-than: '5x' is not a duration"),
        (("show", "abc"), 2, "run id: 'abc' is not a whole number"),
        (("show", "-5"), 2, "run id: must be between 1"),  # not click's "No such option"
        (("kill", "-1"), 2, "run id: must be between 1"),
        (("show", "--nope"), 2, "No such option '--nope'. (see --help)"),
        (("show", "4242"), 3, "run 4242 not found"),
        (("log", "4242"), 3, "run 4242 not found"),
        (("log", "4242", "--follow"), 3, "run 4242 not found"),
    ],
)
@pytest.mark.parametrize("backend", ["sqlite"])  # input errors: no need to repeat them on PG
def test_bad_input_and_unknown_ids_are_one_line(
    cli: Cli, args: tuple[str, ...], code: int, message: str
) -> None:
    result = cli("monitor", *args)
    assert result.code == code
    assert result.err.startswith(f"Error: {message}") and result.err.count("\n") == 1
    assert result.out == "" and "Traceback" not in result.err


def test_unknown_run_on_both_backends(cli: Cli) -> None:
    result = cli("monitor", "show", "7", "--json")
    assert (result.code, result.err, result.out) == (3, "Error: run 7 not found\n", "")
