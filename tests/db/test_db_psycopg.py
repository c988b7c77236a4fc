"""secretcache.db.psycopg against a real PostgreSQL with scram-sha-256 (password authentication enforced).

Secrets live in an InMemoryBackend (its call counter is the API-call count); rotations here are done by
hand (AWSPENDING put, password changed as admin, AWSCURRENT moved); the rotation framework drives the
load tests in test_db_rotation_load.py.
What every factory does alike is in test_db_drivers.py.
"""

from __future__ import annotations

import json

import psycopg
import psycopg_pool
import pytest

from secretcache import SecretFormatError
from secretcache.db import auth_stats, is_auth_failure
from secretcache.db import psycopg as sc_psycopg
from secretcache.demo.localdb import DbAccount, DbServer
from tests.fixtures.fix_db import MakeSetup, Setup

SECRET = "app/pg"


@pytest.fixture
def pg(make_setup: MakeSetup, pg_server: DbServer, pg_account: DbAccount) -> Setup:
    return make_setup(pg_server, pg_account, SECRET)


def current_user(conn: psycopg.Connection) -> str:
    row = conn.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


# -- detection on the real server ----------------------------------------------------------------------

def test_a_real_wrong_password_is_an_auth_failure_without_sqlstate(pg: Setup) -> None:
    a = pg.account
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(host=a.host, port=a.port, user=a.username, password="wrong", dbname=a.dbname)
    assert info.value.sqlstate is None  # what psycopg 3 gives at connect time: the message only
    assert is_auth_failure(info.value)


def test_real_non_auth_errors_are_not_auth_failures(pg: Setup) -> None:
    a = pg.account
    with pytest.raises(psycopg.OperationalError) as no_db:
        psycopg.connect(host=a.host, port=a.port, user=a.username, password=a.password, dbname="sc_nope_db")
    assert "does not exist" in str(no_db.value)
    assert not is_auth_failure(no_db.value)

    good = {"host": a.host, "port": a.port, "user": a.username, "password": a.password, "dbname": a.dbname}
    with psycopg.connect(**good) as conn, pytest.raises(psycopg.errors.SyntaxError) as syntax:
        conn.execute("SELEC 1")
    assert not is_auth_failure(syntax.value)


# -- the factory ---------------------------------------------------------------------------------------

def test_explicit_arguments_win_over_the_secret(pg: Setup) -> None:
    with sc_psycopg.connect(SECRET, cache=pg.cache, dbname="postgres", autocommit=True) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("postgres",)
        assert conn.autocommit
    with sc_psycopg.connect(SECRET, cache=pg.cache, conninfo="dbname=postgres application_name=sc") as conn:
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == ("sc",)


def test_an_rds_managed_secret_needs_the_host_from_the_caller(pg: Setup) -> None:
    a = pg.account
    pg.backend.put_secret(SECRET, json.dumps({"username": a.username, "password": a.password}))
    pg.cache.invalidate()
    with pytest.raises(SecretFormatError, match="'host'"):
        sc_psycopg.connect(SECRET, cache=pg.cache)
    with sc_psycopg.connect(SECRET, cache=pg.cache, host=a.host, port=a.port, dbname=a.dbname) as conn:
        assert current_user(conn) == a.username


# -- pools ---------------------------------------------------------------------------------------------

def test_a_pool_refills_with_new_credentials_across_a_rotation(pg: Setup) -> None:
    pool = sc_psycopg.connection_pool(SECRET, cache=pg.cache, min_size=2, max_size=4, timeout=10, open=True)
    with pool:
        pool.wait(timeout=10)
        with pool.connection() as held:
            pg.begin_single_user_rotation("pw1PoolRotated")
            pool.drain()  # replace every idle connection now: new logins, in the pool's own workers
            with pool.connection() as fresh:
                assert current_user(fresh) == pg.account.username
            assert held.execute("SELECT 1").fetchone() == (1,)
        assert pool.get_stats().get("connections_errors", 0) == 0
    assert auth_stats(SECRET, cache=pg.cache).pending_logins >= 1


def test_the_pool_keeps_a_connection_class_you_pass(pg: Setup) -> None:
    class Mine(psycopg.Connection):  # type: ignore[type-arg]
        pass

    pool = sc_psycopg.connection_pool(SECRET, cache=pg.cache, connection_class=Mine, min_size=1, open=True)
    with pool, pool.connection() as conn:
        assert isinstance(conn, Mine)


def test_a_stale_password_through_a_kwargs_callable_alone_only_times_out(pg: Setup) -> None:
    """Why the pools use a connection class: psycopg_pool's callable kwargs never see the refusal."""
    a = pg.account
    pg.begin_single_user_rotation("pw1CallableOnly")
    kwargs = {"host": a.host, "port": a.port, "user": a.username, "password": a.password, "dbname": a.dbname}
    with psycopg_pool.ConnectionPool(kwargs=lambda: kwargs, min_size=1, open=True, timeout=1) as pool, \
            pytest.raises(psycopg_pool.PoolTimeout):
        pool.getconn()


async def test_connect_async_and_the_async_pool_cross_the_window(pg: Setup) -> None:
    conn = await sc_psycopg.connect_async(SECRET, cache=pg.cache)
    pg.begin_single_user_rotation("pw1AsyncRotated")
    conn2 = await sc_psycopg.connect_async(SECRET, cache=pg.cache)
    assert await (await conn2.execute("SELECT 1")).fetchone() == (1,)
    assert await (await conn.execute("SELECT 2")).fetchone() == (2,)
    await conn.close()
    await conn2.close()
    async with sc_psycopg.async_connection_pool(SECRET, cache=pg.cache, min_size=1, open=False) as pool, \
            pool.connection() as pooled:
        assert await (await pooled.execute("SELECT 3")).fetchone() == (3,)
    assert auth_stats(SECRET, cache=pg.cache).pending_logins >= 2
