"""Named users of ``bgproc web``, each a ``viewer`` (reads) or an ``operator`` (acts too).

They live in a file named by ``BGPROC_WEB_USERS_FILE``, one a line, ``name:role:hash``
(``#`` starts a comment), made by ``bgproc web passwd NAME``. A password is kept only as
its scrypt hash (the standard library's, with a random salt), written as a string that
names its parameters, ``scrypt$n$r$p$salt$hash`` (base64), so stronger ones can come later
and old lines still verify. Only the standard library: ``bgproc --help`` never loads this.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path

from bgproc.errors import InvalidInput

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # 16 MiB and some 50 ms a check: OWASP's floor
SALT_BYTES = 16
KEY_BYTES = 32
MAX_SCRYPT_N = 2**20  # a line asking for more memory than this is refused, not computed
MIN_PASSWORD_CHARS = 8
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
FILE_SETTING = "BGPROC_WEB_USERS_FILE"


class Role(StrEnum):
    viewer = "viewer"  # reads every page and GET endpoint, never acts
    operator = "operator"  # acts as the token holder does


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    hash: str = field(repr=False)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # maxmem: what OpenSSL needs for these (its default, 32 MiB, stops short of n=2**15)
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=128 * r * (n + p + 2) + 1024)  # fmt: skip


def hash_password(password: str) -> str:
    """The line's hash of ``password``: a new random salt each time."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _parts(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """A stored hash's parameters, salt and key; ValueError saying what is wrong."""
    fields = stored.split("$")
    if len(fields) != 6 or fields[0] != "scrypt":
        raise ValueError("the hash is not scrypt$N$R$P$SALT$HASH (see bgproc web passwd)")
    try:
        n, r, p = (int(number) for number in fields[1:4])
        salt, key = (base64.b64decode(text, validate=True) for text in fields[4:6])
    except (ValueError, binascii.Error):
        raise ValueError("the hash's numbers or base64 are malformed") from None
    if not (1 < n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 0 < r <= 32 and 0 < p <= 16):
        raise ValueError(f"the hash's scrypt parameters n={n} r={r} p={p} are out of range")
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("the hash's salt or key is too short")
    return n, r, p, salt, key


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was made of (a constant-time comparison)."""
    n, r, p, salt, key = _parts(stored)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p)[: len(key)], key)


@cache
def decoy() -> str:
    """A hash checked for a name that is not a user: its answer takes as long."""
    return hash_password(secrets.token_urlsafe(16))


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidInput("name", f"{name!r} is not a user name (letters, digits, . _ @ -, "
                                   "at most 64, starting with a letter or digit)")  # fmt: skip
    return name


def check_new_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput("password", f"must be at least {MIN_PASSWORD_CHARS} characters")
    return password


def user_line(name: str, role: Role, password: str) -> str:
    """The users file's line of a new user (what ``bgproc web passwd`` prints)."""
    return f"{check_name(name)}:{role.value}:{hash_password(check_new_password(password))}"


def parse_users(text: str, source: str) -> dict[str, User]:
    """The users of a file's ``text``; a bad line is refused naming ``source`` and its number."""
    users: dict[str, User] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue

        def bad(why: str, line_number: int = number) -> InvalidInput:
            return InvalidInput(FILE_SETTING, f"{source} line {line_number}: {why}")

        fields = line.split(":")
        if len(fields) != 3:
            raise bad("not NAME:ROLE:HASH")
        name, role, stored = (part.strip() for part in fields)
        if not NAME.fullmatch(name):
            raise bad(f"{name!r} is not a user name")
        if role not in Role.__members__:
            raise bad(f"unknown role {role!r} (viewer or operator)")
        try:
            _parts(stored)
        except ValueError as error:
            raise bad(str(error)) from None
        if name in users:
            raise bad(f"user {name!r} is there twice")
        users[name] = User(name, Role(role), stored)
    return users


def load_users(path: str) -> dict[str, User]:
    """The users of the file at ``path``, refused in one line when it cannot be read."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
        raise InvalidInput(FILE_SETTING, f"cannot read {path}: {why}") from None
    return parse_users(text, path)


FREE_FAILURES = 5  # failed logins of one name before each next one has to wait
MAX_WAIT_S = 60.0
MAX_NAMES_KEPT = 10_000  # names with recent failures remembered (the oldest are forgotten)


@dataclass
class Throttle:
    """Failed logins per name: after a few, the next attempt must wait, doubling up to a
    minute, whether or not the name exists (a guesser learns nothing, and slows down)."""

    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wait_s(self, name: str) -> float:
        """How long ``name`` must still wait before its next attempt (0: try now)."""
        with self._lock:
            count, last = self._failures.get(name, (0, 0.0))
        if count < FREE_FAILURES:
            return 0.0
        wait = min(2.0 ** (count - FREE_FAILURES), MAX_WAIT_S)
        return max(0.0, last + wait - self.clock())

    def failed(self, name: str) -> None:
        with self._lock:
            count, _ = self._failures.pop(name, (0, 0.0))
            self._failures[name] = (count + 1, self.clock())  # last in: the newest
            while len(self._failures) > MAX_NAMES_KEPT:
                del self._failures[next(iter(self._failures))]

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)
