"""``bgproc web`` in a real browser: headless Chromium (Debian's) driven by Playwright,
against a real ``bgproc web`` subprocess beside a real worker and beat.

A screenshot of the page is kept in the test's tmp_path when a test fails. Without
/usr/bin/chromium (``.ci/setup`` installs it) or Playwright the browser tests are skipped,
saying so.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bgproc.statuses import RequestStatus, RunStatus
from tests.e2e.conftest import FAILED, Proc, Stack
from tests.e2e.services import PrivateRedis, free_port
from tests.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "e2e-operator-token"
QUIET_S = 3.0  # after Unschedule, no run may start: watched this long (the wait IS the test)
SCRIPT = "<script>alert(1)</script>"
UI_TIMEOUT_MS = 20_000


@dataclass
class Server:
    """A running ``bgproc web``."""

    proc: Proc
    url: str

    def get(self, path: str) -> tuple[int, Any]:
        """GET ``path``: its status and JSON (or text), whatever the status."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode()


def start_web(stack: Stack, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    proc = stack.spawn("web", "web", "--bind", f"127.0.0.1:{port}",
                       env=env if env is not None else {"BGPROC_WEB_TOKEN": TOKEN})  # fmt: skip
    server = Server(proc, f"http://127.0.0.1:{port}")
    proc.wait_log("bgproc web:")

    def answers() -> bool:
        assert proc.alive(), proc.tail()
        try:
            return server.get("/api/v1/processes")[0] == 200
        except OSError:
            return False

    wait_until(answers, 30, 0.1, "bgproc web to answer")
    return server


@pytest.fixture
def web(stack: Stack) -> Server:
    return start_web(stack)


@contextmanager
def browser_tab(url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A browser tab on the server at ``url``; its screenshot is kept if the test fails."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (.ci/setup installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip's playwright is missing")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        tab = browser.new_page(base_url=url)
        tab.set_default_timeout(UI_TIMEOUT_MS)
        alerts: list[str] = []
        tab.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
        try:
            yield tab
        finally:
            if request.node.stash.get(FAILED, False):
                shot = tmp_path / "failure.png"
                tab.screenshot(path=str(shot), full_page=True)
                print(f"screenshot of the failing page: {shot}")
            browser.close()
        assert alerts == [], f"a script ran in the page: {alerts}"


@pytest.fixture
def page(web: Server, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A browser tab logged in with the token."""
    with browser_tab(web.url, tmp_path, request) as tab:
        tab.goto(f"/login?token={TOKEN}")
        yield tab


def expect() -> Any:
    return pytest.importorskip("playwright.sync_api").expect


def test_create_an_every_second_request_see_its_runs_then_unschedule(
    stack: Stack, page: Any
) -> None:
    stack.worker_and_beat()
    page.goto("/requests/new")
    page.select_option("#f-target", "sample.echo")
    page.fill("#f-params", f"note={SCRIPT}")
    page.select_option("#f-timing", "scheduled")
    page.select_option("#f-frequency", "seconds")
    page.fill("#f-interval", "1")
    expect()(page.locator("#preview-description")).to_contain_text("Every second")
    expect()(page.locator("#preview-fires li")).to_have_count(5)
    page.click("#request-form button[type=submit]")
    page.wait_for_url("**/requests/1")
    expect()(page.locator("#request-status")).to_have_text("scheduled")

    page.goto("/monitor?request=1")  # the table refreshes itself: runs appear as they happen
    expect()(page.locator("#runs tr[data-run] >> text=success")).not_to_have_count(0)
    wait_until(lambda: page.locator("#runs tr[data-run]").count() >= 3, 20, 0.2, "3 runs shown")
    first = page.locator("#runs tr[data-run]").last.get_attribute("data-run")
    page.goto(f"/runs/{first}")
    expect()(page.locator("#run-params")).to_contain_text(f"note={SCRIPT}")  # as text
    expect()(page.locator("#log")).to_contain_text(SCRIPT)

    page.goto("/requests/1")
    page.click("text=Unschedule")
    expect()(page.locator("#request-status")).to_have_text("unscheduled")
    returned = time.time()
    assert stack.status(1) is RequestStatus.unscheduled
    time.sleep(QUIET_S)  # watched: nothing may start
    late = [r for r in stack.runs(1) if r.queued_at and r.queued_at.timestamp() > returned]
    assert late == []


def test_a_running_runs_log_arrives_live_and_kill_ends_it_killed(
    stack: Stack, page: Any
) -> None:
    stack.worker()
    run_id = int(stack.cli("run", "sample.sleep", "--param", "seconds=30").out)
    page.goto(f"/runs/{run_id}")
    expect()(page.locator("#log")).to_contain_text("slept 2 s")  # without reloading the page
    assert stack.runs()[-1].status is RunStatus.processing  # it arrived before the end
    expect()(page.locator("#run-progress-text")).to_contain_text(" / 30 (")  # live as well
    shown = page.locator("#run-progress-text").text_content()
    expect()(page.locator("#run-progress-text")).not_to_have_text(shown)  # and it moves
    assert float(page.locator("#run-progress-bar").get_attribute("value") or 0) > 0
    page.click("text=Kill")
    expect()(page.locator("#run-status")).to_have_text("killed")
    assert stack.runs()[-1].status is RunStatus.killed


def test_run_now_then_rerun_from_the_pages(stack: Stack, page: Any) -> None:
    stack.worker()
    daily = ["--frequency", "daily", "--at", "09:30", "--start", "2030-01-07"]
    number = stack.create("sample.echo", "--param", "who=ana", "--timing", "scheduled", *daily)
    before = stack.cli("request", "show", str(number), "--json").json()
    page.goto(f"/requests/{number}")
    page.click("text=Run now")
    page.wait_for_url("**/runs/*")
    expect()(page.locator("#run-status")).to_have_text("success")
    first = int(page.url.rsplit("/", 1)[1])
    page.click("text=Rerun")
    page.wait_for_url(lambda url: not url.endswith(f"/runs/{first}"))
    expect()(page.locator("#run-status")).to_have_text("success")
    expect()(page.locator("#run-params")).to_contain_text("who=ana")
    runs = stack.runs()
    assert [(r.request_id, r.params) for r in runs] == [(number, {"who": "ana"}),
                                                         (None, {"who": "ana"})]  # fmt: skip
    assert stack.cli("request", "show", str(number), "--json").json() == before


def test_an_invalid_field_is_shown_beside_it_and_nothing_is_written(
    stack: Stack, page: Any
) -> None:
    page.goto("/requests/new")
    page.select_option("#f-target", "sample.echo")
    page.select_option("#f-timing", "scheduled")
    page.select_option("#f-frequency", "monthly")
    page.fill("#f-day", "32")
    page.fill("#f-at", "10:00")
    expect()(page.locator("#day-preview-error")).to_have_text("must be between 1 and 31 (got 32)")
    page.click("#request-form button[type=submit]")
    expect()(page.locator("#day-error")).to_have_text("must be between 1 and 31 (got 32)")
    assert page.locator("#f-day").get_attribute("aria-invalid") == "true"
    assert stack.cli("request", "list", "--json").json() == []
    assert not [key for key in stack.redis_keys() if "redbeat:request" in key]


def test_the_stats_page_draws_its_charts(stack: Stack, page: Any) -> None:
    stack.worker()
    for process in ("sample.echo", "sample.echo", "sample.fail"):
        stack.cli("run", process, "--wait", check=False)
    page.goto("/")
    page.click("nav >> text=Stats")
    page.wait_for_url("**/stats")
    runs = page.locator("svg#runs-chart")
    expect()(runs).to_be_visible()
    expect()(runs.locator("desc")).to_contain_text("3 runs from")
    expect()(runs.locator("g.bar rect[data-status=error]")).to_have_count(1)
    box = runs.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100  # drawn, not empty
    durations = page.locator("svg#durations-chart")
    expect()(durations).to_be_visible()
    expect()(durations.locator("g.point")).not_to_have_count(0)
    expect()(page.locator("#durations-heading")).to_have_text("Duration per hour of sample.echo")
    page.click("#stats-table >> text=sample.fail")
    expect()(page.locator("#durations-heading")).to_have_text("Duration per hour of sample.fail")
    expect()(page.locator("svg#runs-chart desc")).to_contain_text("1 run from")


def test_a_non_loopback_bind_without_a_token_is_refused(stack: Stack) -> None:
    refused = stack.cli("web", "--bind", "0.0.0.0:8765", check=False)
    assert refused.code == 2
    assert refused.err.strip().splitlines() == [
        "Error: bind: 0.0.0.0 is not a loopback address: set BGPROC_WEB_TOKEN or "
        "BGPROC_WEB_USERS_FILE to serve it"
    ]


def test_the_server_rides_out_a_redis_restart(stack: Stack, private_redis: PrivateRedis) -> None:
    server = start_web(stack)
    assert server.get("/api/v1/queues")[0] == 200
    private_redis.kill()
    status, body = server.get("/api/v1/queues")
    assert status == 503 and body["error"]["message"].startswith("redis is unreachable")
    status, text = server.get("/workers")
    assert status == 503 and "redis is unreachable" in text
    assert server.get("/api/v1/runs")[0] == 200  # what needs only the database still works
    private_redis.start()
    assert server.get("/api/v1/queues")[0] == 200  # the very next request
    assert server.get("/workers")[0] == 200
    assert server.proc.alive()


PASSWORDS = {"ana": "ana's long password", "bob": "bob's long password"}


@pytest.fixture
def users_tab(stack: Stack, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A browser tab on a ``bgproc web`` of users ana (viewer) and bob (operator), made by
    ``bgproc web passwd``, and no token."""
    users = tmp_path / "users"
    lines = [stack.cli("web", "passwd", name, "--role", role, stdin=PASSWORDS[name] + "\n").out
             for name, role in (("ana", "viewer"), ("bob", "operator"))]  # fmt: skip
    users.write_text("# bgproc web users\n" + "".join(lines))
    users.chmod(0o600)
    server = start_web(stack, env={"BGPROC_WEB_USERS_FILE": str(users)})
    assert "log in as one of the 2 users of" in server.proc.tail()
    with browser_tab(server.url, tmp_path, request) as tab:
        yield tab


def log_in(tab: Any, name: str, password: str) -> None:
    tab.goto("/login?next=/monitor")
    tab.fill("#name", name)
    tab.fill("#password", password)
    tab.click("form[aria-label='Log in as a user'] button[type=submit]")


def test_a_viewer_sees_no_buttons_an_operator_acts(stack: Stack, users_tab: Any) -> None:
    page = users_tab
    number = stack.create("sample.echo", "--timing", "immediate", "--no-schedule")
    run_id = int(stack.cli("run", "sample.sleep", "--param", "seconds=30").out)  # queued
    log_in(page, "ana", "not ana's password")
    expect()(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    log_in(page, "ana", PASSWORDS["ana"])
    page.wait_for_url("**/monitor")
    expect()(page.locator("#who")).to_have_text("ana (viewer)")
    page.goto(f"/requests/{number}")
    expect()(page.locator(".actions")).to_contain_text("Read-only")
    for label in ("Delete", "Schedule", "Run now"):
        expect()(page.get_by_role("button", name=label)).to_have_count(0)
    page.goto(f"/runs/{run_id}")
    expect()(page.locator("#run-status")).to_have_text("queued")
    expect()(page.get_by_role("button", name="Kill")).to_have_count(0)
    page.get_by_role("button", name="Log out").click()
    expect()(page.locator("#who")).to_have_count(0)

    log_in(page, "bob", PASSWORDS["bob"])
    expect()(page.locator("#who")).to_have_text("bob (operator)")
    page.goto(f"/runs/{run_id}")
    expect()(page.get_by_role("button", name="Kill")).to_have_count(1)
    page.goto(f"/requests/{number}")
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url("**/requests")
    assert stack.cli("request", "list", "--json").json() == []
