"""Hypothesis strategies of bad (and nearly good) user input, and a tally of how many were tried.

Shared by the unit and integration property tests of the design §5 error contract: every
value a user can type — timings, cron text, date-times, zones, params, ids, names — drawn
from plausible, edge and hostile forms (huge, unicode digits, NUL, lone surrogates).
``tests/conftest.py`` prints the tally at the end of the session.
"""

from __future__ import annotations

from collections import Counter
from typing import TypeVar
from zoneinfo import available_timezones

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from bgproc.timing.fields import FIELDS_OF, PLAN_FIELDS, Frequency
from bgproc.timing.inputs import field_label

T = TypeVar("T")
TALLY: Counter[str] = Counter()  # "<where> refused" / "<where> accepted" -> examples


def examples(count: int) -> settings:
    """Settings of a property test: ``count`` examples, no deadline (services are slow)."""
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.function_scoped_fixture,
        ],
    )


MEGABYTE = "x" * 1_000_000
EDGE_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\n",
    "line\nbreak",
    "\t",
    "\r\n",
    "-",
    "--",
    "-1",
    "0",
    "-0",
    str(10**30),
    str(-(10**30)),
    str(2**63),
    str(2**70),
    "٣",  # Arabic-Indic three: str.isdigit() and int() accept it
    "²",  # superscript two: isdigit() but not int()
    "½",
    "1_000",
    "1e3",
    "0x1f",
    "+5",
    " 7 ",
    "nan",
    "inf",
    "-inf",
    "1.5",
    "true",
    "null",
    "None",
    "🎉",
    "é" * 201,
    "\udcff",  # an undecodable byte of a command line (surrogateescape)
    "\ud800",
    "a\udcffb",
    "\u202e",
    "\ufeff",
    "'; DROP TABLE bgproc_request; --",
    "%s%n",
    "{}",
    "[]",
    "last",
    "now",
    "+10m",
    "x" * 10_001,
]
SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
ANY_CHAR = st.one_of(st.characters(), SURROGATE, st.sampled_from("\x00\n\r\t"))


