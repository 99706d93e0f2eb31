"""``bgproc web``: the Process Request and Process Monitor windows in a browser, and /api/v1.

Starlette, uvicorn and Jinja2 are imported when the server starts, never for ``--help``;
hashlib's scrypt (:mod:`bgproc.web.users`) when users are read or a password hashed.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from bgproc.errors import InvalidInput
from bgproc.installation import Installation
from bgproc.timing.inputs import parse_int
from cli.output import say, tell

if TYPE_CHECKING:
    from bgproc.web.users import User

DEFAULT_BIND = "127.0.0.1:8765"
SHUTDOWN_GRACE_S = 3  # open log streams are cut after this on Ctrl-C / SIGTERM


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8765`` for IPv6) as a host and a port."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise InvalidInput("bind", f"{text!r} is not HOST:PORT (e.g. {DEFAULT_BIND})")
    return host.strip("[]"), parse_int(port, "bind", 1, 65535)


def web_users(installation: Installation) -> dict[str, User]:
    """The users of ``BGPROC_WEB_USERS_FILE`` (none when it is unset); a bad line refuses
    to start, naming the file and the line."""
    path = installation.settings.web_users_file
    if not path:
        return {}
    from bgproc.web.users import load_users

    users = load_users(path)
    if os.stat(path).st_mode & 0o007:
        tell(f"bgproc web: warning: every user of this machine may read {path} (chmod 600 it)")
    return users


def checked_bind(text: str, token: str, users: bool) -> tuple[str, int, bool]:
    """Where to listen, and whether that is loopback only: any other address is refused
    without the operator token or users (nothing would protect it)."""
    from bgproc.web.auth import is_loopback

    host, port = parse_bind(text)
    loopback = is_loopback(host)
    if not loopback and not (token or users):
        raise InvalidInput("bind", f"{host} is not a loopback address: set BGPROC_WEB_TOKEN "
                                   "or BGPROC_WEB_USERS_FILE to serve it")  # fmt: skip
    return host, port, loopback


@click.group(invoke_without_command=True)
@click.option(
    "--bind",
    default=DEFAULT_BIND,
    metavar="HOST:PORT",
    help=f"Where to listen (default {DEFAULT_BIND}). Any address but loopback needs "
    "BGPROC_WEB_TOKEN or BGPROC_WEB_USERS_FILE.",
)
@click.pass_context
def web(ctx: click.Context, bind: str) -> None:
    """Serve the web windows (Process Requests, Process Monitor, workers) and /api/v1.

    Operator actions (create, schedule, kill…) need an operator: a user of
    BGPROC_WEB_USERS_FILE with the operator role (see `bgproc web passwd`), or the operator
    token, BGPROC_WEB_TOKEN (when neither is set, a token is made up at start and printed as
    a login link). A viewer user reads only. Reading is open on a loopback address; on any
    other address everything needs a user or the token, and the server refuses to start
    without either.
    """
    if ctx.invoked_subcommand is not None:
        return
    from bgproc.web.auth import Access, new_token

    installation: Installation = ctx.obj
    token = installation.settings.web_token
    users = web_users(installation)
    host, port, loopback = checked_bind(bind, token, bool(users))
    import uvicorn

    from bgproc.web.app import create_app

    _warm(installation)
    access = Access(token or new_token(), reads_open=loopback, users=users)
    app = create_app(installation, access)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    named = f"{len(users)} users of {installation.settings.web_users_file}"
    if token:
        say(f"bgproc web: {url}/ (operator token: BGPROC_WEB_TOKEN{'; ' + named if users else ''})")
    elif users:  # the made-up token only signs sessions: no one needs to see it
        say(f"bgproc web: {url}/ (log in as one of the {named})")
    else:
        say(f"bgproc web: {url}/ (operator login: {url}/login?token={access.token})")
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )  # fmt: skip
    _server_class(uvicorn.Server)(config).run()


@web.command()
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), default="viewer",
              show_default=True, help="viewer reads only; operator acts too.")  # fmt: skip
def passwd(name: str, role: str) -> None:
    """Print a line of BGPROC_WEB_USERS_FILE: NAME:ROLE:HASH (scrypt) of a password.

    The password is read twice from the terminal, hidden, or as one line of stdin when it
    is not a terminal; never from the command line (it would stay in the shell's history
    and the process list). Add the line to the file (chmod 600) and restart bgproc web;
    a line already there for NAME must go (a name may appear once).
    """
    from bgproc.web.users import Role, check_name, user_line

    check_name(name)  # before the password is typed
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    say(user_line(name, Role(role), password))


def _server_class(base: type[Any]) -> type[Any]:
    """uvicorn's server, ending with exit 0 on SIGTERM or Ctrl-C as worker and beat do
    (uvicorn raises the signal again once it has shut down)."""

    class Server(base):  # type: ignore[misc, valid-type]
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            handled = (signal.SIGINT, signal.SIGTERM)
            before = {number: signal.signal(number, self.handle_exit) for number in handled}
            try:
                yield
            finally:
                for number, handler in before.items():
                    signal.signal(number, handler)

    return Server


def _warm(installation: Installation) -> None:
    """Build the installation's parts once, here: request threads then only use them."""
    for part in ("registry", "engine", "runs", "requests", "groups", "control", "killer",
                 "redelivery", "entries", "redis"):  # fmt: skip
        getattr(installation, part)
    installation.requests.entries  # noqa: B018 (a cached property: built now)
