"""Calendars with a real worker and beat: an excluded fire does not run, and
``--on-excluded next-business-day`` moves it (off a Saturday to the Monday; out of an
excluded window to its end, where beat runs it once)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import Stack, iso
from tests.waiting import wait_until

EVERY_2S = ("--timing", "scheduled", "--frequency", "seconds", "--interval", "2")


def test_a_calendar_with_todays_date_skips_todays_fires_and_preview_shows_the_next(
    stack: Stack,
) -> None:
    # Given today and tomorrow excluded (tomorrow too: the test may cross midnight)
    zone = ZoneInfo("Europe/Madrid")
    today = datetime.now(zone).date()
    days = [today.isoformat(), (today + timedelta(days=1)).isoformat()]
    stack.cli("calendar", "create", "closed", "--date", days[0], "--date", days[1],
              "--tz", "Europe/Madrid")  # fmt: skip
    stack.worker()
    stack.beat()
    # When two every-2-s requests are scheduled, one following the calendar
    plain = stack.create("sample.echo", *EVERY_2S)
    closed = stack.create("sample.echo", *EVERY_2S, "--calendar", "closed")
    wait_until(lambda: len(stack.fired(plain)) >= 3, 40, 0.2, "the plain request to fire")
    # Then the calendar's request ran nothing, and show --next and preview name the day after
    assert stack.runs(closed) == []
    after = (today + timedelta(days=2)).isoformat()
    shown = stack.cli("request", "show", str(closed), "--next", "1", "--json").json()
    first_after = (f"{after}T00:00:00", f"{after}T00:00:01")  # every 2 s from its start second
    assert shown["next_runs"][0].startswith(first_after)
    previewed = stack.cli("preview", *EVERY_2S, "--calendar", "closed", "--count", "1",
                          "--json").json()  # fmt: skip
    assert previewed["next_runs"][0].startswith(first_after)


def test_next_business_day_moves_a_saturday_fire_to_monday_and_a_window_fire_to_its_end(
    stack: Stack,
) -> None:
    stack.worker()
    stack.beat()
    # Given a one-shot on next Saturday at 10:00 that moves off excluded days
    today = datetime.now(ZoneInfo("Europe/Madrid")).date()
    saturday = today + timedelta(days=(5 - today.weekday()) % 7 or 7)
    later = stack.create("sample.echo", "--timing", "later", "--start",
                         f"{saturday.isoformat()}T10:00", "--on-excluded",
                         "next-business-day")  # fmt: skip
    # Then its entry, as beat reads it, is due on the Monday after at 10:00
    monday = saturday + timedelta(days=2)
    shown = stack.cli("request", "show", str(later), "--json").json()
    assert shown["next_runs"] == [f"{monday.isoformat()}T10:00:00+0{_offset(monday)}:00"]
    score = stack.redis.zscore(f"{stack.prefix}redbeat::schedule", stack.entry_key(later))
    assert datetime.fromtimestamp(score, UTC) == iso(shown["next_runs"][0])

    # Given every 5 s, in a zone where today is a weekday, with the next minute excluded
    now = datetime.now(UTC)
    zone = next((z for z in ("UTC", "Pacific/Kiritimati", "Etc/GMT+12")
                 if (now + timedelta(minutes=2)).astimezone(ZoneInfo(z)).weekday() < 5), None)
    if zone is None:  # Sunday morning, UTC: no zone of these is on a weekday
        pytest.skip("no weekday anywhere in the zones tried")
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if (start - now).total_seconds() < 15:  # time enough to schedule before the window
        start += timedelta(minutes=1)
    end = start + timedelta(minutes=1)
    window = f"{start:%H:%M}-{'24:00' if end.date() > start.date() else f'{end:%H:%M}'}"
    stack.cli("calendar", "create", "pause", "--window", window, "--tz", "UTC")
    every = stack.create("sample.echo", "--timing", "scheduled", "--frequency", "cron",
                         "--cron", "0/5 * * * * ?", "--tz", zone, "--calendar", "pause",
                         "--on-excluded", "next-business-day")  # fmt: skip
    # When the window passes
    wait_until(lambda: any(r.scheduled_at > end for r in stack.fired(every)), 200, 0.5,
               "a fire after the window")
    # Then nothing ran inside it, its fires ran once at its end, and the plan went on
    dues = [r.scheduled_at for r in stack.fired(every)]
    assert len(dues) == len(set(dues)), dues
    assert not [d for d in dues if start <= d < end], dues
    assert end in dues


def _offset(day: date) -> int:
    """Madrid's UTC offset in hours on ``day``."""
    return int(datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo("Europe/Madrid"))
               .utcoffset().total_seconds() // 3600)  # type: ignore[union-attr]  # fmt: skip