def mostly(good: st.SearchStrategy[T], other: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """``good`` nine times in ten: bad values deep in a command need the front of it valid."""
    return st.integers(0, 9).flatmap(lambda n: other if n == 0 else good)


# Built when drawn: a strategy holding a megabyte would be a megabyte in every repr of it.
huge = st.sampled_from(["x", "9", "é"]).map(lambda char: char * 1_000_000)
junk = mostly(
    st.one_of(
        st.text(max_size=20),
        st.text(ANY_CHAR, max_size=12),
        st.sampled_from(EDGE_TEXT),
        st.integers(-(10**40), 10**40).map(str),
    ),
    huge,
)


def _or_junk(*plausible: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(plausible), junk)


ints = st.one_of(
    st.integers(-3, 40).map(str),
    st.integers(-(10**35), 10**35).map(str),
    st.sampled_from(["1", "5", "100000", "100001", "1000000000", "1000000001", "٣", "²", "--5"]),
    junk,
)
day_of_month = st.one_of(st.sampled_from(["last", "LAST", "31", "29", "0", "32"]), ints)
month = st.one_of(_or_junk("1", "2", "12", "13", "0", "-1", "mar", "March", "MAR", "smarch"), ints)
timing_kind = _or_junk("immediate", "later", "scheduled", "Scheduled", " later ")
frequency = _or_junk(
    "seconds", "minutes", "hourly", "daily", "weekly", "monthly", "cron", "Daily", "yearly"
)
daily_option = _or_junk("every", "weekdays", "weekends", "WEEKENDS", "weekend")
ordinal = _or_junk("first", "second", "third", "fourth", "last", "fifth")
weekday = _or_junk("mon", "sun", "Friday", "fri ", "mo", "domingo")
days = st.one_of(
    st.lists(weekday, max_size=4).map(",".join),
    _or_junk("mon,wed,fri", "mon,,", ",", "sat,sun,sat"),
)
time_of_day = st.one_of(
    st.tuples(st.integers(0, 99), st.integers(0, 99)).map(lambda t: f"{t[0]:02}:{t[1]:02}"),
    st.tuples(st.integers(0, 25), st.integers(0, 61), st.integers(0, 61)).map(
        lambda t: f"{t[0]:02}:{t[1]:02}:{t[2]:02}"
    ),
    _or_junk("02:30", "9:30", "24:00", "23:59:60", "12:00 ", "١٢:٠٠", "12:00:00.5"),
)
OFFSETS = ["", "Z", "+00:00", "+01:00", "-23:59", "+14:00", "+24:00", "+05:30:15", "-99:99"]
datetimes = st.one_of(
    st.tuples(st.datetimes(), st.sampled_from(OFFSETS)).map(lambda t: t[0].isoformat() + t[1]),
    st.tuples(st.integers(-(10**12), 10**12), st.sampled_from("smhdwy")).map(
        lambda t: f"+{t[0]}{t[1]}"
    ),
    st.sampled_from(
        [
            "now",
            "NOW",
            "+10m",
            "+0s",
            "+999999999d",
            "+²m",
            "+٣m",
            "-10m",
            "2027-01-31",
            "2027-01-31T09:30",
            "2027-02-30T00:00",
            "1969-12-31T23:59",
            "2199-12-31T23:59:59-23:59",
            "2200-01-01T00:00",
            "0001-01-01T00:00+01:00",
            "9999-12-31T23:59:59.999999-14:00",
            "tomorrow",
        ]
    ),
    junk,
)
durations = st.one_of(
    st.tuples(st.integers(-(10**8), 10**8), st.sampled_from("smhdwy")).map(
        lambda t: f"{t[0]}{t[1]}"
    ),
    _or_junk("2h", "7d", "0s", "999999w", "٣d", "1 d", "1d\n", "1.5h"),
)
zones = st.one_of(
    st.sampled_from(sorted(available_timezones())),
    _or_junk(
        "Europe/../etc",
        "../../etc/passwd",
        "/etc/localtime",
        "Europe",
        "europe/madrid",
        "Europe/Madrid ",
        "Europe//Madrid",
        "zone.tab",
        "tzdata.zi",
        "posixrules",
        "Factory",
        "a" * 300,
    ),
)
CRON_ALPHABET = "0123456789*/,-?#LW ABCDEFHIJMNORSTUVY"
crons = st.one_of(
    st.lists(st.text(CRON_ALPHABET, min_size=1, max_size=6), max_size=8).map(" ".join),
    st.sampled_from(
        [
            "* * * * *",
            "0 15 10 ? * 6#3",
            "0 0 12 ? * MON#6",
            "0 0 30 2 *",
            "0 0 0 1 1 ? 1999",
            "0 0 12 LW * ?",
            "* * *",
            ",".join(map(str, range(60))) + " " + ",".join(map(str, range(24))) + " * * *",
            " ".join(["*"] * 5000),
        ]
    ),
    junk,
)
process_names = _or_junk(
    "sample.echo", "sample.sleep", "sample.fail", "sample.spam", "sample.nope", "SAMPLE.ECHO"
)
PARAM_KEYS = ["seconds", "lines", "message", "who", "x", "", " seconds"]
params = st.lists(
    st.one_of(
        st.tuples(_or_junk(*PARAM_KEYS), st.one_of(ints, datetimes, junk)).map("=".join),
        junk,  # often without '='
    ),
    max_size=3,
)
names = _or_junk("month end", "é" * 200, "x" * 200)
misfire = _or_junk("run-once", "skip", "catch-up", "RUN-ONCE", "run_once")
ids = st.one_of(
    st.integers(-3, 4).map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from([str(2**63 - 1), str(2**63), str(2**64), "1.0", "1e3", "0x1", "abc", ""]),
    junk,
)
request_statuses = _or_junk("unscheduled", "scheduled", "complete", "SCHEDULED")
run_statuses = _or_junk("queued", "processing", "success", "error", "lost", "Success")

TEXT_OF = {
    "start": datetimes,
    "finish": datetimes,
    "tz": zones,
    "interval": ints,
    "repetitions": ints,
    "daily-option": daily_option,
    "at": time_of_day,
    "days": days,
    "month": month,
    "day": day_of_month,
    "ordinal": ordinal,
    "weekday": weekday,
    "cron": crons,
}


@st.composite
def timing_options(draw: st.DrawFn) -> dict[str, str]:
    """Timing options as the CLI spells them, mostly coherent so that the plan's own fields
    are reached: a kind, a frequency, values for that frequency's fields, now and then a
    stray field of another one."""
    chosen = {"timing": draw(mostly(st.just("scheduled"), timing_kind))}
    frequency_name = draw(mostly(st.sampled_from([f.value for f in Frequency]), frequency))
    if draw(mostly(st.just(True), st.just(False))):
        chosen["frequency"] = frequency_name
    own = (
        FIELDS_OF.get(Frequency(frequency_name), set())
        if frequency_name in {f.value for f in Frequency}
        else set()
    )
    keys = sorted(field_label(k) for k in own)
    keys += draw(st.lists(st.sampled_from(["start", "finish", "tz"]), max_size=2, unique=True))
    keys += draw(st.lists(st.sampled_from(sorted(field_label(k) for k in PLAN_FIELDS)), max_size=1))
    for key in keys:
        if draw(st.booleans()):
            chosen[key] = draw(TEXT_OF[key])
    return chosen

# Any Python value a caller of the service layer might pass instead of text.
python_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    junk,
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.times(),
    st.lists(junk, max_size=3),
    st.dictionaries(junk, junk, max_size=2),
    st.binary(max_size=4),
)
