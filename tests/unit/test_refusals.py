"""What a refusal says (design §5): the field, then what is wrong with it in words a user
can act on — the bound a number broke, the type a parameter needs, every missing one."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bgproc.errors import InvalidInput
from bgproc.registry import ProcessContext, Registry, process
from bgproc.timing.inputs import parse_int
from bgproc.timing.plan import Timing

NOW = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)


def refusal(call: object, *args: object) -> str:
    with pytest.raises(InvalidInput) as caught:
        call(*args)  # type: ignore[operator]
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ("99999999999999999999", "99999999999999999999"),
        ("-99999999999999", "-99999999999999"),
        ("9" * 5000, "a 5000-digit number"),
    ],
)
def test_a_number_out_of_range_says_so_with_its_bounds(text: str, got: str) -> None:
    said = f"interval: must be between 1 and 100000 (got {got})"
    assert refusal(parse_int, text, "interval", 1, 100_000) == said


@pytest.mark.parametrize("text", ["--5", "1.5", "+5", "٣"])
def test_what_is_no_whole_number_says_so(text: str) -> None:
    assert refusal(parse_int, text, "n", 1, 9) == f"n: {text!r} is not a whole number"


@pytest.fixture
def spec() -> object:
    registry = Registry()

    @process("t.typed", registry=registry)
    def typed(
        ctx: ProcessContext,
        day: date,
        count: int,
        ratio: float = 0.5,
        dry: bool = False,
        at: datetime | None = None,
    ) -> None: ...

    return registry.get("t.typed")


REQUIRED = {"day": "2027-01-31", "count": "1"}


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"count": "abc"}, "param count: 'abc' is not a whole number"),
        ({"count": "9" * 40}, "param count: '" + "9" * 40 + "' is too large"),
        ({"ratio": "abc"}, "param ratio: 'abc' is not a number"),
        ({"dry": "maybe"}, "param dry: 'maybe' must be true or false"),
        ({"day": "31/01/2027"}, "param day: '31/01/2027' is not a date (use 2027-01-31)"),
        ({"at": "noon"}, "param at: 'noon' is not a date-time (use 2027-01-31T09:30)"),
    ],
)
def test_a_bad_parameter_says_which_type_it_needs(spec: object, given: dict, said: str) -> None:
    assert refusal(spec.validate_params, {**REQUIRED, **given}) == said  # type: ignore[attr-defined]


def test_every_missing_parameter_is_named_at_once(spec: object) -> None:
    validate = spec.validate_params  # type: ignore[attr-defined]
    assert refusal(validate, {}) == "param: missing day, count (required by t.typed)"
    assert refusal(validate, {"day": "2027-01-31"}) == "param count: required by t.typed"


def scheduled(finish: str, start: str | None = None) -> Timing:
    fields = {"timing": "scheduled", "frequency": "hourly", "tz": "Europe/Madrid"}
    return Timing.build({**fields, "start": start, "finish": finish}, now=NOW, default_tz="UTC")


def test_a_finish_before_the_start_shows_both() -> None:
    assert refusal(scheduled, "2020-01-01T00:00+01:00") == (
        "finish: 2020-01-01T00:00+01:00 is before the start (now, 2027-01-01T13:00+01:00)"
    )
    said = refusal(scheduled, "2028-01-01T10:00:30", "2028-02-01T09:30")
    assert said == "finish: 2028-01-01T10:00:30+01:00 is before the start (2028-02-01T09:30+01:00)"
