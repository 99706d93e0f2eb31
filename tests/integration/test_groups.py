"""Process groups end to end: the real CLI entry, real Redis, real SQLite and PostgreSQL.

Every refusal is checked the same way: one ``Error:`` line naming the field, the
exit code of its kind, and not one row or Redis key written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from bgproc.installation import Installation
from bgproc.settings import Settings
from bgproc.store.db import make_engine
from bgproc.store.models import ProcessGroup, ProcessGroupStep, ProcessRequest
from tests.integration.cli_harness import Run, StoreCli, isolated

DAILY = ["--timing", "scheduled", "--frequency", "daily", "--at", "03:00"]
NIGHTLY_STEPS = [
    "--step",
    "sample.echo who=ana 'msg=hello world'",
    "--step",
    "test.secret token=s3cret user=bob",
    "--step",
    "sample.sleep seconds=2",
]


@dataclass
class Cli(StoreCli):
    """The harness, with this test's own database and Redis prefix to inspect."""

    def rows(self) -> dict[str, int]:
        """How many groups, steps and requests the database holds."""
        engine = make_engine(self.db_url)
        try:
            with engine.connect() as connection:
                return {
                    table.__tablename__: connection.scalar(select(func.count()).select_from(table))
                    or 0
                    for table in (ProcessGroup, ProcessGroupStep, ProcessRequest)
                }
        finally:
            engine.dispose()

    def entry(self, request_id: str) -> dict[str, object] | None:
        """The definition of a request's RedBeat entry, or None."""
        definition = self.redis.hget(f"{self.prefix}redbeat:request:{request_id}", "definition")
        return None if definition is None else json.loads(definition)

    def refused(self, code: int, field: str, *args: str) -> Run:
        """Run a command that must fail with one ``Error: <field>…`` line and write nothing."""
        before = (self.rows(), self.redis_keys())
        result = self(*args)
        lines = result.err.strip().splitlines()
        assert result.code == code, result.err
        assert len(lines) == 1 and lines[0].startswith(f"Error: {field}"), result.err
        assert (self.rows(), self.redis_keys()) == before
        return result


@pytest.fixture
def cli(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Cli]:
    yield from isolated(Cli, db_url, monkeypatch, capsys, "tests.integration.secret_processes")


def nightly(cli: Cli, *extra: str) -> str:
    return cli.ok("group", "create", "nightly", *NIGHTLY_STEPS, *extra).out.strip()


# --- groups ----------------------------------------------------------------------------------


def test_create_list_show_update_delete(cli: Cli) -> None:
    # Given a group of three steps
    group_id = nightly(cli, "--stop-on-error", "--description", "Nightly chores")
    assert group_id.isdigit()

    # Then show (by name or id) has the steps in order with typed, masked parameters
    shown = cli.ok("group", "show", "nightly", "--json").json()
    assert cli.ok("group", "show", group_id, "--json").json() == shown
    assert shown["name"] == "nightly" and shown["description"] == "Nightly chores"
    assert (shown["stop_on_error"], shown["prevent_concurrent"]) == (True, False)
    assert shown["steps"] == [
        {"position": 1, "process": "sample.echo", "params": {"who": "ana", "msg": "hello world"}},
        {"position": 2, "process": "test.secret", "params": {"token": "***", "user": "bob"}},
        {"position": 3, "process": "sample.sleep", "params": {"seconds": 2.0}},
    ]
    assert shown["requests"] == []
    text = cli.ok("group", "show", "nightly").out
    assert "1. sample.echo who=ana 'msg=hello world'" in text and "stop on error" in text
    listed = cli.ok("group", "list", "--json").json()
    assert [g["name"] for g in listed] == ["nightly"]
    assert "sample.echo → test.secret → sample.sleep" in cli.ok("group", "list").out

    # When it is updated: --step replaces every step, flags flip, the name changes
    updated = cli.ok(
        "group",
        "update",
        "nightly",
        "--step",
        "sample.fail",
        "--continue-on-error",
        "--prevent-concurrent",
        "--name",
        "night",
        "--json",
    ).json()
    assert updated["steps"] == [{"position": 1, "process": "sample.fail", "params": {}}]
    assert (updated["name"], updated["stop_on_error"], updated["prevent_concurrent"]) == (
        "night",
        False,
        True,
    )
    assert updated["description"] == "Nightly chores"  # not given: kept
    assert cli.rows()["bgproc_group_step"] == 1

    # Then delete removes the group and its steps
    assert cli.ok("group", "delete", "night").out.strip() == "group night: deleted"
    assert cli.rows() == {"bgproc_group": 0, "bgproc_group_step": 0, "bgproc_request": 0}
    assert cli.ok("group", "list", "--json").json() == []


