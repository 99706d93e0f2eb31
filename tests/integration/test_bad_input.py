"""Bad input over the real CLI and the request service (design §5 error contract).

Hypothesis draws commands with bad, hostile and nearly good values for every option
(timings, cron text, date-times, zones, params, ids, names, monitor filters) and runs
them in-process on a real SQLite file or PostgreSQL database and a real Redis. Each one
either succeeds (and whatever it wrote is wiped and the seed written again) or is
refused with exit 2 (bad input), 3 (unknown id) or 4 (a valid request the state forbids),
one ``Error: …`` line naming the field, no traceback, and not one row or Redis key changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, inspect, text

from bgproc.errors import Conflict, InvalidInput, NotFound
from bgproc.installation import Installation
from bgproc.services.requests import TIMING_KEYS
from bgproc.settings import Settings
from bgproc.store.db import make_engine
from bgproc.store.models import Base, InstallationKey
from bgproc.timing.deadlines import DEADLINE_KEYS
from bgproc.timing.inputs import field_label
from bgproc.timing.retry import RETRY_KEYS
from tests import bad_values as bad
from tests.integration.cli_harness import BROKER, Cli, delete_prefix, isolate

pytestmark = pytest.mark.faults

PG_SHARE = 5  # PostgreSQL runs a fifth of the examples: one connection per command is slow
CLICK_USAGE = ("No such option", "Invalid value for", "Got unexpected extra argument", "Missing")

Snapshot = tuple[dict[str, list[tuple[Any, ...]]], dict[str, bytes | None]]
Command = tuple[list[str], set[str]]


def _short(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) < 300 else shown[:300] + "…"


@dataclass
class World:
    """The test's own store and Redis prefix, the seed of the property tests, and how to
    compare states."""

    cli: Cli
    backend: str
    db_url: str
    prefix: str
    redis: redis.Redis
    engine: Engine
    tables: list[str] = field(default_factory=list)

    def seed(self) -> None:
        """Request 1 scheduled (a RedBeat entry), request 2 unscheduled, run 1 queued."""
        self.cli.ok(
            "request",
            "create",
            "sample.echo",
            "--timing",
            "scheduled",
            "--frequency",
            "minutes",
            "--interval",
            "5",
        )
        self.cli.ok(
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
        )
        self.cli.ok("run", "sample.echo", "--param", "who=ana")

    def snapshot(self) -> Snapshot:
        """Every row of every table, and every key under the prefix with its value."""
        with self.engine.connect() as connection:
            rows = {
                table: sorted(
                    (tuple(row) for row in connection.execute(text(f'SELECT * FROM "{table}"'))),
                    key=repr,
                )
                for table in self.tables
            }
        keys = sorted(self.redis.scan_iter(match=self.prefix + "*"))
        return rows, {key.decode(): self.redis.dump(key) for key in keys}

    def reset(self) -> None:
        """Back to the seed after a command that was valid and wrote something."""
        keys = list(self.redis.scan_iter(match=self.prefix + "*"))
        if keys:
            self.redis.delete(*keys)
        ours = [  # not alembic's, nor the key its migration made
            table.name
            for table in Base.metadata.sorted_tables
            if table is not InstallationKey.__table__
        ]
        with self.engine.begin() as connection:
            if self.backend == "postgresql":
                names = ", ".join(f'"{t}"' for t in ours)
                connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in reversed(ours):
                    connection.execute(text(f'DELETE FROM "{table}"'))
                connection.execute(text("DELETE FROM sqlite_sequence"))
        self.seed()

    def examples(self, count: int) -> settings:
        return bad.examples(count if self.backend == "sqlite" else max(count // PG_SHARE, 5))

    def attempt(self, command: Command, allowed: tuple[int, ...] = (2, 3)) -> None:
        """Run one command and check the error contract (see the module docstring)."""
        argv, fields = command
        before = self.snapshot()
        result = self.cli(*argv)
        after = self.snapshot()
        where = f"cli {self.backend}"
        assert "Traceback" not in result.err, _short((argv, result.err))
        if result.code == 0:
            bad.TALLY[f"{where} accepted"] += 1
            if after != before:
                self.reset()
            return
        bad.TALLY[f"{where} refused"] += 1
        assert result.code in allowed, _short((argv, result.code, result.err))
        lines = result.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), _short((argv, result.err))
        assert names_a_field(lines[0][len("Error: ") :], fields, argv), _short((argv, lines[0]))
        assert after == before, "partial write: " + _short((argv, result.err))


def names_a_field(message: str, fields: set[str], argv: list[str]) -> bool:
    """The message starts with a field the command was given (or needs), or is click's
    own usage error quoting an option, an argument or the token it could not place."""
    head = message.split(":", 1)[0]
    if head in fields or head.split(" ", 1)[0] in fields:
        return True
    if message.startswith(CLICK_USAGE):
        # a quote may be cut short with the message (main.MAX_ERROR_CHARS, then "…")
        quoted = re.findall(r"'([^']*)(?:'|…$)|\(([^)]*)(?:\)|…$)", message)
        named = {word for a, b in quoted for word in (a or b).split()}
        return any(q.lstrip("-") in fields or any(q in arg for arg in argv) for q in named)
    return False


@pytest.fixture
def world(
    db_url: str, backend: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[World]:
    prefix = isolate(monkeypatch, db_url)
    client = redis.Redis.from_url(BROKER)
    engine = make_engine(db_url)
    world = World(Cli(capsys), backend, db_url, prefix, client, engine)
    world.tables = sorted(inspect(engine).get_table_names())
    yield world
    delete_prefix(client, prefix)
    client.close()
    engine.dispose()


# -- commands ------------------------------------------------------------------------------

# Fields a refusal may name although the command did not give them: what a plan requires.
# (--retry-jitter is a flag: a refusal of it alone names it, "needs --retries N"; so is
# --kill-overdue: "needs --max-runtime D", or "process sample.echo is not killable")
REQUIRABLE = frozenset(
    {"frequency", "at", "start", "cron", "days", "month", "day", "ordinal", "weekday",
     "retry-jitter", "kill-overdue", "replace-running"}
)  # fmt: skip
REQUEST_OPTIONS = {
    "name": bad.names,
    "misfire": bad.misfire,
    "catch-up-max": bad.ints,
    "retries": bad.ints,
    "retry-backoff": bad.durations,
    "retry-max": bad.durations,
    "start-deadline": bad.durations,
    "max-runtime": bad.durations,
}
REQUEST_FLAGS = ("--no-schedule", "--prevent-concurrent", "--allow-concurrent", "--json",
                 "--retry-jitter", "--no-retry-jitter", "--kill-overdue",
                 "--no-kill-overdue", "--replace-running", "--no-replace-running")  # fmt: skip
request_ids = st.one_of(st.sampled_from(["1", "2"]), bad.ids)
since = st.one_of(bad.datetimes, bad.durations)
valid_processes = st.sampled_from(["sample.echo", "sample.sleep"])
params = st.one_of(st.just([]), bad.params)


@st.composite
def command(
    draw: st.DrawFn,
    head: list[str],
    positional: tuple[tuple[set[str], st.SearchStrategy[str]], ...] = (),
    options: dict[str, st.SearchStrategy[str]] | None = None,
    flags: tuple[str, ...] = (),
    timing: bool = False,
    with_params: bool = False,
) -> Command:
    """``head`` + drawn positionals + a drawn subset of ``options`` (+ timing options,
    ``--param``s) + flags; and the fields that a refusal of it may name."""
    argv, fields = list(head), set(REQUIRABLE if timing else ())
    for labels, strategy in positional:
        argv.append(draw(strategy))
        fields |= labels
    chosen = draw(st.fixed_dictionaries({}, optional=options or {}))
    if timing:
        chosen |= draw(bad.timing_options())
    for key, value in chosen.items():
        argv += [f"--{key}", value]
        fields.add(key)
    if with_params:
        for pair in draw(params):
            argv += ["--param", pair]
        fields.add("param")  # a process may require one
    argv += [flag for flag in flags if draw(st.booleans())]
    return argv, fields


PROCESS = ({"process", "PROCESS"}, bad.mostly(valid_processes, bad.process_names))
REQUEST_ID = ({"ID", "request"}, request_ids)
RUN_ID = ({"RUN_ID", "run", "run id"}, st.one_of(st.just("1"), bad.ids))

creates = command(["request", "create"], (PROCESS,), REQUEST_OPTIONS, REQUEST_FLAGS, True, True)
previews = command(["preview"], (), {"count": bad.ints}, ("--json",), timing=True)
updates = command(
    ["request", "update"],
    (REQUEST_ID,),
    {**REQUEST_OPTIONS, "process": bad.process_names},
    REQUEST_FLAGS[1:],
    True,
    True,
)
shows = command(["request", "show"], (REQUEST_ID,), {"next": bad.ints}, ("--json",))
lifecycle = st.sampled_from(["schedule", "unschedule", "reschedule", "delete"]).flatmap(
    lambda verb: command(["request", verb], (REQUEST_ID,))
)
request_lists = command(
    ["request", "list"],
    (),
    {"status": bad.request_statuses, "process": bad.process_names},
    ("--json",),
)
monitor_lists = command(
    ["monitor", "list"],
    (),
    {
        "process": bad.process_names,
        "status": bad.run_statuses,
        "request": request_ids,
        "since": since,
        "until": since,
        "limit": bad.ints,
        "before": bad.ids,
    },
    ("--json",),
)
monitor_by_id = st.sampled_from(["show", "log"]).flatmap(
    lambda verb: command(["monitor", verb], (RUN_ID,))
)
monitor_others = st.one_of(
    command(["monitor", "stats"], (), {"process": bad.process_names, "since": since}, ("--json",)),
    command(["monitor", "prune"], (), {"older-than": bad.durations}, ("--json",)),
)
runs = command(["run"], (PROCESS,), with_params=True)


def test_request_create_and_preview(world: World) -> None:
    world.seed()

    @world.examples(120)
    @given(st.one_of(creates, previews))
    def attempt(command: Command) -> None:
        world.attempt(command)

    attempt()


def test_request_update(world: World) -> None:
    world.seed()

    @world.examples(80)
    @given(updates)
    def attempt(command: Command) -> None:
        world.attempt(command)

    attempt()


def test_request_ids_and_listings(world: World) -> None:
    world.seed()

    @world.examples(80)
    @given(st.one_of(shows, lifecycle, request_lists))
    def attempt(command: Command) -> None:
        world.attempt(command, allowed=(2, 3, 4))  # 4: schedule a scheduled request, …

    attempt()


def test_monitor_and_run(world: World) -> None:
    world.seed()

    @world.examples(100)
    @given(st.one_of(monitor_lists, monitor_by_id, monitor_others, runs))
    def attempt(command: Command) -> None:
        world.attempt(command)

    attempt()


def _refused_writing_nothing(world: World, argv: list[str], message: str) -> None:
    """One ``Error:`` line that starts with ``message``, exit 2, SQL and Redis unchanged."""
    before = world.snapshot()
    result = world.cli(*argv)
    assert result.code == 2, _short(result)
    [line] = result.err.splitlines()
    assert line.startswith(f"Error: {message}"), _short((argv, result.err))
    assert world.snapshot() == before


# -- the retry options (issue 17), each refused naming it ---------------------------------

SCHEDULED = ["request", "create", "sample.echo", "--timing", "scheduled", "--frequency",
             "seconds", "--interval", "5"]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--retries", "x"], "retries: 'x' is not a whole number"),
        (["--retries", "-1"], "retries: must be between 0 and 100 (got -1)"),
        (["--retries", "101"], "retries: must be between 0 and 100 (got 101)"),
        (["--retries", "٣"], "retries: '٣' is not a whole number"),
        (["--retry-backoff", "30s"], "retry-backoff: needs --retries N"),
        (["--retries", "2", "--retry-backoff", "0s"], "retry-backoff: '0s' must be longer than 0"),
        (["--retries", "2", "--retry-backoff", "soon"], "retry-backoff: 'soon' is not a duration"),
        (["--retries", "2", "--retry-backoff", "8d"], "retry-backoff: '8d' must be longer"),
        (["--retry-max", "1h"], "retry-max: needs --retries N"),
        (["--retries", "2", "--retry-max", "1x"], "retry-max: '1x' is not a duration"),
        (["--retries", "2", "--retry-backoff", "1m", "--retry-max", "30s"],
         "retry-max: is shorter than --retry-backoff (60 s)"),
        (["--retry-jitter"], "retry-jitter: needs --retries N"),
    ],
)
def test_each_retry_option_is_refused_naming_it_and_nothing_is_written(
    world: World, options: list[str], message: str
) -> None:
    world.seed()
    for argv in (
        [*SCHEDULED, *options],  # would write a RedBeat entry too
        ["request", "update", "2", *options],
        ["request", "update", "1", *options],  # a scheduled one: rescheduled on success
    ):
        _refused_writing_nothing(world, argv, message)


# -- the deadline options (issue 17), each refused naming it --------------------------------

SLEEP = ["request", "create", "sample.sleep", "--timing", "scheduled", "--frequency",
         "seconds", "--interval", "5"]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--start-deadline", "soon"], "start-deadline: 'soon' is not a duration"),
        (["--start-deadline", "0s"], "start-deadline: '0s' must be longer than 0"),
        (["--start-deadline", "-5"], "start-deadline: '-5' is not a duration"),
        (["--start-deadline", "-5m"], "start-deadline: '-5m' must be longer than 0"),
        (["--start-deadline", "400d"], "start-deadline: '400d' must be longer than 0 and at"),
        (["--start-deadline", ""], "start-deadline: '' is not a duration"),
        (["--max-runtime", "1x"], "max-runtime: '1x' is not a duration"),
        (["--max-runtime", "0m"], "max-runtime: '0m' must be longer than 0"),
        (["--max-runtime", "99999999s"], "max-runtime: '99999999s' is not a duration"),
        (["--kill-overdue"], "kill-overdue: needs --max-runtime D"),
        (["--max-runtime", "none", "--kill-overdue"],
         "kill-overdue: needs a --max-runtime (it is none)"),
    ],
)
def test_each_deadline_option_is_refused_naming_it_and_nothing_is_written(
    world: World, options: list[str], message: str
) -> None:
    world.seed()
    for argv in (
        [*SLEEP, *options],  # would write a RedBeat entry too
        ["request", "update", "2", *options],  # sample.sleep, which is killable
        ["request", "update", "1", *options],  # a scheduled one: rescheduled on success
    ):
        _refused_writing_nothing(world, argv, message)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*SCHEDULED, "--max-runtime", "10m", "--kill-overdue"],
         "kill-overdue: process sample.echo is not killable (it cannot be stopped)"),
        (["request", "update", "1", "--max-runtime", "10m", "--kill-overdue"],
         "kill-overdue: process sample.echo is not killable (it cannot be stopped)"),
        (["request", "create", "--group", "g", "--max-runtime", "1m"],
         "max-runtime: a group run has none (give its processes one)"),
        (["request", "create", "--group", "g", "--kill-overdue"],
         "kill-overdue: a group run has none (give its processes one)"),
    ],
)  # fmt: skip
def test_a_deadline_that_cannot_work_is_refused_naming_it(
    world: World, argv: list[str], message: str
) -> None:
    world.seed()
    world.cli.ok("group", "create", "g", "--step", "sample.echo")
    before = world.snapshot()
    result = world.cli(*argv)
    assert result.code == 2, _short(result)
    assert result.err.splitlines() == [f"Error: {message}"], _short((argv, result.err))
    assert world.snapshot() == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--catch-up-max", "3"], "catch-up-max: is for --misfire catch-up only"),
        (["--misfire", "skip", "--catch-up-max", "3"], "catch-up-max: is for --misfire catch-up"),
        (["--misfire", "catch-up", "--catch-up-max", "0"],
         "catch-up-max: must be between 1 and 1000 (got 0)"),
        (["--misfire", "catch-up", "--catch-up-max", "lots"],
         "catch-up-max: 'lots' is not a whole number"),
        (["--misfire", "catchup"], "misfire: 'catchup' is not one of: run-once, skip, catch-up"),
    ],
)
def test_each_catch_up_option_is_refused_naming_it_and_nothing_is_written(
    world: World, options: list[str], message: str
) -> None:
    world.seed()
    for argv in (
        [*SCHEDULED, *options],
        ["request", "update", "2", *options],
        ["request", "update", "1", *options],
    ):
        _refused_writing_nothing(world, argv, message)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*SCHEDULED, "--replace-running"], "replace-running: needs --prevent-concurrent"),
        (["request", "update", "2", "--replace-running"],
         "replace-running: needs --prevent-concurrent"),
        ([*SCHEDULED, "--prevent-concurrent", "--replace-running"],
         "replace-running: sample.echo is not killable: its run cannot be replaced"),
        (["request", "update", "1", "--prevent-concurrent", "--replace-running"],
         "replace-running: sample.echo is not killable"),
    ],
)
def test_replace_running_is_refused_where_no_run_can_be_replaced(
    world: World, argv: list[str], message: str
) -> None:
    world.seed()
    _refused_writing_nothing(world, argv, message)


# -- inputs that broke the contract once ---------------------------------------------------

LONG_CRON = ",".join(map(str, range(60))) + " " + ",".join(map(str, range(24))) + " * * *"
CREATE = ["request", "create", "sample.echo", "--no-schedule"]


@pytest.mark.parametrize(
    ("argv", "code", "label"),
    [
        ([*CREATE, "--name", "a\x00b"], 2, "name"),  # PostgreSQL refuses NUL in text
        ([*CREATE, "--name", "\udcff"], 2, "name"),  # a non-UTF-8 byte of the command line
        ([*CREATE, "--param", "who=\udcff"], 2, "param who"),
        ([*CREATE, "--param", "who=\x00"], 2, "param who"),
        ([*CREATE, "--param", "a\nb=1"], 2, "param"),
        (["request", "create", "sample.spam", "--param", "lines=٣"], 2, "param lines"),
        ([*CREATE, "--timing", "scheduled", "--frequency", "cron", "--cron", LONG_CRON], 2, "cron"),
        ([*CREATE, "--misfire", bad.MEGABYTE], 2, "misfire"),
        (["request", "list", "--process", "\udcff"], 2, "process"),
        (["request", "list", "--process", "a\x00"], 2, "process"),
        (["monitor", "list", "--process", "\udcff"], 2, "process"),
        (["monitor", "stats", "--process", "\x00"], 2, "process"),
        (["monitor", "list", "--since", "+999999999d"], 2, "since"),
        (["monitor", "list", "--request", "2147483648"], 2, "request"),
        (["preview", "--timing", "later", "--start", "+²m"], 2, "start"),
        (["request", "show", "2147483648"], 2, "request id"),  # past PostgreSQL's INTEGER
        ([*CREATE, "--param", "a\nb=1", "--param", "a\nb=2"], 2, "param a\\nb"),
    ],
)
def test_inputs_that_broke_the_contract(
    world: World, argv: list[str], code: int, label: str
) -> None:
    before = world.snapshot()
    result = world.cli(*argv)
    assert result.code == code, _short(result)
    [line] = result.err.splitlines()
    assert line.startswith(f"Error: {label}") and len(line) < 400, _short(line)
    assert world.snapshot() == before


def test_a_refusal_quoting_a_token_cut_short_still_names_it(world: World) -> None:
    # hypothesis found it: click's "unexpected extra argument (xxx…" clipped to one line
    world.attempt((["run", "--", "--param", bad.MEGABYTE], {"PROCESS", "param", "process"}))


def test_a_plan_past_the_calendar_just_ends(world: World) -> None:
    shown = world.cli.ok(
        "preview",
        "--timing",
        "scheduled",
        "--frequency",
        "hourly",
        "--interval",
        "100000",
        "--count",
        "1000",
        "--json",
    ).json()
    assert 0 < len(shown["next_runs"]) < 1000 and shown["next_runs"][-1] < "9999-12-31T23:59"


# -- the request service, with loose Python values --------------------------------------------

SERVICE_FIELDS = {field_label(k) for k in (*TIMING_KEYS, *RETRY_KEYS, *DEADLINE_KEYS)} | {
    "name", "misfire", "catch-up-max", "process", "status"
}  # fmt: skip


@st.composite
def service_fields(draw: st.DrawFn) -> dict[str, Any]:
    """Loose fields for create/update: CLI-like text or any Python value, under the
    service's keys; now and then one no request has."""
    text = draw(bad.timing_options()) | draw(
        st.fixed_dictionaries({}, optional={**REQUEST_OPTIONS, "prevent-concurrent": bad.junk})
    )
    fields: dict[str, Any] = {
        "process": draw(bad.mostly(valid_processes, st.one_of(bad.junk, bad.python_values)))
    }
    for key, value in text.items():
        fields[key.replace("-", "_")] = draw(bad.mostly(st.just(value), bad.python_values))
    if draw(st.booleans()):
        fields["params"] = draw(
            st.one_of(
                st.dictionaries(
                    st.sampled_from(bad.PARAM_KEYS) | bad.junk, bad.python_values, max_size=3
                ),
                bad.python_values,
            )
        )
    if draw(bad.mostly(st.just(False), st.just(True))):
        fields[draw(bad.junk)] = draw(bad.python_values)
    return fields


