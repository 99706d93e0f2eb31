"""Scheduling end to end: requests created with the CLI, fired by a real beat, run by real
workers, and read back from the Process Monitor's table.

Every due time is checked exactly against the plan (``request show``/``preview``), and
every lateness against a bound; the figures are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import itertools
import re
import statistics
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bgproc.models import ProcessRun
from bgproc.statuses import RequestStatus, RunStatus
from tests.e2e.conftest import ZONE, Stack, iso
from tests.waiting import wait_until

ONE_SECOND = timedelta(seconds=1)
THREE_SECONDS = timedelta(seconds=3)
MAX_LATE = timedelta(seconds=1.5)  # started_at - scheduled_at of a run that was due on time
# After `unschedule` returns, no run may start: watched this long (the bounded wait IS the test).
QUIET_S = 3.0
# After a one-shot completed or a series ended, nothing more may run: watched this long.
SETTLE_S = 2.0
EVERY_SECOND = ("--timing", "scheduled", "--frequency", "seconds", "--interval", "1")
QUARTZ_EVERY_3S = ("--timing", "scheduled", "--frequency", "cron", "--cron", "*/3 * * * * ?")
MONTHLY = ("--timing", "scheduled", "--frequency", "monthly", "--ordinal", "last",
           "--weekday", "fri", "--at", "18:00")
MISFIRED = re.compile(r"(\d+) fire\(s\) from (\S+) not executed")


def now() -> datetime:
    return datetime.now(UTC)


def lateness(runs: list[ProcessRun]) -> list[float]:
    return [(r.started_at - r.scheduled_at).total_seconds() for r in runs]


def figures(label: str, late: list[float]) -> str:
    text = (f"{label}: {len(late)} runs, lateness p50 {statistics.median(late) * 1000:.0f} ms, "
            f"max {max(late) * 1000:.0f} ms")
    print(text)
    return text


def assert_on_time(runs: list[ProcessRun], label: str) -> None:
    late = lateness(runs)
    figures(label, late)
    assert all(0 <= s < MAX_LATE.total_seconds() for s in late), (label, late)


def successes(stack: Stack, request_id: int) -> list[ProcessRun]:
    return [r for r in stack.fired(request_id) if r.status is RunStatus.success]


def next_runs(stack: Stack, request_id: int, count: int) -> list[datetime]:
    shown = stack.cli("request", "show", str(request_id), "--next", str(count), "--json").json()
    return [iso(f) for f in shown["next_runs"]]


def preview(stack: Stack, timing: tuple[str, ...], count: int) -> list[datetime]:
    shown = stack.cli("preview", *timing, "--count", str(count), "--json").json()
    return [iso(f) for f in shown["next_runs"]]


def all_finished(stack: Stack, request_id: int) -> bool:
    return all(r.status not in (RunStatus.queued, RunStatus.processing)
               for r in stack.runs(request_id))


# -- 1. every second: on time; unschedule stops it; reschedule resumes it ----------------


def test_every_second_runs_on_time_stop_at_unschedule_and_resume_at_reschedule(
    stack: Stack,
) -> None:
    stack.worker_and_beat()
    request_id, timing = stack.create_json("sample.echo", *EVERY_SECOND, "--start", "+2s",
                                           "--param", "n=1")
    start = iso(timing["start"])

    # Runs start on time: due at start + k s exactly, started well within a beat loop
    wait_until(lambda: len(successes(stack, request_id)) >= 5, 20, 0.1, "five runs")
    runs = successes(stack, request_id)
    assert [r.scheduled_at for r in runs] == [start + k * ONE_SECOND for k in range(len(runs))]
    assert_on_time(runs, "every second")
    assert all(r.result == {"n": "1"} and r.channel.value == "scheduler" for r in runs)

    # Unschedule: once the command returns, no run starts (fires already queued are skipped)
    stack.cli("request", "unschedule", str(request_id))
    returned = now()
    assert not stack.has_entry(request_id)
    time.sleep(QUIET_S)  # watched: nothing may start
    wait_until(lambda: all_finished(stack, request_id), 10, 0.1, "in-flight runs to end")
    after = [r for r in stack.runs(request_id) if r.started_at and r.started_at > returned]
    assert after == [], f"runs started after unschedule returned at {returned}: {after}"
    assert stack.status(request_id) is RequestStatus.unscheduled

    # Reschedule: the series resumes from now, on the same grid, nothing doubled
    asked = now()
    stack.cli("request", "reschedule", str(request_id))
    resumed_at = now()

    def resumed() -> list[ProcessRun]:
        return [r for r in successes(stack, request_id) if r.started_at > returned]

    wait_until(lambda: len(resumed()) >= 4, 20, 0.1, "four runs after reschedule")
    again = resumed()
    dues = [r.scheduled_at for r in again]
    assert dues == [dues[0] + k * ONE_SECOND for k in range(len(dues))]
    assert (dues[0] - start) % ONE_SECOND == timedelta(0)
    # The first fire is the whole second the reschedule happened in (already begun), run at
    # once; nothing fired for the seconds the request was unscheduled.
    assert asked.replace(microsecond=0) <= dues[0] <= resumed_at
    assert again[0].started_at - dues[0] < MAX_LATE + ONE_SECOND
    figures("first after reschedule", lateness(again[:1]))
    assert_on_time(again[1:], "after reschedule")
    every = [r.scheduled_at for r in stack.runs(request_id)]
    assert len(every) == len(set(every)), "a due time ran twice"
    assert not [d for d in every if returned < d < asked.replace(microsecond=0)]


# -- 2, 3 and 4. later and immediate fire once; a plan stops at its finish; all complete ---


def test_one_shots_fire_once_and_a_finish_ends_the_plan_then_all_complete(
    any_stack: Stack,
) -> None:
    stack = any_stack
    stack.worker_and_beat()
    later, timing = stack.create_json("sample.echo", "--timing", "later", "--start", "+3s")
    later_start = iso(timing["start"])
    immediate = stack.create("sample.echo", "--timing", "immediate", "--param", "x=1")
    until, timing = stack.create_json("sample.echo", *EVERY_SECOND, "--start", "+2s",
                                      "--finish", "+6s")
    start, finish = iso(timing["start"]), iso(timing["finish"])

    def done(request_id: int) -> bool:
        return (stack.status(request_id) is RequestStatus.complete
                and not stack.has_entry(request_id)
                and any(r.status is RunStatus.success for r in stack.runs(request_id))
                and all_finished(stack, request_id))

    for request_id in (immediate, later, until):
        wait_until(lambda r=request_id: done(r), 20, 0.1, f"request {request_id} to complete")
    time.sleep(SETTLE_S)  # watched: nothing else may run

    # later: exactly once, at its start
    (once,) = stack.runs(later)
    assert once.status is RunStatus.success
    assert once.scheduled_at == later_start
    assert abs(once.started_at - later_start) <= ONE_SECOND
    figures("later", lateness([once]))

    # immediate: exactly once, due the whole second it was created in (already begun), so it
    # runs within a beat loop (1 s) after that second ends
    (now_run,) = stack.runs(immediate)
    assert now_run.status is RunStatus.success and now_run.result == {"x": "1"}
    assert now_run.scheduled_at <= now_run.started_at < now_run.scheduled_at + 2.5 * ONE_SECOND
    figures("immediate", lateness([now_run]))

    # finish: every second from start to finish, the finish included, nothing after it
    runs = stack.fired(until)
    dues = [r.scheduled_at for r in runs]
    assert dues == [start + k * ONE_SECOND for k in range(int((finish - start) / ONE_SECOND) + 1)]
    assert max(dues) == finish
    assert all(r.status is RunStatus.success for r in runs)
    assert_on_time(runs, "until finish")

    # All three are complete, have nothing next, and their RedBeat entries are gone
    assert next_runs(stack, until, 3) == []
    assert not [k for k in stack.redis_keys() if ":redbeat:request:" in k]


# -- 5. Quartz cron on its grid across a beat restart; a monthly plan survives it ---------


def test_quartz_grid_across_a_beat_restart_and_a_monthly_plan_survives(stack: Stack) -> None:
    _, beat = stack.worker_and_beat()
    grid = preview(stack, QUARTZ_EVERY_3S, 60)  # three minutes of the grid, from before create
    assert all(f.second % 3 == 0 and f.microsecond == 0 for f in grid)
    assert [b - a for a, b in itertools.pairwise(grid)] == [THREE_SECONDS] * 59
    cron = stack.create("sample.echo", *QUARTZ_EVERY_3S)
    monthly = stack.create("sample.echo", *MONTHLY)
    shown = next_runs(stack, cron, 3)
    monthly_before = next_runs(stack, monthly, 3)
    assert monthly_before == preview(stack, MONTHLY, 3)
    assert all(f.weekday() == 4 and (f + timedelta(days=7)).month != f.month
               for f in monthly_before)

    # The runs are exactly what `request show --next` announced
    wait_until(lambda: len([r for r in successes(stack, cron) if r.scheduled_at >= shown[0]]) >= 3,
               20, 0.1, "the three announced fires")
    runs = successes(stack, cron)
    assert [r.scheduled_at for r in runs if r.scheduled_at >= shown[0]][:3] == shown
    assert_on_time([r for r in runs if r.scheduled_at in shown], "quartz */3")

    # Beat stops (SIGTERM) for longer than a period, then starts again
    beat.stop()
    down = now()
    time.sleep(3.5)  # beat is down over at least one fire (period 3 s): the point of the test
    stack.beat("beat-2")
    back = now()
    wait_until(lambda: len([r for r in successes(stack, cron) if r.started_at > back]) >= 2,
               20, 0.1, "two fires after the restart (the first may be the late one)")
    stack.cli("request", "unschedule", str(cron))
    wait_until(lambda: all_finished(stack, cron), 10, 0.1, "the cron runs to end")

    # The series went on on the same grid, nothing doubled, the gap accounted for
    everything = stack.runs(cron)
    fired = sorted(r.scheduled_at for r in everything if r.status is RunStatus.success)
    assert len(fired) == len(set(fired)), "a due time ran twice"
    assert set(fired) <= set(grid), "a fire off the */3 grid"
    misfired = [r for r in everything if r.status is RunStatus.misfired]
    assert len(misfired) <= 1, misfired
    covered: set[datetime] = set()
    for record in misfired:
        match = MISFIRED.search(record.error or "")
        assert match, record.error
        count, first = int(match[1]), iso(match[2])
        assert first == record.scheduled_at and down - THREE_SECONDS <= first <= back
        covered |= {first + k * THREE_SECONDS for k in range(count)}
    assert not covered & set(fired)
    span = [f for f in grid if fired[0] <= f <= fired[-1]]
    assert sorted(covered | set(fired)) == span, "a fire was lost across the restart"
    after = sorted((r for r in everything if r.started_at and r.started_at > back),
                   key=lambda r: r.scheduled_at)
    assert_on_time(after[1:], "quartz */3 after the restart")  # the first may be the late one
    print(f"quartz restart: down {down:%H:%M:%S.%f}, back {back:%H:%M:%S.%f}, "
          f"misfired {[r.error for r in misfired]}")

    # The monthly request kept its plan through the restart
    assert stack.status(monthly) is RequestStatus.scheduled
    assert next_runs(stack, monthly, 3) == monthly_before == preview(stack, MONTHLY, 3)


# -- 8. prevent concurrent: skipped runs, never two at once -------------------------------


def test_prevent_concurrent_skips_fires_and_never_overlaps(stack: Stack) -> None:
    stack.worker_and_beat(concurrency=3)
    request_id, timing = stack.create_json("sample.sleep", "--param", "seconds=3", *EVERY_SECOND,
                                           "--start", "+1s", "--prevent-concurrent")
    start = iso(timing["start"])

    def enough() -> bool:
        runs = stack.runs(request_id)
        return (sum(r.status is RunStatus.success for r in runs) >= 2
                and sum(r.status is RunStatus.skipped for r in runs) >= 3)

    wait_until(enough, 30, 0.1, "two finished runs and three skipped fires")
    stack.cli("request", "unschedule", str(request_id))
    wait_until(lambda: all_finished(stack, request_id), 15, 0.1, "every run to end")
    wait_until(lambda: stack.redis.llen(f"{stack.prefix}celery") == 0, 10, 0.1, "an empty queue")

    runs = stack.runs(request_id)
    skipped = [r for r in runs if r.status is RunStatus.skipped]
    assert skipped and all("prevent concurrent" in (r.error or "") or "unscheduled" in
                           (r.error or "") for r in skipped)
    assert all(r.started_at is None and r.ended_at is not None for r in skipped)
    ran = sorted((r for r in runs if r.started_at is not None), key=lambda r: r.started_at)
    assert all(r.status is RunStatus.success for r in ran)
    for before, after in itertools.pairwise(ran):
        assert before.ended_at <= after.started_at, f"runs {before.id} and {after.id} overlap"
    # Every fire is accounted for (run or skipped), none twice, none silently dropped
    dues = sorted(r.scheduled_at for r in runs)
    assert dues == [start + k * ONE_SECOND for k in range(len(dues))]
    print(f"prevent concurrent: {len(ran)} ran, {len(skipped)} skipped")


# -- 9. yearly: a real fire on its day, then the same day a year on -----------------------


def test_a_yearly_plan_fires_on_its_day_and_then_waits_a_year(stack: Stack) -> None:
    stack.worker_and_beat()
    zone = ZoneInfo(ZONE)
    due = (now() + timedelta(seconds=10)).astimezone(zone).replace(microsecond=0)  # after create
    yearly = ("--timing", "scheduled", "--frequency", "yearly", "--month", due.strftime("%b"),
              "--day", str(due.day), "--at", due.strftime("%H:%M:%S"), "--tz", ZONE)
    announced = preview(stack, yearly, 2)
    assert announced[0] == due
    later = announced[1].astimezone(zone)  # a year on (four from a 29 February)
    assert later.year > due.year and later.timetuple()[1:6] == due.timetuple()[1:6]

    request_id = stack.create("sample.echo", *yearly, "--param", "n=1")
    wait_until(lambda: successes(stack, request_id), 30, 0.1, "the yearly fire")
    (run,) = stack.fired(request_id)
    assert run.scheduled_at == due and run.result == {"n": "1"}
    assert_on_time([run], "yearly")
    assert stack.status(request_id) is RequestStatus.scheduled
    assert next_runs(stack, request_id, 1) == announced[1:]
