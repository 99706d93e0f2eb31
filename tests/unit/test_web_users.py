"""The users file of ``bgproc web``: scrypt hashes that verify, lines refused by number,
the per-name throttle, and ``bgproc web passwd`` reading the password from stdin only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from bgproc.errors import InvalidInput
from bgproc.web.users import (
    FREE_FAILURES,
    MAX_WAIT_S,
    Role,
    Throttle,
    hash_password,
    load_users,
    parse_users,
    user_line,
    verify_password,
)
from tests.integration.cli_harness import Cli

PASSWORD = "correct horse battery"


def test_a_hash_verifies_its_password_only_and_is_salted() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in stored
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + " ", stored)
    assert not verify_password("", stored)
    assert hash_password(PASSWORD) != stored  # a new salt each time


def test_a_line_of_other_parameters_still_verifies() -> None:
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    key = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**10, r=4, p=2, dklen=32)
    stored = f"scrypt$1024$4$2${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    assert verify_password(PASSWORD, stored)


def test_the_file_gives_each_user_a_role() -> None:
    text = (f"# who may use bgproc web\n\n{user_line('ana', Role.viewer, PASSWORD)}\n"
            f"  {user_line('bob.ops@example', Role.operator, PASSWORD)}  \n")
    users = parse_users(text, "users")
    assert {name: user.role for name, user in users.items()} == {
        "ana": Role.viewer, "bob.ops@example": Role.operator}  # fmt: skip
    assert PASSWORD not in repr(users) and "scrypt" not in repr(users)


# A fixed line (hash_password(PASSWORD) once): test ids must be the same in every xdist worker
GOOD = "scrypt$16384$8$1$tIYiko66BgC0+mg4+1M6Kw==$gluTDYblTEehXqXWK/v57K3eLslWuPY6nRUkJZSJIxc="


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("ana:admin:" + GOOD, "unknown role 'admin' (viewer or operator)"),
        ("ana:viewer", "not NAME:ROLE:HASH"),
        ("ana:viewer:" + GOOD + ":more", "not NAME:ROLE:HASH"),
        ("a na:viewer:" + GOOD, "'a na' is not a user name"),
        (":viewer:" + GOOD, "'' is not a user name"),
        ("ana:viewer:plain-password", "the hash is not scrypt$N$R$P$SALT$HASH"),
        ("ana:viewer:" + GOOD.replace("$8$", "$x$"), "the hash's numbers or base64 are malformed"),
        ("ana:viewer:" + GOOD[:-6] + "!!!!!=", "the hash's numbers or base64 are malformed"),
        ("ana:viewer:" + GOOD.replace("16384", "1000"), "scrypt parameters n=1000 r=8 p=1"),
        ("ana:viewer:" + GOOD.replace("16384", str(2**24)), "are out of range"),
        ("ana:viewer:scrypt$16384$8$1$AAAA$AAAA", "the hash's salt or key is too short"),
    ],
)
def test_a_bad_line_is_refused_naming_the_file_and_line(line: str, why: str) -> None:
    assert verify_password(PASSWORD, GOOD)  # the fixed line is a good one
    with pytest.raises(InvalidInput) as refused:
        parse_users(f"# users\nbob:operator:{GOOD}\n{line}\n", "/etc/bgproc/users")
    assert refused.value.field == "BGPROC_WEB_USERS_FILE"
    assert refused.value.why.startswith("/etc/bgproc/users line 3: ")
    assert why in refused.value.why


def test_a_name_twice_is_refused_at_its_second_line() -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_users(f"ana:viewer:{GOOD}\nana:operator:{GOOD}\n", "users")
    assert refused.value.why == "users line 2: user 'ana' is there twice"


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(InvalidInput) as refused:
        load_users(str(missing))
    assert refused.value.why == f"cannot read {missing}: No such file or directory"
    there = tmp_path / "users"
    there.write_text(f"ana:viewer:{GOOD}\n")
    assert list(load_users(str(there))) == ["ana"]


def test_failures_of_a_name_make_its_next_attempts_wait_doubling() -> None:
    now = [1000.0]
    throttle = Throttle(clock=lambda: now[0])
    for _ in range(FREE_FAILURES):
        assert throttle.wait_s("ana") == 0
        throttle.failed("ana")
    assert throttle.wait_s("ana") == 1.0 and throttle.wait_s("bob") == 0
    now[0] += 1
    throttle.failed("ana")
    assert throttle.wait_s("ana") == 2.0
    for _ in range(20):
        throttle.failed("ana")
    assert throttle.wait_s("ana") == MAX_WAIT_S
    throttle.succeeded("ana")
    assert throttle.wait_s("ana") == 0


def test_passwd_prints_a_line_from_the_password_on_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = Cli(capsys)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    done = cli.ok("web", "passwd", "ana", "--role", "operator")
    assert PASSWORD not in done.out + done.err and done.err == ""
    users = parse_users(done.out, "stdout")
    assert users["ana"].role is Role.operator
    assert verify_password(PASSWORD, users["ana"].hash)
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD))
    assert parse_users(cli.ok("web", "passwd", "bob").out, "stdout")["bob"].role is Role.viewer


@pytest.mark.parametrize(
    ("args", "stdin", "error"),
    [
        (("bad:name",), PASSWORD, "Error: name: 'bad:name' is not a user name"),
        (("ana",), "short\n", "Error: password: must be at least 8 characters"),
        (("ana", "--role", "admin"), PASSWORD, "Error: Invalid value for '--role'"),
    ],
)
def test_passwd_refuses_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...], stdin: str, error: str,
) -> None:  # fmt: skip
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    done = Cli(capsys)("web", "passwd", *args)
    assert done.code == 2 and done.out == ""
    assert len(done.err.strip().splitlines()) == 1 and done.err.startswith(error), done.err
    assert stdin.strip() not in done.err


def test_a_bad_users_file_refuses_to_start_the_server_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    users = tmp_path / "users"
    users.write_text(f"# bgproc web\nana:viewer:{GOOD}\nbob:root:{GOOD}\n")
    monkeypatch.setenv("BGPROC_WEB_USERS_FILE", str(users))
    monkeypatch.delenv("BGPROC_WEB_TOKEN", raising=False)
    done = Cli(capsys)("web", "--bind", "0.0.0.0:8765")
    assert (done.code, done.out) == (2, "")
    assert done.err.splitlines() == [f"Error: BGPROC_WEB_USERS_FILE: {users} line 3: unknown "
                                     "role 'root' (viewer or operator)"]  # fmt: skip


def test_users_let_a_non_loopback_address_be_served_without_the_token() -> None:
    from cli.web import checked_bind

    assert checked_bind("0.0.0.0:8765", "", users=True) == ("0.0.0.0", 8765, False)
    with pytest.raises(InvalidInput, match="set BGPROC_WEB_TOKEN or BGPROC_WEB_USERS_FILE"):
        checked_bind("0.0.0.0:8765", "", users=False)


def test_a_users_file_every_local_user_may_read_is_warned_of(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from types import SimpleNamespace

    from bgproc.settings import Settings
    from cli.web import web_users

    users = tmp_path / "users"
    users.write_text(f"ana:viewer:{GOOD}\n")
    installation: Any = SimpleNamespace(settings=Settings(web_users_file=str(users)))
    users.chmod(0o600)
    assert list(web_users(installation)) == ["ana"]
    assert capsys.readouterr().err == ""
    users.chmod(0o644)
    web_users(installation)
    assert capsys.readouterr().err == (f"bgproc web: warning: every user of this machine may "
                                       f"read {users} (chmod 600 it)\n")  # fmt: skip
