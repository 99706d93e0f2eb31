"""The timing engine against design §2: tables of known answers and a brute-force oracle."""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import fields as dataclass_fields
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgproc.errors import InvalidInput
from bgproc.timing.fields import TIMING_FIELDS, TIMING_KEYS
from bgproc.timing.plan import Timing
from bgproc.timing.walltime import resolve_wall
from cli.requests import create, preview, update
from tests.unit.timing_oracle import DAYS, ORDINALS, brute_fires

NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
MADRID, NEW_YORK, SYDNEY = "Europe/Madrid", "America/New_York", "Australia/Sydney"


def build(now: datetime = NOW, tz: str = MADRID, **fields: object) -> Timing:
    return Timing.build({"tz": tz, **fields}, now=now, default_tz="UTC").anchored(now)


def local(timing: Timing, count: int, now: datetime = NOW) -> list[str]:
    """The next fires as wall times with offsets in the request's zone."""
    return [f.astimezone(timing.zone).isoformat() for f in timing.upcoming(now, count)]


# -- DST rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "wall", "expected"),
    [
        (MADRID, "2027-03-28T02:30:00", "2027-03-28T03:00:00+02:00"),  # gap: right after it
        (MADRID, "2027-03-28T02:00:00", "2027-03-28T03:00:00+02:00"),
        (MADRID, "2027-10-31T02:30:00", "2027-10-31T02:30:00+02:00"),  # repeat: first one
        (NEW_YORK, "2027-03-14T02:15:00", "2027-03-14T03:00:00-04:00"),
        (NEW_YORK, "2027-11-07T01:30:00", "2027-11-07T01:30:00-04:00"),
        (SYDNEY, "2027-10-03T02:45:00", "2027-10-03T03:00:00+11:00"),
        (SYDNEY, "2027-04-04T02:30:00", "2027-04-04T02:30:00+11:00"),
        ("Australia/Lord_Howe", "2027-10-03T02:10:00", "2027-10-03T02:30:00+11:00"),
    ],
)
def test_resolve_wall_follows_the_dst_rules(zone: str, wall: str, expected: str) -> None:
    instant = resolve_wall(datetime.fromisoformat(wall), ZoneInfo(zone))
    assert instant.astimezone(ZoneInfo(zone)).isoformat() == expected


def test_daily_across_both_madrid_changes_fires_once_a_day() -> None:
    spring = build(timing="scheduled", frequency="daily", at="02:30", start="2027-03-27")
    now = datetime(2027, 3, 26, tzinfo=UTC)
    assert local(spring, 3, now) == [
        "2027-03-27T02:30:00+01:00",
        "2027-03-28T03:00:00+02:00",  # 02:30 does not exist: right after the gap
        "2027-03-29T02:30:00+02:00",
    ]
    autumn = build(timing="scheduled", frequency="daily", at="02:30", start="2027-10-30")
    now = datetime(2027, 10, 29, tzinfo=UTC)
    assert local(autumn, 3, now) == [
        "2027-10-30T02:30:00+02:00",
        "2027-10-31T02:30:00+02:00",  # the first of the two 02:30s only
        "2027-11-01T02:30:00+01:00",
    ]


def test_cron_every_minute_through_the_new_york_gap_and_repeat() -> None:
    timing = build(
        tz=NEW_YORK, timing="scheduled", frequency="cron", cron="*/30 1-3 * * *", start="2027-03-13"
    )
    now = datetime(2027, 3, 14, 5, 0, tzinfo=UTC)  # 00:00 EST
    assert local(timing, 5, now) == [
        "2027-03-14T01:00:00-05:00",
        "2027-03-14T01:30:00-05:00",
        "2027-03-14T03:00:00-04:00",  # 02:00, 02:30 skipped by the gap: one fire, then 03:00
        "2027-03-14T03:30:00-04:00",
        "2027-03-15T01:00:00-04:00",
    ]
    now = datetime(2027, 11, 7, 4, 0, tzinfo=UTC)  # 00:00 EDT
    assert local(timing, 5, now) == [
        "2027-11-07T01:00:00-04:00",
        "2027-11-07T01:30:00-04:00",  # the repeated hour does not fire again
        "2027-11-07T02:00:00-05:00",
        "2027-11-07T02:30:00-05:00",
        "2027-11-07T03:00:00-05:00",
    ]


