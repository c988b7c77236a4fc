"""secretcache.db.sqlalchemy against the real servers: PostgreSQL (psycopg) and MariaDB (pymysql); async engines
also on asyncpg, aiomysql and asyncmy.

Most tests run once per engine (``db_account``). Secrets live in an InMemoryBackend; rotations are done by
hand here; the rotation framework drives the load tests in test_db_rotation_load.py.
What every factory does alike is in test_db_drivers.py.
"""

from __future__ import annotations

import json
import logging
import socket

import pytest
import sqlalchemy
from sqlalchemy import exc, pool, text

from secretcache import SecretCache
from secretcache.config import CacheConfig
from secretcache.db import AuthStats, auth_stats, is_auth_failure
from secretcache.db.sqlalchemy import attach, create_async_engine, create_engine
from secretcache.demo.localdb import DbAccount, DbServer, set_password
from tests.fixtures.fix_db import MakeSetup, Setup

SECRET = "app/sa"
DRIVER = {"postgres": "postgresql+psycopg", "mysql": "mysql+pymysql"}


@pytest.fixture
def sa(make_setup: MakeSetup, db_server: DbServer, db_account: DbAccount) -> Setup:
    return make_setup(db_server, db_account, SECRET)


def driver(sa: Setup) -> str:
    return DRIVER[sa.account.engine]


def make_engine(sa: Setup, url_rest: str = "", **kwargs: object) -> sqlalchemy.Engine:
    engine = create_engine(f"{driver(sa)}://{url_rest}", secret_id=SECRET, cache=sa.cache, **kwargs)
    sa.engines.append(engine)
    return engine


def plain_url(sa: Setup, password: str, dbname: str | None = None) -> str:
    a = sa.account
    return f"{driver(sa)}://{a.username}:{password}@{a.host}:{a.port}/{dbname or a.dbname}"


def scalar(engine: sqlalchemy.Engine, sql: str) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


# -- detection through SQLAlchemy ----------------------------------------------------------------------

def test_a_real_wrong_password_through_sqlalchemy_is_an_auth_failure(sa: Setup) -> None:
    engine = sqlalchemy.create_engine(plain_url(sa, "wrongPassword1"), poolclass=pool.NullPool)
    with pytest.raises(exc.OperationalError) as info:
        engine.connect()
    assert is_auth_failure(info.value)
    assert is_auth_failure(info.value.orig)  # type: ignore[arg-type]


def test_real_unknown_database_and_syntax_errors_through_sqlalchemy_are_not(sa: Setup) -> None:
    url = plain_url(sa, sa.account.password, "sc_nope_db")
    engine = sqlalchemy.create_engine(url, poolclass=pool.NullPool)
    with pytest.raises(exc.OperationalError) as no_db:
        engine.connect()
    assert not is_auth_failure(no_db.value)

    with sqlalchemy.create_engine(plain_url(sa, sa.account.password)).connect() as conn, \
            pytest.raises(exc.ProgrammingError) as syntax:
        conn.execute(text("SELEC 1"))
    assert not is_auth_failure(syntax.value)


# -- engines -------------------------------------------------------------------------------------------

def test_url_parts_win_over_the_secret(sa: Setup) -> None:
    other = "postgres" if sa.account.engine == "postgres" else "information_schema"
    engine = make_engine(sa, f"/{other}")
    sql = "SELECT current_database()" if sa.account.engine == "postgres" else "SELECT DATABASE()"
    assert scalar(engine, sql) == other


@pytest.mark.parametrize("options", [
    {"poolclass": pool.QueuePool, "pool_pre_ping": True, "pool_recycle": 3600},
    {"poolclass": pool.NullPool},
], ids=["queuepool-preping-recycle", "nullpool"])
def test_new_connections_cross_the_single_user_window(sa: Setup, options: dict[str, object]) -> None:
    engine = make_engine(sa, **options)
    held = engine.connect()
    sa.begin_single_user_rotation("pw1SaRotated")

    engine.pool.dispose()  # drop idle pooled connections: the next checkout logs in anew
    assert scalar(engine, "SELECT 1") == 1
    assert held.execute(text("SELECT 2")).scalar() == 2  # opened before the rotation: still works
    held.close()
    stats = auth_stats(SECRET, cache=sa.cache)
    assert (stats.auth_failures, stats.refreshes, stats.pending_fetches, stats.pending_logins) == (1, 1, 1, 1)


