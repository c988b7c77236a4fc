"""Fixtures of the database tests: one account's secret behind a cache (``Setup``), and ``db_driver``, the
same connect-and-query steps through psycopg, PyMySQL or SQLAlchemy (over either server), so a test of the
factories' common behaviour is written once and runs on each driver."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from secretcache import SecretCache
from secretcache.config import CacheConfig
from secretcache.demo.localdb import DbAccount, DbServer, set_password
from secretcache.testing import InMemoryBackend

GET = "GetSecretValue"


class Setup:
    """One account's secret in an InMemoryBackend behind a SecretCache with a ttl far longer than the test.

    Rotations are done by hand: AWSPENDING put, the password changed as admin, AWSCURRENT moved.
    """

    def __init__(self, server: DbServer, account: DbAccount, secret_id: str) -> None:
        self.server, self.account, self.secret_id = server, account, secret_id
        self.backend = InMemoryBackend()
        self.current = self.backend.put_secret(secret_id, json.dumps(account.as_secret()))
        self.cache = SecretCache(self.backend, config=CacheConfig(ttl=3600))
        self.passwords = [account.password]
        self.engines: list[Any] = []  # SQLAlchemy engines made for the test, disposed after it

    @property
    def calls(self) -> int:
        return self.backend.calls[GET]

    def begin_single_user_rotation(self, password: str) -> str:
        """createSecret + setSecret: AWSPENDING and the database have ``password``, AWSCURRENT does not."""
        self.passwords.append(password)
        pending = self.backend.put_secret(self.secret_id, json.dumps(self.account.as_secret(password=password)),
                                          stages=("AWSPENDING",))
        set_password(self.server, self.account.username, password)
        return pending

    def finish(self, version_id: str) -> None:
        self.backend.update_version_stage(self.secret_id, "AWSCURRENT", move_to_version_id=version_id,
                                          remove_from_version_id=self.current)
        self.current = version_id

    def assert_no_password(self, *texts: str) -> None:
        for text in texts:
            for password in self.passwords:
                assert password not in text

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()
        self.cache.close()


MakeSetup = Callable[[DbServer, DbAccount, str], Setup]


@pytest.fixture
def make_setup() -> Iterator[MakeSetup]:
    made: list[Setup] = []

    def make(server: DbServer, account: DbAccount, secret_id: str) -> Setup:
        made.append(Setup(server, account, secret_id))
        return made[-1]

    yield make
    for setup in made:
        setup.close()


class Connection:
    """A connection of any of the drivers: ``query(sql)`` returns the first row as a tuple."""

    def __init__(self, raw: Any, query: Callable[[Any, str], tuple[object, ...]]) -> None:
        self.raw, self._query = raw, query

    def query(self, sql: str) -> tuple[object, ...]:
        return self._query(self.raw, sql)

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Driver:
    """One factory of secretcache.db over one server. ``connect(dbname=..., port=...)`` overrides the secret."""

    name: str
    setup: Setup
    error: type[BaseException]  # what a failed connect raises
    current_user: str  # SQL giving the user logged in as (MariaDB appends "@host")
    current_database: str
    connect_as: Callable[..., Connection]

    def connect(self, **overrides: Any) -> Connection:
        return self.connect_as(**overrides)

    def driver_error(self, error: BaseException) -> BaseException:
        """The driver's own exception (SQLAlchemy wraps it)."""
        return getattr(error, "orig", None) or error


def _psycopg(setup: Setup) -> Driver:
    import psycopg

    from secretcache.db import psycopg as factory

    def connect(**overrides: Any) -> Connection:
        raw = factory.connect(setup.secret_id, cache=setup.cache, **overrides)
        return Connection(raw, lambda conn, sql: tuple(conn.execute(sql).fetchone()))

    return Driver("psycopg", setup, psycopg.OperationalError, "SELECT current_user", "SELECT current_database()",
                  connect)


def _pymysql(setup: Setup) -> Driver:
    import pymysql

    from secretcache.db import pymysql as factory

    def query(conn: Any, sql: str) -> tuple[object, ...]:
        with conn.cursor() as cur:
            cur.execute(sql)
            return tuple(cur.fetchone())

    def connect(dbname: str | None = None, **overrides: Any) -> Connection:
        if dbname is not None:
            overrides["database"] = dbname
        return Connection(factory.connect(setup.secret_id, cache=setup.cache, **overrides),
                          query)

    return Driver("pymysql", setup, pymysql.err.OperationalError, "SELECT CURRENT_USER()", "SELECT DATABASE()",
                  connect)


def _sqlalchemy(setup: Setup) -> Driver:
    from sqlalchemy import exc, pool, text

    from secretcache.db.sqlalchemy import create_engine

    postgres = setup.account.engine == "postgres"
    driver = "postgresql+psycopg" if postgres else "mysql+pymysql"

    def connect(dbname: str | None = None, **overrides: Any) -> Connection:
        engine = create_engine(f"{driver}://" + (f"/{dbname}" if dbname else ""), secret_id=setup.secret_id,
                               cache=setup.cache, poolclass=pool.NullPool, connect_args=overrides)
        setup.engines.append(engine)
        return Connection(engine.connect(), lambda conn, sql: tuple(conn.execute(text(sql)).one()))

    return Driver(f"sqlalchemy+{driver.partition('+')[2]}", setup, exc.OperationalError,
                  "SELECT current_user" if postgres else "SELECT CURRENT_USER()",
                  "SELECT current_database()" if postgres else "SELECT DATABASE()", connect)


DRIVERS = {
    "psycopg": ("postgres", _psycopg),
    "pymysql": ("mysql", _pymysql),
    "sqlalchemy+psycopg": ("postgres", _sqlalchemy),
    "sqlalchemy+pymysql": ("mysql", _sqlalchemy),
}


@pytest.fixture(params=list(DRIVERS))
def db_driver(request: pytest.FixtureRequest, make_setup: MakeSetup) -> Driver:
    """Each factory on its server (SQLAlchemy on both); marked ``integration`` by tests/servers.py."""
    engine, build = DRIVERS[request.param]
    prefix = "pg" if engine == "postgres" else "mysql"
    server: DbServer = request.getfixturevalue(f"{prefix}_server")
    account: DbAccount = request.getfixturevalue(f"{prefix}_account")
    return build(make_setup(server, account, "app/driver"))