def test_quartz_seconds_through_the_sydney_gap() -> None:
    timing = build(
        tz=SYDNEY, timing="scheduled", frequency="cron", cron="0 0/20 2 * * ?", start="2027-10-01"
    )
    now = datetime(2027, 10, 2, 14, 0, tzinfo=UTC)  # 00:00 AEST on the 3rd
    assert local(timing, 2, now) == ["2027-10-03T03:00:00+11:00", "2027-10-04T02:00:00+11:00"]


def test_intervals_count_elapsed_time_across_dst() -> None:
    timing = build(timing="scheduled", frequency="hourly", start="2027-03-28T00:30")
    now = datetime(2027, 3, 27, tzinfo=UTC)
    assert local(timing, 3, now) == [
        "2027-03-28T00:30:00+01:00",
        "2027-03-28T01:30:00+01:00",
        "2027-03-28T03:30:00+02:00",
    ]


# -- every design §2 row --------------------------------------------------------


def test_immediate_fires_once_at_schedule_time() -> None:
    timing = build(timing="immediate")
    assert timing.upcoming(NOW, 3) == [NOW]
    assert timing.next_fire(NOW) is None


def test_later_fires_once_at_start() -> None:
    timing = build(timing="later", start="2027-02-01T08:00")
    assert local(timing, 3) == ["2027-02-01T08:00:00+01:00"]


def test_later_accepts_relative_start() -> None:
    timing = build(timing="later", start="+90s")
    assert timing.upcoming(NOW, 2) == [NOW + timedelta(seconds=90)]


@pytest.mark.parametrize(("frequency", "unit"), [("seconds", 1), ("minutes", 60), ("hourly", 3600)])
def test_intervals_with_repetitions(frequency: str, unit: int) -> None:
    timing = build(
        timing="scheduled",
        frequency=frequency,
        interval="5",
        repetitions="3",
        start="2027-01-01T13:00:00+00:00",
    )
    start = datetime(2027, 1, 1, 13, tzinfo=UTC)
    assert timing.upcoming(NOW, 10) == [start + timedelta(seconds=5 * unit * k) for k in range(3)]


def test_interval_resumes_on_its_grid_from_now() -> None:
    timing = build(
        timing="scheduled", frequency="seconds", interval="7", start="2027-01-01T11:00:00Z"
    )
    first = timing.upcoming(NOW, 1)[0]
    assert first >= NOW and (first - timing.start).total_seconds() % 7 == 0


def test_daily_every_three_days_counts_from_the_start_date() -> None:
    timing = build(
        timing="scheduled", frequency="daily", interval="3", at="09:15", start="2027-01-05T10:00"
    )
    assert local(timing, 3) == [
        "2027-01-08T09:15:00+01:00",  # 09:15 on the 5th is before the start
        "2027-01-11T09:15:00+01:00",
        "2027-01-14T09:15:00+01:00",
    ]


def test_daily_weekdays_and_weekends() -> None:
    weekdays = build(timing="scheduled", frequency="daily", daily_option="weekdays", at="07:00")
    assert [f[:10] for f in local(weekdays, 6)] == [
        "2027-01-04",
        "2027-01-05",
        "2027-01-06",
        "2027-01-07",
        "2027-01-08",
        "2027-01-11",
    ]
    weekends = build(timing="scheduled", frequency="daily", daily_option="weekends", at="07:00")
    assert [f[:10] for f in local(weekends, 3)] == ["2027-01-02", "2027-01-03", "2027-01-09"]


