"""Sending one alert: to a webhook (a signed JSON POST) and by email (SMTP, stdlib).

Both give up after the installation's timeout and raise on any failure, so the caller (the
notifier, ``bgproc alert test``) decides whether to try again. Targets are resolved here:
the request's own, over its process's ``@process(alert_…)`` defaults, over the
installation's (``BGPROC_ALERT_*``).
"""

from __future__ import annotations

import smtplib
import urllib.request
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Engine

from bgproc.errors import InvalidInput
from bgproc.registry import Registry
from bgproc.settings import Settings, Smtp
from bgproc.store.alerts import request_targets
from bgproc.timing.alerts import (
    SIGNATURE_HEADER,
    AlertTargets,
    body_of,
    payload,
    read_targets,
    signature,
)

EVENT_HEADER = "X-Bgproc-Event"
DELIVERY_HEADER = "X-Bgproc-Delivery"  # the outbox row's id: a redelivery repeats it


class AlertNotSent(Exception):
    """A channel refused or did not answer; the message says which and why."""


def targets_for(settings: Settings, registry: Registry, process: str | None,
                own: Mapping[str, Any] | None) -> AlertTargets:  # fmt: skip
    """Where an alert of a run of ``process`` goes: request, process, installation."""
    default = registry.alert_targets_of(process) if process else None
    return AlertTargets.from_dict(own).over(default).over(settings.alert_targets)


def send_webhook(url: str, document: Mapping[str, Any], secret: str, timeout_s: float,
                 delivery: str) -> None:  # fmt: skip
    """POST the document as JSON, signed when there is a secret; a non-2xx answer fails."""
    body = body_of(document)
    headers = {"Content-Type": "application/json", "User-Agent": "bgproc-alerts",
               EVENT_HEADER: str(document.get("event")), DELIVERY_HEADER: delivery}  # fmt: skip
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    call = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(call, timeout=timeout_s) as answer:
            status = answer.status
    except Exception as error:  # an HTTPError, a refused connection, a timeout alike
        raise AlertNotSent(f"webhook {url}: {type(error).__name__}: {error}") from error
    if not 200 <= status < 300:
        raise AlertNotSent(f"webhook {url}: answered {status}")


def send_email(smtp: Smtp, to: str, document: Mapping[str, Any], timeout_s: float) -> None:
    """Mail the alert through the installation's SMTP server (STARTTLS and login if set)."""
    if not smtp.host:
        raise AlertNotSent(f"email {to}: no SMTP server (set BGPROC_SMTP_HOST)")
    message = EmailMessage()
    message["From"], message["To"] = smtp.sender, to
    message["Subject"] = (f"[bgproc] run {document.get('run_id')} {document.get('event')}: "
                          f"{document.get('process')}")  # fmt: skip
    message.set_content("\n".join(f"{key}: {value}" for key, value in document.items()
                                  if value is not None) + "\n")  # fmt: skip
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout_s) as server:
            if smtp.starttls:
                server.starttls()
            if smtp.user:
                server.login(smtp.user, smtp.password)
            server.send_message(message)
    except Exception as error:
        raise AlertNotSent(f"email {to}: {type(error).__name__}: {error}") from error


def send(settings: Settings, targets: AlertTargets, document: Mapping[str, Any], delivery: str,
         skip: frozenset[str] = frozenset()) -> tuple[set[str], list[str]]:  # fmt: skip
    """Send to every channel of ``targets`` but those in ``skip``: the channels that took it,
    and what failed (one line each)."""
    done, failed = set(), []
    for channel, where in targets.channels.items():
        if channel in skip:
            continue
        try:
            if channel == "webhook":
                send_webhook(where, document, settings.alert_secret, settings.alert_timeout_s,
                             delivery)  # fmt: skip
            else:
                send_email(settings.smtp, where, document, settings.alert_timeout_s)
        except AlertNotSent as error:
            failed.append(str(error))
        else:
            done.add(channel)
    return done, failed


def send_test(settings: Settings, registry: Registry, engine: Engine, *,
              request_id: int | None = None, webhook: str | None = None,
              email: str | None = None) -> tuple[AlertTargets, set[str], list[str]]:  # fmt: skip
    """``bgproc alert test``: one alert now, to ``webhook``/``email`` if given, else to where a
    request's alerts go (its own targets, its process's, the installation's), else to the
    installation's; the targets, the channels that took it and what failed."""
    process, own = request_targets(engine, request_id) if request_id else (None, None)
    given = read_targets({"alert_webhook": webhook, "alert_email": email})
    targets = given if given is not None else targets_for(settings, registry, process, own)
    if not targets.channels:
        raise InvalidInput("alert", "no target: give --webhook or --email, or set "
                           "BGPROC_ALERT_WEBHOOK / BGPROC_ALERT_EMAIL")  # fmt: skip
    document = payload("test", {"request_id": request_id, "process": process, "test": True})
    done, failed = send(settings, targets, document, delivery="test")
    return targets, done, failed
