"""The retry policy (bgproc.timing.retry): its delays against Celery's own formula, its
document's round trip, and every refusal naming its field."""

from __future__ import annotations

import random

import pytest
from celery.utils.time import get_exponential_backoff_interval
from hypothesis import given
from hypothesis import strategies as st

from bgproc.errors import InvalidInput
from bgproc.registry import ProcessContext, Registry, process
from bgproc.timing.retry import MAX_DELAY, MAX_RETRIES, RetryPolicy, read_retry
from tests.bad_values import EDGE_TEXT, examples

WEEK_S = int(MAX_DELAY.total_seconds())
policies = st.builds(
    RetryPolicy,
    retries=st.integers(0, MAX_RETRIES),
    backoff_s=st.integers(1, WEEK_S),
    max_s=st.one_of(st.none(), st.integers(1, WEEK_S)),
    jitter=st.booleans(),
).filter(lambda p: p.max_s is None or p.max_s >= p.backoff_s)


def test_the_delays_double_from_the_backoff_up_to_the_maximum() -> None:
    policy = read_retry({"retries": "5", "retry_backoff": "30s", "retry_max": "2m"})
    assert policy == RetryPolicy(5, 30, 120, False)
    assert [policy.delay_s(n) for n in range(1, 6)] == [30, 60, 120, 120, 120]
    assert policy.tries == 6


@examples(300)
@given(policies, st.integers(1, MAX_RETRIES))
def test_a_delay_is_celerys_exponential_backoff_capped_by_the_maximum_and_a_week(
    policy: RetryPolicy, retry: int
) -> None:
    cap = min(policy.max_s or WEEK_S, WEEK_S)
    celery = get_exponential_backoff_interval(policy.backoff_s, retry - 1, cap, full_jitter=False)
    assert RetryPolicy(policy.retries, policy.backoff_s, policy.max_s).delay_s(retry) == celery
    # with jitter: drawn in [0, that], as Celery's full jitter draws it
    drawn = policy.delay_s(retry, random.Random(retry).randrange)
    assert 0 <= drawn <= celery
    if policy.jitter:
        assert policy.delay_s(retry, lambda n: n - 1) == celery
        assert policy.delay_s(retry, lambda n: 0) == 0


@examples(200)
@given(policies)
def test_the_stored_document_reads_back_as_the_same_policy(policy: RetryPolicy) -> None:
    assert RetryPolicy.from_dict(policy.as_dict()) == policy


def test_the_policy_in_words() -> None:
    assert read_retry({"retries": 0}).describe() == "no retries"  # type: ignore[union-attr]
    assert RetryPolicy(1, 45).describe() == "1 retry, 45 s after an error"
    assert RetryPolicy(3, 30, 3600, True).describe() == (
        "3 retries, 30 s after an error, doubling, at most 1 h, with jitter"
    )


def test_durations_are_text_or_whole_seconds() -> None:
    assert read_retry({"retries": 2, "retry_backoff": 90, "retry_max": "1h"}) == RetryPolicy(
        2, 90, 3600
    )
    assert read_retry({"retries": "2", "retry_backoff": " 15 ", "retry_jitter": "yes"}) == (
        RetryPolicy(2, 15, None, True)
    )
    assert read_retry({}) is None
    assert read_retry({"retries": None, "retry_jitter": None}) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"retries": "x"}, "retries: 'x' is not a whole number"),
        ({"retries": "-1"}, "retries: must be between 0 and 100 (got -1)"),
        ({"retries": "101"}, "retries: must be between 0 and 100 (got 101)"),
        ({"retries": True}, "retries: must be a whole number"),
        ({"retry_backoff": "5s"}, "retry-backoff: needs --retries N"),
        ({"retry_max": "5s", "retry_jitter": True}, "retry-jitter: needs --retries N"),
        ({"retries": 1, "retry_backoff": "0s"}, "retry-backoff: '0s' must be longer than 0"),
        ({"retries": 1, "retry_backoff": "8d"}, "retry-backoff: '8d' must be longer than 0 and at most 7 days"),  # noqa: E501
        ({"retries": 1, "retry_backoff": "soon"}, "retry-backoff: 'soon' is not a duration"),
        ({"retries": 1, "retry_backoff": 1.5}, "retry-backoff: 1.5 is not a duration"),
        ({"retries": 1, "retry_max": "2x"}, "retry-max: '2x' is not a duration"),
        ({"retries": 1, "retry_backoff": "1m", "retry_max": "30s"},
         "retry-max: is shorter than --retry-backoff (60 s)"),
        ({"retries": 1, "retry_jitter": "maybe"}, "retry-jitter: 'maybe' must be true or false"),
    ],
)
def test_bad_input_is_refused_naming_its_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        read_retry(fields)
    assert str(refused.value).startswith(message)


retry_fields = st.fixed_dictionaries(
    {},
    optional={
        "retries": st.one_of(st.sampled_from(EDGE_TEXT), st.integers(-5, 200).map(str)),
        "retry_backoff": st.one_of(st.sampled_from(EDGE_TEXT), st.text(max_size=8)),
        "retry_max": st.one_of(st.sampled_from(EDGE_TEXT), st.text(max_size=8)),
        "retry_jitter": st.one_of(st.booleans(), st.sampled_from(EDGE_TEXT)),
    },
)


@examples(500)
@given(retry_fields)
def test_any_input_gives_a_policy_or_a_refusal_naming_a_retry_field(
    fields: dict[str, object],
) -> None:
    try:
        policy = read_retry(fields)
    except InvalidInput as refusal:
        assert refusal.field in {"retries", "retry-backoff", "retry-max", "retry-jitter"}
        return
    assert policy is None or 0 <= policy.retries <= MAX_RETRIES


def test_the_decorator_gives_a_process_its_default_policy() -> None:
    registry = Registry()

    @process("t.flaky", retries=2, retry_backoff="10s", retry_jitter=True, registry=registry)
    def flaky(ctx: ProcessContext) -> None:
        """Fails now and then."""

    @process("t.steady", registry=registry)
    def steady(ctx: ProcessContext) -> None:
        """Never retried."""

    assert registry.get("t.flaky").retry == RetryPolicy(2, 10, None, True)
    assert registry.get("t.steady").retry is None
    with pytest.raises(ValueError, match=r"process t\.bad: retry-backoff: '0s'"):
        process("t.bad", retries=1, retry_backoff="0s", registry=registry)