def test_weekly_every_two_weeks() -> None:
    timing = build(
        timing="scheduled",
        frequency="weekly",
        days="mon,fri",
        interval="2",
        at="18:00",
        start="2027-01-01T00:00",
    )  # a Friday: its week is week 0
    assert [f[:10] for f in local(timing, 4)] == [
        "2027-01-01",
        "2027-01-11",
        "2027-01-15",
        "2027-01-25",
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"day": "31"}, ["2027-01-31", "2027-03-31", "2027-05-31", "2027-07-31"]),
        ({"day": "last"}, ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"]),
        (
            {"day": "29", "start": "2028-01-01"},
            ["2028-01-29", "2028-02-29", "2028-03-29", "2028-04-29"],
        ),
        (
            {"ordinal": "first", "weekday": "mon"},
            ["2027-01-04", "2027-02-01", "2027-03-01", "2027-04-05"],
        ),
        (
            {"ordinal": "fourth", "weekday": "thu"},
            ["2027-01-28", "2027-02-25", "2027-03-25", "2027-04-22"],
        ),
        (
            {"ordinal": "last", "weekday": "fri"},
            ["2027-01-29", "2027-02-26", "2027-03-26", "2027-04-30"],
        ),
        (
            {"day": "15", "interval": "3", "start": "2027-02-01"},
            ["2027-02-15", "2027-05-15", "2027-08-15", "2027-11-15"],
        ),
    ],
)
def test_monthly(fields: dict[str, str], expected: list[str]) -> None:
    timing = build(timing="scheduled", frequency="monthly", at="10:00", **fields)
    assert [f[:10] for f in local(timing, 4)] == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"month": "3", "day": "15"}, ["2027-03-15", "2028-03-15", "2029-03-15"]),
        ({"month": "March", "day": "last"}, ["2027-03-31", "2028-03-31", "2029-03-31"]),
        ({"month": "feb", "day": "last"}, ["2027-02-28", "2028-02-29", "2029-02-28"]),
        ({"month": "2", "day": "29"}, ["2028-02-29", "2032-02-29", "2036-02-29"]),  # leap only
        ({"month": "2", "day": "29", "start": "2096-01-01"}, ["2096-02-29", "2104-02-29"]),
        ({"month": "2", "day": "29", "interval": "3"}, ["2036-02-29", "2048-02-29"]),
        (
            {"month": "nov", "ordinal": "fourth", "weekday": "thu"},
            ["2027-11-25", "2028-11-23", "2029-11-22"],
        ),
        (
            {"month": "5", "ordinal": "last", "weekday": "mon"},
            ["2027-05-31", "2028-05-29", "2029-05-28"],
        ),
        (
            {"month": "9", "ordinal": "first", "weekday": "sun"},
            ["2027-09-05", "2028-09-03", "2029-09-02"],
        ),
        # every N years, counted from the start's year: 2027 is past once the start is
        (
            {"month": "1", "day": "15", "interval": "2", "start": "2027-02-01"},
            ["2029-01-15", "2031-01-15"],
        ),
        ({"month": "3", "day": "15", "interval": "2"}, ["2027-03-15", "2029-03-15"]),
        (
            {"month": "1", "day": "1", "start": "2027-01-01T12:00:00+00:00"},
            ["2028-01-01", "2029-01-01"],  # 10:00 on the start's day is before the start
        ),
    ],
)
def test_yearly(fields: dict[str, str], expected: list[str]) -> None:
    timing = build(timing="scheduled", frequency="yearly", at="10:00", **fields)
    assert [f[:10] for f in local(timing, len(expected))] == expected


@pytest.mark.parametrize(
    ("zone", "fields", "expected"),
    [
        # spring gap: 02:30 does not exist, so it fires once, right after the gap
        (
            MADRID,
            {"month": "3", "ordinal": "last", "weekday": "sun", "at": "02:30"},
            ["2027-03-28T03:00:00+02:00", "2028-03-26T03:00:00+02:00"],
        ),
        (
            MADRID,
            {"month": "3", "day": "28", "at": "02:00"},
            ["2027-03-28T03:00:00+02:00", "2028-03-28T02:00:00+02:00"],
        ),
        # autumn repeat: 02:30 happens twice, it fires on the first
        (
            MADRID,
            {"month": "10", "ordinal": "last", "weekday": "sun", "at": "02:30"},
            ["2027-10-31T02:30:00+02:00", "2028-10-29T02:30:00+02:00"],
        ),
        (
            NEW_YORK,
            {"month": "3", "ordinal": "second", "weekday": "sun", "at": "02:15"},
            ["2027-03-14T03:00:00-04:00", "2028-03-12T03:00:00-04:00"],
        ),
        (
            NEW_YORK,
            {"month": "11", "ordinal": "first", "weekday": "sun", "at": "01:30:30"},
            ["2027-11-07T01:30:30-04:00", "2028-11-05T01:30:30-04:00"],
        ),
        (
            SYDNEY,
            {"month": "oct", "ordinal": "first", "weekday": "sun", "at": "02:45"},
            ["2027-10-03T03:00:00+11:00", "2028-10-01T03:00:00+11:00"],
        ),
        (
            "Australia/Lord_Howe",  # a half-hour change: 02:10 fires at the gap's end, 02:30
            {"month": "10", "day": "3", "at": "02:10"},
            ["2027-10-03T02:30:00+11:00", "2028-10-03T02:10:00+11:00"],
        ),
    ],
)
def test_yearly_across_dst_fires_once_per_wall_clock_occurrence(
    zone: str, fields: dict[str, str], expected: list[str]
) -> None:
    timing = build(tz=zone, timing="scheduled", frequency="yearly", **fields)
    assert local(timing, 2) == expected


