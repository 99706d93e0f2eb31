"""Settings: URLs are printed with their password masked, whatever shape they come in."""

from __future__ import annotations

import pytest

from bgproc.settings import redact_url


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
