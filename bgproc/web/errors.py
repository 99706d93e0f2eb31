"""bgproc's refusals as HTTP: the CLI's exit codes, mapped to status codes.

InvalidInput 400 (naming the field), NotFound 404, Conflict 409, Unavailable 503 —
and a Redis or database error that reached us unwrapped is 503 as well, as in the CLI.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from starlette.responses import Response

from bgproc.errors import BgprocError, Conflict, InvalidInput, NotFound, Unavailable, first_line
from bgproc.settings import Settings, redact_url
from bgproc.web.auth import Refused

STATUS_OF: tuple[tuple[type[BgprocError], int], ...] = (
    (InvalidInput, 400),
    (NotFound, 404),
    (Conflict, 409),
    (Unavailable, 503),
)


@dataclass(frozen=True)
class Failure:
    """One error as the API and the pages show it."""

    status: int
    message: str
    field: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"error": {"field": self.field, "message": self.message}}


def _raised_by(error: Exception, module: str, base: str) -> bool:
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(error, getattr(loaded, base))


def failure_of(error: Exception, settings: Settings) -> Failure | None:
    """The HTTP failure ``error`` means, or None for a bug (an unexpected exception)."""
    if isinstance(error, Refused):
        return Failure(error.status, error.message)
    if isinstance(error, InvalidInput):
        return Failure(400, error.why, error.field)
    if isinstance(error, Unavailable) and error.service == "redis":
        return Failure(503, f"redis is unreachable at {settings.redis_urls}: {error.detail}")
    if isinstance(error, BgprocError):
        status = next((code for kind, code in STATUS_OF if isinstance(error, kind)), 500)
        return Failure(status, str(error))
    if _raised_by(error, "redis.exceptions", "RedisError"):
        return Failure(503, f"redis is unreachable at {settings.redis_urls}: {first_line(error)}")
    if _raised_by(error, "sqlalchemy.exc", "SQLAlchemyError"):
        url = redact_url(settings.database_url)
        return Failure(503, f"database error at {url}: {first_line(error)}")
    return None


def _default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


class JSON(Response):
    """JSON as the CLI prints it (UTF-8 as is, instants as ISO 8601), for any document."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, default=_default).encode()
