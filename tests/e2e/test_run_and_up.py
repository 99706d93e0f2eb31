"""``bgproc run`` (ad-hoc runs and their exit codes) and ``bgproc up`` (one-machine mode)."""

from __future__ import annotations

import socket
from datetime import timedelta

from bgproc.statuses import RunStatus
from tests.e2e.conftest import Stack, iso
from tests.e2e.outage_checks import settled
from tests.e2e.services import wait_s
from tests.waiting import wait_until

ONE_SECOND = timedelta(seconds=1)
MAX_LATE = timedelta(seconds=1.5)


def test_run_of_an_unknown_process_is_refused_with_one_line(stack: Stack) -> None:
    # Refused before anything is queued: exit 2, one `Error:` line, nothing recorded
    refused = stack.cli("run", "nope", check=False)
    assert refused.code == 2
    assert refused.out == ""
    assert refused.err.count("\n") == 1 and refused.err.startswith("Error: ")
    assert "nope" in refused.err
    assert stack.runs() == []


def test_run_wait_succeeds_prints_the_run_id_and_records_the_run(stack: Stack) -> None:
    stack.worker()
    ok = stack.cli("run", "sample.echo", "--param", "a=1", "--wait", "--timeout", "30")
    run_id = ok.out.strip()
    assert run_id.isdigit(), ok.out
    (run,) = stack.runs()
    assert run.id == int(run_id)
    assert run.status is RunStatus.success
    assert run.request_id is None and run.channel.value == "direct"
    assert run.result == {"a": "1"}
    assert run.queued_at is not None and run.started_at is not None and run.ended_at is not None
    assert run.queued_at <= run.started_at <= run.ended_at
    assert "echo" in (run.log or "")


def test_run_wait_of_a_failing_process_exits_1(stack: Stack) -> None:
    stack.worker()
    failed = stack.cli("run", "sample.fail", "--wait", "--timeout", "30", check=False)
    failed_id = failed.out.strip()
    assert failed_id.isdigit(), failed.out
    (bad,) = stack.runs()
    assert bad.id == int(failed_id) and bad.status is RunStatus.error
    assert "failed on purpose" in (bad.error or "") and "failed on purpose" in failed.err
    assert failed.code == 1, failed.err


def test_an_adhoc_run_keeps_its_due_time(stack: Stack) -> None:
    stack.worker()
    run_id = int(stack.cli("run", "sample.echo", "--wait", "--timeout", "30").out)
    (run,) = stack.runs()
    assert run.id == run_id and run.status is RunStatus.success
    assert run.scheduled_at is not None, "scheduled_at (the due time) was erased"
    assert run.scheduled_at <= run.started_at


def test_up_runs_an_every_second_request(stack: Stack) -> None:
    stack.up()
    request_id, timing = stack.create_json(
        "sample.echo", "--timing", "scheduled", "--frequency", "seconds", "--interval", "1",
        "--start", "+2s",
    )
    start = iso(timing["start"])

    def three_done() -> bool:
        return sum(r.status is RunStatus.success for r in stack.runs(request_id)) >= 3

    wait_until(three_done, 20, 0.1, "three successful runs under `bgproc up`")
    stack.cli("request", "unschedule", str(request_id))
    runs = [r for r in stack.fired(request_id) if r.status is RunStatus.success]
    dues = [r.scheduled_at for r in runs]
    assert dues[:3] == [start + k * ONE_SECOND for k in range(3)]
    assert len(set(dues)) == len(dues)
    assert all(timedelta(0) <= r.started_at - r.scheduled_at < MAX_LATE for r in runs[:3])
    # Beat recorded each fire as queued before publishing it: due <= queued <= started
    assert all(r.scheduled_at <= r.queued_at <= r.started_at for r in runs)
    assert all(r.task_id and r.worker == f"up@{socket.gethostname()}" for r in runs)


ALEMBIC_SAYS = ("Context impl", "Will assume", "Running upgrade", "alembic")


def test_up_on_a_fresh_sqlite_file_logs_nothing_of_alembic(stack: Stack) -> None:
    # Given a database file that does not exist yet: `up` makes and migrates it
    stack.use_database(f"sqlite:///{stack.tmp_path / 'fresh.db'}")
    up = stack.up()
    # When a run goes through the worker (its pool child checks the schema too)
    stack.cli("run", "sample.echo", "--wait", "--timeout", "30")
    stack.stop_all()
    # Then the console has bgproc's and Celery's lines, none of Alembic's
    assert not [line for line in up.text().splitlines() if any(s in line for s in ALEMBIC_SAYS)]


def test_requests_created_before_up_start_with_it_and_report_no_misfire(stack: Stack) -> None:
    # Given the README's order: requests created first (no beat has ever run), `up` later
    every = stack.create(
        "sample.echo", "--timing", "scheduled", "--frequency", "seconds", "--interval", "2"
    )
    later = stack.create("sample.echo", "--timing", "later", "--start", "+1s", "--misfire", "skip")
    wait_s(5)  # no beat: the first fires of both fall due and pass (the point of the test)
    stack.up()

    # When `up` runs them
    wait_until(lambda: len(stack.fired(every)) >= 2 and stack.runs(later), 30, 0.1,
               "two fires of the plan, and the one-shot run or recorded")  # fmt: skip
    stack.cli("request", "unschedule", str(every))
    runs = settled(stack)

    # Then nothing is reported missed: the one-shot ran once, the plan on its grid, all fine
    assert not [r.error for r in runs if r.status is RunStatus.misfired]
    (once,) = stack.runs(later)
    assert once.status is RunStatus.success
    fired = stack.fired(every)
    assert all(r.status is RunStatus.success for r in fired), [r.error for r in fired]
    dues = [r.scheduled_at for r in fired]
    assert len(set(dues)) == len(dues)
    assert all((due - dues[0]) % (2 * ONE_SECOND) == timedelta(0) for due in dues)
