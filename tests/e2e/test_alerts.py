"""Alerts for real: workers, beats, Redis and SQL, and a webhook receiver of the test's own.

Each failure of an always-failing request reaches the receiver once, signed, with two
workers and two beats going; an alert whose worker was SIGKILLed while it was being sent
(the receiver holds that first call) is sent again by the worker started next.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from bgproc.statuses import RunStatus
from bgproc.store.models import AlertEvent
from tests.e2e.conftest import Stack
from tests.waiting import wait_until

SECRET = "s3cret"
TIMEOUT_S = 60


class Receiver:
    """An HTTP server in a thread that keeps every POST; with ``hold_first``, the first call
    gets no answer until the test ends (its sender dies meanwhile)."""

    def __init__(self, hold_first: bool = False) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server names it
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.calls.append((dict(self.headers), body))
                    first = len(receiver.calls) == 1
                if first and hold_first:
                    receiver.release.wait(TIMEOUT_S)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def documents(self) -> list[dict[str, object]]:
        with self._lock:
            return [json.loads(body) for _, body in self.calls]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def _signed(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Bgproc-Signature", ""), expected)


def _all_sent(stack: Stack, count: int) -> bool:
    with stack._reader.connect() as connection:
        sent = connection.execute(select(AlertEvent.sent_at)).all()
    return len(sent) == count and all(row[0] is not None for row in sent)


def test_each_failure_reaches_the_webhook_once_signed_with_two_workers_and_two_beats(
    stack: Stack, receiver: Receiver
) -> None:
    # Given two workers and two beats, alerts going to the receiver, signed
    stack.env.update(BGPROC_ALERT_WEBHOOK=receiver.url, BGPROC_ALERT_SECRET=SECRET)
    workers = [stack.worker(name, ready=False) for name in ("w1", "w2")]
    stack.beat("beat1")
    stack.beat("beat2", holder=False)
    for worker in workers:
        worker.wait_log(" ready.")

    # When a request that always fails fires three times
    request_id = stack.create("sample.fail", "--timing", "scheduled", "--frequency", "seconds",
                              "--interval", "1", "--repetitions", "3")  # fmt: skip
    failed = wait_until(
        lambda: [r.id for r in stack.runs(request_id) if r.status is RunStatus.error]
        if len(stack.runs(request_id)) == 3 and all(
            r.status is RunStatus.error for r in stack.runs(request_id)) else None,
        TIMEOUT_S, 0.2, "three failed runs",
    )  # fmt: skip
    wait_until(lambda: _all_sent(stack, 3), TIMEOUT_S, 0.2, "three alerts sent")

    # Then the receiver got exactly one signed call per failure, telling it
    documents = receiver.documents()
    assert sorted(d["run_id"] for d in documents) == sorted(failed)
    assert all(_signed(headers, body) for headers, body in receiver.calls)
    assert {(d["event"], d["process"], d["request_id"]) for d in documents} == {
        ("error", "sample.fail", request_id)
    }
    assert all(d["error"] == "RuntimeError: failed on purpose" for d in documents)


def test_an_alert_whose_sender_was_killed_mid_send_is_sent_after_the_restart(
    stack: Stack,
) -> None:
    # Given a receiver that holds its first call, and a worker with a short alert lease
    receiver = Receiver(hold_first=True)
    try:
        stack.env.update(BGPROC_ALERT_WEBHOOK=receiver.url, BGPROC_ALERT_SECRET=SECRET,
                         BGPROC_ALERT_LEASE_S="4", BGPROC_ALERT_TIMEOUT_S="3")  # fmt: skip
        worker = stack.worker("w1")

        # When a run fails and its worker is SIGKILLed while it sends the alert
        run_id = int(stack.cli("run", "sample.fail").out.strip())
        wait_until(lambda: receiver.calls, TIMEOUT_S, 0.1, "the first call")
        worker.kill9()

        # And a worker starts again
        stack.worker("w2")

        # Then the alert is sent again, and then marked sent
        wait_until(lambda: len(receiver.calls) >= 2, TIMEOUT_S, 0.2, "the call again")
        wait_until(lambda: _all_sent(stack, 1), TIMEOUT_S, 0.2, "the alert marked sent")
        documents = receiver.documents()
        assert {d["run_id"] for d in documents} == {run_id}
        assert len({headers["X-Bgproc-Delivery"] for headers, _ in receiver.calls}) == 1
        assert all(_signed(headers, body) for headers, body in receiver.calls)
    finally:
        receiver.close()
