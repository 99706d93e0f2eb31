"""``GET /metrics``: the installation for Prometheus, read like the API (open on loopback,
the token elsewhere).

Every figure is a gauge of now (:mod:`bgproc.services.metrics` says why and what bounds
each read): the runs of the last hour by process and status, their durations and start
lateness as gauge histograms, what runs and waits now, workers, beats and the lock, and
each scheduled request's last success. Labels are names and ids, never parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from bgproc.outages import DATABASE, REDIS
from bgproc.services.metrics import Snapshot, gather
from bgproc.store.metrics import Buckets
from bgproc.web.api import Web, failure_response

WINDOW = "in the last hour (at most the newest bgproc_recent_window_runs runs)"
HELP = {
    "bgproc_up": "Whether each service answered this scrape.",
    "bgproc_recent_window_seconds": "How far back the bgproc_recent_ figures look.",
    "bgproc_recent_window_runs": "The most runs the bgproc_recent_ figures read (the newest).",
    "bgproc_recent_window_capped": "1 when more runs than bgproc_recent_window_runs happened "
    "in the window: the figures then cover less time.",
    "bgproc_recent_runs": f"Runs {WINDOW}, by process and status.",
    "bgproc_recent_run_duration_seconds": f"Durations of the runs that ended {WINDOW}.",
    "bgproc_recent_start_lateness_seconds": f"From due to start, of the runs that started "
    f"{WINDOW}.",
    "bgproc_runs_processing": "Runs processing now, by process.",
    "bgproc_runs_overdue": "Runs processing past their maximum runtime now, by process.",
    "bgproc_queue_messages": "Messages waiting in each queue.",
    "bgproc_unacked_messages": "Messages taken by workers, not yet acknowledged (running or "
    "prefetched).",
    "bgproc_workers": "Live workers.",
    "bgproc_beat_lock_held": "1 while some beat holds the scheduling lock.",
    "bgproc_beat_holds_lock": "Each beat heard of: 1 for the lock holder, 0 standing by.",
    "bgproc_beat_last_tick_timestamp_seconds": "When each beat last ticked.",
    "bgproc_request_last_success_timestamp_seconds": "When each scheduled request's newest "
    "successful run ended (none yet: no sample).",
    "bgproc_request_created_timestamp_seconds": "When each scheduled request was created: "
    "where an alarm starts counting for one that never succeeded.",
}
REQUEST_LABELS = ["request", "name", "process"]


def _gauge(name: str, *labels: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, HELP[name], labels=list(labels))


def _value(name: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, HELP[name], value=value)


def _histogram(name: str, found: dict[str, Buckets]) -> Metric:
    family = GaugeHistogramMetricFamily(name, HELP[name], labels=["process"])
    for process, buckets in sorted(found.items()):
        pairs = zip(buckets.bounds, buckets.counts, strict=True)
        points = [(floatToGoString(bound), count) for bound, count in pairs]
        family.add_metric([process], [*points, ("+Inf", buckets.count)], buckets.total)
    return family


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The exposition of one snapshot."""
    up = _gauge("bgproc_up", "service")
    for service, answered in sorted(snapshot.up.items()):
        up.add_metric([service], int(answered))
    yield up
    database, redis = (snapshot.up.get(service, False) for service in (DATABASE, REDIS))
    if database:
        yield _value("bgproc_recent_window_seconds", snapshot.window_s)
        yield _value("bgproc_recent_window_runs", snapshot.window_runs)
        yield _value("bgproc_recent_window_capped", int(snapshot.capped))
    runs = _gauge("bgproc_recent_runs", "process", "status")
    for row in sorted(snapshot.runs, key=lambda r: (r.process, r.status.value)):
        runs.add_metric([row.process, row.status.value], row.count)
    yield runs
    durations = snapshot.by_process(lambda r: r.duration)
    yield _histogram("bgproc_recent_run_duration_seconds", durations)
    lateness = snapshot.by_process(lambda r: r.lateness)
    yield _histogram("bgproc_recent_start_lateness_seconds", lateness)

    running = _gauge("bgproc_runs_processing", "process")
    for process, count in sorted(snapshot.processing.items()):
        running.add_metric([process], count)
    yield running
    overdue = _gauge("bgproc_runs_overdue", "process")
    for process, count in sorted(snapshot.overdue.items()):
        overdue.add_metric([process], count)
    yield overdue
    waiting = _gauge("bgproc_queue_messages", "queue")
    for queue in snapshot.queues:
        waiting.add_metric([queue.name], queue.waiting)
    yield waiting
    if redis:  # a figure nobody could read is left out, not said to be 0
        yield _value("bgproc_unacked_messages", snapshot.unacked)
        yield _value("bgproc_workers", len(snapshot.workers))
        yield _value("bgproc_beat_lock_held", int(snapshot.lock_held))

    holder = _gauge("bgproc_beat_holds_lock", "beat")
    ticked = _gauge("bgproc_beat_last_tick_timestamp_seconds", "beat")
    for beat in snapshot.beats:
        holder.add_metric([beat.name], int(beat.holds_lock))
        ticked.add_metric([beat.name], beat.ticked_at.timestamp())
    yield holder
    yield ticked

    succeeded = _gauge("bgproc_request_last_success_timestamp_seconds", *REQUEST_LABELS)
    created = _gauge("bgproc_request_created_timestamp_seconds", *REQUEST_LABELS)
    for request in snapshot.successes:
        named = [str(request.request_id), request.name or "", request.process]
        created.add_metric(named, request.created_at.timestamp())
        if request.succeeded_at is not None:
            succeeded.add_metric(named, request.succeeded_at.timestamp())
    yield succeeded
    yield created


class _Once(Collector):
    """A registry's view of one snapshot, so the library's encoders write it."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        return families(self.snapshot)


def exposition(snapshot: Snapshot, accept: str | None = None) -> tuple[bytes, str]:
    """The text a scraper asked for (Prometheus' text format, or OpenMetrics), and its type."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Once(snapshot))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def snapshot_of(web: Web) -> Snapshot:
    installation = web.installation
    return gather(installation.engine, installation.control, installation.queues, datetime.now(UTC))


async def metrics(request: Request) -> Response:
    web: Web = request.app.state.web
    try:
        web.access.check_host(request)
        web.access.check_read(request)
        snapshot = await run_in_threadpool(snapshot_of, web)
    except Exception as error:
        return failure_response(error, web.installation)
    body, content_type = exposition(snapshot, request.headers.get("accept"))
    return Response(body, media_type=content_type)
