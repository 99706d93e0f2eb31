"""What an ad-hoc run's message carries: its run id and, unless a parameter is secret, the
ticket its worker starts it on without reading the database first, signed with the
installation's key (which Redis never holds)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bgproc.registry import ProcessContext, Registry, Secret, process
from bgproc.services.adhoc import message_headers
from bgproc.settings import RUN_ID_HEADER, TICKET_HEADER
from bgproc.statuses import Channel, RunStatus
from bgproc.store.tickets import Ticket

KEY = "k" * 64


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
    headers = message_headers(registry.get("report.daily"), 7, params, KEY)
    headers = json.loads(json.dumps(headers))
    # Then the worker reads back a queued first attempt of a direct run, with its parameters
    assert headers[RUN_ID_HEADER] == 7
    ticket = Ticket.of_ad_hoc(7, headers[TICKET_HEADER], KEY)
    assert ticket == Ticket(
        run_id=7, status=RunStatus.queued, attempt=1, process="report.daily", params=params,
        channel=Channel.direct, request_id=None, request_status=None,
        request_prevent_concurrent=False, request_group_id=None, group_run_id=None,
    )  # fmt: skip


def test_a_run_with_a_secret_parameter_carries_no_ticket(registry: Registry) -> None:
    spec = registry.get("billing.charge")
    headers = message_headers(spec, 8, {"token": "s3cr3t", "amount": 5}, KEY)
    assert headers == {RUN_ID_HEADER: 8}
    assert "s3cr3t" not in json.dumps(headers)


@pytest.mark.parametrize(
    "carried",
    [None, "report.daily", [], {"params": {}}, {"process": 1, "params": {}},
     {"process": "report.daily", "params": []}],
)  # fmt: skip
def test_a_missing_or_malformed_ticket_is_none(carried: Any) -> None:
    """The worker then reads the run from the database, as for a message of an older bgproc."""
    assert Ticket.of_ad_hoc(7, carried, KEY) is None


@pytest.mark.parametrize(
    "forged",
    [
        {"params": {"day": "2031-03-30", "pages": 999}},  # other parameters
        {"process": "billing.charge"},  # another process
        {"sig": "0" * 64},
        {"sig": None},
    ],
    ids=["params", "process", "signature", "unsigned"],
)
def test_a_ticket_changed_or_signed_by_another_key_is_not_believed(
    registry: Registry, forged: dict[str, Any]
) -> None:
    """Someone who can write to Redis but not read the database cannot make a run of their
    own: the worker reads the run instead (and finds none, or the one really queued)."""
    params = {"day": "2031-03-30", "pages": 2}
    carried = message_headers(registry.get("report.daily"), 7, params, KEY)[TICKET_HEADER]
    assert Ticket.of_ad_hoc(7, carried, KEY) is not None
    assert Ticket.of_ad_hoc(8, carried, KEY) is None  # another run's ticket
    assert Ticket.of_ad_hoc(7, carried, "x" * 64) is None  # another installation's
    assert Ticket.of_ad_hoc(7, carried, None) is None  # an installation with no key
    assert Ticket.of_ad_hoc(7, {**carried, **forged}, KEY) is None


def test_an_installation_without_a_key_sends_no_ticket(registry: Registry) -> None:
    assert message_headers(registry.get("report.daily"), 7, {"day": "x"}, None) == {
        RUN_ID_HEADER: 7
    }