def test_finish_ends_the_series() -> None:
    timing = build(
        timing="scheduled",
        frequency="minutes",
        interval="10",
        start="2027-01-01T13:00:00Z",
        finish="2027-01-01T13:20:00Z",
    )
    assert [f.strftime("%H:%M") for f in timing.upcoming(NOW, 10)] == ["13:00", "13:10", "13:20"]


def test_quartz_cron_with_year_ends() -> None:
    timing = build(timing="scheduled", frequency="cron", cron="0 0 12 L * ? 2027", tz="UTC")
    fires = timing.upcoming(NOW, 20)
    assert len(fires) == 12 and fires[1].date().isoformat() == "2027-02-28"


# -- bad input names its field -------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"timing": "sometimes"}, "timing"),
        ({"timing": "scheduled"}, "frequency"),
        ({"timing": "scheduled", "frequency": "fortnightly"}, "frequency"),
        ({"timing": "scheduled", "frequency": "seconds", "interval": "0"}, "interval"),
        ({"timing": "scheduled", "frequency": "seconds", "interval": "-3"}, "interval"),
        ({"timing": "scheduled", "frequency": "seconds", "interval": "x"}, "interval"),
        ({"timing": "scheduled", "frequency": "seconds", "interval": "9" * 40}, "interval"),
        ({"timing": "scheduled", "frequency": "seconds", "repetitions": "0"}, "repetitions"),
        ({"timing": "scheduled", "frequency": "seconds", "at": "10:00"}, "at"),
        ({"timing": "scheduled", "frequency": "cron", "cron": "61 * * * *"}, "cron"),
        ({"timing": "scheduled", "frequency": "cron"}, "cron"),
        ({"timing": "scheduled", "frequency": "cron", "cron": "0 0 30 2 *"}, "cron"),
        ({"timing": "scheduled", "frequency": "daily"}, "at"),
        ({"timing": "scheduled", "frequency": "daily", "at": "25:00"}, "at"),
        (
            {"timing": "scheduled", "frequency": "daily", "at": "10:00", "daily_option": "x"},
            "daily-option",
        ),
        (
            {
                "timing": "scheduled",
                "frequency": "daily",
                "at": "01:00",
                "daily_option": "weekdays",
                "interval": "2",
            },
            "interval",
        ),
        ({"timing": "scheduled", "frequency": "weekly", "at": "10:00"}, "days"),
        (
            {"timing": "scheduled", "frequency": "weekly", "at": "10:00", "days": "mon,funday"},
            "days",
        ),
        ({"timing": "scheduled", "frequency": "monthly", "at": "10:00", "day": "0"}, "day"),
        ({"timing": "scheduled", "frequency": "monthly", "at": "10:00", "day": "32"}, "day"),
        ({"timing": "scheduled", "frequency": "monthly", "at": "10:00"}, "day"),
        (
            {"timing": "scheduled", "frequency": "monthly", "at": "10:00", "ordinal": "first"},
            "weekday",
        ),
        (
            {
                "timing": "scheduled",
                "frequency": "monthly",
                "at": "10:00",
                "ordinal": "fifth",
                "weekday": "mon",
            },
            "ordinal",
        ),
        (
            {
                "timing": "scheduled",
                "frequency": "monthly",
                "at": "10:00",
                "day": "30",
                "interval": "12",
                "start": "2027-02-01",
            },
            "day",
        ),
        (
            {
                "timing": "scheduled",
                "frequency": "seconds",
                "start": "2027-01-02",
                "finish": "2027-01-01",
            },
            "finish",
        ),
        ({"timing": "scheduled", "frequency": "seconds", "start": "yesterday"}, "start"),
        ({"timing": "scheduled", "frequency": "seconds", "start": "2400-01-01"}, "start"),
        ({"timing": "later"}, "start"),
        ({"timing": "later", "start": "2026-12-31T00:00"}, "start"),
        ({"timing": "later", "start": "2027-02-01", "frequency": "daily"}, "frequency"),
        ({"timing": "immediate", "start": "2027-02-01"}, "start"),
        ({"timing": "scheduled", "frequency": "yearly", "day": "1", "at": "10:00"}, "month"),
        ({"timing": "scheduled", "frequency": "yearly", "month": "3", "at": "10:00"}, "day"),
        ({"timing": "scheduled", "frequency": "yearly", "month": "3", "day": "1"}, "at"),
        (
            {"timing": "scheduled", "frequency": "yearly", "month": "3", "ordinal": "first"},
            "at",
        ),
        (
            {
                "timing": "scheduled",
                "frequency": "yearly",
                "month": "3",
                "ordinal": "first",
                "at": "10:00",
            },
            "weekday",
        ),
        (
            {
                "timing": "scheduled",
                "frequency": "yearly",
                "month": "3",
                "day": "1",
                "weekday": "mon",
                "at": "10:00",
            },
            "weekday",
        ),
        (
            {
                "timing": "scheduled",
                "frequency": "yearly",
                "month": "3",
                "day": "1",
                "repetitions": "2",
                "at": "10:00",
            },
            "repetitions",
        ),
        ({"timing": "scheduled", "frequency": "monthly", "month": "3", "day": "1"}, "month"),
        ({"timing": "scheduled", "frequency": "daily", "at": "10:00", "month": "3"}, "month"),
        ({"timing": "later", "start": "2027-02-01", "month": "3"}, "month"),
        ({"timing": "immediate", "tz": "Mars/Olympus"}, "tz"),
        ({"timing": "immediate", "tz": ""}, "tz"),
    ],
)
def test_bad_timing_names_the_field(fields: dict[str, str], field: str) -> None:
    fields.setdefault("tz", MADRID)
    with pytest.raises(InvalidInput) as caught:
        Timing.build(fields, now=NOW, default_tz="UTC")
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"month": "13", "day": "1"}, "month: must be between 1 and 12 (got 13)"),
        ({"month": "0", "day": "1"}, "month: must be between 1 and 12 (got 0)"),
        ({"month": "-1", "day": "1"}, "month: must be between 1 and 12 (got -1)"),
        ({"month": "smarch", "day": "1"}, "month: 'smarch' is not a month (1..12 or jan..dec)"),
        ({"month": "3.0", "day": "1"}, "month: '3.0' is not a month (1..12 or jan..dec)"),
        ({"month": "2", "day": "30"}, "day: must be between 1 and 29 in February (got 30)"),
        ({"month": "apr", "day": "31"}, "day: must be between 1 and 30 in April (got 31)"),
        ({"month": "3", "day": "32"}, "day: must be between 1 and 31 (got 32)"),
        (
            {"month": "2", "day": "29", "interval": "4", "start": "2027-01-01"},
            "day: leaves no fire time from now on (29 February is only in leap years)",
        ),
    ],
)
def test_bad_yearly_says_what_is_wrong(fields: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=f"^{re.escape(message)}$"):
        build(timing="scheduled", frequency="yearly", at="09:00", **fields)


