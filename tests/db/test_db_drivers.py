"""What every factory of secretcache.db does the same way, run through each driver (``db_driver``: psycopg
and PyMySQL on their servers, SQLAlchemy on both): the secret gives everything, a refusal that is not about
the password costs no refresh, the single-user window is crossed with AWSPENDING, a wrong password gives up
fast with the driver's own error. What one driver alone does is in its own module."""

from __future__ import annotations

import json
import logging
import socket

import pytest

from secretcache.db import AuthStats, auth_stats, is_auth_failure
from secretcache.demo.localdb import set_password
from tests.fixtures.fix_db import Driver


def test_connect_takes_everything_from_the_secret(db_driver: Driver) -> None:
    setup = db_driver.setup
    with db_driver.connect() as conn:
        assert str(conn.query(db_driver.current_user)[0]).split("@")[0] == setup.account.username
        assert conn.query(db_driver.current_database) == (setup.account.dbname,)
    assert setup.calls == 1


def test_unknown_database_fails_at_once_without_refresh(db_driver: Driver) -> None:
    setup = db_driver.setup
    db_driver.connect().close()
    with pytest.raises(db_driver.error) as info:
        db_driver.connect(dbname="sc_nope_db")
    assert not is_auth_failure(db_driver.driver_error(info.value))  # type: ignore[arg-type]
    assert setup.calls == 1
    assert auth_stats(setup.secret_id, cache=setup.cache) == AuthStats()


def test_a_down_server_fails_at_once_without_refresh(db_driver: Driver) -> None:
    setup = db_driver.setup
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    setup.backend.put_secret(setup.secret_id, json.dumps(setup.account.as_secret(port=closed_port)))
    with pytest.raises(db_driver.error) as info:
        db_driver.connect(connect_timeout=5)
    assert not is_auth_failure(db_driver.driver_error(info.value))  # type: ignore[arg-type]
    assert setup.calls == 1
    assert auth_stats(setup.secret_id, cache=setup.cache) == AuthStats()


def test_the_single_user_window_is_crossed_with_awspending(db_driver: Driver) -> None:
    setup = db_driver.setup
    held = db_driver.connect()
    pending = setup.begin_single_user_rotation(f"pw1Rotated{db_driver.name.replace('+', '')}")

    with db_driver.connect() as conn:  # AWSCURRENT's password is dead already
        assert conn.query("SELECT 1") == (1,)
    stats = auth_stats(setup.secret_id, cache=setup.cache)
    assert (stats.auth_failures, stats.refreshes, stats.pending_fetches, stats.pending_logins) == (1, 1, 1, 1)
    with held:
        assert held.query("SELECT 2") == (2,)  # opened before the rotation: still works

    calls = setup.calls
    db_driver.connect().close()  # pinned: one login, no API call
    assert setup.calls == calls
    assert auth_stats(setup.secret_id, cache=setup.cache).auth_failures == 1

    setup.finish(pending)
    setup.cache.refresh(setup.secret_id)
    db_driver.connect().close()
    assert auth_stats(setup.secret_id, cache=setup.cache).auth_failures == 1


def test_a_wrong_password_fails_fast_with_the_drivers_error(
    db_driver: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    setup = db_driver.setup
    caplog.set_level(logging.DEBUG)
    setup.passwords.append("DbOnlyPassword123")
    set_password(setup.server, setup.account.username, "DbOnlyPassword123")

    with pytest.raises(db_driver.error) as info:
        db_driver.connect()

    error = db_driver.driver_error(info.value)
    assert type(error).__module__.split(".")[0] in ("psycopg", "pymysql")
    assert is_auth_failure(error)  # type: ignore[arg-type]
    assert any(repr(setup.secret_id) in note for note in error.__notes__)
    stats = auth_stats(setup.secret_id, cache=setup.cache)
    assert stats.auth_failures <= 3
    assert stats.gave_up == 1
    assert setup.calls <= 3  # cold read, one refresh, one AWSPENDING read
    setup.assert_no_password(str(info.value), repr(info.value), str(error), repr(error), *error.__notes__,
                             caplog.text, repr(error.__cause__))
