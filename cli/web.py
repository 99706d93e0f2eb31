"""``bgproc web``: the Process Request and Process Monitor windows in a browser, and /api/v1.

Starlette, uvicorn and Jinja2 are imported when the server starts, never for ``--help``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from bgproc.errors import InvalidInput
from bgproc.installation import Installation
from bgproc.timing.inputs import parse_int
from cli.output import say

DEFAULT_BIND = "127.0.0.1:8765"
SHUTDOWN_GRACE_S = 3  # open log streams are cut after this on Ctrl-C / SIGTERM


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8765`` for IPv6) as a host and a port."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise InvalidInput("bind", f"{text!r} is not HOST:PORT (e.g. {DEFAULT_BIND})")
    return host.strip("[]"), parse_int(port, "bind", 1, 65535)


def checked_bind(text: str, token: str) -> tuple[str, int, bool]:
    """Where to listen, and whether that is loopback only: any other address is refused
    without the operator token (nothing would protect it)."""
    from bgproc.web.auth import is_loopback

    host, port = parse_bind(text)
    loopback = is_loopback(host)
    if not loopback and not token:
        raise InvalidInput(
            "bind", f"{host} is not a loopback address: set BGPROC_WEB_TOKEN to serve it"
        )
    return host, port, loopback


@click.command()
@click.option(
    "--bind",
    default=DEFAULT_BIND,
    metavar="HOST:PORT",
    help=f"Where to listen (default {DEFAULT_BIND}). Any address but loopback needs "
    "BGPROC_WEB_TOKEN.",
)
@click.pass_obj
def web(installation: Installation, bind: str) -> None:
    """Serve the web windows (Process Requests, Process Monitor, workers) and /api/v1.

    Operator actions (create, schedule, kill…) need the operator token: BGPROC_WEB_TOKEN,
    or, when it is not set, one made up at start and printed as a login link. Reading is
    open on a loopback address; on any other address everything needs the token, and the
    server refuses to start without BGPROC_WEB_TOKEN.
    """
    from bgproc.web.auth import Access, new_token

    token = installation.settings.web_token
    host, port, loopback = checked_bind(bind, token)
    import uvicorn

    from bgproc.web.app import create_app

    _warm(installation)
    access = Access(token or new_token(), reads_open=loopback)
    app = create_app(installation, access)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    if token:
        say(f"bgproc web: {url}/ (operator token: BGPROC_WEB_TOKEN)")
    else:
        say(f"bgproc web: {url}/ (operator login: {url}/login?token={access.token})")
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )  # fmt: skip
    _server_class(uvicorn.Server)(config).run()


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