def test_an_empty_group_can_be_stored_but_not_scheduled(cli: Cli) -> None:
    cli.ok("group", "create", "empty")
    cli.refused(2, "group: empty has no steps", "request", "create", "--group", "empty")

    request_id = cli.ok("request", "create", "--group", "empty", "--no-schedule").out.strip()
    cli.refused(2, "group: empty has no steps", "request", "schedule", request_id)
    assert cli.ok("request", "show", request_id, "--json").json()["status"] == "unscheduled"

    cli.ok("group", "update", "empty", "--step", "sample.echo")
    cli.ok("request", "schedule", request_id)
    assert cli.entry(request_id) is not None


BAD_GROUPS = [
    (["x", "--step", "sample.nope"], "step 1: process: 'sample.nope' is not a registered"),
    (["x", "--step", "sample.echo", "--step", "sample.sleep seconds=abc"], "step 2: param seconds"),
    (["x", "--step", "sample.sleep minutes=3"], "step 1: param minutes: unknown parameter"),
    (["x", "--step", "test.secret user=bob"], "step 1: param token: required"),
    (["x", "--step", "sample.echo a=1 a=2"], "step 1: param a: given twice"),
    (["x", "--step", "sample.echo noequals"], "step 1: param: 'noequals' is not KEY=VALUE"),
    (["x", "--step", "sample.echo 'msg=unclosed"], "step 1: "),
    (["x", "--step", "  "], "step 1: process: is required"),
    ([""], "name: must not be empty"),
    (["   "], "name: must not be empty"),
    (["42"], "name: '42' would read as an id"),
    (["x" * 201], "name: longer than 200"),
    (["tab\there"], "name: must be printable"),
    (["x", "--description", "d" * 2001], "description: longer than 2000"),
    (["x", *["--step", "sample.echo"] * 101], "step: at most 100 steps"),
]


@pytest.mark.parametrize(("args", "error"), BAD_GROUPS)
def test_bad_groups_are_one_line_and_write_nothing(cli: Cli, args: list[str], error: str) -> None:
    cli.refused(2, error, "group", "create", *args)


def test_a_bad_update_changes_nothing(cli: Cli) -> None:
    nightly(cli)
    cli.ok("group", "create", "other")
    before = cli.ok("group", "show", "nightly", "--json").json()

    cli.refused(2, "step 2: process", "group", "update", "nightly", "--step", "sample.echo",
                "--step", "sample.nope", "--stop-on-error")  # fmt: skip
    cli.refused(2, "name: must not be empty", "group", "update", "nightly", "--name", " ")
    cli.refused(4, "name: a group named 'other' already exists",
                "group", "update", "nightly", "--name", "other")  # fmt: skip

    assert cli.ok("group", "show", "nightly", "--json").json() == before


