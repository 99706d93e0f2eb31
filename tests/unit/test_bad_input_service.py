"""Bad input at the pure layer (design §2, §5): timings, typed inputs and process parameters.

Whatever loose fields a caller hands in, the only way out is a value or an
:class:`InvalidInput` whose field is one the caller can find; a value that passes must
then be usable (fires, words, storage round trip) up to the end of the calendar.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tasks  # noqa: F401  (registers the sample processes)
from bgproc.errors import InvalidInput
from bgproc.registry import REGISTRY, ProcessContext, Registry, Secret, process
from bgproc.services.requests import TIMING_KEYS
from bgproc.timing.fields import Frequency
from bgproc.timing.inputs import (
    field_label,
    parse_choice,
    parse_instant,
    parse_int,
    parse_time_of_day,
    parse_weekday,
    parse_zone,
)
from bgproc.timing.plan import Timing
from tests import bad_values as bad

NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
END_OF_CALENDAR = datetime(9999, 12, 30, tzinfo=UTC)
TIMING_FIELDS = {field_label(key) for key in TIMING_KEYS}

TEXT_OF = {
    "timing": bad.timing_kind,
    "start": bad.datetimes,
    "finish": bad.datetimes,
    "tz": bad.zones,
    "frequency": bad.frequency,
    "interval": bad.ints,
    "repetitions": bad.ints,
    "daily_option": bad.daily_option,
    "at": bad.time_of_day,
    "days": bad.days,
    "month": bad.month,
    "day": bad.day_of_month,
    "ordinal": bad.ordinal,
    "weekday": bad.weekday,
    "cron": bad.crons,
}
timing_fields = st.tuples(
    st.fixed_dictionaries(
        {}, optional={key: st.one_of(text, bad.python_values) for key, text in TEXT_OF.items()}
    ),
    st.dictionaries(bad.junk, bad.python_values, max_size=1),  # keys no timing has
).map(lambda t: {**t[1], **t[0]})


def _tally(refused: bool) -> None:
    bad.TALLY["pure layer " + ("refused" if refused else "accepted")] += 1


@bad.examples(250)
@given(fields=timing_fields)
def test_any_timing_fields_build_or_name_a_field(fields: dict[str, Any]) -> None:
    try:
        timing = Timing.build(fields, now=NOW, default_tz="Europe/Madrid")
    except InvalidInput as error:
        _tally(True)
        given = {field_label(str(key)) for key in fields}
        assert error.field in TIMING_FIELDS | given, error
        assert error.why and "\n" not in error.why
        return
    _tally(False)
    anchored = timing.anchored(NOW)
    fires = anchored.upcoming(NOW, 20)
    assert fires == sorted(set(fires))
    assert anchored.next_fire(END_OF_CALENDAR) is None or fires
    assert timing.describe()
    assert Timing.from_dict(timing.as_dict()) == timing


@pytest.mark.parametrize(
    "fields",
    [
        {"frequency": "hourly", "interval": "100000"},
        {"frequency": "daily", "interval": "100000", "at": "23:00", "tz": "America/New_York"},
        {"frequency": "weekly", "interval": "100000", "days": "sun", "at": "23:00"},
        {"frequency": "monthly", "interval": "100000", "day": "last", "at": "23:59"},
        {"frequency": "yearly", "interval": "100000", "month": "12", "day": "31", "at": "23:59"},
        {"frequency": "yearly", "month": "2", "day": "29", "at": "23:59", "tz": "Etc/GMT+12"},
        {"frequency": "cron", "cron": "0 59 23 31 12 ?", "tz": "Pacific/Kiritimati"},
    ],
)
def test_a_plan_ends_with_the_calendar(fields: dict[str, str]) -> None:
    """Year 9999 is the last the calendar knows: past it a plan has no fire, not an error."""
    timing = Timing.build({"timing": "scheduled", **fields}, now=NOW, default_tz="UTC")
    fires = timing.anchored(NOW).upcoming(NOW, 1000)
    assert fires and fires[-1].year <= 9999
    assert timing.anchored(NOW).next_fire(END_OF_CALENDAR) is None or fires


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"frequency": "weekly", "at": "10:00", "days": True}, "days"),
        ({"frequency": "weekly", "at": "10:00", "days": 5}, "days"),
        ({"frequency": "seconds", "start": "+999999999d"}, "start"),
        ({"frequency": "seconds", "start": "+²m"}, "start"),
        ({"frequency": "seconds", "start": "+٣m"}, "start"),
    ],
)
def test_loose_values_name_their_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Timing.build({"timing": "scheduled", **fields}, now=NOW, default_tz="UTC")
    assert caught.value.field == field


@bad.examples(150)
@given(
    value=st.one_of(bad.datetimes, bad.python_values),
    zone=st.sampled_from(["UTC", "Asia/Tokyo"]),
)
def test_any_instant_parses_or_names_its_field(value: object, zone: str) -> None:
    try:
        instant = parse_instant(value, ZoneInfo(zone), NOW, "since")
    except InvalidInput as error:
        _tally(True)
        assert error.field == "since"
        return
    _tally(False)
    assert instant.tzinfo is not None and instant.utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize("text", ["--5", "-", "5-", "-+5", "+5", " ", "1_000", "--"])
def test_text_that_only_looks_like_a_number_is_refused_naming_its_field(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_int(text, "interval", 1, 10)
    assert caught.value.field == "interval"


@bad.examples(120)
@given(value=st.one_of(bad.ints, bad.python_values))
def test_any_typed_input_parses_or_names_its_field(value: object) -> None:
    parsers = [
        (lambda: parse_int(value, "limit", 1, 1000), "limit"),
        (lambda: parse_choice(value, "frequency", Frequency), "frequency"),
        (lambda: parse_weekday(value, "weekday"), "weekday"),
        (lambda: parse_time_of_day(value, "at"), "at"),
        (lambda: parse_zone(value), "tz"),
    ]
    for parse, field in parsers:
        try:
            parse()
        except InvalidInput as error:
            _tally(True)
            assert error.field == field
        else:
            _tally(False)


def _typed_registry() -> Registry:
    registry = Registry()

    @process("t.all", registry=registry)
    def every_type(
        ctx: ProcessContext,
        n: int,
        when: date,
        token: Secret,
        ratio: float = 0.5,
        flag: bool = False,
        at: datetime | None = None,
        note: str = "",
        **extra: str,
    ) -> None: ...

    return registry


TYPED = _typed_registry()


@pytest.mark.parametrize(
    ("given_params", "field"),
    [
        (["n=1"], "param"),
        ({"n": "٣", "when": "2027-01-01", "token": "t"}, "param n"),
        ({"n": "1", "when": "2027-01-01", "token": "t", "ratio": "١.٥"}, "param ratio"),
        ({"n": "1", "when": "2027-01-01", "token": "t\x00"}, "param token"),
        ({"n": "1", "when": "2027-01-01", "token": "\udcff"}, "param token"),
        ({"n": "1", "when": "2027-01-01", "token": "t", "a\nb": "x"}, "param"),
        ({"n": "1", "when": "2027-01-01", "token": "t", 7: "x"}, "param"),
    ],
)
def test_bad_params_name_their_field(given_params: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        TYPED.get("t.all").validate_params(given_params)
    assert caught.value.field == field


param_keys = st.one_of(
    st.sampled_from(["n", "when", "token", "ratio", "flag", "at", "note", "seconds", "lines"]),
    bad.junk,
)
param_values = st.one_of(bad.ints, bad.datetimes, bad.python_values)
param_sets = st.one_of(
    st.dictionaries(param_keys, param_values, max_size=5),
    st.dictionaries(
        bad.python_values.filter(lambda k: not isinstance(k, (list, dict))), bad.junk, max_size=2
    ),
    st.lists(bad.junk, max_size=2),  # not a mapping at all
    bad.junk,
)
specs = st.sampled_from(
    [TYPED.get("t.all"), *(REGISTRY.get(f"sample.{n}") for n in ("echo", "sleep", "fail", "spam"))]
)


@bad.examples(250)
@given(spec=specs, given_params=param_sets)
def test_any_params_validate_or_name_one(spec: Any, given_params: Any) -> None:
    try:
        stored = spec.validate_params(given_params)
    except InvalidInput as error:
        _tally(True)
        assert error.field == "param" or error.field.startswith("param "), error
        assert "\n" not in error.field
        return
    _tally(False)
    text = json.dumps(stored, ensure_ascii=False)
    assert "\x00" not in text and text.encode("utf-8")  # every store can hold it
    kwargs = spec.call_kwargs(stored)
    assert set(kwargs) == set(stored)
