"""secretcache.db.pymysql against the real MariaDB (passwords of the users we create are always checked).

Secrets live in an InMemoryBackend (its call counter is the API-call count); rotations here are done by
hand; the rotation framework drives the load tests in test_db_rotation_load.py.
What every factory does alike is in test_db_drivers.py.
"""

from __future__ import annotations

import pymysql
import pytest

from secretcache.db import is_auth_failure
from secretcache.db import pymysql as sc_pymysql
from secretcache.demo.localdb import DbAccount, DbServer
from tests.fixtures.fix_db import MakeSetup, Setup

SECRET = "app/mysql"


@pytest.fixture
def my(make_setup: MakeSetup, mysql_server: DbServer, mysql_account: DbAccount) -> Setup:
    return make_setup(mysql_server, mysql_account, SECRET)


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


def test_explicit_arguments_win_over_the_secret(my: Setup) -> None:
    conn = sc_pymysql.connect(SECRET, cache=my.cache, database="information_schema", autocommit=True)
    with conn:
        assert query(conn, "SELECT DATABASE()") == ("information_schema",)
        assert conn.get_autocommit()


def test_creator_opens_a_new_connection_per_call(my: Setup) -> None:
    new_connection = sc_pymysql.creator(SECRET, cache=my.cache, autocommit=True)
    first, second = new_connection(), new_connection()
    with first, second:
        assert first.thread_id() != second.thread_id()
