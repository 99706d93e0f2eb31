"""Routing: a process's ``queue`` sends its runs only to workers that consume that queue.

Two workers of one installation: ``billing@hostb`` started with ``-Q billing``, and
``general@hostg`` with only Celery's default queue. Every run of ``billing.invoice``
(queue ``billing``) must be recorded with the first, every other run with the second —
for ad-hoc runs (``bgproc run``) and for runs published by beat alike.
"""

from __future__ import annotations

from bgproc.statuses import RunStatus
from bgproc.store.models import ProcessRun
from tests.e2e.conftest import WORKER_OPTIONS, Stack
from tests.waiting import wait_until

IMPORTS = "tests.e2e.queued_processes"
BILLING = "billing@hostb"
GENERAL = "general@hostg"
ADHOC_EACH = 3
REPETITIONS = 3


def test_a_process_queue_routes_its_runs_to_the_workers_of_that_queue(stack: Stack) -> None:
    # Given a billing worker (-Q billing) and a general one (--queues=celery), and a beat
    stack.env["BGPROC_IMPORTS"] = IMPORTS
    billing = stack.spawn("billing", "worker", "--concurrency", "1", "-n", BILLING,
                          "-Q", "billing", *WORKER_OPTIONS)
    general = stack.spawn("general", "worker", "--concurrency", "1", "-n", GENERAL,
                          "--queues=celery", *WORKER_OPTIONS)
    stack.beat()
    billing.wait_log(" ready.")
    general.wait_log(" ready.")
    assert ".> billing " in billing.text() and ".> celery " not in billing.text()
    assert ".> celery " in general.text() and ".> billing " not in general.text()

    # and the monitor shows who consumes what
    def announced() -> dict[str, list[str]]:
        found = stack.cli("monitor", "workers", "--json").json()
        return {w["name"]: w["queues"] for w in found} if len(found) == 2 else {}

    assert wait_until(announced, 30, 0.5, "both workers announced") == {
        BILLING: ["billing"], GENERAL: ["celery"]}
    depths = stack.cli("monitor", "queues", "--json").json()["queues"]
    consumers = {q["name"]: q["consumers"] for q in depths}
    assert consumers["billing"] == [BILLING] and consumers["celery"] == [GENERAL], consumers

    # When billing and non-billing processes are run ad hoc and on a plan
    plan = ("--timing", "scheduled", "--frequency", "seconds", "--interval", "1",
            "--repetitions", str(REPETITIONS))
    billed = stack.create("billing.invoice", *plan, "--param", "number=7")
    echoed = stack.create("sample.echo", *plan)
    for number in range(ADHOC_EACH):
        stack.cli("run", "billing.invoice", "--param", f"number={number}")
        stack.cli("run", "sample.echo", "--param", f"n={number}")
    expected = 2 * (ADHOC_EACH + REPETITIONS)

    def finished() -> list[ProcessRun]:
        runs = stack.runs()
        done = len(runs) == expected and all(r.status is RunStatus.success for r in runs)
        return runs if done else []

    runs = wait_until(finished, 60, 0.2, f"{expected} successful runs")

    # Then each run was executed by a worker of its process's queue, and by no other
    hosts = {r.id: (r.process, r.worker) for r in runs}
    assert {w for p, w in hosts.values() if p == "billing.invoice"} == {BILLING}, hosts
    assert {w for p, w in hosts.values() if p != "billing.invoice"} == {GENERAL}, hosts
    assert sum(r.request_id == billed for r in runs) == REPETITIONS
    assert sum(r.request_id == echoed for r in runs) == REPETITIONS
    print(f"routing: {len(runs)} runs, {sum(w == BILLING for _, w in hosts.values())} on "
          f"{BILLING}, {sum(w == GENERAL for _, w in hosts.values())} on {GENERAL}")
