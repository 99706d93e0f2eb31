"""The request commands end to end: real Redis, real SQLite/PostgreSQL, the real CLI entry."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bgproc.store.db import make_engine
from bgproc.store.models import ProcessRequest
from tests.integration.cli_harness import StoreCli, isolated
from tests.waiting import wait_until

ONE_SECOND = timedelta(seconds=1)


@dataclass
class Cli(StoreCli):
    """The harness, with this test's own database and Redis prefix to inspect."""

    def request_rows(self) -> int:
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as connection:
                return connection.scalar(select(func.count()).select_from(ProcessRequest)) or 0
        finally:
            engine.dispose()


@pytest.fixture
def cli(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    yield from isolated(Cli, db_url, monkeypatch, capsys)


def test_create_show_list_and_the_lifecycle(cli: Cli) -> None:
    created = cli.ok(
        "request",
        "create",
        "sample.echo",
        "--timing",
        "scheduled",
        "--frequency",
        "cron",
        "--cron",
        "0 15 10 ? * 6#3",
        "--param",
        "who=ana",
    )
    request_id = created.out.strip()
    assert request_id.isdigit()
    shown = cli.ok("request", "show", request_id, "--next", "3", "--json").json()
    assert shown["status"] == "scheduled"
    assert "third Friday" in shown["description"]
    fires = [datetime.fromisoformat(f) for f in shown["next_runs"]]
    assert len(fires) == 3 and all(f.weekday() == 4 and 15 <= f.day <= 21 for f in fires)
    assert all((f.hour, f.minute) == (10, 15) for f in fires)
    assert any(k.endswith(f"request:{request_id}") for k in cli.redis_keys())

    listed = cli.ok("request", "list", "--json").json()
    assert [r["id"] for r in listed] == [int(request_id)]

    assert cli("request", "delete", request_id).code == 4  # scheduled: refused
    cli.ok("request", "unschedule", request_id)
    assert not any(k.endswith(f"request:{request_id}") for k in cli.redis_keys())
    cli.ok("request", "reschedule", request_id)
    assert any(k.endswith(f"request:{request_id}") for k in cli.redis_keys())
    cli.ok("request", "unschedule", request_id)
    cli.ok("request", "delete", request_id)
    assert cli.request_rows() == 0


def test_no_schedule_then_schedule(cli: Cli) -> None:
    request_id = cli.ok(
        "request",
        "create",
        "sample.sleep",
        "--timing",
        "scheduled",
        "--frequency",
        "daily",
        "--at",
        "02:30",
        "--no-schedule",
    ).out.strip()
    assert cli.redis_keys() == []
    assert cli.ok("request", "show", request_id, "--json").json()["status"] == "unscheduled"
    cli.ok("request", "schedule", request_id)
    assert cli("request", "schedule", request_id).code == 4  # already scheduled
    shown = cli.ok("request", "show", request_id, "--json", "--next", "2").json()
    assert [f[11:16] for f in shown["next_runs"]] in (["02:30", "02:30"], ["03:00", "02:30"])


def test_show_next_lists_only_the_fires_to_come(cli: Cli) -> None:
    # Given a plan every 5 s, created with no beat running to fire it
    created = cli.ok(
        "request", "create", "sample.echo", "--timing", "scheduled", "--frequency", "seconds",
        "--interval", "5", "--json",
    ).json()  # fmt: skip
    first = datetime.fromisoformat(created["next_runs"][0])
    # When its first fire has passed, unfired
    wait_until(lambda: datetime.now(UTC) >= first + ONE_SECOND, 5, 0.05, "the first fire to pass")
    asked = datetime.now(UTC).replace(microsecond=0)
    shown = cli.ok("request", "show", str(created["id"]), "--next", "3", "--json").json()
    # Then only fires from now on are listed, on the plan's grid
    fires = [datetime.fromisoformat(f) for f in shown["next_runs"]]
    assert len(fires) == 3 and fires[0] >= asked, (asked, fires)
    assert [b - a for a, b in itertools.pairwise(fires)] == [5 * ONE_SECOND] * 2
    assert (fires[0] - first) % (5 * ONE_SECOND) == timedelta(0)


def test_update_reschedules_in_one_step(cli: Cli) -> None:
    request_id = cli.ok(
        "request",
        "create",
        "sample.echo",
        "--timing",
        "scheduled",
        "--frequency",
        "minutes",
        "--interval",
        "10",
    ).out.strip()
    updated = cli.ok(
        "request",
        "update",
        request_id,
        "--frequency",
        "monthly",
        "--day",
        "last",
        "--at",
        "23:00",
        "--json",
    ).json()
    assert updated["timing"]["frequency"] == "monthly"
    shown = cli.ok("request", "show", request_id, "--json", "--next", "2").json()
    assert all(f[11:16] == "23:00" for f in shown["next_runs"])
    cli.ok("request", "update", request_id, "--name", "month end")
    assert cli.ok("request", "show", request_id, "--json").json()["name"] == "month end"


def test_secret_params_are_masked(cli: Cli) -> None:
    cli.ok("request", "create", "sample.echo", "--no-schedule", "--param", "x=1")
    listed = cli.ok("request", "list", "--json").json()
    assert listed[0]["params"] == {"x": "1"}


BAD_CREATES = [
    (["sample.nope"], "process"),
    (["sample.sleep", "--param", "seconds=abc"], "param seconds"),
    (["sample.sleep", "--param", "minutes=3"], "param minutes"),
    (["sample.sleep", "--param", "noequals"], "param"),
    (["sample.echo", "--timing", "sometimes"], "timing"),
    (["sample.echo", "--timing", "scheduled"], "frequency"),
    (["sample.echo", "--timing", "scheduled", "--frequency", "fortnightly"], "frequency"),
    (
        ["sample.echo", "--timing", "scheduled", "--frequency", "seconds", "--interval", "0"],
        "interval",
    ),
    (["sample.echo", "--timing", "scheduled", "--frequency", "cron", "--cron", "* * *"], "cron"),
    (
        [
            "sample.echo",
            "--timing",
            "scheduled",
            "--frequency",
            "cron",
            "--cron",
            "0 0 12 ? * MON#6",
        ],
        "cron",
    ),
    (
        [
            "sample.echo",
            "--timing",
            "scheduled",
            "--frequency",
            "seconds",
            "--start",
            "2027-02-01",
            "--finish",
            "2027-01-01",
        ],
        "finish",
    ),
    (["sample.echo", "--timing", "later", "--start", "2001-01-01T00:00"], "start"),
    (["sample.echo", "--timing", "later", "--start", "tomorrow"], "start"),
    (["sample.echo", "--tz", "Mars/Base"], "tz"),
    (
        [
            "sample.echo",
            "--timing",
            "scheduled",
            "--frequency",
            "monthly",
            "--day",
            "0",
            "--at",
            "10:00",
        ],
        "day",
    ),
    (
        [
            "sample.echo",
            "--timing",
            "scheduled",
            "--frequency",
            "monthly",
            "--day",
            "32",
            "--at",
            "10:00",
        ],
        "day",
    ),
    (
        [
            "sample.echo",
            "--timing",
            "scheduled",
            "--frequency",
            "weekly",
            "--days",
            "someday",
            "--at",
            "10:00",
        ],
        "days",
    ),
    (["sample.echo", "--misfire", "later"], "misfire"),
    (["sample.echo", "--name", "x" * 500], "name"),
]


@pytest.mark.parametrize(("args", "field"), BAD_CREATES)
def test_bad_input_is_one_line_and_writes_nothing(cli: Cli, args: list[str], field: str) -> None:
    result = cli("request", "create", *args)
    assert result.code == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {field}"), result.err
    assert "Traceback" not in result.err
    assert cli.request_rows() == 0
    assert cli.redis_keys() == []


SAID = [
    (
        ["sample.echo", "--timing", "scheduled", "--frequency", "seconds",
         "--interval", "99999999999999999999"],
        "interval: must be between 1 and 100000 (got 99999999999999999999)",
    ),
    (["sample.sleep", "--param", "seconds=abc"], "param seconds: 'abc' is not a number"),
    (["sample.spam", "--param", "lines=many"], "param lines: 'many' is not a whole number"),
    (["extra.invoice"], "param: missing customer, amount (required by extra.invoice)"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "said"), SAID)
@pytest.mark.parametrize("backend", ["sqlite"])  # input errors: no need to repeat them on PG
def test_a_refusal_says_what_is_wrong(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, args: list[str], said: str
) -> None:
    monkeypatch.setenv("BGPROC_IMPORTS", "tests.integration.extra_processes")
    result = cli("request", "create", *args)
    assert (result.code, result.err) == (2, f"Error: {said}\n")
    assert cli.request_rows() == 0 and cli.redis_keys() == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_finish_without_a_start_is_compared_with_now(cli: Cli) -> None:
    result = cli("request", "create", "sample.echo", "--timing", "scheduled",
                 "--frequency", "hourly", "--finish", "2020-01-01T00:00")  # fmt: skip
    assert result.code == 2
    now = r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?\+0[12]:00"  # in BGPROC_TIMEZONE, Madrid
    said = rf"Error: finish: 2020-01-01T00:00\+01:00 is before the start \(now, {now}\)\n"
    assert re.fullmatch(said, result.err), result.err


@pytest.mark.parametrize(
    "args",
    [
        ["request", "show", "999"],
        ["request", "update", "999", "--name", "x"],
        ["request", "delete", "999"],
        ["request", "schedule", "999"],
        ["request", "unschedule", "999"],
        ["request", "reschedule", "999"],
    ],
)
def test_unknown_ids(cli: Cli, args: list[str]) -> None:
    result = cli(*args)
    assert result.code == 3
    assert result.err.strip().splitlines() == [f"Error: request {args[2]} not found"]


@pytest.mark.parametrize("value", ["abc", "٣", "99999999999999999999999", "0"])
@pytest.mark.parametrize("command", ["show", "delete", "unschedule"])
def test_an_id_that_is_no_id_is_one_line(cli: Cli, command: str, value: str) -> None:
    result = cli("request", command, value)
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert result.err.startswith("Error: request id: ")


def test_redis_down_means_nothing_written(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGPROC_BROKER_URL", "redis://:hunter2@127.0.0.1:1/0")
    result = cli("request", "create", "sample.echo", "--timing", "immediate")
    assert result.code == 5
    assert result.err.startswith("Error: redis") and "hunter2" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert cli.request_rows() == 0


@pytest.mark.parametrize("name", ["BGPROC_BROKER_URL", "BGPROC_REDBEAT_URL"])
def test_a_redis_url_that_is_none_is_refused_naming_it(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "http://:hunter2@127.0.0.1:6379/0")
    result = cli("request", "create", "sample.echo", "--timing", "immediate")
    assert result.code == 2 and "hunter2" not in result.err
    assert result.err.strip().splitlines() == [
        f"Error: {name}: not a Redis URL; expected redis://HOST:PORT/DB, "
        "rediss://HOST:PORT/DB or unix://PATH"
    ]


def test_an_unreachable_redbeat_redis_is_named(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGPROC_REDBEAT_URL", "redis://:hunter2@127.0.0.1:1/0")
    result = cli("request", "create", "sample.echo", "--timing", "immediate")
    assert result.code == 5 and "hunter2" not in result.err
    assert "redis://:***@127.0.0.1:1/0: " in result.err
    assert cli.request_rows() == 0


def test_database_down_is_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGPROC_DATABASE_URL", "postgresql+psycopg://u:hunter2@127.0.0.1:1/nothing")
    result = cli("request", "list")
    assert result.code == 5
    assert "hunter2" not in result.err and len(result.err.strip().splitlines()) == 1


def test_preview_json(cli: Cli) -> None:
    shown = cli.ok(
        "preview",
        "--timing",
        "scheduled",
        "--frequency",
        "daily",
        "--at",
        "02:30",
        "--tz",
        "Europe/Madrid",
        "--start",
        "2027-03-27",
        "--count",
        "3",
        "--json",
    ).json()
    assert shown["next_runs"] == [
        "2027-03-27T02:30:00+01:00",
        "2027-03-28T03:00:00+02:00",
        "2027-03-29T02:30:00+02:00",
    ]
    assert cli.redis_keys() == [] and cli.request_rows() == 0


def test_processes_lists_the_samples(cli: Cli) -> None:
    names = [p["name"] for p in cli.ok("processes", "--json").json()]
    assert {"sample.echo", "sample.sleep", "sample.fail", "sample.spam"} <= set(names)
    assert "sample.sleep" in cli.ok("processes").out


def test_bgproc_imports_registers_more_processes(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BGPROC_IMPORTS", "tests.integration.extra_processes")
    names = {p["name"]: p for p in cli.ok("processes", "--json").json()}
    assert names["extra.hello"]["queue"] == "extra" and "sample.echo" in names
    created = cli("request", "create", "extra.hello", "--no-schedule")
    assert created.code == 2 and created.err.startswith("Error: param name")


def test_a_missing_import_is_one_line(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGPROC_IMPORTS", "no_such_module_anywhere")
    result = cli("processes")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "Error: BGPROC_IMPORTS: cannot import no_such_module_anywhere: "
        "No module named 'no_such_module_anywhere'"
    ]


def test_db_upgrade_is_idempotent(cli: Cli) -> None:
    assert "up to date" in cli.ok("db", "upgrade").out
    assert "up to date" in cli.ok("db", "upgrade").out


def test_request_list_pages_by_id_and_tells_the_next_page(cli: Cli) -> None:
    for number in range(5):
        cli.ok("request", "create", "sample.echo", "--param", f"n={number}", "--no-schedule")
    first = cli.ok("request", "list", "--limit", "2", "--json")
    assert [r["id"] for r in first.json()] == [1, 2]
    assert first.err.strip() == "more: --after 2"
    second = cli.ok("request", "list", "--limit", "2", "--after", "2")
    assert "more: --after 4" in second.err and "sample.echo" in second.out
    last = cli.ok("request", "list", "--limit", "2", "--after", "4", "--json")
    assert [r["id"] for r in last.json()] == [5] and last.err == ""
    assert cli.ok("request", "list", "--json").json()[-1]["id"] == 5  # 100 to a page


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--limit", "0"], "Error: limit: must be between 1 and 1000 (got 0)"),
        (["--limit", "many"], "Error: limit: 'many' is not a whole number"),
        (["--after", "-1"], "Error: after: must be between 0 and 2147483647 (got -1)"),
    ],
)
def test_request_list_refuses_a_bad_page(cli: Cli, args: list[str], said: str) -> None:
    result = cli("request", "list", *args)
    assert (result.code, result.err.strip()) == (2, said)
