"""The notifier: a daemon thread of every worker's main process that sends the outbox's
alerts, off every run's path.

Each round claims the due rows with a lease (:func:`bgproc.store.alerts.claim_due`), sends
each to its targets, and marks it sent, or due again after a backoff with the channels that
took it kept. A notifier killed mid-send leaves its rows claimed; once their lease is over,
any notifier claims and sends them again: at least once, and the delivery header (the row's
id) lets a receiver drop a repeat.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bgproc.outages import Outages, outage_of
from bgproc.services.alerting import send, targets_for
from bgproc.store.alerts import Claimed, alert_subject, claim_due, mark_failed, mark_sent
from bgproc.timing.alerts import backoff_s, payload

if TYPE_CHECKING:
    from bgproc.installation import Installation

logger = logging.getLogger("bgproc.notifier")
NOTIFY_EVERY_S = 1.0  # how soon an alert leaves after its event is stored


class Notifier:
    """Sends the alerts of the outbox, one round a second, until stopped."""

    def __init__(self, installation: Installation, every_s: float = NOTIFY_EVERY_S) -> None:
        self.installation = installation
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bgproc-notifier", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        outages = Outages(logger, "alerts")
        while not self._stop.is_set():
            try:
                self.round(datetime.now(UTC))
            except Exception as error:
                service = outage_of(error)
                if service is None:
                    logger.exception("alerts: round failed; the next one retries")
                else:
                    outages.lost(service, error)
            else:
                outages.all_back()
            self._stop.wait(self.every_s)

    def round(self, now: datetime) -> int:
        """Claim and send what is due; how many rows were claimed."""
        installation = self.installation
        claimed = claim_due(installation.engine, now, installation.settings.alert_lease_s)
        for row in claimed:
            if self._stop.is_set():
                break  # the rest go back after their lease
            self._deliver(row)
        return len(claimed)

    def _deliver(self, row: Claimed) -> None:
        installation = self.installation
        run, own = alert_subject(installation.engine, row.run_id)
        targets = targets_for(installation.settings, installation.registry, run.get("process"),
                              own)  # fmt: skip
        done, failed = send(installation.settings, targets, payload(row.event, run),
                            str(row.id), row.delivered)  # fmt: skip
        now = datetime.now(UTC)
        if not failed:
            mark_sent(installation.engine, row, now)
            return
        delay = backoff_s(row.tries + 1)
        logger.warning("alert %s (run %s %s) not sent, again in %.0f s: %s", row.id, row.run_id,
                       row.event, delay, "; ".join(failed))  # fmt: skip
        mark_failed(installation.engine, row, row.delivered | done,
                    now + timedelta(seconds=delay), "; ".join(failed))  # fmt: skip
