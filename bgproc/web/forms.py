"""The request form: what it shows for a request, and the service's fields from what it posts.

Its inputs are named like the API's fields (``daily_option``); an error's field, spelt
as on the command line (``daily-option``, ``param seconds``), finds its input through
:func:`input_of`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bgproc.statuses import GROUP_LABEL_PREFIX
from bgproc.timing.fields import TIMING_KEYS
from bgproc.timing.inputs import parse_params as parse_pairs

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TEXT_FIELDS = (*(key for key in TIMING_KEYS if key != "days"), "name", "misfire",
               "catch_up_max", "retries", "retry_backoff", "retry_max", "start_deadline",
               "max_runtime")  # fmt: skip
SECRET_SHOWN = "***"


def input_of(field: str | None) -> str:
    """The form input an error's field names (``param x`` → the parameters box)."""
    name = (field or "").split(":", 1)[0].strip()
    if name.startswith("param"):
        return "params"
    if name in ("process", "group"):
        return "target"
    return name.replace("-", "_")


def parse_params(text: str) -> dict[str, str]:
    """One ``KEY=VALUE`` a line (as ``--param``); blank lines are skipped."""
    return parse_pairs(line.strip() for line in text.splitlines() if line.strip())


def params_text(params: Mapping[str, Any]) -> str:
    return "\n".join(f"{key}={value}" for key, value in params.items())


def fields_of_form(form: Mapping[str, Any], days: list[str]) -> dict[str, Any]:
    """The service's fields from a posted form (empty inputs left out)."""
    fields: dict[str, Any] = {
        key: str(form[key]).strip() for key in TEXT_FIELDS if str(form.get(key, "")).strip()
    }
    target = str(form.get("target", "")).strip()
    if target.startswith(GROUP_LABEL_PREFIX):
        fields["group"] = target.removeprefix(GROUP_LABEL_PREFIX)
    elif target:
        fields["process"] = target
    if days:
        fields["days"] = ",".join(days)
    fields["prevent_concurrent"] = form.get("prevent_concurrent") == "on"
    fields["replace_running"] = form.get("replace_running") == "on"
    if "max_runtime" in fields or form.get("kill_overdue") == "on":  # as retry_jitter's box
        fields["kill_overdue"] = form.get("kill_overdue") == "on"
    if "retries" in fields:  # the box says nothing without a policy to go with
        fields["retry_jitter"] = form.get("retry_jitter") == "on"
    params = parse_params(str(form.get("params", "")))
    if params or "group" not in fields:
        fields["params"] = params
    return fields


def keep_secrets(params: dict[str, Any], stored: Mapping[str, Any], secret: set[str]) -> None:
    """An edited secret left as ``***`` keeps its stored value (it is never shown)."""
    for name in secret:
        if params.get(name) == SECRET_SHOWN and name in stored:
            params[name] = stored[name]


def form_of_request(document: Mapping[str, Any]) -> dict[str, Any]:
    """The form's values for a request (its ``request show --json`` document)."""
    timing = document["timing"]
    zone = ZoneInfo(str(timing.get("tz") or "UTC"))

    def local(text: str | None) -> str:
        if not text:
            return ""
        return datetime.fromisoformat(text).astimezone(zone).replace(tzinfo=None).isoformat()

    values = {key: str(timing[key]) for key in TEXT_FIELDS if timing.get(key) is not None}
    retry = document.get("retry")
    if retry is not None and retry["from"] == "request":  # the process's default is no edit
        values.update(retries=str(retry["retries"]), retry_backoff=f"{retry['backoff_s']}s",
                      retry_max=f"{retry['max_s']}s" if retry["max_s"] else "",
                      retry_jitter="on" if retry["jitter"] else "")  # fmt: skip
    own = (document.get("deadlines") or {}).get("own") or {}  # the process's default is no edit
    for key in ("start_deadline", "max_runtime"):
        if own.get(f"{key}_s") is not None:
            values[key] = f"{own[f'{key}_s']}s" if own[f"{key}_s"] else "none"
    if own.get("kill_overdue"):
        values["kill_overdue"] = "on"
    values.update(
        start=local(timing.get("start")),
        finish=local(timing.get("finish")),
        name=document.get("name") or "",
        misfire=document["misfire"],
        catch_up_max=str(document["catch_up_max"] or ""),
        prevent_concurrent="on" if document["prevent_concurrent"] else "",
        replace_running="on" if document["replace_running"] else "",
        params=params_text(document["params"]),
        target=document["process"] or f"{GROUP_LABEL_PREFIX}{document['group']}",
    )
    return {"values": values, "days": list(timing.get("days") or [])}
