"""What an ad-hoc run's message carries: its run id and, unless a parameter is secret, the
ticket its worker starts it on without reading the database first."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bgproc.adhoc import message_headers
from bgproc.app import RUN_ID_HEADER, TICKET_HEADER
from bgproc.models import Channel, RunStatus
from bgproc.registry import ProcessContext, Registry, Secret, process
from bgproc.runs import Ticket


@pytest.fixture
def registry() -> Registry:
    registry = Registry()

    @process("report.daily", registry=registry)
    def daily(ctx: ProcessContext, day: str, pages: int = 1) -> None:
        return None

    @process("billing.charge", registry=registry)
    def charge(ctx: ProcessContext, token: Secret, amount: int = 0) -> None:
        return None

    return registry


def test_an_ad_hoc_run_carries_its_ticket_through_json(registry: Registry) -> None:
    # Given the headers of an ad-hoc run, as kombu sends them (JSON)
    params = {"day": "2031-03-30", "pages": 2, "note": "Müller — 東京"}
    headers = json.loads(json.dumps(message_headers(registry.get("report.daily"), 7, params)))
    # Then the worker reads back a queued first attempt of a direct run, with its parameters
    assert headers[RUN_ID_HEADER] == 7
    ticket = Ticket.of_ad_hoc(7, headers[TICKET_HEADER])
    assert ticket == Ticket(
        run_id=7, status=RunStatus.queued, attempt=1, process="report.daily", params=params,
        channel=Channel.direct, request_id=None, request_status=None,
        request_prevent_concurrent=False, request_group_id=None, group_run_id=None,
    )  # fmt: skip


def test_a_run_with_a_secret_parameter_carries_no_ticket(registry: Registry) -> None:
    headers = message_headers(registry.get("billing.charge"), 8, {"token": "s3cr3t", "amount": 5})
    assert headers == {RUN_ID_HEADER: 8}
    assert "s3cr3t" not in json.dumps(headers)


@pytest.mark.parametrize(
    "carried",
    [None, "report.daily", [], {"params": {}}, {"process": 1, "params": {}},
     {"process": "report.daily", "params": []}],
)  # fmt: skip
def test_a_missing_or_malformed_ticket_is_none(carried: Any) -> None:
    """The worker then reads the run from the database, as for a message of an older bgproc."""
    assert Ticket.of_ad_hoc(7, carried) is None