def test_pool_recycle_moves_pooled_connections_to_new_credentials(sa: Setup) -> None:
    engine = make_engine(sa, pool_size=1, max_overflow=0, pool_recycle=3600)
    assert scalar(engine, "SELECT 1") == 1
    sa.begin_single_user_rotation("pw1SaRecycled")
    assert scalar(engine, "SELECT 1") == 1  # the pooled connection survives the password change
    assert auth_stats(SECRET, cache=sa.cache).auth_failures == 0
    engine.pool._recycle = 0.0  # type: ignore[attr-defined]  # as if it were older than pool_recycle
    assert scalar(engine, "SELECT 1") == 1  # recycled: a new login, through the policy
    assert auth_stats(SECRET, cache=sa.cache).pending_logins == 1


def test_attach_to_an_engine_you_built(sa: Setup) -> None:
    engine = sqlalchemy.create_engine(f"{driver(sa)}://", poolclass=pool.NullPool)
    sa.engines.append(engine)
    assert attach(engine, SECRET, cache=sa.cache) is engine
    assert scalar(engine, "SELECT 1") == 1
    with pytest.raises(ValueError, match="already"):
        attach(engine, SECRET, cache=sa.cache)


def test_creator_cannot_be_combined(sa: Setup) -> None:
    with pytest.raises(TypeError, match="creator"):
        create_engine(f"{driver(sa)}://", secret_id=SECRET, cache=sa.cache, creator=lambda: None)


# -- async engines: every async driver SQLAlchemy has for the two servers ----------------------------------

ASYNC_DRIVERS = {
    "psycopg": ("postgres", "postgresql+psycopg"),
    "asyncpg": ("postgres", "postgresql+asyncpg"),
    "aiomysql": ("mysql", "mysql+aiomysql"),
    "asyncmy": ("mysql", "mysql+asyncmy"),
}
DRIVER_MODULES = {"psycopg": "psycopg", "asyncpg": "asyncpg", "aiomysql": "pymysql", "asyncmy": "asyncmy"}
"""The package whose exception each driver raises (aiomysql raises PyMySQL's)."""


def connect_error(url: str, error: BaseException) -> None:
    """A failed connect reaches the caller as SQLAlchemy itself raises it: a ``DBAPIError``, except that
    SQLAlchemy 2.0's asyncpg adapter lets asyncpg's own exception through (2.1 wraps it); we add nothing."""
    driver = url.partition("+")[2]
    if isinstance(error, exc.DBAPIError):
        return
    assert driver == "asyncpg", f"{driver}: {type(error).__name__} is not SQLAlchemy's DBAPIError"
    assert sqlalchemy.__version__.startswith("2.0."), f"SQLAlchemy {sqlalchemy.__version__} wraps asyncpg's errors"
    assert type(error).__module__.split(".")[0] == "asyncpg", type(error)


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.integration) for name in ASYNC_DRIVERS])
def async_sa(request: pytest.FixtureRequest, make_setup: MakeSetup) -> tuple[str, Setup]:
    engine, url = ASYNC_DRIVERS[request.param]
    prefix = "pg" if engine == "postgres" else "mysql"
    setup = make_setup(request.getfixturevalue(f"{prefix}_server"), request.getfixturevalue(f"{prefix}_account"),
                       SECRET)
    return url, setup


async def async_scalar(url: str, setup: Setup, sql: str, *, url_rest: str = "", **kwargs: object) -> object:
    engine = create_async_engine(f"{url}://{url_rest}", secret_id=SECRET, cache=setup.cache,
                                 poolclass=pool.NullPool, **kwargs)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql))).scalar()
    finally:
        await engine.dispose()


def whoami(setup: Setup) -> str:
    return "SELECT current_user" if setup.account.engine == "postgres" else \
        "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)"


def which_database(setup: Setup) -> str:
    return "SELECT current_database()" if setup.account.engine == "postgres" else "SELECT DATABASE()"


async def test_an_async_engine_takes_everything_from_the_secret_and_the_url_wins(
    async_sa: tuple[str, Setup]
) -> None:
    url, setup = async_sa
    assert await async_scalar(url, setup, whoami(setup)) == setup.account.username
    assert await async_scalar(url, setup, which_database(setup)) == setup.account.dbname
    other = "postgres" if setup.account.engine == "postgres" else "information_schema"
    assert await async_scalar(url, setup, which_database(setup), url_rest=f"/{other}") == other
    assert setup.calls == 1


