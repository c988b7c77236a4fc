"""secretcache.db.sqlalchemy against the real servers: PostgreSQL (psycopg) and MariaDB (pymysql).

Most tests run once per engine (``db_account``). Secrets live in an InMemoryBackend; rotations are done by
hand here; the rotation framework drives the load tests in test_db_rotation_load.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy import exc, pool, text

from secretcache import SecretCache
from secretcache.config import CacheConfig
from secretcache.db import AuthStats, auth_stats, is_auth_failure
from secretcache.db.sqlalchemy import attach, create_async_engine, create_engine
from secretcache.demo.localdb import DbAccount, DbServer, set_password

SECRET = "app/sa"
GET = "GetSecretValue"
DRIVER = {"postgres": "postgresql+psycopg", "mysql": "mysql+pymysql"}


class Setup:
    def __init__(self, server: DbServer, account: DbAccount) -> None:
        from secretcache.testing import InMemoryBackend

        self.server, self.account = server, account
        self.backend = InMemoryBackend()
        self.current = self.backend.put_secret(SECRET, json.dumps(account.as_secret()))
        self.cache = SecretCache(self.backend, config=CacheConfig(ttl=3600))
        self.passwords = [account.password]
        self.driver = DRIVER[account.engine]
        self.engines: list[sqlalchemy.Engine] = []

    @property
    def calls(self) -> int:
        return self.backend.calls[GET]

    def engine(self, url_rest: str = "", **kwargs: object) -> sqlalchemy.Engine:
        engine = create_engine(f"{self.driver}://{url_rest}", secret_id=SECRET, cache=self.cache, **kwargs)
        self.engines.append(engine)
        return engine

    def begin_single_user_rotation(self, password: str) -> str:
        self.passwords.append(password)
        pending = self.backend.put_secret(SECRET, json.dumps(self.account.as_secret(password=password)),
                                          stages=("AWSPENDING",))
        set_password(self.server, self.account.username, password)
        return pending

    def plain_url(self, password: str, dbname: str | None = None) -> str:
        a = self.account
        return f"{self.driver}://{a.username}:{password}@{a.host}:{a.port}/{dbname or a.dbname}"


@pytest.fixture
def sa(db_server: DbServer, db_account: DbAccount) -> Iterator[Setup]:
    setup = Setup(db_server, db_account)
    yield setup
    for engine in setup.engines:
        engine.dispose()
    setup.cache.close()


def scalar(engine: sqlalchemy.Engine, sql: str) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


# -- detection through SQLAlchemy ----------------------------------------------------------------------


def test_a_real_wrong_password_through_sqlalchemy_is_an_auth_failure(sa: Setup) -> None:
    engine = sqlalchemy.create_engine(sa.plain_url("wrongPassword1"), poolclass=pool.NullPool)
    with pytest.raises(exc.OperationalError) as info:
        engine.connect()
    assert is_auth_failure(info.value)
    assert is_auth_failure(info.value.orig)  # type: ignore[arg-type]


def test_real_unknown_database_and_syntax_errors_through_sqlalchemy_are_not(sa: Setup) -> None:
    url = sa.plain_url(sa.account.password, "sc_nope_db")
    engine = sqlalchemy.create_engine(url, poolclass=pool.NullPool)
    with pytest.raises(exc.OperationalError) as no_db:
        engine.connect()
    assert not is_auth_failure(no_db.value)

    with sqlalchemy.create_engine(sa.plain_url(sa.account.password)).connect() as conn, \
            pytest.raises(exc.ProgrammingError) as syntax:
        conn.execute(text("SELEC 1"))
    assert not is_auth_failure(syntax.value)


# -- engines -------------------------------------------------------------------------------------------


def test_a_bare_url_takes_everything_from_the_secret(sa: Setup) -> None:
    engine = sa.engine()
    sql = "SELECT current_user" if sa.account.engine == "postgres" else "SELECT CURRENT_USER()"
    user = str(scalar(engine, sql))
    assert user.split("@")[0] == sa.account.username
    assert sa.calls == 1


def test_url_parts_win_over_the_secret(sa: Setup) -> None:
    other = "postgres" if sa.account.engine == "postgres" else "information_schema"
    engine = sa.engine(f"/{other}")
    sql = "SELECT current_database()" if sa.account.engine == "postgres" else "SELECT DATABASE()"
    assert scalar(engine, sql) == other


@pytest.mark.parametrize("options", [
    {"poolclass": pool.QueuePool, "pool_pre_ping": True, "pool_recycle": 3600},
    {"poolclass": pool.NullPool},
], ids=["queuepool-preping-recycle", "nullpool"])
def test_new_connections_cross_the_single_user_window(sa: Setup, options: dict[str, object]) -> None:
    engine = sa.engine(**options)
    held = engine.connect()
    sa.begin_single_user_rotation("pw1SaRotated")

    engine.pool.dispose()  # drop idle pooled connections: the next checkout logs in anew
    assert scalar(engine, "SELECT 1") == 1
    assert held.execute(text("SELECT 2")).scalar() == 2  # opened before the rotation: still works
    held.close()
    stats = auth_stats(SECRET, cache=sa.cache)
    assert (stats.auth_failures, stats.refreshes, stats.pending_fetches, stats.pending_logins) == (1, 1, 1, 1)


def test_pool_recycle_moves_pooled_connections_to_new_credentials(sa: Setup) -> None:
    engine = sa.engine(pool_size=1, max_overflow=0, pool_recycle=3600)
    assert scalar(engine, "SELECT 1") == 1
    sa.begin_single_user_rotation("pw1SaRecycled")
    assert scalar(engine, "SELECT 1") == 1  # the pooled connection survives the password change
    assert auth_stats(SECRET, cache=sa.cache).auth_failures == 0
    engine.pool._recycle = 0.0  # type: ignore[attr-defined]  # as if it were older than pool_recycle
    assert scalar(engine, "SELECT 1") == 1  # recycled: a new login, through the policy
    assert auth_stats(SECRET, cache=sa.cache).pending_logins == 1


def test_a_wrong_password_surfaces_as_sqlalchemys_error_with_the_drivers_inside(
    sa: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sa.passwords.append("DbOnlyPasswordSa1")
    set_password(sa.server, sa.account.username, "DbOnlyPasswordSa1")
    engine = sa.engine(poolclass=pool.NullPool)

    with pytest.raises(exc.OperationalError) as info:
        engine.connect()

    orig = info.value.orig
    assert orig is not None
    assert type(orig).__module__.split(".")[0] in ("psycopg", "pymysql")
    assert any(repr(SECRET) in note for note in orig.__notes__)
    assert auth_stats(SECRET, cache=sa.cache).auth_failures <= 3
    assert sa.calls <= 3
    for text_ in (str(info.value), repr(info.value), repr(orig), *orig.__notes__, caplog.text):
        for password in sa.passwords:
            assert password not in text_


def test_unknown_database_through_the_engine_fails_without_refresh(sa: Setup) -> None:
    engine = sa.engine("/sc_nope_db", poolclass=pool.NullPool)
    with pytest.raises(exc.OperationalError):
        engine.connect()
    assert sa.calls == 1
    assert auth_stats(SECRET, cache=sa.cache) == AuthStats()


def test_attach_to_an_engine_you_built(sa: Setup) -> None:
    engine = sqlalchemy.create_engine(f"{sa.driver}://", poolclass=pool.NullPool)
    sa.engines.append(engine)
    assert attach(engine, SECRET, cache=sa.cache) is engine
    assert scalar(engine, "SELECT 1") == 1
    with pytest.raises(ValueError, match="already"):
        attach(engine, SECRET, cache=sa.cache)


def test_creator_cannot_be_combined(sa: Setup) -> None:
    with pytest.raises(TypeError, match="creator"):
        create_engine(f"{sa.driver}://", secret_id=SECRET, cache=sa.cache, creator=lambda: None)


async def test_the_async_engine_crosses_the_window(pg_server: DbServer, pg_account: DbAccount) -> None:
    setup = Setup(pg_server, pg_account)
    engine = create_async_engine("postgresql+psycopg://", secret_id=SECRET, cache=setup.cache,
                                 poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT current_user"))).scalar() == pg_account.username
        setup.begin_single_user_rotation("pw1SaAsync")
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        assert auth_stats(SECRET, cache=setup.cache).pending_logins == 1
    finally:
        await engine.dispose()
        setup.cache.close()


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
