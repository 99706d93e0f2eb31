"""Who may read and who may act, and protection against cross-site requests.

Two kinds of credential. The operator token (``BGPROC_WEB_TOKEN``, or one made up at
start) acts, as ``Authorization: Bearer TOKEN`` or typed in the login form. Named users
(``BGPROC_WEB_USERS_FILE``, :mod:`bgproc.web.users`) log in with their password, in the
form or as HTTP Basic for scripts: a ``viewer`` reads, an ``operator`` acts as the token
holder does. The login form sets a session cookie (HttpOnly, SameSite=Strict) naming the
user and role, signed with a key derived from the token, and bound to the user's password
hash (a new password ends old sessions). Reading is open when the server listens on a
loopback address only; elsewhere it needs a user or the token too.

Cross-site requests: a state-changing request authenticated by the cookie must also carry
its session's CSRF token (a form field or the ``X-CSRF-Token`` header, which another site
cannot read) and, when the browser sends one, an ``Origin`` of this server; one
authenticated by a password must come from no other ``Origin``. A bearer token is never
sent by a browser on its own, so it needs neither. A loopback server also refuses a
``Host`` that is not a loopback name, so a page of another site cannot reach it through
DNS rebinding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request

from bgproc.web.users import Role, Throttle, User, decoy, verify_password

SESSION_COOKIE = "bgproc_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"
IDENTIFIED = "bgproc.identified"  # the request scope's key of who sent it


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
class Who:
    """Who made a request: a user of the users file, or the token holder (no name)."""

    name: str
    role: Role

    @property
    def label(self) -> str:
        return self.name or "the token holder"

    @property
    def acts(self) -> bool:
        return self.role is Role.operator


TOKEN_HOLDER = Who("", Role.operator)  # no user's name is empty (users.NAME)
SESSION_KEY_PURPOSE = "session-key"


def _b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _un_b64url(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


@dataclass(frozen=True)
class Access:
    """The access rules of one server."""

    token: str = field(repr=False)
    reads_open: bool  # listening on loopback only: anyone on this machine may read
    users: Mapping[str, User] = field(default_factory=dict, repr=False)
    throttle: Throttle = field(default_factory=Throttle, repr=False, compare=False)

    def _derived(self, purpose: str) -> str:
        return hmac.new(self.token.encode(), purpose.encode(), hashlib.sha256).hexdigest()

    def _signed(self, text: str) -> str:
        key = self._derived(SESSION_KEY_PURPOSE).encode()
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    def _user_hash(self, who: Who) -> str:
        """What a session is bound to besides name and role: a new password ends it."""
        user = self.users.get(who.name)
        return user.hash if user is not None else ""

    def session_of(self, who: Who) -> str:
        """The cookie of a browser logged in as ``who``: its name and role, signed (the
        token or the password never leave)."""
        signed = self._signed(f"session\0{who.name}\0{who.role}\0{self._user_hash(who)}")
        return f"{_b64url(who.name)}.{who.role}.{signed}"

    @property
    def session_value(self) -> str:
        """The token holder's cookie."""
        return self.session_of(TOKEN_HOLDER)

    def csrf_of(self, session: str) -> str:
        """What a session's pages embed in forms and its scripts send as ``X-CSRF-Token``."""
        return self._signed(f"csrf\0{session}")

    @property
    def csrf_value(self) -> str:
        return self.csrf_of(self.session_value)

    def token_matches(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def log_in(self, name: str, password: str) -> Who | None:
        """The user ``name`` if ``password`` is theirs. An unknown name takes as long as a
        wrong password; a name with many failures waits (429) before its next try."""
        wait = self.throttle.wait_s(name)
        if wait > 0:
            raise Refused(429, f"too many failed logins: try again in {math.ceil(wait)} s")
        user = self.users.get(name)
        matches = verify_password(password, user.hash if user is not None else decoy())
        if user is None or not matches:
            self.throttle.failed(name)
            return None
        self.throttle.succeeded(name)
        return Who(user.name, user.role)

    def _session(self, given: str) -> Who | None:
        encoded, _, rest = given.partition(".")
        role = rest.partition(".")[0]
        try:
            who = Who(_un_b64url(encoded), Role(role))
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return None
        user = self.users.get(who.name)
        if who.name and (user is None or user.role is not who.role):  # gone, or role changed
            return None
        expected = self.session_of(who).encode()
        return who if hmac.compare_digest(given.encode(), expected) else None

    def _basic(self, given: str) -> Who | None:
        try:
            name, sep, password = base64.b64decode(given, validate=True).decode().partition(":")
        except ValueError:
            return None
        return self.log_in(name, password) if sep else None

    def _identify(self, request: Request) -> tuple[Who | None, str]:
        """Who the request is from and how it said so: ``bearer``, ``basic`` (a user's name
        and password, for scripts) or ``cookie``. A header that names no one falls back to
        the cookie."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.token_matches(given.strip()):
            return TOKEN_HOLDER, "bearer"
        if scheme == "basic" and self.users:
            who = self._basic(given.strip())
            if who is not None:
                return who, "basic"
        return self._session(request.cookies.get(SESSION_COOKIE, "")), "cookie"

    def identify(self, request: Request) -> tuple[Who | None, str]:
        """:meth:`_identify`, once per request (a password's check costs some 50 ms)."""
        known = request.scope.get(IDENTIFIED)
        if known is None:
            known = request.scope[IDENTIFIED] = self._identify(request)
        return known

    def who(self, request: Request) -> Who | None:
        return self.identify(request)[0]

    def csrf_for(self, request: Request) -> str:
        """The CSRF token of the request's session ("" when it has none that may act)."""
        who, how = self.identify(request)
        if who is None or not who.acts or how != "cookie":
            return ""
        return self.csrf_of(request.cookies.get(SESSION_COOKIE, ""))

    def check_host(self, request: Request) -> None:
        """A loopback server answers loopback names only (no DNS rebinding)."""
        if not self.reads_open:
            return
        host = urlsplit(f"//{request.headers.get('host', '')}").hostname or ""
        if not is_loopback(host):
            raise Refused(403, f"host {host!r} is not this machine's loopback name")

    def check_read(self, request: Request) -> None:
        if not (self.reads_open or self.who(request)):
            raise Refused(401, "log in first: this server is read by its users and its "
                               "operator token only")  # fmt: skip

    def check_act(self, request: Request, form_csrf: str | None = None) -> None:
        """An action needs an operator; through the cookie or a password, also proof it is
        not cross-site (a browser may send either on its own; never a bearer token)."""
        who, how = self.identify(request)
        if who is None:
            raise Refused(401, "log in as an operator first (an operator user or "
                               "BGPROC_WEB_TOKEN)")  # fmt: skip
        if not who.acts:
            raise Refused(403, f"{who.label} is a viewer: only an operator may change anything")
        if how == "bearer":
            return
        self.check_origin(request)
        if how == "basic":
            return
        given = request.headers.get(CSRF_HEADER) or form_csrf or ""
        if not hmac.compare_digest(given.encode(), self.csrf_for(request).encode()):
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
