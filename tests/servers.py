"""Pytest plugin: real PostgreSQL and MariaDB/MySQL servers with password authentication enforced.

Load with ``pytest_plugins = ["tests.servers"]`` in conftest.py (or ``-p tests.servers``).

- ``pg_server`` (session): a private scram-sha-256 cluster from ``secretcache.demo.localdb.start_postgres``.
- ``mysql_server`` (session): the running MariaDB/MySQL (``SECRETCACHE_TEST_MYSQL_*``,
  default root@127.0.0.1:3306).
- ``pg_account`` / ``mysql_account``: a fresh user + database per test, dropped afterwards.
- ``pg_master_account`` / ``mysql_master_account``: an admin-like account (the ``masterarn`` of
  alternating-users rotation).
- ``db_server`` / ``db_account`` / ``db_master_account``: the same, parametrized over both engines.

Every test that uses one of them is marked ``integration`` at collection time, and a missing server FAILS the
test with what to install (never a skip).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from secretcache.demo.localdb import (
    DbAccount,
    DbServer,
    create_account,
    drop_account,
    flush_hosts,
    mysql_admin_from_env,
    start_postgres,
)

SERVER_FIXTURES = frozenset({
    "pg_server", "mysql_server", "db_server",
    "pg_account", "mysql_account", "db_account",
    "pg_master_account", "mysql_master_account", "db_master_account",
    "db_driver",  # tests/db/conftest.py: each secretcache.db factory on its server
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[DbServer]:
    """A private PostgreSQL cluster with scram-sha-256 on 127.0.0.1 (stopped and removed at the end)."""
    try:
        server = start_postgres()
    except RuntimeError as e:
        pytest.fail(f"PostgreSQL with password authentication is required: {e}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[DbServer]:
    """The running MariaDB/MySQL server (its passwords for the users we create are always checked)."""
    try:
        server = mysql_admin_from_env()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    flush_hosts(server)
    yield server
    flush_hosts(server)  # leave no host blocked by the session's deliberate wrong-password logins


@pytest.fixture(params=["postgres", "mysql"])
def db_server(request: pytest.FixtureRequest) -> DbServer:
    """Either server; tests using it (or ``db_account``) run once per engine."""
    request.node.add_marker(pytest.mark.integration)
    server: DbServer = request.getfixturevalue("pg_server" if request.param == "postgres" else "mysql_server")
    return server


def _account(server: DbServer, *, master: bool = False) -> Iterator[DbAccount]:
    account = create_account(server, master=master)
    try:
        yield account
    finally:
        drop_account(server, account)


@pytest.fixture
def pg_account(pg_server: DbServer) -> Iterator[DbAccount]:
    yield from _account(pg_server)


@pytest.fixture
def mysql_account(mysql_server: DbServer) -> Iterator[DbAccount]:
    yield from _account(mysql_server)


@pytest.fixture
def db_account(db_server: DbServer) -> Iterator[DbAccount]:
    yield from _account(db_server)


@pytest.fixture
def pg_master_account(pg_server: DbServer) -> Iterator[DbAccount]:
    yield from _account(pg_server, master=True)


@pytest.fixture
def mysql_master_account(mysql_server: DbServer) -> Iterator[DbAccount]:
    yield from _account(mysql_server, master=True)


@pytest.fixture
def db_master_account(db_server: DbServer) -> Iterator[DbAccount]:
    yield from _account(db_server, master=True)
