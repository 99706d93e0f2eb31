"""Only the CLI's clients fail fast: worker, beat and ``up`` keep every retry and timeout
they had, to ride out an outage (tests/integration/test_unreachable.py times the CLI)."""

from __future__ import annotations

from bgproc.installation import Installation
from bgproc.runtime.app import celery_config
from bgproc.settings import CLI_REPLY_TIMEOUT_S, Settings

SETTINGS = Settings(broker_url="redis://127.0.0.1:1/0")  # never connected to


def test_the_commands_app_changes_only_its_patience() -> None:
    service, command = celery_config(SETTINGS), celery_config(SETTINGS, interactive=True)
    changed = {key for key, value in command.items() if service.get(key) != value}
    assert changed == {
        "broker_connection_timeout",
        "broker_transport_options",
        "redbeat_redis_options",
        "task_publish_retry",
    }
    # beat's RedBeat client: one quick reconnect, no backoff (beat's loop is the retry)
    assert service["redbeat_redis_options"]["retry"].get_retries() == 1
    assert command["broker_transport_options"]["max_retries"] == 0


def test_a_service_built_from_the_command_is_a_service() -> None:
    command = Installation(SETTINGS, interactive=True)
    service = command.as_service()  # what bgproc worker, beat and up run (cli/runtime.py)
    assert not service.interactive
    assert (
        service.app.conf.broker_transport_options
        == celery_config(SETTINGS)["broker_transport_options"]
    )
    assert "socket_timeout" not in service.redis.connection_pool.connection_kwargs
    assert command.redis.connection_pool.connection_kwargs["socket_timeout"] == CLI_REPLY_TIMEOUT_S
