"""One installation of bgproc: its settings and what is built from them, each built once.

The composition root for the CLI, beat and workers: nothing here connects
until it is first used, so commands that need no Redis never touch it.
"""

from __future__ import annotations

from functools import cached_property

from celery import Celery
from redis import Redis
from sqlalchemy import Engine

from bgproc.app import create_app
from bgproc.db import make_engine
from bgproc.entries import EntryStore
from bgproc.groups import GroupService
from bgproc.registry import REGISTRY, Registry
from bgproc.requests import RequestService
from bgproc.runs import RunStore
from bgproc.settings import Settings


class Installation:
    """Settings plus the engine, Celery app, entry store, registry and services they imply."""

    def __init__(self, settings: Settings, registry: Registry = REGISTRY) -> None:
        self.settings = settings
        self._registry = registry

    @cached_property
    def registry(self) -> Registry:
        self._registry.load(self.settings.imports)
        return self._registry

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def app(self) -> Celery:
        return create_app(self.settings)

    @cached_property
    def entries(self) -> EntryStore:
        return EntryStore(self.app)

    @cached_property
    def requests(self) -> RequestService:
        return RequestService(self.engine, self.entries, self.registry, self.settings.timezone)

    @cached_property
    def groups(self) -> GroupService:
        return GroupService(self.engine, self.registry)

    @cached_property
    def runs(self) -> RunStore:
        return RunStore(self.engine)

    @cached_property
    def redis(self) -> Redis:
        """Redis of the schedule entries and leases (the broker unless BGPROC_REDBEAT_URL)."""
        return Redis.from_url(self.settings.schedule_url)
