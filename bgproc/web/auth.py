"""Who may read and who may act, and protection against cross-site requests.

One operator token (``BGPROC_WEB_TOKEN``, or one made up at start and printed) lets a
client act: as ``Authorization: Bearer TOKEN``, or through the login form, which sets a
session cookie (HttpOnly, SameSite=Strict) derived from the token. Reading is open when
the server listens on a loopback address only; elsewhere it needs the token too.

Cross-site requests: a state-changing request authenticated by the cookie must also carry
the CSRF token (a form field or the ``X-CSRF-Token`` header, which another site cannot
read) and, when the browser sends one, an ``Origin`` of this server. A bearer token is
never sent by a browser on its own, so it needs neither. A loopback server also refuses a
``Host`` that is not a loopback name, so a page of another site cannot reach it through
DNS rebinding.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request

SESSION_COOKIE = "bgproc_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"


class Refused(Exception):
    """A request without the right to do what it asks (401) or forged by another site (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only ever means this machine."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A token for a server started without ``BGPROC_WEB_TOKEN``."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Access:
    """The access rules of one server."""

    token: str = field(repr=False)
    reads_open: bool  # listening on loopback only: anyone on this machine may read

    def _derived(self, purpose: str) -> str:
        return hmac.new(self.token.encode(), purpose.encode(), hashlib.sha256).hexdigest()

    @property
    def session_value(self) -> str:
        """The cookie of a logged-in browser (not the token itself: it never leaves)."""
        return self._derived("session")

    @property
    def csrf_value(self) -> str:
        """What the pages embed in forms and the scripts send as ``X-CSRF-Token``."""
        return self._derived("csrf")

    def token_matches(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def _bearer(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(given.strip())

    def _cookie(self, request: Request) -> bool:
        given = request.cookies.get(SESSION_COOKIE, "")
        return bool(given) and hmac.compare_digest(given, self.session_value)

    def is_operator(self, request: Request) -> bool:
        """Whether the client proved it holds the token (header or session cookie)."""
        return self._bearer(request) or self._cookie(request)

    def check_host(self, request: Request) -> None:
        """A loopback server answers loopback names only (no DNS rebinding)."""
        if not self.reads_open:
            return
        host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
        if not is_loopback(host):
            raise Refused(403, f"host {host!r} is not this machine's loopback name")

    def check_read(self, request: Request) -> None:
        if not (self.reads_open or self.is_operator(request)):
            raise Refused(401, "log in first: this server needs its operator token to be read")

    def check_act(self, request: Request, form_csrf: str | None = None) -> None:
        """An action needs the operator; through the cookie, also proof it is not cross-site."""
        if self._bearer(request):
            return
        if not self._cookie(request):
            raise Refused(401, "log in as operator first (BGPROC_WEB_TOKEN)")
        self.check_origin(request)
        given = request.headers.get(CSRF_HEADER) or form_csrf or ""
        if not hmac.compare_digest(given.encode(), self.csrf_value.encode()):
            raise Refused(403, "cross-site request refused: missing or wrong CSRF token")

    @staticmethod
    def check_origin(request: Request) -> None:
        """An ``Origin`` the browser sent must be this server's own."""
        origin = request.headers.get("origin")
        if origin is None:
            return
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin.rstrip("/") != own:
            raise Refused(403, f"cross-site request refused: origin {origin!r}")
