"""The Celery app: one configuration, built from :class:`Settings` (design §6).

``celeryconfig.py`` and every command build the app through :func:`create_app`,
so a worker, a beat and the CLI of one installation always agree.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from bgproc.settings import CLI_CONNECT_TIMEOUT_S, CLI_REPLY_TIMEOUT_S, DEFAULT_QUEUE, Settings

BEAT_LOOP_S = 1.0  # new and edited requests are picked up within about a second
BEAT_LOCK_TIMEOUT_S = 10  # a standby beat takes over this long after the holder dies
# kombu must never give an unacknowledged message back by its age: a run may last longer
# than any timeout. A dead worker's messages are given back by bgproc.runtime.redelivery instead.
VISIBILITY_TIMEOUT_S = 10 * 365 * 86400

if TYPE_CHECKING:
    from celery import Celery


def broker_tls(url: str) -> dict[str, Any] | bool:
    """For ``rediss://``: verify the server's certificate unless the URL says otherwise
    (``ssl_cert_reqs``, ``ssl_ca_certs``… in its query win). Without this kombu would
    connect with no verification at all (it only logs a warning)."""
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED} if url.startswith("rediss://") else False


def redis_client_options(interactive: bool) -> dict[str, Any]:
    """Options of a redis-py client: the CLI's gives up at the first refusal or silence
    (no retry, short timeouts); a service's keeps redis-py's defaults."""
    if not interactive:
        return {}
    return {
        "retry": None,
        "socket_connect_timeout": CLI_CONNECT_TIMEOUT_S,
        "socket_timeout": CLI_REPLY_TIMEOUT_S,
    }


def celery_config(settings: Settings, interactive: bool = False) -> dict[str, Any]:
    """Celery settings for an installation: JSON only, late acks, every key under the prefix.

    ``interactive``: the CLI's, which fails fast when Redis is down (:func:`_fail_fast`);
    worker, beat and ``up`` keep Celery's and RedBeat's retries.
    """
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    prefix = settings.key_prefix
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # a long-running service waits for ever
        "worker_consumer": "bgproc.runtime.worker:Consumer",
        "broker_use_ssl": broker_tls(settings.broker_url),
        "broker_transport_options": {
            "global_keyprefix": prefix,
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_ignore_result": True,  # results live in the monitor database
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": DEFAULT_QUEUE,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_scheduler": "bgproc.runtime.beat:Scheduler",
        "beat_max_loop_interval": BEAT_LOOP_S,
        "redbeat_redis_url": settings.schedule_url,
        # One quick retry (a reconnect after a restart), no backoff: beat's own loop is
        # the retry, so a Redis that is back is seen within a second.
        "redbeat_redis_options": {"retry": Retry(NoBackoff(), 1)},
        "redbeat_key_prefix": settings.schedule_key_prefix,
        "redbeat_lock_key": settings.beat_lock_key,
        "redbeat_lock_timeout": BEAT_LOCK_TIMEOUT_S,
        "imports": ["bgproc.runtime.runner", "bgproc.runtime.worker", *settings.imports],
    }
    return config | _fail_fast(config) if interactive else config


def _fail_fast(config: dict[str, Any]) -> dict[str, Any]:
    """The CLI's changes to ``config``: kombu connects and publishes once, with short
    timeouts (its default connection retries took 6 s to fail), and RedBeat's client is
    the CLI's (:func:`redis_client_options`)."""
    return {
        "broker_connection_timeout": CLI_CONNECT_TIMEOUT_S,
        "broker_transport_options": {
            **config["broker_transport_options"],
            "max_retries": 0,  # kombu's connection attempts (default: until the timeout)
            "socket_connect_timeout": CLI_CONNECT_TIMEOUT_S,
            "socket_timeout": CLI_REPLY_TIMEOUT_S,
        },
        "redbeat_redis_options": redis_client_options(interactive=True),
        "task_publish_retry": False,
    }


def create_app(settings: Settings, interactive: bool = False) -> Celery:
    """A Celery app for ``settings``; the bgproc task is registered by its module.
    Celery is imported here, not above: the names above are read by commands that never
    start one (``request list`` loads no Celery)."""
    from celery import Celery

    app = Celery("bgproc", set_as_current=False)
    app.conf.update(celery_config(settings, interactive))
    app.conf.bgproc_settings = settings
    return app
