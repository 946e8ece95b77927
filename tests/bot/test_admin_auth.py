"""The admin page's credential, sessions and login limit, without a browser."""

from __future__ import annotations

import pytest

from confab.bot.admin.auth import Credential, LoginLimit, Sessions, hash_password, password_matches
from confab.bot.config import WebConfig
from confab.bot.errors import ConfigError
from tests.helpers import Clock


def test_a_password_matches_its_hash_only() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$16384$8$1$")
    assert password_matches("correct horse battery", stored)
    assert not password_matches("correct horse batterY", stored)
    assert hash_password("correct horse battery") != stored  # a salt of its own
    for broken in ("", "scrypt$", "md5$1$2$3$4$5", stored[:-8] + "!!!!!!!="):
        assert not password_matches("correct horse battery", broken)


def test_the_credential_comes_from_the_environment_or_the_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Credential.from_config(WebConfig()) is None  # the page is off
    monkeypatch.setenv("CONFAB_ADMIN_TOKEN", "t" * 24)
    credential = Credential.from_config(WebConfig(admin_password_hash=hash_password("pw-pw-pw-pw")))
    assert credential is not None
    assert credential.accepts("t" * 24) == (True, "token")
    assert credential.accepts("pw-pw-pw-pw") == (True, "password")
    assert credential.accepts("t" * 23) == (False, "")
    monkeypatch.setenv("CONFAB_ADMIN_TOKEN", "short")
    with pytest.raises(ConfigError, match="too short"):
        Credential.from_config(WebConfig())


def test_a_hash_that_is_not_ours_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="hash-password"):
        WebConfig(admin_password_hash="plaintext")


def test_a_session_ends_after_its_time() -> None:
    clock = Clock()
    sessions = Sessions(60, clock)
    session = sessions.open("grace", "token")
    assert sessions.get(session.id) == session
    assert sessions.get("forged") is None
    clock.now += 59
    assert sessions.get(session.id) is not None
    clock.now += 2
    assert sessions.get(session.id) is None
    other = sessions.open("ada", "password")
    sessions.close(other.id)
    assert sessions.get(other.id) is None


def test_failed_logins_lock_an_address_for_the_rest_of_the_window() -> None:
    clock = Clock()
    limit = LoginLimit(3, 300, clock)
    for _ in range(3):
        assert limit.retry_after("10.0.0.1") == 0
        limit.failed("10.0.0.1")
        clock.now += 10
    assert limit.retry_after("10.0.0.1") == pytest.approx(270)
    assert limit.retry_after("10.0.0.2") == 0  # another address is not held up
    clock.now += 271
    assert limit.retry_after("10.0.0.1") == 0
    limit.failed("10.0.0.1")
    limit.succeeded("10.0.0.1")
    assert limit.retry_after("10.0.0.1") == 0
