"""Alerts, pure: targets read and refused naming their field, the payload, its signature
and the backoff of a failed send."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from bgproc.errors import InvalidInput
from bgproc.registry import Registry, process
from bgproc.settings import Settings
from bgproc.timing.alerts import (
    AlertTargets,
    backoff_s,
    body_of,
    payload,
    read_targets,
    signature,
)


def test_targets_are_read_checked_and_layered_field_by_field() -> None:
    own = read_targets({"alert_webhook": " https://hooks.example/x ", "alert_email": None})
    assert own == AlertTargets("https://hooks.example/x", None)
    process = AlertTargets(None, "ops@example.com")
    assert own.over(process).channels == {"webhook": "https://hooks.example/x",
                                          "email": "ops@example.com"}  # fmt: skip
    assert AlertTargets("", None).over(process).over(AlertTargets("http://x/", "")).channels == {
        "email": "ops@example.com"
    }  # none set on the request wins over any default
    assert read_targets({}) is None
    assert AlertTargets.from_dict(own.as_dict()) == own


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"alert_webhook": "ftp://x/y"}, "alert-webhook"),
        ({"alert_webhook": "https://"}, "alert-webhook"),
        ({"alert_webhook": 5}, "alert-webhook"),
        ({"alert_email": "no-at-sign"}, "alert-email"),
        ({"alert_email": "a@b"}, "alert-email"),
        ({"alert_email": "a b@c.de"}, "alert-email"),
    ],
)
def test_bad_targets_are_refused_in_one_line_naming_the_field(
    fields: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        read_targets(fields)
    assert refused.value.field == named and "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"BGPROC_ALERT_WEBHOOK": "mailto:x@y.z"}, "BGPROC_ALERT_WEBHOOK"),
        ({"BGPROC_ALERT_EMAIL": "nobody"}, "BGPROC_ALERT_EMAIL"),
        ({"BGPROC_ALERT_LEASE_S": "0"}, "BGPROC_ALERT_LEASE_S"),
        ({"BGPROC_SMTP_PORT": "70000"}, "BGPROC_SMTP_PORT"),
        ({"BGPROC_SMTP_STARTTLS": "maybe"}, "BGPROC_SMTP_STARTTLS"),
        ({"BGPROC_SMTP_FROM": "bgproc"}, "BGPROC_SMTP_FROM"),
    ],
)
def test_bad_alert_settings_are_refused_naming_the_variable(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        Settings.from_env(environ)
    assert refused.value.field == named


def test_the_payload_is_signed_over_its_exact_bytes() -> None:
    document = payload("error", {"id": 7, "request_id": 3, "process": "sample.fail",
                                 "status": "error", "error": "boom"})  # fmt: skip
    assert document["event"] == "error" and document["run_id"] == 7
    assert document["test"] is False
    body = body_of(document)
    assert json.loads(body) == document
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature("k", body) == f"sha256={expected}"
    assert signature("other", body) != signature("k", body)


def test_a_failed_send_backs_off_doubling_up_to_an_hour() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff_s(30) == 3600


def test_process_defaults_are_checked_at_registration() -> None:
    registry = Registry()
    process("t.hooked", alert_webhook="https://h.example/a", registry=registry)(lambda ctx: None)
    assert registry.alert_targets_of("t.hooked") == AlertTargets("https://h.example/a", None)
    with pytest.raises(ValueError, match="alert-email"):
        process("t.bad", alert_email="nobody", registry=registry)
