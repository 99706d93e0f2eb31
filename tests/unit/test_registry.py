"""The process registry: parameters from signatures, coercion, secrets, errors naming the field."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgproc.errors import InvalidInput, NotFound
from bgproc.registry import SECRET_MASK, ProcessContext, Redaction, Registry, Secret, process


@pytest.fixture
def registry() -> Registry:
    registry = Registry()

    @process(
        "billing.close_day",
        description="Close the day",
        prevent_concurrent=True,
        killable=True,
        queue="billing",
        time_limit_s=600,
        registry=registry,
    )
    def close_day(
        ctx: ProcessContext,
        day: date,
        token: Secret,
        retries: int = 3,
        ratio: float = 0.5,
        dry: bool = False,
        at: datetime | None = None,
        note: str = "",
    ) -> dict:
        return {"day": day, "token": token}

    return registry


def test_parameters_come_from_the_signature(registry: Registry) -> None:
    spec = registry.get("billing.close_day")
    assert [(p.name, p.type_name, p.required) for p in spec.params][:4] == [
        ("day", "date", True),
        ("token", "secret", True),
        ("retries", "int", False),
        ("ratio", "float", False),
    ]
    assert (spec.prevent_concurrent, spec.killable, spec.queue, spec.time_limit_s) == (
        True,
        True,
        "billing",
        600,
    )
    assert spec.description == "Close the day"


def test_strings_are_coerced_and_stored_as_json(registry: Registry) -> None:
    spec = registry.get("billing.close_day")
    stored = spec.validate_params(
        {"day": "2027-01-31", "token": "s3cret", "retries": "5", "ratio": "0.25", "dry": "yes"}
    )
    assert stored == {
        "day": "2027-01-31",
        "token": "s3cret",
        "retries": 5,
        "ratio": 0.25,
        "dry": True,
    }
    kwargs = spec.call_kwargs(stored)
    assert kwargs["day"] == date(2027, 1, 31) and isinstance(kwargs["token"], Secret)
    assert repr(kwargs["token"]) == "***"
    assert spec.masked(stored)["token"] == "***"


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"token": "x"}, "param day"),
        ({"day": "2027-01-31"}, "param token"),
        ({"day": "31/01/2027", "token": "x"}, "param day"),
        ({"day": "2027-01-31", "token": "x", "retries": "three"}, "param retries"),
        ({"day": "2027-01-31", "token": "x", "retries": "9" * 40}, "param retries"),
        ({"day": "2027-01-31", "token": "x", "ratio": "nan"}, "param ratio"),
        ({"day": "2027-01-31", "token": "x", "dry": "maybe"}, "param dry"),
        ({"day": "2027-01-31", "token": "x", "colour": "red"}, "param colour"),
        ({"day": "2027-01-31", "token": "x", "note": "n" * 10_001}, "param note"),
    ],
)
def test_bad_parameters_name_the_field(registry: Registry, given: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        registry.get("billing.close_day").validate_params(given)
    assert caught.value.field == field


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=5))
@settings(max_examples=300, deadline=None)
def test_any_parameters_validate_or_name_one(params: dict[str, str]) -> None:
    registry = Registry()

    @process("t.p", registry=registry)
    def p(ctx: ProcessContext, n: int, when: date, flag: bool = False) -> None: ...

    try:
        registry.get("t.p").validate_params(params)
    except InvalidInput as error:
        assert error.field.startswith("param")


def test_unknown_process_and_bad_names() -> None:
    registry = Registry()
    with pytest.raises(NotFound):
        registry.get("nope")
    with pytest.raises(ValueError):
        process("Bad Name!", registry=registry)


def test_a_module_that_cannot_be_imported_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput) as caught:
        Registry().load(["no_such_module_here"])
    assert caught.value.field == "BGPROC_IMPORTS"


def test_a_runs_redaction_holds_its_secret_values_only(registry: Registry) -> None:
    spec = registry.get("billing.close_day")
    stored = spec.validate_params({"day": "2027-01-29", "token": "s3cr3t", "note": "s3cr3t-ish"})
    assert spec.redaction(stored) == Redaction(("s3cr3t",))
    assert not spec.redaction(spec.validate_params({"day": "2027-01-29", "token": ""}))


def test_redaction_masks_text_and_json_values() -> None:
    # The longest secret first: one that contains another is masked whole
    redaction = Redaction(("abc-longer", "abc", 'q"uo\\te'))
    assert redaction.text("abc-longer / abc / x") == "*** / *** / x"
    value = {"abc": ["token abc", 'q"uo\\te', 1, None], "n": 2.5}
    assert redaction.value(value) == {SECRET_MASK: ["token ***", SECRET_MASK, 1, None], "n": 2.5}
    assert redaction.value({"clean": True}) == {"clean": True}
    # A secret that only matches inside JSON's own escapes cannot leave broken JSON behind
    assert Redaction(("n",)).value("a\nb") == SECRET_MASK
