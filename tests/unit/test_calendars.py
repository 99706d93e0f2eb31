"""Calendars: what they exclude, what an excluded fire becomes, and their refusals.

The property tests hold :class:`CalendarPlan` to a brute-force evaluation
(calendar_oracle) over ten years in five zones, every DST change included.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgproc.errors import InvalidInput
from bgproc.timing.calendars import MAX_MOVE_DAYS, Calendar, CalendarPlan, OnExcluded, plan_of
from bgproc.timing.plan import Timing
from tests.unit.calendar_oracle import brute_plan

ZONES = [
    "Europe/Madrid", "America/New_York", "Australia/Sydney", "America/Santiago", "Asia/Kolkata",
]  # fmt: skip
SINCE = datetime(2027, 1, 1, tzinfo=UTC)
UNTIL = datetime(2037, 1, 1, tzinfo=UTC)
NOW = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)  # a Monday


def timing(fields: dict[str, str], now: datetime = NOW) -> Timing:
    return Timing.build({"timing": "scheduled", **fields}, now=now, default_tz="UTC").anchored(now)


def iso(fires: list[datetime], zone: str) -> list[str]:
    return [f.astimezone(ZoneInfo(zone)).isoformat() for f in fires]


# -- examples ---------------------------------------------------------------------------


def test_an_excluded_date_skips_that_days_fire() -> None:
    daily = timing({"frequency": "daily", "at": "09:00", "tz": "Europe/Madrid"})
    holidays = Calendar.build("es", "Europe/Madrid", dates=["2027-01-06"])
    fires = plan_of(daily, [holidays]).upcoming(NOW + timedelta(days=1), 3)
    assert iso(fires, "Europe/Madrid") == [
        "2027-01-05T09:00:00+01:00", "2027-01-07T09:00:00+01:00", "2027-01-08T09:00:00+01:00",
    ]  # fmt: skip


def test_yearly_dates_and_windows_are_excluded_every_year_and_every_day() -> None:
    cal = Calendar.build("x", "Europe/Madrid", yearly=["12-25", "02-29"], windows=["13:00-15:00"])
    madrid = ZoneInfo("Europe/Madrid")
    assert cal.excludes(datetime(2031, 12, 25, 23, 59, tzinfo=madrid))
    assert cal.excludes(datetime(2028, 2, 29, 10, tzinfo=madrid))
    assert cal.excludes(datetime(2027, 3, 1, 13, 0, tzinfo=madrid))
    assert cal.excludes(datetime(2027, 3, 1, 14, 59, 59, tzinfo=madrid))
    assert not cal.excludes(datetime(2027, 3, 1, 15, 0, tzinfo=madrid))
    assert not cal.excludes(datetime(2031, 12, 26, 0, 0, tzinfo=madrid))


def test_next_business_day_moves_a_saturday_fire_to_monday_at_the_same_time() -> None:
    monthly = timing({"frequency": "monthly", "day": "1", "at": "06:00", "tz": "Europe/Madrid"})
    plan = plan_of(monthly, [], OnExcluded.NEXT_BUSINESS_DAY)  # 2027-05-01 is a Saturday
    fires = plan.upcoming(datetime(2027, 4, 2, tzinfo=UTC), 2)
    assert iso(fires, "Europe/Madrid") == ["2027-05-03T06:00:00+02:00", "2027-06-01T06:00:00+02:00"]


def test_next_business_day_skips_holidays_and_the_weekend_after_them() -> None:
    monthly = timing({"frequency": "monthly", "day": "1", "at": "06:00", "tz": "Europe/Madrid"})
    cal = Calendar.build("close", "Europe/Madrid", dates=["2027-10-01", "2027-10-04"])
    plan = plan_of(monthly, [cal], "next-business-day")
    fires = plan.upcoming(datetime(2027, 9, 2, tzinfo=UTC), 2)
    assert iso(fires, "Europe/Madrid") == ["2027-10-05T06:00:00+02:00", "2027-11-01T06:00:00+01:00"]


def test_a_fire_in_a_window_moves_to_its_end_and_meeting_fires_are_one() -> None:
    every_hour = timing({"frequency": "daily", "at": "14:00", "tz": "UTC"})
    cal = Calendar.build("lunch", "UTC", windows=["13:00-15:00"])
    fires = plan_of(every_hour, [cal], "next-business-day").upcoming(NOW, 2)
    assert iso(fires, "UTC") == ["2027-01-04T15:00:00+00:00", "2027-01-05T15:00:00+00:00"]
    weekdays = timing(
        {"frequency": "daily", "daily_option": "weekdays", "at": "09:00", "tz": "UTC"}
    )
    friday = Calendar.build("f", "UTC", dates=["2027-01-08"])
    plan = plan_of(weekdays, [friday], "next-business-day")
    fires = plan.upcoming(datetime(2027, 1, 7, tzinfo=UTC), 3)
    assert iso(fires, "UTC") == [  # Friday's fire meets Monday's own: one run
        "2027-01-07T09:00:00+00:00", "2027-01-11T09:00:00+00:00", "2027-01-12T09:00:00+00:00",
    ]  # fmt: skip


def test_a_calendar_that_excludes_every_fire_ends_the_plan_instead_of_searching_for_ever() -> None:
    every_minute = timing({"frequency": "minutes", "interval": "1", "tz": "UTC"})
    everything = Calendar.build("all", "UTC", windows=["00:00-24:00"])
    assert plan_of(every_minute, [everything]).next_fire(NOW) is None
    daily = timing({"frequency": "daily", "at": "09:00", "tz": "UTC"})
    assert plan_of(daily, [everything], "next-business-day").next_fire(NOW) is None


def test_describe_says_what_the_calendars_do() -> None:
    daily = timing({"frequency": "daily", "at": "09:00", "tz": "UTC"})
    cal = Calendar.build("es-holidays", "Europe/Madrid", dates=["2027-01-06"], yearly=["12-25"])
    assert plan_of(daily, [cal]).describe().endswith("fires excluded by es-holidays are skipped")
    assert "moves to the next business day" in plan_of(daily, [cal], "next-business-day").describe()
    assert cal.describe() == "2027-01-06, every 25 December (Europe/Madrid)"


def test_the_stored_document_round_trips() -> None:
    cal = Calendar.build(
        "x", "Asia/Kolkata", ["2027-01-06"], ["02-29"], ["22:00-24:00", "00:00-01:30"]
    )
    assert Calendar.from_dict(cal.as_dict()) == cal
    assert cal.fields()["windows"] == ["00:00-01:30", "22:00-24:00"]


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("date", {"dates": ["2027-13-01"]}),
        ("date", {"dates": ["06/01/2027"]}),
        ("date", {"dates": ["1900-01-01"]}),
        ("yearly", {"yearly": ["02-30"]}),
        ("yearly", {"yearly": ["12-25-2027"]}),
        ("yearly", {"yearly": ["13-01"]}),
        ("window", {"windows": ["15:00-13:00"]}),
        ("window", {"windows": ["13:00-13:00"]}),
        ("window", {"windows": ["13-15"]}),
        ("window", {"windows": ["24:00-24:30"]}),
        ("window", {"windows": ["10:00-24:01"]}),
        ("tz", {"timezone": "Mars/Olympus", "dates": ["2027-01-06"]}),
        ("date", {}),
    ],
)
def test_bad_input_names_its_field(field: str, kwargs: dict) -> None:
    with pytest.raises(InvalidInput) as refused:
        Calendar.build("x", kwargs.pop("timezone", "UTC"), **kwargs)
    assert refused.value.field == field


# -- properties -------------------------------------------------------------------------

zones = st.sampled_from(ZONES)
clock = st.sampled_from(["00:00", "00:30", "01:30", "02:00", "02:30", "03:00", "09:00", "23:30"])
days = st.dates(date(2027, 1, 1), date(2036, 12, 31)).map(date.isoformat)
# Near each zone's DST changes, where an excluded date or window is hardest to place.
DST_DAYS = ["2027-03-28", "2027-10-31", "2027-03-14", "2027-11-07", "2027-04-04",
            "2027-10-03", "2027-09-05", "2030-03-31", "2033-10-30", "2035-11-04"]  # fmt: skip
dst_days = st.sampled_from(DST_DAYS)
windows = st.builds(
    lambda start, length: f"{start // 60:02d}:{start % 60:02d}-"
    f"{(start + length) // 60:02d}:{(start + length) % 60:02d}",
    st.sampled_from([0, 60, 90, 120, 150, 780, 1320]),
    st.sampled_from([30, 60, 90, 120]),
).filter(lambda w: w[6:] <= "24:00")
calendars = st.fixed_dictionaries(
    {"tz": zones},
    optional={
        "dates": st.lists(st.one_of(days, dst_days), max_size=40),
        "yearly": st.lists(
            st.sampled_from(["01-01", "02-29", "03-28", "10-31", "12-25", "11-07"]), max_size=4
        ),
        "windows": st.lists(windows, max_size=2),
    },
).filter(lambda c: any(c.get(k) for k in ("dates", "yearly", "windows")))
CRONS = ["0 30 2 * * ?", "0 0 9 ? * MON-FRI", "0 0 6 1 * ?", "0 0 0/8 * * ?"]
plans = st.one_of(
    st.fixed_dictionaries({"frequency": st.just("daily"), "at": clock}),
    st.fixed_dictionaries(
        {"frequency": st.just("weekly"), "days": st.just("fri,sat"), "at": clock}
    ),
    st.fixed_dictionaries(
        {"frequency": st.just("monthly"), "day": st.sampled_from(["1", "last"]), "at": clock}
    ),
    st.fixed_dictionaries({"frequency": st.just("cron"), "cron": st.sampled_from(CRONS)}),
)


def as_calendar(document: dict, n: int) -> Calendar:
    return Calendar.build(f"c{n}", document["tz"], document.get("dates"),
                          document.get("yearly"), document.get("windows"))  # fmt: skip


@given(
    plan=plans,
    zone=zones,
    cals=st.lists(calendars, min_size=1, max_size=2),
    policy=st.sampled_from(list(OnExcluded)),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_ten_years_of_fires_match_brute_force_in_five_zones(
    plan: dict, zone: str, cals: list[dict], policy: OnExcluded
) -> None:
    base = timing({**plan, "tz": zone, "start": "2027-01-01T00:00"}, now=SINCE)
    own = tuple(as_calendar(c, n) for n, c in enumerate(cals))
    calendar_plan = CalendarPlan(base, own, policy)
    expected = brute_plan(base, cals, policy, SINCE, UNTIL, MAX_MOVE_DAYS)
    got = [f for f in calendar_plan.upcoming(SINCE, len(expected) + 1) if f < UNTIL]
    assert got == expected


@given(
    zone=zones,
    cals=st.lists(calendars, min_size=1, max_size=2),
    at=st.datetimes(datetime(2027, 1, 1), datetime(2036, 12, 1)),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_next_fire_from_any_instant_matches_brute_force(
    zone: str, cals: list[dict], at: datetime
) -> None:
    """Beat asks from its last fire; a moved fire from before it must still be found."""
    base = timing({"frequency": "daily", "at": "09:00", "tz": zone, "start": "2026-12-01T00:00"},
                  now=datetime(2026, 12, 1, tzinfo=UTC))  # fmt: skip
    after = at.replace(tzinfo=UTC)
    own = [as_calendar(c, n) for n, c in enumerate(cals)]
    calendar_plan = plan_of(base, own, "next-business-day")
    expected = brute_plan(base, cals, "next-business-day", after + timedelta(microseconds=1),
                          after + timedelta(days=MAX_MOVE_DAYS * 2), MAX_MOVE_DAYS)  # fmt: skip
    assert calendar_plan.next_fire(after) == (expected[0] if expected else None)
