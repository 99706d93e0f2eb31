"""``monitor rerun`` and ``request run`` on real SQLite/PostgreSQL and Redis, from the CLI, the
API and the pages' buttons: the run they make, the message they send, what they refuse.

No worker runs here (tests/e2e/test_reruns.py has them run): the message waits in its
queue, where the test reads it.
"""

from __future__ import annotations

from bgproc.statuses import Channel, RunStatus
from tests.integration.test_web_api import BEARER, DAILY, Web, web_app  # noqa: F401
from tests.integration.test_web_pages import operator

SECRET_RUN = {"process": "test.secret", "params": {"token": "s3cret", "user": "ana"},
              "status": RunStatus.error, "error": "boom"}  # fmt: skip


def waiting(web: Web, queue: str = "celery") -> list[str]:
    """The messages waiting in ``queue``, as stored in Redis."""
    key = web.installation.settings.key_prefix + queue
    return [m.decode() for m in web.installation.control.broker.lrange(key, 0, -1)]


def test_rerun_makes_a_new_run_with_the_same_params_secrets_included(web: Web) -> None:
    failed = web.run(**SECRET_RUN)

    again = web.cli.ok("monitor", "rerun", str(failed), "--json").json()

    assert again["id"] > failed
    assert again["params"] == {"token": "***", "user": "ana"}  # shown masked
    assert (again["process"], again["status"], again["channel"], again["request_id"]) == (
        "test.secret", "queued", "direct", None
    )  # fmt: skip
    stored = web.installation.runs.get(again["id"])
    assert stored.params == {"token": "s3cret", "user": "ana"}  # kept for the worker
    messages = waiting(web)
    assert len(messages) == 1 and "s3cret" not in messages[0]  # a secret never sits in Redis
    assert again == web.cli.ok("monitor", "show", str(again["id"]), "--json").json()
    # The API and the Rerun button make one each, from the same rules
    answer = web.post(f"/api/v1/runs/{failed}/rerun")
    assert answer.status_code == 201, answer.text
    assert answer.json() == web.cli.ok("monitor", "show", str(answer.json()["id"]), "--json").json()
    assert "Rerun" not in web.client.get(f"/runs/{failed}").text.split("<dl")[0]  # not logged in
    csrf = operator(web)
    assert "Rerun" in web.client.get(f"/runs/{failed}").text
    pressed = web.client.post(f"/runs/{failed}/rerun", data={"csrf": csrf}, follow_redirects=False)
    assert pressed.status_code == 303
    third = int(pressed.headers["location"].rsplit("/", 1)[1])
    assert web.installation.runs.get(third).params == stored.params
    assert len(waiting(web)) == 3


def test_what_cannot_be_run_again_is_refused_saying_why(web: Web) -> None:
    web.cli.ok("group", "create", "nightly", "--step", "sample.echo")
    group_run = web.run(process="group:nightly", request_id=None)
    misfired = web.run(**{**SECRET_RUN, "params": {"token": "***"}, "status": RunStatus.misfired})
    gone = web.run(process="no.longer.here")
    refusals = {
        group_run: "is a group run",
        misfired: "its secret parameter token was not recorded",
        gone: "'no.longer.here' is not a registered process",
    }
    for number, why in refusals.items():
        refused = web.cli("monitor", "rerun", str(number))
        assert refused.code == 4 and why in refused.err, refused.err
        answer = web.post(f"/api/v1/runs/{number}/rerun")
        assert answer.status_code == 409 and why in answer.json()["error"]["message"]
    assert web.cli("monitor", "rerun", "999").code == 3
    assert web.client.post("/api/v1/runs/999/rerun", headers=BEARER).status_code == 404
    assert web.client.post(f"/api/v1/runs/{gone}/rerun").status_code == 401  # no operator
    csrf = operator(web)
    page = web.client.post(f"/runs/{misfired}/rerun", data={"csrf": csrf})
    assert page.status_code == 409 and "was not recorded" in page.text
    assert waiting(web) == []  # nothing was sent


def test_request_run_fires_once_and_leaves_the_plan_alone(web: Web) -> None:
    # Given a scheduled request with a secret, its next fires and its entry
    number = web.cli.ok("request", "create", "test.secret", "--param", "token=s3cret",
                        *DAILY).out.strip()  # fmt: skip
    before = web.cli.ok("request", "show", number, "--json").json()
    entries = web.installation.requests.entries
    key = entries.key(int(number))
    entry_before = entries.redis.hgetall(key)

    # When it is run now, from the CLI, then the API, then the Run now button
    run = web.cli.ok("request", "run", number, "--json").json()
    assert (run["request_id"], run["process"], run["channel"], run["status"]) == (
        int(number), "test.secret", "direct", "queued"
    )  # fmt: skip
    assert run["params"] == {"token": "***"}
    assert web.installation.runs.get(run["id"]).params == {"token": "s3cret"}
    answer = web.post(f"/api/v1/requests/{number}/run")
    assert answer.status_code == 201 and answer.json()["request_id"] == int(number)
    csrf = operator(web)
    assert "Run now" in web.client.get(f"/requests/{number}").text
    pressed = web.client.post(f"/requests/{number}/run", data={"csrf": csrf},
                              follow_redirects=False)  # fmt: skip
    assert pressed.status_code == 303 and pressed.headers["location"].startswith("/runs/")

    # Then three runs wait, and the plan is as it was: status, next fires, entry
    assert len(waiting(web)) == 3 and not any("s3cret" in m for m in waiting(web))
    assert web.cli.ok("request", "show", number, "--json").json() == before
    assert entries.redis.hgetall(key) == entry_before
    runs = web.installation.runs.list(request_id=int(number))
    assert [r.channel for r in runs] == [Channel.direct] * 3

    # And a sync that rebuilds the entry counts from the plan, not from those runs
    scheduled_from = entries.get(int(number)).schedule.scheduled_from
    entries.remove(int(number))
    assert web.cli.ok("sync", "--json").json()["rebuilt"] == [int(number)]
    assert entries.get(int(number)).schedule.scheduled_from <= scheduled_from
    after = web.cli.ok("request", "show", number, "--json").json()
    assert after["next_runs"] == before["next_runs"]


def test_request_run_of_an_unscheduled_request_or_a_group(web: Web) -> None:
    number = web.cli.ok("request", "create", "sample.echo", *DAILY, "--no-schedule").out.strip()
    started = web.cli.ok("request", "run", number).out.strip()
    assert web.installation.runs.get(int(started)).request_id == int(number)
    assert web.cli.ok("request", "show", number, "--json").json()["status"] == "unscheduled"
    web.cli.ok("group", "create", "nightly", "--step", "sample.echo")
    group = web.cli.ok("request", "create", "--group", "nightly", *DAILY).out.strip()
    run = web.cli.ok("request", "run", group, "--json").json()
    assert (run["process"], run["channel"]) == ("group:nightly", "direct")
    assert web.cli("request", "run", "999").code == 3
