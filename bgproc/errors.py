"""The ways bgproc refuses: bad input, an unknown id, a conflict with the current state,
and a service that cannot be used (down, or its schema of another version).

The CLI turns each into one ``Error: …`` line and its exit code, the web API into a JSON
error and its HTTP status; nothing else needs to know how.
"""

from __future__ import annotations


class BgprocError(Exception):
    """Base of every error meant for the user (never shown with a traceback)."""


class InvalidInput(BgprocError):
    """A value the user gave is wrong; ``field`` names it as the user wrote it."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why


class NotFound(BgprocError):
    """An id or name that does not exist."""

    def __init__(self, kind: str, ident: object) -> None:
        super().__init__(f"{kind} {ident!s} not found")
        self.kind = kind
        self.ident = ident


class Conflict(BgprocError):
    """The request is valid but the current state forbids it (e.g. delete while scheduled)."""


class Unavailable(BgprocError):
    """Redis or the database cannot be reached; ``service`` says which, ``where`` its URL
    (password redacted) when known."""

    def __init__(self, service: str, detail: str, where: str = "") -> None:
        at = f" at {where}" if where else ""
        super().__init__(f"{service} is unreachable{at}: {detail}")
        self.service = service
        self.detail = detail
        self.where = where

    @classmethod
    def of_redis(cls, error: BaseException) -> Unavailable:
        """A Redis client's failure, in one line."""
        return cls("redis", first_line(error))


class SchemaMismatch(Unavailable):
    """The database answers, but its schema is of another bgproc version: unusable all the
    same (exit 5), though not unreachable, so the line says what it is."""

    def __init__(self, detail: str, where: str) -> None:
        BgprocError.__init__(self, f"database at {where}: {detail}")
        self.service = "database"
        self.detail = detail
        self.where = where


def first_line(error: BaseException) -> str:
    """An error's first line of text, else its type's name: what a one-line message shows."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
