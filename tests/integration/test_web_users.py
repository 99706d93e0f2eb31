"""Named users of ``bgproc web`` off loopback: a viewer reads everything and changes
nothing, an operator acts as the token holder does, a wrong password is one message and
never written anywhere, a forged session is refused."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from bgproc.statuses import RunStatus
from bgproc.web.api import ENDPOINTS, PREFIX
from bgproc.web.app import create_app
from bgproc.web.auth import CSRF_HEADER, SESSION_COOKIE, Access, Who
from bgproc.web.users import FREE_FAILURES, User, parse_users, user_line
from bgproc.web.users import Role as R
from tests.integration.test_web_api import (  # noqa: F401 (fixture `web`)
    TOKEN,
    Web,
    web_app,
)

SITE = "http://bgproc.example"
PASSWORDS = {"ana": "ana's long password", "bob": "bob's long password"}
USERS = parse_users(f"{user_line('ana', R.viewer, PASSWORDS['ana'])}\n"
                    f"{user_line('bob', R.operator, PASSWORDS['bob'])}\n", "users")  # fmt: skip
WRONG = "Wrong user name or password."
BODY = {"process": "sample.echo", "timing": "immediate"}


@pytest.fixture(name="site")
def users_site(web: Web) -> Iterator[TestClient]:
    """The app on a non-loopback address, with users ana (viewer) and bob (operator)."""
    app = create_app(web.installation, Access(TOKEN, reads_open=False, users=USERS))
    with TestClient(app, base_url=SITE) as client:
        yield client


def log_in(client: TestClient, name: str, password: str | None = None) -> Any:
    given = PASSWORDS[name] if password is None else password
    return client.post("/login", data={"name": name, "password": given, "next": "/requests"},
                       follow_redirects=False)  # fmt: skip


def csrf_of(client: TestClient) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]*)">', client.get("/monitor").text)
    assert found is not None
    return found.group(1)


def basic(name: str, password: str | None = None) -> dict[str, str]:
    pair = f"{name}:{PASSWORDS[name] if password is None else password}".encode()
    return {"authorization": "Basic " + base64.b64encode(pair).decode()}


def url_of(path: str) -> str:
    return PREFIX + path.replace("{id}", "1").replace("{ident}", "1")


def test_a_viewer_reads_every_page_and_endpoint_but_changes_nothing(
    web: Web, site: TestClient
) -> None:
    number = int(web.cli.ok("request", "create", "sample.echo", "--timing", "immediate",
                            "--no-schedule").out)  # fmt: skip
    assert site.get("/api/v1/runs").status_code == 401
    answer = log_in(site, "ana")
    assert answer.status_code == 303 and answer.headers["location"] == "/requests"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    for spec in ENDPOINTS:
        if not spec.acts:
            assert site.get(url_of(spec.path)).status_code not in (401, 403), spec.path
    for path in ("/monitor", "/requests", f"/requests/{number}", "/workers", "/stats",
                 "/processes", "/groups", "/metrics"):  # fmt: skip
        assert site.get(path).status_code == 200, path
    csrf = csrf_of(site)
    assert csrf == ""  # a viewer's pages carry no CSRF token: no form of theirs may act
    for spec in [spec for spec in ENDPOINTS if spec.acts]:
        for headers in ({CSRF_HEADER: Access(TOKEN, False).csrf_value, "origin": SITE},
                        basic("ana")):  # fmt: skip
            refused = site.request(spec.method, url_of(spec.path), json=BODY, headers=headers)
            assert refused.status_code == 403, (spec.path, refused.text)
            message = refused.json()["error"]["message"]
            assert message == "ana is a viewer: only an operator may change anything"
    for action in ("schedule", "delete", "run"):
        page = site.post(f"/requests/{number}/{action}", data={"csrf": csrf},
                         follow_redirects=False)  # fmt: skip
        assert page.status_code == 403 and "ana is a viewer" in page.text
    assert web.cli.ok("request", "show", str(number), "--json").json()["status"] == "unscheduled"
    assert [r["id"] for r in web.cli.ok("request", "list", "--json").json()] == [number]
    assert web.cli.ok("monitor", "list", "--json").json() == []


def test_the_pages_show_who_is_logged_in_and_no_buttons_to_a_viewer(
    web: Web, site: TestClient
) -> None:
    number = web.cli.ok("request", "create", "sample.echo", "--timing", "immediate",
                        "--no-schedule").out.strip()  # fmt: skip
    run = web.run(process="sample.sleep", status=RunStatus.processing, ended_at=None,
                  duration_ms=None)  # fmt: skip
    log_in(site, "ana")
    request_page = site.get(f"/requests/{number}").text
    assert '<span id="who">ana (viewer)</span>' in request_page and "Log out" in request_page
    assert "Read-only: only an operator may change it." in request_page
    assert ">Delete<" not in request_page and ">Run now<" not in request_page
    run_page = site.get(f"/runs/{run}").text
    assert ">Kill<" not in run_page and "only an operator may kill it" in run_page
    assert "New request" not in site.get("/requests").text
    assert 'id="read-only"' in site.get("/requests/new").text
    site.post("/logout")
    log_in(site, "bob")
    request_page = site.get(f"/requests/{number}").text
    assert '<span id="who">bob (operator)</span>' in request_page
    assert ">Delete<" in request_page and ">Run now<" in request_page
    assert ">Kill<" in site.get(f"/runs/{run}").text


def test_an_operator_acts_through_the_pages_the_api_and_basic_auth(
    web: Web, site: TestClient
) -> None:
    log_in(site, "bob")
    csrf = csrf_of(site)
    assert csrf and csrf != Access(TOKEN, False).csrf_value  # a session's own
    assert site.post("/api/v1/requests", json=BODY).status_code == 403  # no CSRF token
    evil = site.post("/api/v1/requests", json=BODY,
                     headers={CSRF_HEADER: csrf, "origin": "https://evil.example"})  # fmt: skip
    assert evil.status_code == 403
    daily = {"process": "sample.echo", "timing": "scheduled", "frequency": "daily", "at": "09:30",
             "start": "2030-01-07T00:00", "schedule": False}  # fmt: skip
    made = site.post("/api/v1/requests", json=daily, headers={CSRF_HEADER: csrf, "origin": SITE})
    assert made.status_code == 201, made.text
    number = made.json()["id"]
    form = site.post(f"/requests/{number}/schedule", data={"csrf": csrf}, follow_redirects=False)
    assert form.status_code == 303
    site.cookies.clear()
    with_password = TestClient(site.app, base_url=SITE, headers=basic("bob"))
    assert with_password.get("/api/v1/requests").status_code == 200
    assert with_password.post(f"/api/v1/requests/{number}/unschedule").status_code == 200
    cross_site = with_password.post(f"/api/v1/requests/{number}/schedule",
                                    headers={"origin": "https://evil.example"})  # fmt: skip
    assert cross_site.status_code == 403
    assert site.get("/api/v1/requests", headers=basic("bob", "wrong")).status_code == 401
    assert web.cli.ok("request", "show", str(number), "--json").json()["status"] == "unscheduled"


def test_a_wrong_name_or_password_is_one_message_and_never_written(
    site: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    typed = "bob's long passwore"
    answers = [log_in(site, "bob", typed), log_in(site, "nobody", typed),
               log_in(site, PASSWORDS["bob"], PASSWORDS["bob"])]  # fmt: skip
    for answer in answers:
        assert answer.status_code == 401 and WRONG in answer.text
        assert typed not in answer.text and PASSWORDS["bob"] not in answer.text
        assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert site.get("/api/v1/runs", headers=basic("ana", typed)).status_code == 401
    assert log_in(site, "bob").status_code == 303
    logged = caplog.text
    assert typed not in logged and PASSWORDS["bob"] not in logged
    assert "failed login as 'bob'" in logged
    assert logged.count("failed login with an unknown name") == 2  # a password typed as name


def test_a_forged_or_altered_session_is_refused(web: Web, site: TestClient) -> None:
    ana = log_in(site, "ana").cookies[SESSION_COOKIE]
    name, role, signed = ana.split(".")
    other = Access("another-token", reads_open=False, users=USERS)
    removed = Access(TOKEN, reads_open=False, users={"bob": USERS["bob"]})
    new_password = {**USERS, "ana": User("ana", R.viewer, parse_users(
        user_line("ana", R.viewer, "a new long password"), "users")["ana"].hash)}  # fmt: skip
    forged = [
        f"{name}.operator.{signed}",  # promoted
        f"{base64.urlsafe_b64encode(b'bob').decode().rstrip('=')}.{role}.{signed}",  # renamed
        f"{name}.{role}.{signed[:-1]}{'0' if signed[-1] != '0' else '1'}",  # the seal touched
        other.session_of(Who("bob", R.operator)),  # signed with another server's token
        "", "garbage", "..", f"{name}.{role}",
    ]
    for cookie in forged:
        site.cookies.set(SESSION_COOKIE, cookie)
        assert site.get("/api/v1/runs").status_code == 401, cookie
        assert site.post("/api/v1/requests", json=BODY).status_code == 401, cookie
    site.cookies.set(SESSION_COOKIE, ana)
    assert site.get("/api/v1/runs").status_code == 200
    demoted = {**USERS, "bob": User("bob", R.viewer, USERS["bob"].hash)}
    bob = log_in(site, "bob").cookies[SESSION_COOKIE]
    with TestClient(create_app(web.installation, Access(TOKEN, False, users=demoted)),
                    base_url=SITE, cookies={SESSION_COOKIE: bob}) as client:  # fmt: skip
        assert client.get("/api/v1/runs").status_code == 401
    for changed in (removed, Access(TOKEN, reads_open=False, users=new_password)):
        app = create_app(web.installation, changed)  # the file changed, the server restarted
        with TestClient(app, base_url=SITE, cookies={SESSION_COOKIE: ana}) as client:
            assert client.get("/api/v1/runs").status_code == 401


def test_a_name_that_keeps_failing_waits(site: TestClient) -> None:
    for _ in range(FREE_FAILURES):
        assert log_in(site, "bob", "not bob's password").status_code == 401
    waiting = log_in(site, "bob")  # the right one, too soon
    assert waiting.status_code == 429 and "Too many failed logins: try again in 1 s" in waiting.text
    assert log_in(site, "ana").status_code == 303  # another name is not slowed