service_ids = st.one_of(st.integers(), st.integers(-(2**70), 2**70))
Call = tuple[str, tuple[Any, ...]]


@st.composite
def service_calls(draw: st.DrawFn) -> Call:
    """A method of the service and drawn arguments for it."""
    verb = draw(
        bad.mostly(
            st.sampled_from(["create", "update"]),
            st.sampled_from(
                ["get", "next_runs", "list", "schedule", "reschedule", "unschedule", "delete"]
            ),
        )
    )
    ident = draw(bad.mostly(st.sampled_from([1, 2, 3]), service_ids))
    if verb == "create":
        return verb, (draw(service_fields()), draw(st.booleans()))
    if verb == "update":
        return verb, (ident, draw(service_fields()))
    if verb == "next_runs":
        return verb, (ident, draw(st.integers(-5, 1000)))
    if verb == "list":
        return verb, (draw(st.one_of(st.none(), bad.request_statuses)), draw(bad.junk))
    return verb, (ident,)


def test_the_request_service_refuses_only_with_a_known_field(world: World) -> None:
    world.seed()
    service = Installation(Settings.from_env()).requests

    @world.examples(120)
    @given(service_calls())
    def attempt(call: Call) -> None:
        verb, args = call
        before = world.snapshot()
        try:
            getattr(service, verb)(*args)
        except (InvalidInput, NotFound, Conflict) as error:
            bad.TALLY[f"service {world.backend} refused"] += 1
            assert not isinstance(error, Conflict) or verb in ("schedule", "delete"), error
            if isinstance(error, InvalidInput):
                known = error.field in SERVICE_FIELDS or error.field.split(" ", 1)[0] == "param"
                assert known and "\n" not in str(error), _short((verb, str(error)))
            assert world.snapshot() == before, "partial write: " + _short((verb, str(error)))
            return
        bad.TALLY[f"service {world.backend} accepted"] += 1
        if world.snapshot() != before:
            world.reset()

    try:
        attempt()
    finally:
        service.engine.dispose()