@pytest.mark.parametrize(
    ("month", "number"),
    [("1", 1), (12, 12), (" 07 ", 7), ("jan", 1), ("Sep", 9), ("DECEMBER", 12), ("may", 5)],
)
def test_a_month_is_a_number_or_a_name(month: object, number: int) -> None:
    timing = build(timing="scheduled", frequency="yearly", month=month, day="1", at="09:00")
    assert timing.month == number


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "timing",
                "start",
                "finish",
                "tz",
                "frequency",
                "interval",
                "repetitions",
                "daily_option",
                "at",
                "days",
                "month",
                "day",
                "ordinal",
                "weekday",
                "cron",
            ]
        ),
        st.one_of(
            st.text(max_size=30),
            st.sampled_from(
                [
                    *("scheduled", "later", "cron", "monthly", "yearly", "last", "10:00"),
                    *("mon", "+5s", "1", "2", "29", "feb", "12", "13"),
                ]
            ),
        ),
    )
)
@settings(max_examples=400, deadline=None)
def test_any_input_builds_or_names_a_field(fields: dict[str, str]) -> None:
    try:
        Timing.build(dict(fields), now=NOW, default_tz="UTC")
    except InvalidInput as error:
        assert error.field and str(error).startswith(error.field)


# -- storage and words ---------------------------------------------------------

