"""One installation of bgproc: its settings and what is built from them, each built once.

The composition root for the CLI, beat and workers: nothing here connects,
or even imports its library, until it is first used: a command that needs no Redis never
touches it, and one that reads SQL never loads Celery. The CLI's
installation is *interactive*: its clients give up at once when Redis or the
database is down, where a service's retry to ride the outage out.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from bgproc.registry import REGISTRY, Registry
from bgproc.settings import CLI_PG_CONNECT_TIMEOUT_S, Settings

if TYPE_CHECKING:
    from celery import Celery
    from redis import Redis
    from sqlalchemy import Engine

    from bgproc.runtime.grouprun import GroupRuns
    from bgproc.runtime.recorder import RunRecorder
    from bgproc.runtime.redelivery import Redelivery
    from bgproc.services.calendars import CalendarService
    from bgproc.services.control import Control
    from bgproc.services.groups import GroupService
    from bgproc.services.kills import Killer
    from bgproc.services.requests import RequestService
    from bgproc.store.entries import EntryStore
    from bgproc.store.runs import RunStore

_BUILT: list[Installation] = []  # every installation_of() result in this process


def installation_of(app: Celery) -> Installation:
    """The installation a worker or beat process built for ``app``, built once per app."""
    found: Installation | None = getattr(app, "bgproc_installation", None)
    if found is None:
        found = Installation(app.conf.bgproc_settings)
        app.bgproc_installation = found  # type: ignore[attr-defined]
        _BUILT.append(found)
    return found


def built() -> list[Installation]:
    """The installations :func:`installation_of` built in this process."""
    return list(_BUILT)


class Installation:
    """Settings plus the engine, Celery app, entry store, registry and services they imply."""

    def __init__(
        self, settings: Settings, registry: Registry = REGISTRY, *, interactive: bool = False
    ) -> None:
        """``interactive``: a command's installation, which fails fast (one line, exit 5)
        when a service is down; the default is a long-running service's."""
        self.settings = settings
        self.interactive = interactive
        self._registry = registry

    def as_service(self) -> Installation:
        """This installation as a long-running service builds it (``worker``, ``beat``,
        ``up``): its clients keep retrying through outages."""
        return Installation(self.settings, self._registry)

    @cached_property
    def registry(self) -> Registry:
        self._registry.load(self.settings.imports)
        return self._registry

    @property
    def queues(self) -> list[str]:
        """Every queue a run can be sent to: the default one (group runs) and each
        registered process's; a plain ``bgproc worker`` consumes them all."""
        from bgproc.runtime.app import DEFAULT_QUEUE

        return sorted({DEFAULT_QUEUE, *(spec.queue for spec in self.registry.all())})

    @cached_property
    def engine(self) -> Engine:
        from bgproc.store.db import PG_CONNECT_TIMEOUT_S, make_engine

        timeout_s = CLI_PG_CONNECT_TIMEOUT_S if self.interactive else PG_CONNECT_TIMEOUT_S
        return make_engine(self.settings.database_url, timeout_s)

    @cached_property
    def app(self) -> Celery:
        from bgproc.runtime.app import create_app

        return create_app(self.settings, self.interactive)

    @cached_property
    def entries(self) -> EntryStore:
        from bgproc.store.entries import EntryStore

        return EntryStore(self.app)

    @cached_property
    def requests(self) -> RequestService:
        from bgproc.services.requests import RequestService

        return RequestService(
            self.engine, lambda: self.entries, self.registry, self.settings.timezone
        )

    @cached_property
    def groups(self) -> GroupService:
        from bgproc.services.groups import GroupService

        return GroupService(self.engine, self.registry)

    @cached_property
    def calendars(self) -> CalendarService:
        from bgproc.services.calendars import CalendarService

        return CalendarService(self.engine, self.requests)

    @cached_property
    def runs(self) -> RunStore:
        from bgproc.store.runs import RunStore

        return RunStore(self.engine)

    @cached_property
    def group_runs(self) -> GroupRuns:
        """Starts and advances group runs (workers only)."""
        from bgproc.runtime.grouprun import GroupRuns

        return GroupRuns(self.engine, self.registry, self.app)

    @cached_property
    def recorder(self) -> RunRecorder:
        """This process's writer of run records (workers only)."""
        from bgproc.runtime.recorder import RunRecorder

        settings = self.settings
        return RunRecorder(
            self.engine,
            self.redis,
            settings.run_leases_key,
            settings.kill_requests_key,
            settings.run_lease_s,
        )

    @cached_property
    def control(self) -> Control:
        """Live workers, queue depths and kill requests (Redis only)."""
        from bgproc.services.control import Control

        broker = self._redis_client(self.settings.broker_url)
        return Control(self.redis, broker, self.settings)

    @cached_property
    def killer(self) -> Killer:
        """Kills runs (SQL and Redis)."""
        from bgproc.services.kills import Killer

        return Killer(self.runs, self.control, self.registry)

    @cached_property
    def redelivery(self) -> Redelivery:
        """What workers hold, and the giving back of what a dead one held (Redis only)."""
        from bgproc.runtime.redelivery import Redelivery

        return Redelivery(self.control.broker, self.control, self.settings)

    @cached_property
    def redis(self) -> Redis:
        """Redis of the schedule entries and leases (the broker unless BGPROC_REDBEAT_URL)."""
        return self._redis_client(self.settings.schedule_url)

    def _redis_client(self, url: str) -> Redis:
        from redis import Redis

        from bgproc.runtime.app import redis_client_options

        return Redis.from_url(url, **redis_client_options(self.interactive))
