"""Where a run's alerts go, and what an alert is: pure, no I/O.

:class:`AlertTargets` (a webhook URL, an email address) is read from loose input (CLI text,
API JSON, ``@process`` values, the environment) by :func:`read_targets`, each refusal naming
its field; a request's own targets win over its process's, field by field, and those over
the installation's (``BGPROC_ALERT_WEBHOOK``, ``BGPROC_ALERT_EMAIL``). The payload is one
JSON document, signed with HMAC-SHA256 over its exact bytes (:func:`signature`), and a failed
send is tried again after an exponential backoff (:func:`backoff_s`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bgproc.errors import InvalidInput

ALERT_KEYS = ("alert_webhook", "alert_email")
SIGNATURE_HEADER = "X-Bgproc-Signature"
BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 3600.0
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;.]+$")
_NONE = frozenset({"none", ""})


@dataclass(frozen=True)
class AlertTargets:
    """A webhook URL and an email address; None: not set here (a default applies); ``""``:
    set to none (no alert there, whatever the default)."""

    webhook: str | None = None
    email: str | None = None

    def over(self, default: AlertTargets | None) -> AlertTargets:
        """These targets, each field not set here taken from ``default``."""
        if default is None:
            return self
        return AlertTargets(
            default.webhook if self.webhook is None else self.webhook,
            default.email if self.email is None else self.email,
        )

    @property
    def channels(self) -> dict[str, str]:
        """The channels in force: ``{"webhook": url, "email": address}``, those set only."""
        found = {"webhook": self.webhook, "email": self.email}
        return {channel: where for channel, where in found.items() if where}

    def as_dict(self) -> dict[str, Any]:
        """The stored document (a request's ``alerts`` column, and its JSON)."""
        return {"webhook": self.webhook, "email": self.email}

    @classmethod
    def from_dict(cls, document: Mapping[str, Any] | None) -> AlertTargets:
        document = document or {}
        return cls(document.get("webhook"), document.get("email"))

    def describe(self) -> str:
        """``webhook https://…; email ops@example.com`` (``none`` when neither)."""
        return "; ".join(f"{channel} {where}" for channel, where in self.channels.items()) or "none"


def check_webhook(value: object, field: str = "alert-webhook") -> str:
    """An http(s) URL with a host (``""`` for none)."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"{value!r} is not a URL (use http://… or https://…, or none)")
    text = value.strip()
    if text.lower() in _NONE:
        return ""
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(field, f"{text!r} is not an http:// or https:// URL with a host")
    if any(ch.isspace() for ch in text):
        raise InvalidInput(field, f"{text!r} holds a space")
    return text


def check_email(value: object, field: str = "alert-email") -> str:
    """One address, ``name@host.tld`` (``""`` for none)."""
    if not isinstance(value, str):
        raise InvalidInput(field, f"{value!r} is not an email address (use e.g. ops@example.com)")
    text = value.strip()
    if text.lower() in _NONE:
        return ""
    if not _EMAIL.match(text) or len(text) > 254:
        raise InvalidInput(field, f"{text!r} is not an email address (use e.g. ops@example.com)")
    return text


def read_targets(fields: Mapping[str, object]) -> AlertTargets | None:
    """The targets given by ``fields`` (keys :data:`ALERT_KEYS`; None values are not given),
    None when none is; each refusal names its field."""
    webhook, email = fields.get("alert_webhook"), fields.get("alert_email")
    if webhook is None and email is None:
        return None
    return AlertTargets(
        None if webhook is None else check_webhook(webhook),
        None if email is None else check_email(email),
    )


def payload(event: str, run: Mapping[str, Any]) -> dict[str, Any]:
    """The alert's JSON document: what happened, to which run, and its error, if any."""
    return {
        "event": event,
        "run_id": run.get("id"),
        "request_id": run.get("request_id"),
        "process": run.get("process"),
        "status": run.get("status"),
        "error": run.get("error"),
        "scheduled_at": run.get("scheduled_at"),
        "ended_at": run.get("ended_at"),
        "worker": run.get("worker"),
        "attempt": run.get("attempt"),
        "test": bool(run.get("test", False)),
    }


def body_of(document: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact, keys sorted."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the body with the shared secret (GitHub's form)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff_s(tries: int) -> float:
    """How long after its ``tries``-th failed try an alert is tried again: 5 s, doubled
    each time, at most an hour."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, tries - 1))