# -- calendars -----------------------------------------------------------------------------

DAILY = ["request", "create", "sample.echo", "--timing", "scheduled", "--frequency", "daily",
         "--at", "09:00"]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["calendar", "create", "x", "--date", "2027-13-01"], 2, "date: '2027-13-01'"),
        (["calendar", "create", "x", "--date", "1066-10-14"], 2, "date: year"),
        (["calendar", "create", "x", "--yearly", "02-30"], 2, "yearly: '02-30'"),
        (["calendar", "create", "x", "--window", "15:00-13:00"], 2, "window: '15:00-13:00'"),
        (["calendar", "create", "x", "--window", "25:00-26:00"], 2, "window:"),
        (["calendar", "create", "x", "--date", "2027-01-06", "--tz", "Mars/Olympus"], 2, "tz:"),
        (["calendar", "create", "x"], 2, "date: a calendar needs"),
        (["calendar", "create", "42", "--date", "2027-01-06"], 2, "name:"),
        (["calendar", "create", "es", "--date", "2027-01-06"], 4, "name: a calendar named"),
        (["calendar", "update", "es", "--window", "13-15"], 2, "window:"),
        (["calendar", "update", "es", "--tz", "Nowhere"], 2, "tz:"),
        (["calendar", "update", "nope", "--date", "2027-01-06"], 3, "calendar nope not found"),
        (["calendar", "delete", "es"], 4, "calendar es is followed by request(s) 3"),
        ([*DAILY, "--calendar", "nope"], 2, "calendar: 'nope' is not a calendar"),
        ([*DAILY, "--on-excluded", "sometimes"], 2, "on-excluded: 'sometimes'"),
        (["request", "create", "sample.echo", "--timing", "scheduled", "--frequency", "minutes",
          "--on-excluded", "next-business-day"], 2, "on-excluded: next-business-day"),
        ([*DAILY, "--calendar", "all"], 2, "calendar: all: every fire"),
        (["request", "update", "1", "--calendar", "nope"], 2, "calendar: 'nope'"),
        (["request", "update", "3", "--on-excluded", "never"], 2, "on-excluded:"),
        (["request", "update", "3", "--calendar", "all"], 2, "calendar: all: every fire"),
        (["preview", "--timing", "scheduled", "--frequency", "daily", "--at", "09:00",
          "--calendar", "nope"], 2, "calendar: 'nope'"),
        (["preview", "--timing", "scheduled", "--frequency", "daily", "--at", "09:00",
          "--on-excluded", "later"], 2, "on-excluded:"),
    ],
)  # fmt: skip
def test_each_calendar_option_is_refused_naming_it_and_nothing_is_written(
    world: World, argv: list[str], code: int, message: str
) -> None:
    # Given the seed, a calendar es followed by a scheduled request 3, and one excluding all
    world.seed()
    world.cli.ok("calendar", "create", "es", "--date", "2027-01-06", "--tz", "Europe/Madrid")
    world.cli.ok("calendar", "create", "all", "--window", "00:00-24:00")
    world.cli.ok(*DAILY, "--calendar", "es")
    before = world.snapshot()
    # When the bad command runs, it is refused in one line naming the option
    result = world.cli(*argv)
    assert result.code == code, _short(result)
    [line] = result.err.splitlines()
    assert line.startswith(f"Error: {message}"), _short((argv, result.err))
    # And nothing was written, in SQL or Redis
    assert world.snapshot() == before
