"""The README's "Writing a process" is true: it is ``tasks/billing.py``, which the tour uses."""

from __future__ import annotations

from pathlib import Path

from tests.readme import readme_block

BILLING = Path(__file__).resolve().parents[2] / "tasks" / "billing.py"


def test_writing_a_process_is_the_registered_billing_example() -> None:
    assert readme_block("## Writing a process", "python") in BILLING.read_text()
