"""secretcache.db.asyncpg against a real PostgreSQL with scram-sha-256 (password authentication enforced).

Secrets live in an InMemoryBackend (its call counter is the API-call count); rotations here are done by
hand (AWSPENDING put, password changed as admin, AWSCURRENT moved); the rotation framework drives the
load tests in test_db_rotation_load.py. Async SQLAlchemy on asyncpg, aiomysql and asyncmy is in
test_db_sqlalchemy.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from typing import Any

import asyncpg
import pytest

from secretcache import SecretFormatError
from secretcache.db import AuthStats, auth_stats, is_auth_failure
from secretcache.db import asyncpg as sc_asyncpg
from secretcache.demo.localdb import DbAccount, DbServer, admin_connect, set_password
from tests.fixtures.fix_db import MakeSetup, Setup

SECRET = "app/asyncpg"


@pytest.fixture
def pg(make_setup: MakeSetup, pg_server: DbServer, pg_account: DbAccount) -> Setup:
    return make_setup(pg_server, pg_account, SECRET)


def admin(server: DbServer, sql: str) -> None:
    with contextlib.closing(admin_connect(server)) as conn:
        conn.execute(sql)


def closed_port() -> int:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def bare_connect(a: DbAccount, **overrides: Any) -> asyncpg.Connection:
    params: dict[str, Any] = {"host": a.host, "port": a.port, "user": a.username, "password": a.password,
                              "database": a.dbname, **overrides}
    return await asyncpg.connect(**params)


# -- detection on the real server ----------------------------------------------------------------------

async def test_a_real_wrong_password_is_an_auth_failure(pg: Setup) -> None:
    with pytest.raises(asyncpg.InvalidPasswordError) as info:
        await bare_connect(pg.account, password="wrong")
    assert info.value.sqlstate == "28P01"
    assert is_auth_failure(info.value)


async def test_real_non_auth_refusals_are_not_auth_failures(pg: Setup) -> None:
    a = pg.account
    with pytest.raises(asyncpg.InvalidCatalogNameError) as no_db:
        await bare_connect(a, database="sc_nope_db")
    with pytest.raises(OSError) as down:
        await bare_connect(a, port=closed_port())
    admin(pg.server, f"ALTER ROLE {a.username} CONNECTION LIMIT 0")
    with pytest.raises(asyncpg.TooManyConnectionsError) as too_many:
        await bare_connect(a)
    admin(pg.server, f"ALTER ROLE {a.username} CONNECTION LIMIT -1 NOLOGIN")
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError) as nologin:
        await bare_connect(a)
    assert nologin.value.sqlstate == "28000"  # the code a rotation can explain, but not this one
    for error in (no_db.value, down.value, too_many.value, nologin.value):
        assert not is_auth_failure(error), repr(error)


# -- connect -------------------------------------------------------------------------------------------

async def test_connect_takes_everything_from_the_secret(pg: Setup) -> None:
    conn = await sc_asyncpg.connect(SECRET, cache=pg.cache)
    try:
        assert await conn.fetchrow("SELECT current_user, current_database()") == (pg.account.username,
                                                                                   pg.account.dbname)
    finally:
        await conn.close()
    assert pg.calls == 1


async def test_explicit_arguments_and_a_dsn_win_over_the_secret(pg: Setup) -> None:
    conn = await sc_asyncpg.connect(SECRET, cache=pg.cache, database="postgres",
                                    server_settings={"application_name": "sc"})
    try:
        assert await conn.fetchval("SELECT current_database()") == "postgres"
        assert await conn.fetchval("SELECT current_setting('application_name')") == "sc"
    finally:
        await conn.close()
    conn = await sc_asyncpg.connect(SECRET, cache=pg.cache, dsn="postgresql:///postgres?application_name=uri")
    try:
        assert await conn.fetchrow("SELECT current_user, current_database()") == (pg.account.username, "postgres")
    finally:
        await conn.close()
    a = pg.account  # a URI naming the host names the port (5432 unless given): the secret's is not used
    conn = await sc_asyncpg.connect(SECRET, cache=pg.cache, dsn=f"postgresql://{a.host}:{a.port}")
    await conn.close()


async def test_an_rds_managed_secret_needs_the_host_from_the_caller(pg: Setup) -> None:
    a = pg.account
    pg.backend.put_secret(SECRET, json.dumps({"username": a.username, "password": a.password}))
    pg.cache.invalidate()
    with pytest.raises(SecretFormatError, match="'host'"):
        await sc_asyncpg.connect(SECRET, cache=pg.cache)
    conn = await sc_asyncpg.connect(SECRET, cache=pg.cache, host=a.host, port=a.port, database=a.dbname)
    await conn.close()


async def test_the_single_user_window_is_crossed_with_awspending(pg: Setup) -> None:
    held = await sc_asyncpg.connect(SECRET, cache=pg.cache)
    pending = pg.begin_single_user_rotation("pw1AsyncpgRotated")
    conn = await sc_asyncpg.connect(SECRET, cache=pg.cache)  # AWSCURRENT's password is dead already
    assert await conn.fetchval("SELECT 1") == 1
    await conn.close()
    stats = auth_stats(SECRET, cache=pg.cache)
    assert (stats.auth_failures, stats.refreshes, stats.pending_fetches, stats.pending_logins) == (1, 1, 1, 1)
    assert await held.fetchval("SELECT 2") == 2  # opened before the rotation: still works
    await held.close()

    calls = pg.calls
    await (await sc_asyncpg.connect(SECRET, cache=pg.cache)).close()  # pinned: one login, no API call
    assert pg.calls == calls
    pg.finish(pending)
    pg.cache.refresh(SECRET)
    await (await sc_asyncpg.connect(SECRET, cache=pg.cache)).close()
    assert auth_stats(SECRET, cache=pg.cache).auth_failures == 1


async def test_a_wrong_password_fails_fast_with_asyncpgs_error(
    pg: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pg.passwords.append("DbOnlyPassword123")
    set_password(pg.server, pg.account.username, "DbOnlyPassword123")
    with pytest.raises(asyncpg.InvalidPasswordError) as info:
        await sc_asyncpg.connect(SECRET, cache=pg.cache)
    error = info.value
    assert any(repr(SECRET) in note for note in error.__notes__)
    stats = auth_stats(SECRET, cache=pg.cache)
    assert stats.auth_failures <= 3
    assert stats.gave_up == 1
    assert pg.calls <= 3  # cold read, one refresh, one AWSPENDING read
    pg.assert_no_password(str(error), repr(error), *error.__notes__, caplog.text, repr(error.__cause__))


async def test_an_unknown_database_and_a_down_server_cost_no_refresh(pg: Setup) -> None:
    await (await sc_asyncpg.connect(SECRET, cache=pg.cache)).close()
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await sc_asyncpg.connect(SECRET, cache=pg.cache, database="sc_nope_db")
    with pytest.raises(OSError):
        await sc_asyncpg.connect(SECRET, cache=pg.cache, port=closed_port())
    assert pg.calls == 1
    assert auth_stats(SECRET, cache=pg.cache) == AuthStats()


# -- pools ---------------------------------------------------------------------------------------------

async def test_a_pool_logs_in_each_new_connection_with_current_credentials(pg: Setup) -> None:
    async with sc_asyncpg.create_pool(SECRET, cache=pg.cache, min_size=2, max_size=4) as pool, \
            pool.acquire() as held:
        pg.begin_single_user_rotation("pw1AsyncpgPool")
        await pool.expire_connections()  # every idle connection is replaced: new logins
        async with pool.acquire() as fresh:
            assert await fresh.fetchval("SELECT current_user") == pg.account.username
        assert await held.fetchval("SELECT 1") == 1
    stats = auth_stats(SECRET, cache=pg.cache)
    assert stats.pending_logins >= 1
    assert stats.gave_up == 0
    assert pg.calls == 3  # cold read, one refresh, one AWSPENDING read


async def test_the_pool_wraps_your_connect_and_keeps_init_and_connection_class(pg: Setup) -> None:
    class Mine(asyncpg.Connection):  # type: ignore[misc]
        pass

    seen: list[str] = []

    async def my_connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        seen.append(kwargs["user"])
        return await asyncpg.connect(*args, **kwargs)

    async def init(conn: asyncpg.Connection) -> None:
        await conn.execute("SET application_name = 'pooled'")

    async with sc_asyncpg.create_pool(SECRET, cache=pg.cache, connect=my_connect, init=init,
                                      connection_class=Mine, min_size=1, max_size=1) as pool, \
            pool.acquire() as conn:
        assert isinstance(conn, Mine)
        assert await conn.fetchval("SELECT current_setting('application_name')") == "pooled"
    assert seen == [pg.account.username]


async def test_a_pool_with_a_wrong_password_fails_with_asyncpgs_error(pg: Setup) -> None:
    pg.passwords.append("DbOnlyPassword456")
    set_password(pg.server, pg.account.username, "DbOnlyPassword456")
    with pytest.raises(asyncpg.InvalidPasswordError) as info:
        await sc_asyncpg.create_pool(SECRET, cache=pg.cache, min_size=1, max_size=1)
    assert auth_stats(SECRET, cache=pg.cache).gave_up == 1
    assert pg.calls <= 3
    pg.assert_no_password(str(info.value), repr(info.value))
