"""Calendars over the real CLI, SQL and Redis: attached, shown, edited (re-planning the
requests that follow them at once) and deleted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.integration.cli_harness import StoreCli, isolated

ZONE = ZoneInfo("Europe/Madrid")  # the harness's BGPROC_TIMEZONE


@pytest.fixture
def cli(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[StoreCli]:
    yield from isolated(StoreCli, db_url, monkeypatch, capsys)


def entry_schedule(cli: StoreCli, request_id: str) -> dict:
    definition = cli.redis.hget(f"{cli.prefix}redbeat:request:{request_id}", "definition")
    return json.loads(definition)["schedule"]


def test_a_calendar_with_todays_date_skips_todays_fire_until_it_is_edited(cli: StoreCli) -> None:
    # Given a daily request a minute before its fire time, with today excluded
    soon = datetime.now(ZONE) + timedelta(minutes=2)
    today = soon.date().isoformat()
    cli.ok("calendar", "create", "today", "--date", today)
    daily = ["--timing", "scheduled", "--frequency", "daily", "--at", soon.strftime("%H:%M")]
    number = cli.ok("request", "create", "sample.echo", *daily, "--calendar", "today").out.strip()
    # Then show --next, preview and the entry all skip today's fire
    shown = cli.ok("request", "show", number, "--next", "2", "--json").json()
    assert shown["calendars"] == ["today"] and shown["on_excluded"] == "skip"
    assert not shown["next_runs"][0].startswith(today)
    assert "fires excluded by today are skipped" in shown["description"]
    previewed = cli.ok("preview", *daily, "--calendar", "today", "--count", "1", "--json").json()
    assert previewed["next_runs"] == shown["next_runs"][:1]
    assert [c["name"] for c in entry_schedule(cli, number)["calendars"]] == ["today"]
    assert cli.ok("calendar", "show", "today", "--json").json()["requests"] == [int(number)]
    # When the calendar is edited to exclude another day, the entry is re-planned at once
    cli.ok("calendar", "update", "today", "--date", "2099-01-01")
    again = cli.ok("request", "show", number, "--next", "1", "--json").json()
    assert again["next_runs"][0].startswith(today)
    assert entry_schedule(cli, number)["calendars"][0]["dates"] == ["2099-01-01"]
    # And a calendar followed by a request cannot be deleted, until the request drops it
    refused = cli("calendar", "delete", "today")
    assert refused.code == 4 and f"request(s) {number}" in refused.err
    cli.ok("request", "update", number, "--no-calendar")
    assert entry_schedule(cli, number)["calendars"] == []
    assert cli.ok("calendar", "delete", "today").out.strip() == "calendar today: deleted"


def test_next_business_day_moves_a_saturday_fire_in_show_and_the_table_says_the_policy(
    cli: StoreCli,
) -> None:
    weekly = ["--timing", "scheduled", "--frequency", "weekly", "--days", "sat", "--at", "10:00",
              "--start", "2030-01-01T00:00"]  # fmt: skip
    number = cli.ok("request", "create", "sample.echo", *weekly, "--on-excluded",
                    "next-business-day", "--no-schedule").out.strip()  # fmt: skip
    shown = cli.ok("request", "show", number, "--next", "1", "--json").json()
    fire = datetime.fromisoformat(shown["next_runs"][0])
    assert (fire.weekday(), fire.hour) == (0, 10)  # Monday, at the Saturday's time
    table = cli.ok("request", "show", number).out
    assert "next-business-day" in table
    listed = cli.ok("calendar", "list", "--json").json()
    assert listed == []
