"""``sync``: Redis rebuilt from the database, orphans dropped, no fire repeated (design §3).

Real Redis under a key prefix of its own per test, real SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from bgproc.errors import Unavailable
from bgproc.installation import Installation
from bgproc.services import sync as sync_module
from bgproc.services.sync import SyncReport, sync
from bgproc.settings import Settings
from bgproc.statuses import RequestStatus, RunStatus
from bgproc.store.db import session_scope
from bgproc.store.models import ProcessRequest, ProcessRun

BROKER = "redis://127.0.0.1:6379/0"
EVERY_5S = {
    "process": "sample.echo",
    "timing": "scheduled",
    "frequency": "seconds",
    "interval": "5",
}


def synced(inst: Installation) -> SyncReport:
    """One sync of the installation's SQL and Redis, now."""
    return sync(inst.engine, inst.entries, inst.registry, now())


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def inst(db_url: str) -> Iterator[Installation]:
    """An installation on this test's store and Redis prefix; its keys go at teardown."""
    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    settings = Settings(
        database_url=db_url, key_prefix=prefix, broker_url=BROKER, timezone="Europe/Madrid"
    )
    installation = Installation(settings)
    yield installation
    client = installation.entries.redis
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    installation.engine.dispose()


def create(inst: Installation, fields: dict[str, Any] = EVERY_5S, schedule: bool = True) -> int:
    return inst.requests.create(fields, schedule=schedule).id


def wipe(inst: Installation) -> None:
    """Lose every Redis key of the installation, as a Redis restart without persistence does."""
    client = inst.entries.redis
    client.delete(*client.scan_iter(match=inst.settings.key_prefix + "*"))


def raw(inst: Installation, request_id: int) -> tuple[dict[str, str], float | None]:
    """An entry exactly as stored: its hash and its score."""
    key = inst.entries.key(request_id)
    return inst.entries.redis.hgetall(key), inst.entries.redis.zscore(
        inst.entries.conf.schedule_key, key
    )


def record_run(inst: Installation, request_id: int, due: datetime) -> None:
    """A run of the request's fire at ``due``, as a worker records it."""
    with session_scope(inst.engine) as session:
        session.add(
            ProcessRun(
                request_id=request_id,
                process="sample.echo",
                params={},
                status=RunStatus.success,
                scheduled_at=due,
            )
        )


def set_row(inst: Installation, request_id: int, **values: Any) -> None:
    with session_scope(inst.engine) as session:
        session.execute(
            update(ProcessRequest).where(ProcessRequest.id == request_id).values(**values)
        )


def status(inst: Installation, request_id: int) -> RequestStatus:
    return inst.requests.get(request_id).status


def test_wiped_redis_is_rebuilt_for_the_scheduled_requests_only(inst: Installation) -> None:
    # A plan whose first fire is not in the second it was scheduled in: the row's updated_at
    # can be a few ms later than that instant (RequestService.create), a second later at worst.
    start = (now() - timedelta(minutes=5)).replace(microsecond=0)
    every_10m = {**EVERY_5S, "frequency": "minutes", "interval": "10", "start": start}
    scheduled = [create(inst, every_10m) for _ in range(3)]
    later = create(
        inst,
        {"process": "sample.echo", "timing": "later", "start": (now() + timedelta(hours=1))},
    )
    never = create(inst, schedule=False)
    stopped = create(inst)
    inst.requests.unschedule(stopped)
    before = {i: inst.entries.next_fire(i) for i in [*scheduled, later]}
    wipe(inst)

    report = synced(inst)

    assert report == SyncReport(rebuilt=[*scheduled, later])
    assert inst.entries.ids() == {*scheduled, later}
    assert {i: inst.entries.next_fire(i) for i in [*scheduled, later]} == before
    assert inst.requests.get(later).timing.start == before[later]
    assert status(inst, never) is status(inst, stopped) is RequestStatus.unscheduled


