"""Riding out an outage of Redis or the database: a long-running service keeps its process.

Beat and worker housekeeping meet an unreachable service as an expected event, not a
bug: :class:`Outages` writes one line when a service is lost and one when it is back
(no traceback, however long it lasts), and says how long to wait before the next try.
"""

from __future__ import annotations

import logging
import time

from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from bgproc.errors import Unavailable, first_line

REDIS = "redis"
DATABASE = "database"
FIRST_RETRY_S = 0.1  # a blip (a restart's first refused connection) costs almost nothing
MAX_RETRY_S = 1.0  # capped: a service that is back is seen within a second


def outage_of(error: BaseException) -> str | None:
    """Which service ``error`` says is unreachable (``redis`` or ``database``), or None when
    it is not an outage (a bug, which must still be seen with its traceback)."""
    if isinstance(error, Unavailable):
        return REDIS if error.service == REDIS else DATABASE
    if isinstance(error, RedisError | BrokerError | ConnectionError | TimeoutError):
        return REDIS
    if isinstance(error, OperationalError | InterfaceError):
        return DATABASE
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return DATABASE
    return None


class Outages:
    """The services one component has lost, with the backoff of its next try."""

    def __init__(self, logger: logging.Logger, who: str) -> None:
        self.logger = logger
        self.who = who
        self.down: dict[str, float] = {}  # service -> since when (monotonic)
        self.last_error = ""  # the last outage, for the health view
        self._retry_s = FIRST_RETRY_S

    def lost(self, service: str, error: BaseException) -> float:
        """Note that ``service`` failed; the seconds to wait before trying again."""
        self.last_error = f"{service}: {type(error).__name__}: {first_line(error)}"
        if service not in self.down:
            self.down[service] = time.monotonic()
            self.logger.warning(
                "%s: %s unreachable (%s); retrying until it is back", self.who, service,
                self.last_error,
            )  # fmt: skip
            self._retry_s = FIRST_RETRY_S
            return self._retry_s
        self._retry_s = min(MAX_RETRY_S, self._retry_s * 2)
        return self._retry_s

    def back(self, service: str) -> None:
        """``service`` answered: one line if it had been lost."""
        since = self.down.pop(service, None)
        if since is not None:
            self.logger.warning(
                "%s: %s is back after %.1f s", self.who, service, time.monotonic() - since
            )
            if not self.down:
                self._retry_s = FIRST_RETRY_S

    def all_back(self) -> None:
        """Everything this component uses answered."""
        for service in list(self.down):
            self.back(service)

    def is_down(self, service: str) -> bool:
        return service in self.down