YEARLY_AT_9 = {"timing": "scheduled", "frequency": "yearly", "at": "09:00"}
ROUND_TRIP = [
    {"timing": "immediate"},
    {"timing": "later", "start": "2027-05-01T10:00"},
    {"timing": "scheduled", "frequency": "seconds", "interval": "3", "repetitions": "4"},
    {"timing": "scheduled", "frequency": "daily", "daily_option": "weekends", "at": "10:00:30"},
    {"timing": "scheduled", "frequency": "weekly", "days": "sat,mon", "at": "10:00"},
    {
        "timing": "scheduled",
        "frequency": "monthly",
        "ordinal": "last",
        "weekday": "sun",
        "at": "23:59",
        "finish": "2030-01-01",
    },
    {**YEARLY_AT_9, "month": "2", "day": "29"},
    {
        "timing": "scheduled",
        "frequency": "yearly",
        "month": "nov",
        "ordinal": "fourth",
        "weekday": "thu",
        "at": "10:00",
        "interval": "2",
    },
    {"timing": "scheduled", "frequency": "cron", "cron": "0 15 10 ? * 6#3"},
]


@pytest.mark.parametrize("fields", ROUND_TRIP)
def test_storage_round_trip(fields: dict[str, str]) -> None:
    timing = build(**fields)
    assert Timing.from_dict(timing.as_dict()) == timing
    assert Timing.from_dict(json.loads(json.dumps(timing.as_dict()))) == timing
    built = Timing.build({"tz": MADRID, **fields}, now=NOW, default_tz="UTC")
    assert Timing.build(built.fields(), now=NOW, default_tz="UTC") == built
    assert timing.describe()


def test_the_stored_document_is_tagged_and_holds_the_fields_set_under_their_keys() -> None:
    timing = build(
        timing="scheduled", frequency="weekly", days="fri,mon", at="07:15:30", start="2027-01-04"
    )
    assert timing.as_dict() == {
        "v": 1,
        "timing": "scheduled",
        "start": "2027-01-03T23:00:00+00:00",
        "tz": MADRID,
        "frequency": "weekly",
        "at": "07:15:30",
        "days": ["mon", "fri"],
    }


@pytest.mark.parametrize(
    "document",
    [
        {"kind": "immediate", "timezone": "UTC", "start": None},  # the shape before version 1
        {"v": 2, "timing": "immediate", "tz": "UTC"},
        {"v": 1, "tz": "UTC"},
        {"v": 1, "timing": "immediate"},
    ],
)
def test_a_document_of_another_version_or_without_kind_or_zone_is_refused(
    document: dict[str, object],
) -> None:
    with pytest.raises(ValueError):
        Timing.from_dict(document)


@pytest.mark.parametrize(
    ("damage", "field"),
    [({"at": "25:00"}, "at"), ({"days": []}, "days"), ({"tz": "Mars/Olympus"}, "tz")],
)
def test_a_value_damaged_in_storage_is_refused_naming_its_field(
    damage: dict[str, object], field: str
) -> None:
    document = build(timing="scheduled", frequency="weekly", days="mon", at="10:00").as_dict()
    with pytest.raises(InvalidInput) as caught:
        Timing.from_dict({**document, **damage})
    assert caught.value.field == field


def test_every_timing_attribute_is_declared_once_as_a_field() -> None:
    assert sorted(f.attr for f in TIMING_FIELDS) == sorted(f.name for f in dataclass_fields(Timing))
    assert len(TIMING_KEYS) == len(set(TIMING_KEYS)) == len(TIMING_FIELDS)