def test_a_rebuilt_plan_goes_on_after_its_last_recorded_fire(inst: Installation) -> None:
    start = (now() - timedelta(hours=1)).replace(microsecond=0)
    every_10m = {**EVERY_5S, "frequency": "minutes", "interval": "10", "start": start}
    long_ago, rescheduled, unreadable = (create(inst, every_10m) for _ in range(3))
    set_row(inst, long_ago, updated_at=start)  # scheduled an hour ago, ran at start + 30 min
    set_row(inst, unreadable, updated_at=start)  # (not "now": a slow second would move it)
    record_run(inst, long_ago, start + timedelta(minutes=30))
    record_run(inst, rescheduled, start + timedelta(minutes=30))  # before its last reschedule
    fresh_plan = inst.entries.next_fire(rescheduled)
    entry = inst.entries.get(unreadable)
    assert entry is not None
    entry.last_run_at = start + timedelta(minutes=50)  # only the entry knew of this fire
    inst.entries.redis.hset(
        inst.entries.key(unreadable), mapping={"definition": "{old", "meta": entry.meta_json()}
    )
    inst.entries.remove(long_ago)
    inst.entries.remove(rescheduled)

    report = synced(inst)

    assert report.rebuilt == [long_ago, rescheduled, unreadable]
    assert inst.entries.next_fire(long_ago) == start + timedelta(minutes=40)
    assert inst.entries.next_fire(rescheduled) == fresh_plan
    assert inst.entries.next_fire(unreadable) == start + timedelta(minutes=60)


def test_orphans_are_removed(inst: Installation) -> None:
    kept = create(inst)
    never = create(inst, schedule=False)
    deleted = create(inst)
    inst.requests.unschedule(deleted)
    inst.requests.delete(deleted)
    timing = inst.requests.get(kept).timing
    for request_id in (never, deleted, 999_999):
        inst.entries.put(request_id, timing, scheduled_from=now(), misfire="run-once", queue="q")

    report = synced(inst)

    assert report == SyncReport(removed=[never, deleted, 999_999], kept=1)
    assert inst.entries.ids() == {kept}
    assert raw(inst, never) == ({}, None)


def test_readable_entries_are_kept_untouched(inst: Installation) -> None:
    fired, fresh = create(inst), create(inst)
    tombstone = create(inst, {**EVERY_5S, "repetitions": "1"})
    for request_id, until in ((fired, now()), (tombstone, now() + timedelta(minutes=1))):
        entry = inst.entries.get(request_id)
        assert entry is not None
        occurrence = entry.schedule.occurrence(None, until)
        assert occurrence is not None and entry.advance(occurrence) is not None
    assert inst.entries.next_fire(tombstone) is None
    before = {i: raw(inst, i) for i in (fired, fresh, tombstone)}

    assert synced(inst) == SyncReport(kept=3)
    assert {i: raw(inst, i) for i in (fired, fresh, tombstone)} == before
    assert status(inst, tombstone) is RequestStatus.scheduled  # beat ends it, not sync


def test_an_entry_that_lost_its_place_in_the_schedule_gets_it_back(inst: Installation) -> None:
    request_id = create(inst)
    before = raw(inst, request_id)
    inst.entries.redis.zrem(inst.entries.conf.schedule_key, inst.entries.key(request_id))

    assert synced(inst) == SyncReport(reindexed=[request_id])
    assert raw(inst, request_id) == before


def test_what_has_no_fire_left_is_completed_and_a_lost_one_shot_fires_once_on_recovery(
    inst: Installation,
) -> None:
    once = create(inst, {**EVERY_5S, "repetitions": "1"})
    record_run(inst, once, inst.requests.get(once).timing.start)  # type: ignore[arg-type]
    immediate = create(inst, {"process": "sample.echo", "timing": "immediate"})
    wipe(inst)

    report = synced(inst)

    # No run of the immediate is on record (beat records each fire before sending it), so
    # it never fired: its entry comes back, and beat fires it once (or per its misfire policy)
    assert report == SyncReport(completed=[once], rebuilt=[immediate])
    assert inst.entries.ids() == {immediate}
    assert status(inst, once) is RequestStatus.complete
    assert status(inst, immediate) is RequestStatus.scheduled
    assert inst.runs.of_request(immediate) == []


def test_a_one_shot_whose_fire_is_on_record_is_not_fired_again(inst: Installation) -> None:
    immediate = create(inst, {"process": "sample.echo", "timing": "immediate"})
    record_run(inst, immediate, inst.entries.next_fire(immediate))  # type: ignore[arg-type]
    wipe(inst)

    assert synced(inst) == SyncReport(completed=[immediate])
    assert inst.entries.ids() == set()