def test_a_duplicate_name_is_a_conflict(cli: Cli) -> None:
    nightly(cli)
    cli.refused(4, "name: a group named 'nightly' already exists",
                "group", "create", "nightly", "--step", "sample.echo")  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ["show", "nope"],
        ["show", "999"],
        ["show", "9" * 5000],
        ["update", "nope"],
        ["delete", "999"],
    ],
)
def test_unknown_groups(cli: Cli, args: list[str]) -> None:
    result = cli("group", *args)
    assert result.code == 3
    [line] = result.err.strip().splitlines()
    expected = f"Error: group {args[1]} not found"
    assert line == expected or (line.endswith("…") and expected.startswith(line[:-1]))


def test_a_group_in_use_cannot_be_deleted(cli: Cli) -> None:
    nightly(cli)
    scheduled = cli.ok("request", "create", "--group", "nightly", *DAILY).out.strip()
    waiting = cli.ok("request", "create", "--group", "nightly", "--no-schedule").out.strip()
    assert cli.ok("group", "show", "nightly", "--json").json()["requests"] == [
        int(scheduled),
        int(waiting),
    ]

    refused = cli.refused(4, "group nightly is used by request(s)", "group", "delete", "nightly")
    assert f"{scheduled}, {waiting} (1 of them scheduled)" in refused.err

    cli.ok("request", "unschedule", scheduled)
    cli.ok("request", "delete", scheduled)
    refused = cli.refused(4, "group nightly is used by request(s)", "group", "delete", "nightly")
    assert f"request(s) {waiting} (none of them scheduled)" in refused.err

    cli.ok("request", "update", waiting, "--process", "sample.echo")
    cli.ok("group", "delete", "nightly")
    assert cli.rows()["bgproc_group"] == 0


def test_secret_step_params_are_masked_everywhere_but_reach_the_runtime(cli: Cli) -> None:
    nightly(cli)
    outputs = [
        cli.ok("group", "create", "again", *NIGHTLY_STEPS, "--json").out,
        cli.ok("group", "show", "nightly").out,
        cli.ok("group", "show", "nightly", "--json").out,
        cli.ok("group", "list", "--json").out,
        cli.ok("group", "update", "nightly", "--description", "d").out,
        cli.ok("group", "update", "nightly", "--description", "d", "--json").out,
    ]
    assert all("***" in out and "s3cret" not in out for out in outputs)

    installation = Installation(Settings.from_env())
    try:
        steps = installation.groups.get("nightly", reveal=True).steps
    finally:
        installation.engine.dispose()
    assert [(s.position, s.process) for s in steps] == [
        (1, "sample.echo"),
        (2, "test.secret"),
        (3, "sample.sleep"),
    ]
    assert steps[1].params == {"token": "s3cret", "user": "bob"}


# --- requests of a group -------------------------------------------------------------------


def test_a_scheduled_group_request_gets_an_entry_on_the_default_queue(cli: Cli) -> None:
    nightly(cli)
    request_id = cli.ok("request", "create", "--group", "nightly", *DAILY).out.strip()

    entry = cli.entry(request_id)
    assert entry is not None
    assert entry["options"]["queue"] == "celery"  # type: ignore[index]
    assert entry["options"]["headers"] == {"bgproc_request_id": int(request_id)}  # type: ignore[index]
    shown = cli.ok("request", "show", request_id, "--json", "--next", "2").json()
    assert (shown["process"], shown["group"], shown["params"]) == (None, "nightly", {})
    assert shown["status"] == "scheduled"
    assert [f[11:16] for f in shown["next_runs"]] == ["03:00", "03:00"]
    assert "group:nightly" in cli.ok("request", "list").out
    assert "group" in cli.ok("request", "show", request_id).out


