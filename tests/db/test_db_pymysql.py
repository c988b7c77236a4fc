"""secretcache.db.pymysql against the real MariaDB (passwords of the users we create are always checked).

Secrets live in an InMemoryBackend (its call counter is the API-call count); rotations here are done by
hand; the rotation framework drives the load tests in test_db_rotation_load.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pymysql
import pytest

from secretcache import SecretCache
from secretcache.config import CacheConfig
from secretcache.db import AuthStats, auth_stats, is_auth_failure
from secretcache.db import pymysql as sc_pymysql
from secretcache.demo.localdb import DbAccount, DbServer, set_password
from secretcache.testing import InMemoryBackend

SECRET = "app/mysql"
GET = "GetSecretValue"


class Setup:
    def __init__(self, server: DbServer, account: DbAccount) -> None:
        self.server, self.account = server, account
        self.backend = InMemoryBackend()
        self.current = self.backend.put_secret(SECRET, json.dumps(account.as_secret()))
        self.cache = SecretCache(self.backend, config=CacheConfig(ttl=3600))
        self.passwords = [account.password]

    @property
    def calls(self) -> int:
        return self.backend.calls[GET]

    def begin_single_user_rotation(self, password: str) -> str:
        self.passwords.append(password)
        pending = self.backend.put_secret(SECRET, json.dumps(self.account.as_secret(password=password)),
                                          stages=("AWSPENDING",))
        set_password(self.server, self.account.username, password)
        return pending

    def finish(self, version_id: str) -> None:
        self.backend.update_version_stage(SECRET, "AWSCURRENT", move_to_version_id=version_id,
                                          remove_from_version_id=self.current)
        self.current = version_id


@pytest.fixture
def my(mysql_server: DbServer, mysql_account: DbAccount) -> Iterator[Setup]:
    setup = Setup(mysql_server, mysql_account)
    yield setup
    setup.cache.close()


def query(conn: pymysql.connections.Connection, sql: str) -> tuple[object, ...]:
    with conn.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
    assert row is not None
    return tuple(row)


def test_a_real_wrong_password_is_an_auth_failure(my: Setup) -> None:
    a = my.account
    with pytest.raises(pymysql.err.OperationalError) as info:
        pymysql.connect(host=a.host, port=a.port, user=a.username, password="wrong", database=a.dbname)
    assert info.value.args[0] == 1045
    assert is_auth_failure(info.value)


def test_real_non_auth_errors_are_not_auth_failures(my: Setup) -> None:
    a = my.account
    with pytest.raises(pymysql.err.OperationalError) as no_db:
        pymysql.connect(host=a.host, port=a.port, user=a.username, password=a.password, database="sc_nope_db")
    assert no_db.value.args[0] in (1044, 1049)
    assert not is_auth_failure(no_db.value)

    conn = pymysql.connect(host=a.host, port=a.port, user=a.username, password=a.password, database=a.dbname)
    with conn, conn.cursor() as cur, pytest.raises(pymysql.err.ProgrammingError) as syntax:
        cur.execute("SELEC 1")
    assert syntax.value.args[0] == 1064
    assert not is_auth_failure(syntax.value)


def test_connect_takes_everything_from_the_secret(my: Setup) -> None:
    conn = sc_pymysql.connect(SECRET, cache=my.cache)
    with conn:
        user = str(query(conn, "SELECT CURRENT_USER()")[0])
        assert user.split("@")[0] == my.account.username
        assert query(conn, "SELECT DATABASE()") == (my.account.dbname,)
    assert my.calls == 1


def test_explicit_arguments_win_over_the_secret(my: Setup) -> None:
    conn = sc_pymysql.connect(SECRET, cache=my.cache, database="information_schema", autocommit=True)
    with conn:
        assert query(conn, "SELECT DATABASE()") == ("information_schema",)
        assert conn.get_autocommit()


def test_unknown_database_fails_at_once_without_refresh(my: Setup) -> None:
    sc_pymysql.connect(SECRET, cache=my.cache).close()
    with pytest.raises(pymysql.err.OperationalError) as info:
        sc_pymysql.connect(SECRET, cache=my.cache, database="sc_nope_db")
    assert info.value.args[0] in (1044, 1049)
    assert my.calls == 1
    assert auth_stats(SECRET, cache=my.cache) == AuthStats()


def test_a_down_server_fails_at_once_without_refresh(my: Setup) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with pytest.raises(pymysql.err.OperationalError) as info:
        sc_pymysql.connect(SECRET, cache=my.cache, port=closed_port, connect_timeout=5)
    assert info.value.args[0] == 2003
    assert my.calls == 1
    assert auth_stats(SECRET, cache=my.cache) == AuthStats()


def test_the_single_user_window_is_crossed_with_awspending(my: Setup) -> None:
    held = sc_pymysql.connect(SECRET, cache=my.cache)
    pending = my.begin_single_user_rotation("pw1RotatedMy")

    conn = sc_pymysql.connect(SECRET, cache=my.cache)
    with conn:
        assert query(conn, "SELECT 1") == (1,)
    stats = auth_stats(SECRET, cache=my.cache)
    assert (stats.auth_failures, stats.refreshes, stats.pending_fetches, stats.pending_logins) == (1, 1, 1, 1)
    with held:
        assert query(held, "SELECT 2") == (2,)  # opened before the rotation: still works

    calls = my.calls
    sc_pymysql.connect(SECRET, cache=my.cache).close()  # pinned: one login, no API call
    assert my.calls == calls
    my.finish(pending)
    my.cache.refresh(SECRET)
    sc_pymysql.connect(SECRET, cache=my.cache).close()
    assert auth_stats(SECRET, cache=my.cache).auth_failures == 1


def test_a_wrong_password_fails_fast_with_pymysqls_error(my: Setup, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    my.passwords.append("DbOnlyPasswordMy1")
    set_password(my.server, my.account.username, "DbOnlyPasswordMy1")

    with pytest.raises(pymysql.err.OperationalError) as info:
        sc_pymysql.connect(SECRET, cache=my.cache)

    error = info.value
    assert error.args[0] == 1045
    assert any(repr(SECRET) in note for note in error.__notes__)
    stats = auth_stats(SECRET, cache=my.cache)
    assert stats.auth_failures <= 3
    assert stats.gave_up == 1
    assert my.calls <= 3
    for text in (str(error), repr(error), *error.__notes__, caplog.text):
        for password in my.passwords:
            assert password not in text


def test_creator_opens_a_new_connection_per_call(my: Setup) -> None:
    new_connection = sc_pymysql.creator(SECRET, cache=my.cache, autocommit=True)
    first, second = new_connection(), new_connection()
    with first, second:
        assert first.thread_id() != second.thread_id()
