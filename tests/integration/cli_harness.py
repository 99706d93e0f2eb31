"""Runs ``bgproc`` in-process through its real entry point, capturing what it prints."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import redis

from cli.main import main


@dataclass
class Run:
    """One command's exit code and output."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """``cli("request", "list")`` runs the command; ``cli.ok(...)`` also asserts exit 0."""

    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> Run:
        code = main(list(args))
        captured = self.capsys.readouterr()
        return Run(code, captured.out, captured.err)

    def ok(self, *args: str) -> Run:
        result = self(*args)
        assert result.code == 0, result.err
        return result


@dataclass
class StoreCli(Cli):
    """The harness with the test's own database and Redis prefix, to inspect what it wrote."""

    db_url: str
    prefix: str
    redis: redis.Redis

    def redis_keys(self) -> list[str]:
        return sorted(k.decode() for k in self.redis.scan_iter(match=self.prefix + "*"))


BROKER = "redis://127.0.0.1:6379/0"
C = TypeVar("C", bound=StoreCli)


def isolate(monkeypatch: pytest.MonkeyPatch, db_url: str, imports: str = "") -> str:
    """Point the CLI at ``db_url`` and a Redis key prefix of the test's own; the prefix."""
    prefix = f"test-{uuid.uuid4().hex[:10]}:"
    monkeypatch.setenv("BGPROC_DATABASE_URL", db_url)
    monkeypatch.setenv("BGPROC_BROKER_URL", BROKER)
    monkeypatch.setenv("BGPROC_KEY_PREFIX", prefix)
    monkeypatch.setenv("BGPROC_TIMEZONE", "Europe/Madrid")
    if imports:
        monkeypatch.setenv("BGPROC_IMPORTS", imports)
    return prefix


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)


def isolated(
    kind: type[C],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    imports: str = "",
) -> Iterator[C]:
    """A ``kind`` harness on ``db_url`` with a Redis key prefix of its own, deleted after."""
    prefix = isolate(monkeypatch, db_url, imports)
    client = redis.Redis.from_url(BROKER)
    yield kind(capsys, db_url, prefix, client)
    delete_prefix(client, prefix)
    client.close()