@pytest.mark.parametrize("command", [create, update, preview], ids=lambda c: c.name)
def test_every_timing_field_is_an_option_of_the_commands_that_take_a_timing(
    command: click.Command,
) -> None:
    options = {p.name: p for p in command.params}
    for field in TIMING_FIELDS:
        option = options[field.key]
        assert (option.opts, option.metavar, option.help) == (
            [f"--{field.label}"],
            field.metavar,
            field.help,
        )


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"timing": "immediate"}, "Once, as soon as it is scheduled"),
        (
            {"timing": "scheduled", "frequency": "seconds", "interval": "5", "repetitions": "3"},
            "Every 5 seconds, 3 times in all",
        ),
        (
            {
                "timing": "scheduled",
                "frequency": "daily",
                "daily_option": "weekdays",
                "at": "07:00",
            },
            "Every weekday (Monday to Friday) at 07:00",
        ),
        (
            {"timing": "scheduled", "frequency": "weekly", "days": "mon,wed", "at": "07:00"},
            "Every week on Monday and Wednesday at 07:00",
        ),
        (
            {
                "timing": "scheduled",
                "frequency": "monthly",
                "ordinal": "first",
                "weekday": "mon",
                "at": "07:00",
                "interval": "2",
            },
            "Every 2 months on the first Monday at 07:00",
        ),
        (
            {**YEARLY_AT_9, "month": "3", "day": "15"},
            "Every year on 15 March at 09:00, from",
        ),
        (
            {
                "timing": "scheduled",
                "frequency": "yearly",
                "month": "11",
                "ordinal": "fourth",
                "weekday": "thu",
                "at": "10:00",
                "interval": "2",
            },
            "Every 2 years on the fourth Thursday of November at 10:00",
        ),
        (
            {**YEARLY_AT_9, "month": "2", "day": "last"},
            "Every year on the last day of February at 09:00",
        ),
        (
            {**YEARLY_AT_9, "month": "2", "day": "29"},
            "Every year on 29 February at 09:00 (only in leap years)",
        ),
        ({"timing": "scheduled", "frequency": "cron", "cron": "0 15 10 ? * 6#3"}, "Friday"),
    ],
)
def test_describe(fields: dict[str, str], words: str) -> None:
    assert words in build(**fields).describe()


# -- property: engine == brute force, DST days included -----------------------

DST_DAYS = {
    MADRID: ["2027-03-28", "2027-10-31"],
    NEW_YORK: ["2027-03-14", "2027-11-07"],
    SYDNEY: ["2027-04-04", "2027-10-03"],
}
times = st.builds(
    lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 59])
)
plans = st.one_of(
    st.fixed_dictionaries(
        {
            "frequency": st.just("daily"),
            "at": times,
            "daily_option": st.sampled_from(["every", "weekdays", "weekends"]),
        }
    ),
    st.fixed_dictionaries(
        {"frequency": st.just("daily"), "at": times, "interval": st.integers(1, 4)}
    ),
    st.fixed_dictionaries(
        {
            "frequency": st.just("weekly"),
            "at": times,
            "days": st.lists(st.sampled_from(DAYS), min_size=1, unique=True),
            "interval": st.integers(1, 3),
        }
    ),
    st.fixed_dictionaries(
        {
            "frequency": st.just("monthly"),
            "at": times,
            "day": st.sampled_from(["1", "28", "29", "30", "31", "last"]),
        }
    ),
    st.fixed_dictionaries(
        {
            "frequency": st.just("monthly"),
            "at": times,
            "ordinal": st.sampled_from(["first", "second", "fourth", "last"]),
            "weekday": st.sampled_from(DAYS),
        }
    ),
    st.fixed_dictionaries(
        {
            "frequency": st.just("cron"),
            "cron": st.sampled_from(
                [
                    "*/20 * * * *",
                    "0,30 1-3 * * *",
                    "15 2 * * 0",
                    "0 2 1-7 * 0",
                    "0 0/30 2 ? * *",
                    "0 30 2 L * ?",
                    "0 0 3 ? * 1#1",
                    "0 */45 0-4 * * ?",
                ]
            ),
        }
    ),
)


