"""``monitor rerun`` and ``request run`` with a real worker (and beat): the run happens again
with what the first one had, secrets included; a request runs once, its plan untouched."""

from __future__ import annotations

import time

from bgproc.statuses import Channel, RequestStatus, RunStatus
from tests.e2e.conftest import Stack

IMPORTS = "tests.e2e.rerun_processes"
LATER = ["--timing", "scheduled", "--frequency", "daily", "--at", "09:30",
         "--start", "2030-01-07T00:00"]  # fmt: skip


def test_rerun_of_an_error_run_runs_again_with_the_same_params(stack: Stack) -> None:
    stack.env["BGPROC_IMPORTS"] = IMPORTS
    stack.worker()
    params = ["--param", "token=s3cret", "--param", "day=2027-01-29"]
    first = stack.cli("run", "rerun.digest", *params, "--wait", "--timeout", "30", check=False)
    assert first.code == 1, first.err
    failed = stack.cli("monitor", "show", first.out.strip(), "--json").json()
    assert failed["status"] == "error" and "token digest" in failed["error"]

    again = stack.cli("monitor", "rerun", str(failed["id"]), "--wait", "--timeout", "30",
                      check=False)  # fmt: skip
    assert again.code == 1, again.err  # it failed again, as the first did
    rerun = stack.cli("monitor", "show", again.out.strip(), "--json").json()
    assert rerun["id"] != failed["id"] and rerun["status"] == "error"
    assert rerun["params"] == failed["params"] == {"token": "***", "day": "2027-01-29"}
    assert rerun["error"] == failed["error"]  # the same token's digest: the secret came along
    shown = first.out + first.err + again.out + again.err + str(failed) + str(rerun)
    assert "s3cret" not in shown


def test_request_run_fires_once_and_the_next_fire_is_unchanged(stack: Stack) -> None:
    stack.up()
    number = stack.create("sample.echo", "--param", "greeting=hi", *LATER)
    before = stack.cli("request", "show", str(number), "--json").json()

    done = stack.cli("request", "run", str(number), "--wait", "--timeout", "30")

    (run,) = stack.runs(number)
    assert run.id == int(done.out.strip()) and run.status is RunStatus.success
    assert run.channel is Channel.direct and run.result == {"greeting": "hi"}
    time.sleep(2)  # beat ticks meanwhile: nothing more fires
    assert [r.id for r in stack.runs(number)] == [run.id]
    after = stack.cli("request", "show", str(number), "--json").json()
    assert after["next_runs"] == before["next_runs"] and after == before
    assert stack.status(number) is RequestStatus.scheduled
