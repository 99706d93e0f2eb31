"""Run results as stored: JSON-able and bounded, a cut one says so (SPEC §4)."""

from __future__ import annotations

import json

from bgproc.runs import MAX_RESULT_CHARS, bounded_result


def test_a_small_result_is_stored_as_json() -> None:
    assert bounded_result({"rows": [1, 2], "when": None}) == {"rows": [1, 2], "when": None}
    assert bounded_result({1, 2}) == "{1, 2}"  # not JSON-able: its text


def test_a_huge_result_is_cut_visibly() -> None:
    huge = {"rows": ["x" * 1000] * 100}  # about 100 KB of JSON
    size = len(json.dumps(huge))
    assert size > 64 * 1024
    stored = bounded_result(huge)
    assert stored["truncated"] is True and stored["chars"] == size
    assert len(stored["head"]) == MAX_RESULT_CHARS
    assert json.dumps(huge).startswith(stored["head"])
    assert len(json.dumps(stored)) < MAX_RESULT_CHARS + 200
