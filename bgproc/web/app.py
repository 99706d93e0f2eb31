"""The ASGI application of ``bgproc web``: its routes, pages, API and static files.

The app holds an interactive installation (its clients give up at once when Redis or the
database is down, so a request answers 503 instead of hanging) and no connection of its
own: each request takes what it needs from the pools, which drop a dead connection and
open a new one, so the server rides out restarts of either service.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bgproc.installation import Installation
from bgproc.web import pages, statspage
from bgproc.web.api import ENDPOINTS, PREFIX, Web, endpoint
from bgproc.web.auth import Access
from bgproc.web.errors import JSON
from bgproc.web.live import LogPoller, log_events
from bgproc.web.metrics import metrics
from bgproc.web.openapi import openapi


async def openapi_json(request: Request) -> Response:
    return JSON(openapi())


async def home(request: Request) -> Response:
    return RedirectResponse("/monitor", status_code=303)


def _page_routes() -> list[BaseRoute]:
    p, acting = pages.page, {"acts": True}
    routes: list[BaseRoute] = [
        Route("/", home),
        Route("/requests", p(pages.requests_page)),
        Route("/requests/new", p(pages.new_request_page)),
        Route("/requests/new", p(pages.create_request, **acting), methods=["POST"]),
        Route("/requests/{id}", p(pages.request_page)),
        Route("/requests/{id}/edit", p(pages.edit_request_page)),
        Route("/requests/{id}/edit", p(pages.update_request, **acting), methods=["POST"]),
        Route("/monitor", p(pages.monitor_page)),
        Route("/runs/{id}", p(pages.run_page)),
        Route("/runs/{id}/kill", p(pages.kill_run, **acting), methods=["POST"]),
        Route("/runs/{id}/rerun", p(pages.rerun_run, **acting), methods=["POST"]),
        Route("/requests/{id}/run", p(pages.run_request, **acting), methods=["POST"]),
        Route("/stats", p(statspage.stats_page)),
        Route("/workers", p(pages.workers_page)),
        Route("/processes", p(pages.processes_page)),
        Route("/groups", p(pages.groups_page)),
        Route("/groups/{ident}", p(pages.group_page)),
        Route("/login", p(pages.login_page, public=True)),
        Route("/login", p(pages.login, public=True), methods=["POST"]),
        Route("/logout", p(pages.logout, public=True), methods=["POST"]),
    ]
    for verb in ("schedule", "unschedule", "reschedule", "delete"):
        handler = p(pages.request_action(verb), **acting)
        routes.append(Route(f"/requests/{{id}}/{verb}", handler, methods=["POST"]))
    return routes


def create_app(installation: Installation, access: Access) -> Starlette:
    """The whole web front end of ``installation``."""
    routes: list[BaseRoute] = [
        Route(PREFIX + "/openapi.json", openapi_json),
        Route("/metrics", metrics),
        Route(PREFIX + "/runs/{id}/log/stream", log_events),
        *(Route(PREFIX + e.path, endpoint(e), methods=[e.method]) for e in ENDPOINTS),
        *_page_routes(),
        Mount("/static", StaticFiles(packages=[("bgproc.web", "static")]), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.web = Web(installation, access)
    app.state.log_poller = LogPoller(installation.runs)
    return app
