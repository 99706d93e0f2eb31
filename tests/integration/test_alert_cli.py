"""A request's own alert targets (``--alert-webhook``, ``--alert-email``) and ``bgproc alert
test``, which sends one signed alert now to a receiver started by the test."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from tests.integration.cli_harness import StoreCli, isolated

SECRET = "alert-test-secret"


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Iterator[StoreCli]:  # fmt: skip
    monkeypatch.setenv("BGPROC_ALERT_SECRET", SECRET)
    monkeypatch.delenv("BGPROC_ALERT_WEBHOOK", raising=False)
    monkeypatch.delenv("BGPROC_ALERT_EMAIL", raising=False)
    yield from isolated(StoreCli, db_url, monkeypatch, capsys)


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTP server on a free port that keeps every POST (headers and body)."""
    calls: list[dict[str, Any]] = []

    class Keep(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls.append({"headers": dict(self.headers), "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Keep)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", calls
    server.shutdown()
    server.server_close()


def test_a_requests_own_targets_are_stored_shown_changed_and_cleared(cli: StoreCli) -> None:
    made = cli.ok("request", "create", "sample.echo", "--no-schedule", "--alert-webhook",
                  "https://hooks.example.com/x", "--alert-email", "ops@example.com",
                  "--json").json()  # fmt: skip
    assert made["alerts"] == {"webhook": "https://hooks.example.com/x", "email": "ops@example.com"}
    assert "webhook https://hooks.example.com/x; email ops@example.com" in cli.ok(
        "request", "show", "1").out
    cli.ok("request", "update", "1", "--alert-email", "none")
    shown = cli.ok("request", "show", "1", "--json").json()
    assert shown["alerts"] == {"webhook": "https://hooks.example.com/x", "email": ""}
    assert cli.ok("request", "create", "sample.echo", "--no-schedule",
                  "--json").json()["alerts"] is None  # fmt: skip


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--alert-webhook", "ftp://x"], "Error: alert-webhook: 'ftp://x' is not an http"),
        (["--alert-webhook", "https://"], "Error: alert-webhook: 'https://' is not an http"),
        (["--alert-email", "ops"], "Error: alert-email: 'ops' is not an email address"),
    ],
)
def test_a_bad_target_is_refused_naming_it_and_nothing_is_written(
    cli: StoreCli, args: list[str], said: str
) -> None:
    result = cli("request", "create", "sample.echo", "--no-schedule", *args)
    assert result.code == 2 and result.err.startswith(said), result.err
    assert cli.ok("request", "list", "--json").json() == []


def test_alert_test_sends_one_signed_alert_to_the_requests_webhook(
    cli: StoreCli, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, calls = receiver
    cli.ok("request", "create", "sample.echo", "--no-schedule", "--alert-webhook", url)
    assert cli.ok("alert", "test", "--request", "1").out.strip() == f"sent to webhook {url}"
    [call] = calls
    document = json.loads(call["body"])
    assert (document["event"], document["test"], document["request_id"]) == ("test", True, 1)
    expected = hmac.new(SECRET.encode(), call["body"], hashlib.sha256).hexdigest()
    assert call["headers"]["X-Bgproc-Signature"] == f"sha256={expected}"


def test_alert_test_says_what_failed_and_when_there_is_nowhere_to_send(cli: StoreCli) -> None:
    nowhere = cli("alert", "test")
    assert nowhere.code == 2 and nowhere.err.startswith("Error: alert: no target"), nowhere.err
    refused = cli("alert", "test", "--webhook", "http://127.0.0.1:9/closed")
    assert refused.code == 1 and refused.err.startswith("Error: not sent: webhook"), refused.err
