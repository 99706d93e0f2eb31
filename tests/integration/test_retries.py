"""Retries in the store and the services, on SQLite and PostgreSQL: a failed attempt and
its retry are written once, together; unschedule and kill stop a waiting retry; a
request's policy is stored, shown and changed like its other fields."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from bgproc.errors import Conflict
from bgproc.registry import REGISTRY, Registry
from bgproc.services.kills import Killer
from bgproc.services.requests import RequestService
from bgproc.statuses import Channel, RunStatus
from bgproc.store.models import ProcessRequest
from bgproc.store.retries import Retry
from bgproc.store.runs import RunStore
from bgproc.store.transitions import NewRun, RunOutcome
from bgproc.timing.retry import RetryPolicy
from tests.integration.cli_harness import StoreCli, isolated

T = datetime(2027, 1, 1, 12, tzinfo=UTC)


class NoEntries:
    """Schedule entries nobody reads here: the services' Redis side is not under test."""

    def remove(self, request_id: int) -> None:
        """Nothing to remove."""


class NoKills:
    """A control that records kill requests instead of writing them to Redis."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def ask_kill(self, run_id: int) -> None:
        self.asked.append(run_id)


@pytest.fixture
def cli(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[StoreCli]:
    yield from isolated(StoreCli, db_url, monkeypatch, capsys)


def _failed_attempt(runs: RunStore, request_id: int | None = None) -> int:
    return runs.record(
        NewRun(process="sample.fail", params={"message": "x"}, status=RunStatus.processing,
               channel=Channel.scheduler, request_id=request_id, scheduled_at=T, queued_at=T,
               started_at=T, worker="w1", task_id=str(uuid.uuid4()))
    )  # fmt: skip


def _error(run_id: int, attempt: int = 1) -> RunOutcome:
    end = T + timedelta(seconds=1)
    return RunOutcome(run_id, attempt, RunStatus.error, end, 1000, "RuntimeError: x", "tb")


def _retry(first: int, due_s: int = 30) -> Retry:
    return Retry(str(uuid.uuid4()), T + timedelta(seconds=1 + due_s), 2, 3, first)


def _request(engine: Engine) -> int:
    service = RequestService(engine, NoEntries, REGISTRY, "UTC")  # type: ignore[arg-type]
    view = service.create(
        {"process": "sample.fail", "timing": "later", "start": "+1h", "retries": "2"},
        schedule=False,
    )
    return view.id


def test_a_failed_attempt_and_its_retry_are_written_together_and_once(engine: Engine) -> None:
    runs = RunStore(engine)
    request_id = _request(engine)
    first = _failed_attempt(runs, request_id)
    now = T + timedelta(seconds=1)

    # When two workers would both retry the same failure
    results: list[int | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(
            runs.fail_and_retry(_error(first), _retry(first), now)))
        for _ in range(2)
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then exactly one retry was made: queued when due, of the same request and params
    made = [r for r in results if r is not None]
    assert len(made) == 1
    failed, retry = runs.get(first), runs.get(made[0])
    assert (failed.status, failed.error, failed.retry_run_id) == (RunStatus.error,
                                                                  "RuntimeError: x", retry.id)
    assert failed.retry_at == T + timedelta(seconds=31) == retry.scheduled_at
    assert (retry.status, retry.request_id, retry.params, retry.channel) == (
        RunStatus.queued, request_id, {"message": "x"}, Channel.scheduler
    )  # fmt: skip
    assert (retry.first_run_id, retry.try_number, retry.max_tries) == (first, 2, 3)
    assert failed.as_json()["retry"] == {"attempt": 1, "of": 3, "first_run_id": first,
        "retrying_at": "2027-01-01T12:00:31+00:00", "retry_run_id": retry.id}  # fmt: skip
    assert retry.as_json()["retry"]["retrying_at"] is None


def test_an_attempt_someone_else_ended_is_not_retried(engine: Engine) -> None:
    runs = RunStore(engine)
    first = _failed_attempt(runs)
    runs.close_open(first, "", RunStatus.lost, T, "lost: the sweeper")
    assert runs.fail_and_retry(_error(first), _retry(first), T) is None
    failed = runs.get(first)
    assert failed.status is RunStatus.lost and failed.retry_run_id is None


def test_unschedule_skips_the_waiting_retries_of_its_request_only(engine: Engine) -> None:
    runs = RunStore(engine)
    service = RequestService(engine, NoEntries, REGISTRY, "UTC")  # type: ignore[arg-type]
    mine, other = _request(engine), _request(engine)
    waiting = {}
    for request_id in (mine, other):
        first = _failed_attempt(runs, request_id)
        waiting[request_id] = runs.fail_and_retry(_error(first), _retry(first), T)

    service.unschedule(mine)

    skipped, kept = runs.get(waiting[mine]), runs.get(waiting[other])
    assert skipped.status is RunStatus.skipped and "unscheduled" in (skipped.error or "")
    assert runs.get(skipped.first_run_id).retry_at is None
    assert kept.status is RunStatus.queued


def test_kill_stops_a_waiting_retry_by_its_id_or_its_failed_runs(engine: Engine) -> None:
    runs = RunStore(engine)
    control = NoKills()
    killer = Killer(runs, control, REGISTRY)  # type: ignore[arg-type]
    first = _failed_attempt(runs)
    retry_id = runs.fail_and_retry(_error(first), _retry(first), T)
    assert retry_id is not None

    # sample.fail is not killable: a waiting retry is stopped all the same (nothing runs)
    outcome = killer.kill(first, wait_s=0)
    assert outcome.killed and outcome.run.id == retry_id and control.asked == []
    assert runs.get(first).retry_at is None
    with pytest.raises(Conflict, match="already ended"):
        killer.kill(first, wait_s=0)

    second = _failed_attempt(runs)
    retry_id = runs.fail_and_retry(_error(second), _retry(second), T)
    assert retry_id is not None and killer.kill(retry_id, wait_s=0).killed


def test_a_requests_policy_is_stored_shown_changed_and_cleared(cli: StoreCli) -> None:
    created = cli.ok("request", "create", "sample.fail", "--no-schedule", "--retries", "3",
                     "--retry-backoff", "1m", "--retry-max", "10m", "--json").json()  # fmt: skip
    assert created["retry"] == {"retries": 3, "backoff_s": 60, "max_s": 600, "jitter": False,
        "from": "request",
        "description": "3 retries, 1 min after an error, doubling, at most 10 min"}  # fmt: skip
    request = str(created["id"])

    # An update changes one field and keeps the others
    cli.ok("request", "update", request, "--retry-jitter")
    shown = cli.ok("request", "show", request, "--json").json()["retry"]
    assert (shown["retries"], shown["backoff_s"], shown["jitter"]) == (3, 60, True)
    assert "3 retries, 1 min after an error, doubling" in cli.ok("request", "show", request).out

    # --retries 0 is a policy too: no retries
    cli.ok("request", "update", request, "--retries", "0")
    assert cli.ok("request", "show", request, "--json").json()["retry"]["retries"] == 0

    # A request without a policy of its own has none (sample.fail declares no default)
    plain = cli.ok("request", "create", "sample.fail", "--no-schedule", "--json").json()
    assert plain["retry"] is None
    assert "retries             none" in cli.ok("request", "show", str(plain["id"])).out


def test_a_process_default_shows_as_the_process_and_a_request_overrides_it(
    engine: Engine,
) -> None:
    registry = Registry()
    registry.add(replace(REGISTRY.get("sample.fail"), retry=RetryPolicy(2, 10)))
    service = RequestService(engine, NoEntries, registry, "UTC")  # type: ignore[arg-type]
    fields = {"process": "sample.fail", "timing": "later", "start": "+1h"}
    default = service.create(fields, schedule=False)
    assert default.retry_document is not None
    assert (default.retry_document["from"], default.retry_document["retries"]) == ("process", 2)
    own = service.create({**fields, "retries": "1"}, schedule=False)
    assert own.retry == RetryPolicy(1) and own.retry_is_own
    with engine.connect() as connection:
        stored = connection.execute(ProcessRequest.__table__.select()).all()
    assert [row.retry for row in stored] == [None, RetryPolicy(1).as_dict()]