def test_group_requests_are_rebuilt_on_the_default_queue_and_recorded_by_label(
    inst: Installation,
) -> None:
    inst.groups.create({"name": "nightly", "steps": [{"process": "sample.echo"}]})
    plan = create(inst, {**EVERY_5S, "process": None, "group": "nightly"})
    immediate = create(inst, {"group": "nightly", "timing": "immediate"})
    before = inst.entries.next_fire(plan)
    wipe(inst)

    report = synced(inst)

    assert report == SyncReport(rebuilt=[plan, immediate])
    assert inst.entries.next_fire(plan) == before
    entry = inst.entries.get(plan)
    assert entry is not None and entry.options["queue"] == "celery"


def test_a_second_sync_changes_nothing(inst: Installation) -> None:
    ids = [create(inst) for _ in range(4)]
    orphan = create(inst, schedule=False)
    inst.entries.put(
        orphan, inst.requests.get(ids[0]).timing, scheduled_from=now(), misfire="skip", queue="q"
    )
    wipe_one = ids[0]
    inst.entries.remove(wipe_one)
    first = synced(inst)
    after_first = {i: raw(inst, i) for i in ids}

    second = synced(inst)

    assert first == SyncReport(rebuilt=[wipe_one], removed=[orphan], kept=3)
    assert second == SyncReport(kept=4)
    assert {i: raw(inst, i) for i in ids} == after_first


def test_an_unknown_process_is_reported_and_skipped(inst: Installation) -> None:
    gone, fine, gone_but_present = (create(inst) for _ in range(3))
    set_row(inst, gone, process="retired.job")
    set_row(inst, gone_but_present, process="retired.job")
    inst.entries.remove(gone)
    inst.entries.remove(fine)

    report = synced(inst)

    assert report.rebuilt == [fine]
    assert report.kept == 1
    assert report.skipped == {gone: "process 'retired.job' is not registered"}
    assert "retired.job" in report.summary()
    assert report.as_json()["skipped"] == [
        {"id": gone, "reason": "process 'retired.job' is not registered"}
    ]
    assert status(inst, gone) is RequestStatus.scheduled


def test_redis_down_is_unavailable(db_url: str) -> None:
    installation = Installation(Settings(database_url=db_url, broker_url="redis://127.0.0.1:1/0"))
    try:
        with pytest.raises(Unavailable) as caught:
            synced(installation)
        assert caught.value.service == "redis"
    finally:
        installation.engine.dispose()


def test_entries_written_meanwhile_are_left_to_their_writer(
    inst: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost, orphan = create(inst), create(inst, schedule=False)
    timing = inst.requests.get(lost).timing
    inst.entries.remove(lost)
    inst.entries.put(orphan, timing, scheduled_from=now(), misfire="run-once", queue="old")
    decide = sync_module._decide

    def and_another_writer(*args: Any) -> Any:
        plan = decide(*args)
        for request_id in (lost, orphan):
            inst.entries.put(request_id, timing, scheduled_from=now(), misfire="skip", queue="new")
        return plan

    monkeypatch.setattr(sync_module, "_decide", and_another_writer)

    assert synced(inst) == SyncReport(kept=1)
    for request_id in (lost, orphan):
        entry = inst.entries.get(request_id)
        assert entry is not None and entry.options["queue"] == "new"


def test_a_fire_that_reached_the_worker_without_its_run_gets_one_once(inst: Installation) -> None:
    # (beat could not write the queued run: the worker makes it from the request, by task id)
    plain = create(inst, schedule=False)
    inst.groups.create({"name": "nightly", "steps": [{"process": "sample.echo"}]})
    grouped = create(inst, {"group": "nightly", "timing": "immediate"}, schedule=False)
    due = now()

    first = inst.runs.open_for_request("task-1", plain, due, now())
    again = inst.runs.open_for_request("task-1", plain, due, now())  # a redelivery
    of_group = inst.runs.open_for_request("task-2", grouped, None, now())

    assert first is not None and again == first
    [run] = inst.runs.of_request(plain)
    assert (run.status, run.scheduled_at, run.task_id) == (RunStatus.queued, due, "task-1")
    assert inst.runs.get(of_group).process == "group:nightly"  # type: ignore[arg-type]
    assert inst.runs.open_for_request("task-3", 10**6, due, now()) is None  # request gone
