"""Run results as stored: JSON-able and bounded, a cut one says so (design §4)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

from bgproc.store.transitions import MAX_RESULT_CHARS, bounded_result


def test_a_small_result_is_stored_as_json() -> None:
    assert bounded_result({"rows": [1, 2], "when": None}) == {"rows": [1, 2], "when": None}
    assert bounded_result(("a", 1)) == ["a", 1]


def test_what_json_has_no_type_for_is_stored_as_text() -> None:
    # Dates and times as ISO 8601, as every --json prints them; anything else as its text
    when = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
    stored = bounded_result({"at": when, "day": date(2027, 1, 31), "total": Decimal("1.50")})
    assert stored == {"at": "2027-01-31T09:30:00+00:00", "day": "2027-01-31", "total": "1.50"}
    assert bounded_result({1, 2}) == "{1, 2}"
    # A result that cannot be JSON at all (keys JSON cannot hold): its repr, as a string
    assert bounded_result({(1, 2): "pair"}) == "{(1, 2): 'pair'}"


def test_a_huge_result_is_cut_visibly() -> None:
    huge = {"rows": ["x" * 1000] * 100}  # about 100 KB of JSON
    size = len(json.dumps(huge))
    assert size > 64 * 1024
    stored = bounded_result(huge)
    assert stored["truncated"] is True and stored["chars"] == size
    assert len(stored["head"]) == MAX_RESULT_CHARS
    assert json.dumps(huge).startswith(stored["head"])
    assert len(json.dumps(stored)) < MAX_RESULT_CHARS + 200