@given(
    plan=plans,
    zone=st.sampled_from(sorted(DST_DAYS)),
    which=st.integers(0, 1),
    offset_min=st.integers(-3 * 24 * 60, 2 * 24 * 60),
    start_days_before=st.integers(0, 40),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_engine_matches_brute_force_around_dst(
    plan: dict, zone: str, which: int, offset_min: int, start_days_before: int
) -> None:
    day = datetime.fromisoformat(DST_DAYS[zone][which]).replace(tzinfo=ZoneInfo(zone))
    after = (day + timedelta(minutes=offset_min)).astimezone(UTC)
    start = (after - timedelta(days=start_days_before)).replace(second=0)
    expected = brute_fires(plan, zone, start, after, after + WINDOW)
    assert engine_fires(plan, zone, start, after) == expected


WINDOW = timedelta(days=4)


def engine_fires(plan: dict, zone: str, start: datetime, after: datetime) -> list[datetime]:
    """The engine's fires in (after, after + WINDOW] of a plan built from ``start``."""
    fields = {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in plan.items()}
    timing = Timing.build(
        {"timing": "scheduled", "tz": zone, "start": start, **fields}, now=start, default_tz="UTC"
    )
    got: list[datetime] = []
    cursor = after
    while (fire := timing.next_fire(cursor)) is not None and fire <= after + WINDOW:
        got.append(fire)
        cursor = fire
    return got


small_hours = st.builds(
    lambda h, m: f"{h:02d}:{m:02d}", st.integers(1, 2), st.sampled_from([0, 10, 30, 45, 59])
)


@st.composite
def yearly_near(draw: st.DrawFn, day: date) -> dict:
    """A yearly plan for a day at most one from ``day``, named by its number, as its month's
    last, or as its n-th or last weekday; now and then one for any day of any month."""
    target = day + timedelta(days=draw(st.sampled_from([0, 0, -1, 1])))
    length = calendar.monthrange(target.year, target.month)[1]
    weekday = DAYS[target.weekday()]
    ways: list[dict[str, object]] = [{"day": target.day}]
    if target.day == length:
        ways.append({"day": "last"})
    if target.day <= 28:
        ways.append({"ordinal": ORDINALS[(target.day - 1) // 7], "weekday": weekday})
    if target.day + 7 > length:
        ways.append({"ordinal": "last", "weekday": weekday})
    month, which = target.month, draw(st.sampled_from(ways))
    if draw(st.integers(0, 9)) == 0:
        month, which = draw(st.integers(1, 12)), {"day": draw(st.integers(1, 28))}
    return {
        "frequency": "yearly",
        "month": month,
        **which,
        "at": draw(small_hours if draw(st.booleans()) else times),
        "interval": draw(st.integers(1, 3)),
    }


@given(
    zone=st.sampled_from(sorted(DST_DAYS)),
    which=st.integers(0, 1),
    data=st.data(),
    offset_min=st.integers(-3 * 24 * 60, 2 * 24 * 60),
    start_days_before=st.integers(0, 3 * 366),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_yearly_matches_brute_force_around_dst(
    zone: str, which: int, data: st.DataObject, offset_min: int, start_days_before: int
) -> None:
    day = date.fromisoformat(DST_DAYS[zone][which])
    plan = data.draw(yearly_near(day), label="plan")
    local_day = datetime.combine(day, datetime.min.time(), ZoneInfo(zone))
    after = (local_day + timedelta(minutes=offset_min)).astimezone(UTC)
    start = (after - timedelta(days=start_days_before)).replace(second=0)
    expected = brute_fires(plan, zone, start, after, after + WINDOW)
    assert engine_fires(plan, zone, start, after) == expected


@given(
    year=st.one_of(st.integers(2027, 2036), st.sampled_from([2096, 2100, 2104])),
    zone=st.sampled_from(["UTC", MADRID, SYDNEY, "Pacific/Kiritimati"]),
    plan=st.fixed_dictionaries(
        {"frequency": st.just("yearly"), "month": st.just(2), "at": times},
        optional={"interval": st.integers(1, 4)},
    ).flatmap(
        lambda p: st.one_of(
            st.builds(lambda d: {**p, "day": d}, st.sampled_from(["27", "28", "29", "last"])),
            st.builds(
                lambda o, w: {**p, "ordinal": o, "weekday": w},
                st.sampled_from(["fourth", "last"]),
                st.sampled_from(DAYS),
            ),
        )
    ),
    offset_min=st.integers(0, 3 * 24 * 60),
    start_years_before=st.integers(0, 8),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_yearly_at_the_end_of_february_matches_brute_force(
    year: int, zone: str, plan: dict, offset_min: int, start_years_before: int
) -> None:
    """29 February fires only in leap years (2100 is not one); 'last' takes the 28th or 29th."""
    feb_26 = datetime(year, 2, 26, tzinfo=ZoneInfo(zone))
    after = (feb_26 + timedelta(minutes=offset_min)).astimezone(UTC)
    start = datetime(year - start_years_before, 1, 1, tzinfo=UTC)
    expected = brute_fires(plan, zone, start, after, after + WINDOW)
    try:
        got = engine_fires(plan, zone, start, after)
    except InvalidInput as refused:  # 29 February every N years from a year that never leaps
        assert refused.field == "day" and plan["day"] == "29" and expected == []
        return
    assert got == expected
