"""The deadline policy (bgproc.timing.deadlines): reading, refusals naming the field, the
stored document, and a request's fields over its process's defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgproc.errors import InvalidInput
from bgproc.timing.deadlines import (
    NO_DEADLINE,
    Deadlines,
    check_kill_overdue,
    read_deadlines,
    start_by,
)


def test_nothing_given_is_no_policy() -> None:
    assert read_deadlines({}) is None
    assert read_deadlines({"start_deadline": None, "max_runtime": None}) is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"start_deadline": "5m"}, Deadlines(300)),
        ({"start_deadline": "90"}, Deadlines(90)),
        ({"start_deadline": 45}, Deadlines(45)),
        ({"start_deadline": "none"}, Deadlines(NO_DEADLINE)),
        ({"max_runtime": "10m", "kill_overdue": "yes"}, Deadlines(None, 600, True)),
        ({"kill_overdue": False}, Deadlines(None, None, False)),
    ],
)
def test_each_field_is_read(given: dict[str, object], expected: Deadlines) -> None:
    assert read_deadlines(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"start_deadline": "soon"}, "start-deadline: 'soon' is not a duration"),
        ({"start_deadline": -3}, "start-deadline: must be longer than 0 (got -3)"),
        ({"start_deadline": "-3m"}, "start-deadline: '-3m' must be longer than 0"),
        ({"start_deadline": 1.5}, "start-deadline: 1.5 is not a duration"),
        ({"start_deadline": True}, "start-deadline: True is not a duration"),
        ({"max_runtime": "400d"}, "max-runtime: '400d' must be longer than 0 and at most"),
        ({"kill_overdue": "maybe"}, "kill-overdue: 'maybe' must be true or false"),
        ({"max_runtime": "none", "kill_overdue": True}, "kill-overdue: needs a --max-runtime"),
    ],
)
def test_a_refusal_names_its_field(given: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        read_deadlines(given)
    assert str(refused.value).startswith(message)


def test_a_request_sets_fields_over_its_process_and_none_wins() -> None:
    process = Deadlines(60, 600, True)
    assert Deadlines().over(process) == process
    own = Deadlines(NO_DEADLINE, None, False).over(process)
    assert (own.start_deadline_s, own.runtime_limit_s, own.kills) == (None, 600, False)
    assert Deadlines(30).over(None) == Deadlines(30)


def test_kill_overdue_needs_a_runtime_and_a_killable_process() -> None:
    with pytest.raises(InvalidInput, match="kill-overdue: needs --max-runtime"):
        check_kill_overdue(Deadlines(kill_overdue=True), True, "process p")
    with pytest.raises(InvalidInput, match="kill-overdue: process p is not killable"):
        check_kill_overdue(Deadlines(None, 60, True), False, "process p")
    check_kill_overdue(Deadlines(None, 60, True), True, "process p")
    check_kill_overdue(Deadlines(None, 60, False), False, "process p")


@given(
    st.one_of(st.none(), st.integers(0, 10**6)),
    st.one_of(st.none(), st.integers(0, 10**6)),
    st.one_of(st.none(), st.booleans()),
)
def test_the_stored_document_reads_back_as_written(
    start: int | None, runtime: int | None, kill: bool | None
) -> None:
    deadlines = Deadlines(start, runtime, kill)
    assert Deadlines.from_dict(deadlines.as_dict()) == deadlines


def test_words_and_the_start_by() -> None:
    assert Deadlines(300, 600, True).describe() == (
        "start within 5 min; overdue after 10 min, then killed"
    )
    assert Deadlines(NO_DEADLINE, 45).describe() == "overdue after 45 s"
    assert Deadlines().describe() == "none"
    due = datetime(2027, 1, 1, tzinfo=UTC)
    assert start_by(due, 300) == due + timedelta(minutes=5)
    assert start_by(due, None) is None
