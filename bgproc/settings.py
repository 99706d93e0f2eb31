"""Settings: every default with its reason, read from ``BGPROC_*`` in one place.

This is the only module that reads ``os.environ``. Everything else receives a
``Settings`` value, so tests can build their own without touching the process.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bgproc.errors import InvalidInput
from bgproc.timing.alerts import AlertTargets, check_email, check_webhook
from bgproc.timing.inputs import parse_flag

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"  # the local Redis of design §6
DEFAULT_DATABASE_URL = "sqlite:///bgproc.db"  # embedded: works with nothing installed
SQLITE_BUSY_TIMEOUT_MS = 5000  # a SQLite writer waits this long for another process's lock
DEFAULT_KEY_PREFIX = "bgproc:"  # every Redis key of an installation starts with it
ALWAYS_IMPORTED = ("tasks",)  # the sample processes are always registered
# A running run whose worker stopped renewing its lease for this long is marked lost:
# long enough to ride out a busy machine, short enough that a dead worker shows soon.
DEFAULT_RUN_LEASE_S = 30.0
DEFAULT_ALERT_LEASE_S = 60.0  # a notifier's hold on an alert: longer than a send's timeouts
DEFAULT_ALERT_TIMEOUT_S = 10.0  # one webhook call or SMTP conversation gives up then
# The CLI is interactive: with Redis or the database down it says so at once (one line,
# exit 5), where worker, beat and ``up`` keep their clients' patience to ride outages out.
CLI_CONNECT_TIMEOUT_S = 0.5  # a server that is up accepts a connection within milliseconds
CLI_REPLY_TIMEOUT_S = 1.0  # one reply of a live Redis; the CLI sends no blocking command
CLI_PG_CONNECT_TIMEOUT_S = 2  # libpq's and psycopg's floor (they read 1 as 2)
# A message held by a worker that has not said what it holds for this long goes back to
# its queue (bgproc.runtime.redelivery): two missed announcements (every 5 s at most), so a busy
# machine does not look dead, and a dead worker's prefetched runs wait seconds, not an hour.
DEFAULT_REDELIVER_AFTER_S = 10.0
MIN_REDELIVER_AFTER_S = 4.0  # a worker speaks every third of it; hosts' clocks differ by ~2 s
REDIS_SCHEMES = ("redis", "rediss", "unix")

# The names a run's message carries, read by beat, workers and the CLI alike.
RUN_TASK = "bgproc.run"  # the one task that runs a registered process
RUN_ID_HEADER = "bgproc_run_id"  # a message's run (its row is written before it is sent)
TICKET_HEADER = "bgproc_ticket"  # an ad-hoc run's ticket: its first delivery reads nothing
DEFAULT_QUEUE = "celery"  # Celery's default: group runs, and processes that name no queue

# /metrics reports the runs of the last hour, from at most the newest 10,000 runs: a
# scrape reads a bounded slice of the run table, whatever it holds (bgproc.store.metrics).
METRICS_WINDOW_S = 3600
METRICS_WINDOW_RUNS = 10_000

# Limits of what is stored: beyond them a value is a typo, and the columns hold no more.
MAX_NAME_CHARS = 200  # a request's or a group's name
MAX_REQUEST_ID = MAX_GROUP_ID = 2**31 - 1  # their id columns are 32-bit INTEGER on PostgreSQL
DEFAULT_REQUESTS_LISTED = 100  # a page of `request list` and of GET /api/v1/requests
MAX_REQUESTS_LISTED = 1000  # a page is for reading; more is what `after` is for
USERINFO_PASSWORD = re.compile(r"^([^:/]+://[^:/@]*):.*@")  # scheme://user:password@


def local_zone_name(environ: Mapping[str, str] = os.environ) -> str:
    """The machine's IANA zone: ``TZ``, ``/etc/timezone``, ``/etc/localtime``, else UTC."""
    candidates = [environ.get("TZ", "").lstrip(":")]
    timezone_file = Path("/etc/timezone")
    if timezone_file.is_file():
        candidates.append(timezone_file.read_text().strip())
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = str(localtime.resolve())
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    for name in candidates:
        if not name:
            continue
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        return name
    return "UTC"


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``: URLs are printed, passwords never."""
    try:
        parts = urlsplit(url)
    except ValueError:  # unparseable (a stray bracket): mask whatever sits before the last @
        return USERINFO_PASSWORD.sub(r"\1:***@", url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def _redis_url(environ: Mapping[str, str], name: str, default: str) -> str:
    """A Redis URL, or an error naming the setting: redis-py, kombu and RedBeat all read it."""
    url = environ.get(name) or default
    if url and urlsplit(url).scheme not in REDIS_SCHEMES:
        expected = "redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix://PATH"
        raise InvalidInput(name, f"not a Redis URL; expected {expected}")
    return url


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 86400:
        raise InvalidInput(name, f"{text!r} must be a number of seconds from 1 to 86400")
    return value


def _redeliver_after_s(environ: Mapping[str, str]) -> float:
    name = "BGPROC_REDELIVER_AFTER_S"
    value = _seconds(environ, name, DEFAULT_REDELIVER_AFTER_S)
    if value < MIN_REDELIVER_AFTER_S:
        raise InvalidInput(name, f"must be at least {MIN_REDELIVER_AFTER_S:g} seconds")
    return value


@dataclass(frozen=True)
class Smtp:
    """The SMTP server alerts are mailed through (``BGPROC_SMTP_*``); no host: no email."""

    host: str = ""
    port: int = 25
    user: str = ""
    password: str = field(default="", repr=False)
    sender: str = "bgproc@localhost"
    starttls: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Smtp:
        port_text = environ.get("BGPROC_SMTP_PORT", "").strip() or "25"
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise InvalidInput("BGPROC_SMTP_PORT", f"{port_text!r} is not a port (1 to 65535)")
        sender = environ.get("BGPROC_SMTP_FROM", "").strip() or cls.sender
        return cls(
            host=environ.get("BGPROC_SMTP_HOST", "").strip(),
            port=int(port_text),
            user=environ.get("BGPROC_SMTP_USER", ""),
            password=environ.get("BGPROC_SMTP_PASSWORD", ""),
            sender=check_email(sender, "BGPROC_SMTP_FROM") if sender != cls.sender else sender,
            starttls=parse_flag(environ.get("BGPROC_SMTP_STARTTLS", "no") or "no",
                                "BGPROC_SMTP_STARTTLS"),
        )  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """One installation's configuration (design §6)."""

    broker_url: str = DEFAULT_BROKER_URL
    redbeat_url: str = ""  # empty: RedBeat uses the broker
    database_url: str = DEFAULT_DATABASE_URL
    timezone: str = "UTC"
    imports: tuple[str, ...] = ALWAYS_IMPORTED
    key_prefix: str = DEFAULT_KEY_PREFIX
    run_lease_s: float = DEFAULT_RUN_LEASE_S
    redeliver_after_s: float = DEFAULT_REDELIVER_AFTER_S
    extra: Mapping[str, str] = field(default_factory=dict)
    web_token: str = field(default="", repr=False)  # `bgproc web`'s operator token; never shown
    web_users_file: str = ""  # `bgproc web`'s users (name:role:hash lines), if any
    # Alerts: the installation's default targets, the webhook's signing secret, SMTP
    alert_targets: AlertTargets = field(default_factory=AlertTargets)
    alert_secret: str = field(default="", repr=False)
    alert_lease_s: float = DEFAULT_ALERT_LEASE_S
    alert_timeout_s: float = DEFAULT_ALERT_TIMEOUT_S
    smtp: Smtp = field(default_factory=lambda: Smtp())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings as the environment gives them, with the defaults above."""
        extra_imports = [m.strip() for m in environ.get("BGPROC_IMPORTS", "").split(",")]
        imports = ALWAYS_IMPORTED + tuple(
            m for m in extra_imports if m and m not in ALWAYS_IMPORTED
        )
        return cls(
            broker_url=_redis_url(environ, "BGPROC_BROKER_URL", DEFAULT_BROKER_URL),
            redbeat_url=_redis_url(environ, "BGPROC_REDBEAT_URL", ""),
            database_url=environ.get("BGPROC_DATABASE_URL") or DEFAULT_DATABASE_URL,
            timezone=environ.get("BGPROC_TIMEZONE") or local_zone_name(environ),
            imports=imports,
            key_prefix=environ.get("BGPROC_KEY_PREFIX", DEFAULT_KEY_PREFIX),
            run_lease_s=_seconds(environ, "BGPROC_RUN_LEASE_S", DEFAULT_RUN_LEASE_S),
            redeliver_after_s=_redeliver_after_s(environ),
            web_token=environ.get("BGPROC_WEB_TOKEN", "").strip(),
            web_users_file=environ.get("BGPROC_WEB_USERS_FILE", "").strip(),
            alert_targets=AlertTargets(
                check_webhook(environ.get("BGPROC_ALERT_WEBHOOK", ""), "BGPROC_ALERT_WEBHOOK"),
                check_email(environ.get("BGPROC_ALERT_EMAIL", ""), "BGPROC_ALERT_EMAIL"),
            ),
            alert_secret=environ.get("BGPROC_ALERT_SECRET", ""),
            alert_lease_s=_seconds(environ, "BGPROC_ALERT_LEASE_S", DEFAULT_ALERT_LEASE_S),
            alert_timeout_s=_seconds(environ, "BGPROC_ALERT_TIMEOUT_S", DEFAULT_ALERT_TIMEOUT_S),
            smtp=Smtp.from_env(environ),
        )

    @property
    def schedule_url(self) -> str:
        """Where RedBeat keeps its entries."""
        return self.redbeat_url or self.broker_url

    @property
    def redis_urls(self) -> str:
        """The Redis URLs in use, passwords redacted: what an error about Redis names."""
        urls = (self.broker_url, self.schedule_url)
        return " or ".join(dict.fromkeys(redact_url(url) for url in urls))

    def key(self, *parts: str) -> str:
        """A Redis key of this installation: every key goes through here."""
        return self.key_prefix + ":".join(parts)

    @property
    def run_leases_key(self) -> str:
        """Sorted set: run id -> expiry of its lease, renewed by the worker running it."""
        return self.key("runs", "leases")

    @property
    def kill_requests_key(self) -> str:
        """Set of the run ids ``monitor kill`` asked to stop."""
        return self.key("runs", "kills")

    @property
    def schedule_key_prefix(self) -> str:
        """RedBeat's key prefix: entries, its schedule index and the beat lock under it."""
        return self.key("redbeat:")

    @property
    def beat_lock_key(self) -> str:
        """The lock one beat holds while it fires (RedBeat's own name for it, made explicit)."""
        return self.schedule_key_prefix + ":lock"

    @property
    def beats_key(self) -> str:
        """Sorted set: beat name -> its last tick (``:info`` holds its heartbeat)."""
        return self.key("beats")

    @property
    def workers_key(self) -> str:
        """Sorted set: worker name -> when it last announced itself (``:info`` holds what)."""
        return self.key("workers")

    @property
    def held_messages_key(self) -> str:
        """Hash: worker name -> what its main process holds, and since when (JSON)."""
        return self.key("workers", "held")
