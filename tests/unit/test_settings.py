"""Settings: URLs are printed with their password masked, whatever shape they come in;
a Redis URL that is none is refused, naming its setting; so is a redelivery delay too
short."""

from __future__ import annotations

import pytest

from bgproc.errors import InvalidInput
from bgproc.settings import Settings, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://user:pw@h/0", "redis://user:***@h/0"),
        ("rediss://:pw@h:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/c/ca.crt",
         "rediss://:***@h:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/c/ca.crt"),
        ("postgresql+psycopg://u:p%40ss@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
        ("postgresql://u:pw@h:not-a-port/db", "postgresql://u:***@h:not-a-port/db"),
        ("redis://u:pw@[::1/0", "redis://u:***@[::1/0"),  # urlsplit refuses it
        ("redis://:p@ss@h/0", "redis://:***@h/0"),  # an unquoted @ in the password
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("sqlite:///bgproc.db", "sqlite:///bgproc.db"),
    ],
)  # fmt: skip
def test_a_password_is_never_shown(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize("name", ["BGPROC_BROKER_URL", "BGPROC_REDBEAT_URL"])
@pytest.mark.parametrize(
    "url", ["foo://h/0", "http://127.0.0.1:6379/0", "127.0.0.1:6379", "sentinel://h:26379"]
)
def test_a_redis_url_that_is_not_one_names_its_setting(name: str, url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({name: url})
    assert caught.value.field == name and "redis://" in str(caught.value)


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@h:6380/0", "unix:///run/redis.sock"]
)
def test_redis_urls_are_named_once_each_without_their_password(url: str) -> None:
    assert Settings.from_env({"BGPROC_BROKER_URL": url}).redis_urls == redact_url(url)
    both = Settings.from_env({"BGPROC_BROKER_URL": url, "BGPROC_REDBEAT_URL": "redis://:s@b/1"})
    assert both.redis_urls == f"{redact_url(url)} or redis://:***@b/1"


@pytest.mark.parametrize(("text", "seconds"), [("", 10.0), ("4", 4.0), ("90", 90.0)])
def test_the_redelivery_delay_has_a_default_and_may_be_set(text: str, seconds: float) -> None:
    assert Settings.from_env({"BGPROC_REDELIVER_AFTER_S": text}).redeliver_after_s == seconds


@pytest.mark.parametrize("text", ["3", "0", "soon"])
def test_a_redelivery_delay_too_short_for_the_workers_to_speak_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({"BGPROC_REDELIVER_AFTER_S": text})
    assert caught.value.field == "BGPROC_REDELIVER_AFTER_S"
