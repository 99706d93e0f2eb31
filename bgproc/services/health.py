"""Is this installation scheduling? One answer for a container health check or a cron alarm.

Healthy means: Redis and the database answer, a beat holds the lock and ticked within
:data:`~bgproc.services.control.BEAT_STALE_S`, and at least one worker is live. Each check says
what is wrong in words, so the alarm tells the operator where to look.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from bgproc.errors import first_line
from bgproc.outages import outage_of
from bgproc.services.control import BEAT_STALE_S, BeatInfo, Control
from bgproc.settings import redact_url
from bgproc.store.db import ping


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def scheduler_check(beats: list[BeatInfo], lock_held: bool, now: datetime) -> Check:
    """Whether a beat holds the lock and ticks; stale and standby beats are named."""
    holders = [b for b in beats if b.holds_lock and not b.stale(now)]
    stale = [b.name for b in beats if b.stale(now)]
    note = f"; stale: {', '.join(stale)}" if stale else ""
    if holders and lock_held:
        beat = holders[0]
        age_s = (now - beat.ticked_at).total_seconds()
        down = f"; cannot reach {', '.join(beat.down)}" if beat.down else ""
        detail = f"{beat.name} holds the lock, ticked {age_s:.1f} s ago{down}{note}"
        return Check("scheduler", not beat.down, detail)
    if not beats:
        return Check("scheduler", False, "no beat is running (start bgproc beat or bgproc up)")
    detail = f"no beat holds the lock and ticked in the last {BEAT_STALE_S:.0f} s{note}"
    return Check("scheduler", False, detail)


def check(control: Control, engine: Engine, now: datetime) -> list[Check]:
    """Every check, each independent of the others' failure."""
    checks: list[Check] = []
    settings = control.settings
    redis_ok = _answers(control.redis.ping)
    checks.append(Check("redis", redis_ok is None,
                        redis_ok or f"answers at {settings.redis_urls}"))  # fmt: skip
    db_ok = _answers(lambda: ping(engine))
    url = redact_url(settings.database_url)
    checks.append(Check("database", db_ok is None, db_ok or f"answers at {url}"))
    if redis_ok is not None:
        return checks
    checks.append(scheduler_check(control.beats(), control.lock_held(), now))
    workers = control.workers()
    checks.append(Check("workers", bool(workers),
                        f"{len(workers)} live: {', '.join(w.name for w in workers)}" if workers
                        else "no live worker (start bgproc worker or bgproc up)"))  # fmt: skip
    return checks


def _answers(probe: Callable[[], object]) -> str | None:
    """None if ``probe()`` works; else why not, in one line."""
    try:
        probe()
    except Exception as error:
        if outage_of(error) is None:
            raise
        return f"unreachable: {first_line(error)}"
    return None