@pytest.mark.parametrize(
    "timing",
    [
        ["--timing", "immediate"],
        ["--timing", "later", "--start", "+1h"],
        ["--timing", "scheduled", "--frequency", "seconds", "--interval", "30"],
        ["--timing", "scheduled", "--frequency", "weekly", "--days", "mon,fri", "--at", "08:00"],
        ["--timing", "scheduled", "--frequency", "monthly", "--day", "last", "--at", "23:00"],
        ["--timing", "scheduled", "--frequency", "cron", "--cron", "0 15 10 ? * 6#3"],
    ],
    ids=["immediate", "later", "seconds", "weekly", "monthly", "quartz"],
)
def test_a_group_takes_every_timing(cli: Cli, timing: list[str]) -> None:
    nightly(cli)
    request_id = cli.ok("request", "create", "--group", "nightly", *timing).out.strip()
    assert cli.entry(request_id) is not None


def test_request_list_filters_by_group(cli: Cli) -> None:
    nightly(cli)
    cli.ok("group", "create", "other", "--step", "sample.echo")
    ours = cli.ok("request", "create", "--group", "nightly", "--no-schedule").out.strip()
    cli.ok("request", "create", "--group", "other", "--no-schedule")
    cli.ok("request", "create", "sample.echo", "--no-schedule")

    listed = cli.ok("request", "list", "--process", "group:nightly", "--json").json()
    assert [(r["id"], r["group"]) for r in listed] == [(int(ours), "nightly")]


def test_a_request_switches_between_process_and_group(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "BGPROC_IMPORTS", "tests.integration.secret_processes,tests.integration.extra_processes"
    )
    nightly(cli)
    request_id = cli.ok("request", "create", "extra.hello", *DAILY, "--param", "name=x").out
    request_id = request_id.strip()
    assert cli.entry(request_id)["options"]["queue"] == "extra"  # type: ignore[index]

    to_group = cli.ok("request", "update", request_id, "--group", "nightly", "--json").json()
    assert (to_group["process"], to_group["group"], to_group["params"]) == (None, "nightly", {})
    assert cli.entry(request_id)["options"]["queue"] == "celery"  # type: ignore[index]

    cli.ok("group", "update", "nightly", "--name", "renamed")  # the request follows by id
    assert cli.ok("request", "show", request_id, "--json").json()["group"] == "renamed"

    to_process = cli.ok(
        "request", "update", request_id, "--process", "extra.hello", "--param", "name=y", "--json"
    ).json()
    assert (to_process["process"], to_process["group"]) == ("extra.hello", None)
    assert to_process["params"] == {"name": "y"}
    assert cli.entry(request_id)["options"]["queue"] == "extra"  # type: ignore[index]


BAD_GROUP_REQUESTS = [
    (["sample.echo", "--group", "nightly"], "group: give a process or --group, not both"),
    ([], "process: is required (or give --group NAME)"),
    (["--group", "nope"], "group: 'nope' is not a process group"),
    (["--group", "nightly", "--param", "a=1"], "param: a group request takes none"),
    (["--group", "nightly", "--timing", "scheduled"], "frequency"),
    (["--group", "nightly", "--timing", "later", "--start", "2001-01-01"], "start"),
]


@pytest.mark.parametrize(("args", "error"), BAD_GROUP_REQUESTS)
def test_bad_group_requests_are_one_line_and_write_nothing(
    cli: Cli, args: list[str], error: str
) -> None:
    nightly(cli)
    cli.refused(2, error, "request", "create", *args)


def test_a_bad_switch_changes_nothing(cli: Cli) -> None:
    nightly(cli)
    request_id = cli.ok("request", "create", "sample.echo", *DAILY, "--param", "a=1").out.strip()
    before = cli.ok("request", "show", request_id, "--json").json()
    entry = cli.entry(request_id)

    cli.refused(2, "group: 'nope'", "request", "update", request_id, "--group", "nope")
    cli.refused(2, "param", "request", "update", request_id, "--group", "nightly",
                "--param", "a=2")  # fmt: skip
    cli.refused(2, "group: give a process", "request", "update", request_id,
                "--group", "nightly", "--process", "sample.echo")  # fmt: skip

    assert cli.ok("request", "show", request_id, "--json").json() == before
    assert cli.entry(request_id) == entry