async def test_the_async_engine_crosses_the_window(async_sa: tuple[str, Setup]) -> None:
    url, setup = async_sa
    engine = create_async_engine(f"{url}://", secret_id=SECRET, cache=setup.cache, poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text(whoami(setup)))).scalar() == setup.account.username
        setup.begin_single_user_rotation(f"pw1SaAsync{url.partition('+')[2]}")
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        stats = auth_stats(SECRET, cache=setup.cache)
        assert (stats.auth_failures, stats.refreshes, stats.pending_fetches, stats.pending_logins) == (1, 1, 1, 1)
    finally:
        await engine.dispose()


async def test_a_wrong_password_through_an_async_engine_gives_up_with_the_drivers_error(
    async_sa: tuple[str, Setup], caplog: pytest.LogCaptureFixture
) -> None:
    url, setup = async_sa
    caplog.set_level(logging.DEBUG)
    setup.passwords.append("DbOnlyPassword789")
    set_password(setup.server, setup.account.username, "DbOnlyPassword789")
    with pytest.raises(Exception) as info:  # as SQLAlchemy raises it: connect_error()
        await async_scalar(url, setup, "SELECT 1")
    connect_error(url, info.value)
    orig = getattr(info.value, "orig", None)
    chain = [e for e in (info.value, orig, getattr(orig, "__cause__", None)) if e is not None]
    driver_error = next(e for e in chain
                        if type(e).__module__.split(".")[0] == DRIVER_MODULES[url.partition("+")[2]])
    assert is_auth_failure(driver_error)  # type: ignore[arg-type]
    notes = [n for e in chain for n in getattr(e, "__notes__", ())]
    assert any(repr(SECRET) in note for note in notes)
    stats = auth_stats(SECRET, cache=setup.cache)
    assert stats.auth_failures <= 3
    assert stats.gave_up == 1
    assert setup.calls <= 3  # cold read, one refresh, one AWSPENDING read
    setup.assert_no_password(str(info.value), repr(info.value), *map(repr, chain), *notes, caplog.text)


async def test_an_unknown_database_and_a_down_server_cost_an_async_engine_no_refresh(
    async_sa: tuple[str, Setup]
) -> None:
    url, setup = async_sa
    assert await async_scalar(url, setup, "SELECT 1") == 1
    with pytest.raises(Exception) as no_db:  # as SQLAlchemy raises it: connect_error()
        await async_scalar(url, setup, "SELECT 1", url_rest="/sc_nope_db")
    connect_error(url, no_db.value)
    assert not is_auth_failure(no_db.value)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with pytest.raises(Exception) as down:  # each driver its own: OSError, OperationalError
        await async_scalar(url, setup, "SELECT 1", connect_args={"port": closed_port})
    assert not is_auth_failure(down.value)
    assert setup.calls == 1
    assert auth_stats(SECRET, cache=setup.cache) == AuthStats()


def test_the_python_examples_in_docs_databases_md_run(
    pg_account: DbAccount, mysql_account: DbAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every ```python block of docs/databases.md, run as written, with the default cache holding the
    secrets it names (prod/app/db on PostgreSQL, prod/app/mysql on MariaDB)."""
    import re
    from pathlib import Path

    import secretcache
    from secretcache.testing import InMemoryBackend

    doc = (Path(__file__).resolve().parents[2] / "docs" / "databases.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.DOTALL)
    # The Redshift block needs a Redshift endpoint (without TLS, the test proxy's): its call, with ssl=False,
    # is tests/db/test_db_redshift.py::test_connect_reads_the_redshift_secret.
    blocks = [block for block in blocks if "secretcache.db import redshift" not in block]
    assert len(blocks) >= 5
    backend = InMemoryBackend({"prod/app/db": json.dumps(pg_account.as_secret()),
                               "prod/app/mysql": json.dumps(mysql_account.as_secret())})
    previous = secretcache.set_default_cache(SecretCache(backend, config=CacheConfig(ttl=3600)))
    try:
        for block in blocks:
            exec(compile(block, "docs/databases.md", "exec"), {"__name__": "docs_example"})
    finally:
        cache = secretcache.set_default_cache(previous)
        assert cache is not None
        cache.close()
    assert backend.calls["GetSecretValue"] == 2  # one read per secret: everything else was a cache hit
