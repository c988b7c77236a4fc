"""Database faults during a password rotation: dropped connections and a server restart.

A single-user rotation (the hardest case: the old password dies at setSecret, before AWSCURRENT moves)
is driven by :mod:`secretcache.rotation` against moto (in process) and a real server; inside the window
between setSecret and finishSecret the server's connections are dropped (``pg_terminate_backend``,
MariaDB ``KILL``) or the server is stopped and started again. Proven for each factory:

- it recovers: logins after the fault use the AWSPENDING credentials, queries succeed again;
- no refresh storm: failed connects that are not refused logins (connection refused, connection lost)
  never call Secrets Manager, however many there are; the refused logins after the fault cost at most
  two calls (one AWSCURRENT refresh, one AWSPENDING read) for all of them together;
- errors are the driver's own (``psycopg.OperationalError``, ``pymysql.err.OperationalError``,
  ``sqlalchemy.exc.OperationalError``, ``psycopg_pool.PoolTimeout``), never a secretcache error, and
  never show a password (every password here is a canary);
- a rotation whose own database step meets a stopped server fails, and the retry with the same token
  (what Secrets Manager does) completes it.

PostgreSQL runs in a private cluster started by this module, so restarting it disturbs no other test.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devtools.faults import PostgresRestarter, kill_mysql_connections, terminate_pg_backends
from devtools.moto_helpers import count_calls
from secretcache import SecretCache, SecretCacheError
from secretcache.config import CacheConfig
from secretcache.demo.localdb import (
    DbAccount,
    DbServer,
    admin_connect,
    connect_as,
    create_account,
    drop_account,
    start_postgres,
)
from secretcache.rotation import MySQLSingleUser, PostgresSingleUser, rotate_secret_now
from secretcache.rotation.passwords import PasswordPolicy
from tests.fixtures.fix_canary import CANARY, canary_value
from tests.fixtures.fix_canary_checks import leaking_locals

pytestmark = pytest.mark.integration

SECRET = "app/db"
MAX_WINDOW_CALLS = 2
"""GetSecretValue calls the application may make for all the refused logins after a fault in the window:
one forced AWSCURRENT refresh (the version did not change) and one AWSPENDING read, shared."""


# -- the world: a private PostgreSQL, accounts with canary passwords, moto, rotation passwords too ----


@pytest.fixture(scope="module")
def pg() -> Iterator[DbServer]:
    try:
        server = start_postgres()
    except RuntimeError as e:
        pytest.fail(f"PostgreSQL with password authentication is required: {e}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def canary_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rotations generate passwords that carry the canary, so the suite's leak checks watch them."""
    monkeypatch.setattr(PasswordPolicy, "generate", lambda self: f"{CANARY}{secrets.token_hex(8)}Aa1")


@dataclass
class World:
    server: DbServer
    account: DbAccount
    client: Any  # the application's boto3 client (its GetSecretValue calls are counted)
    rotation_client: Any
    cache: SecretCache
    calls: list[dict[str, Any]]

    def rotate(self, strategy: Any, after_step: Callable[[str, str], None] | None = None,
               token: str | None = None) -> str:
        version: str = rotate_secret_now(self.rotation_client, SECRET, strategy, after_step=after_step,
                                         token=token)
        return version


@pytest.fixture
def world(request: pytest.FixtureRequest, canary_passwords: None) -> Iterator[Callable[[str], World]]:
    import boto3
    from moto import mock_aws

    cleanups: list[Callable[[], None]] = []

    def build(engine: str) -> World:
        server: DbServer = request.getfixturevalue("pg" if engine == "postgres" else "mysql_server")
        account = create_account(server, password=canary_value("db")[:40])
        cleanups.append(lambda: drop_account(server, account))
        mock = mock_aws()
        mock.start()
        cleanups.append(mock.stop)
        client = boto3.client("secretsmanager", region_name="us-east-1")
        rotation_client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(Name=SECRET, SecretString=json.dumps(account.as_secret()))
        cache = SecretCache(client=client, config=CacheConfig(ttl=3600))
        cleanups.append(cache.close)
        return World(server, account, client, rotation_client, cache, count_calls(client, "GetSecretValue"))

    yield build
    for cleanup in reversed(cleanups):
        cleanup()


# -- the application side: one factory --------------------------------------------------------------


@dataclass
class App:
    op: Callable[[], None]
    """Open (or check out) a connection, run a query, give it back."""
    close: Callable[[], None] = lambda: None


class Held:
    """A long-lived connection per thread, as an application keeps one: a broken one is dropped and the
    next use connects anew (through the factory, so with current credentials)."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._local = threading.local()
        self._all: list[Any] = []

    def use(self, work: Callable[[Any], object]) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            self._all.append(conn)
        try:
            work(conn)
        except Exception:
            self._local.conn = None
            raise

    def close(self) -> None:
        for conn in self._all:
            with contextlib.suppress(Exception):
                conn.close()


def build_app(factory: str, cache: SecretCache) -> App:
    if factory == "psycopg-connect":
        from secretcache.db import psycopg as sc_psycopg

        held = Held(lambda: sc_psycopg.connect(SECRET, cache=cache, connect_timeout=5, autocommit=True))
        return App(lambda: held.use(lambda conn: conn.execute("SELECT 1")), held.close)
    if factory == "psycopg-pool":
        from secretcache.db import psycopg as sc_psycopg

        pool = sc_psycopg.connection_pool(SECRET, cache=cache, min_size=2, max_size=4, timeout=1.0, open=True,
                                          reconnect_timeout=60, kwargs={"connect_timeout": 5})
        pool.wait(10)

        def pooled() -> None:
            with pool.connection() as conn:
                conn.execute("SELECT 1")

        return App(pooled, pool.close)
    if factory in ("pg-sqlalchemy", "my-sqlalchemy"):
        from sqlalchemy import text

        from secretcache.db.sqlalchemy import create_engine

        url = "postgresql+psycopg://" if factory == "pg-sqlalchemy" else "mysql+pymysql://"
        engine = create_engine(url, secret_id=SECRET, cache=cache, pool_pre_ping=True, pool_size=2,
                               max_overflow=2, pool_timeout=5)

        def sa_op() -> None:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        return App(sa_op, engine.dispose)
    if factory == "pymysql-connect":
        from secretcache.db import pymysql as sc_pymysql

        def query(conn: Any) -> None:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")

        mine = Held(lambda: sc_pymysql.connect(SECRET, cache=cache, connect_timeout=5))
        return App(lambda: mine.use(query), mine.close)
    raise AssertionError(factory)


def driver_errors() -> tuple[type[BaseException], ...]:
    import psycopg
    import psycopg_pool
    import pymysql
    import sqlalchemy.exc

    return (psycopg.OperationalError, psycopg_pool.PoolTimeout, pymysql.err.OperationalError,
            pymysql.err.InterfaceError, sqlalchemy.exc.OperationalError)


def attempt(op: Callable[[], None]) -> BaseException | None:
    try:
        op()
    except Exception as e:
        return e
    return None


def check_driver_native(failures: list[BaseException]) -> None:
    """Every failure is the driver's own error, not ours, and shows no password: neither in its message nor
    in a local of a secretcache frame of its traceback (what ``pytest --showlocals`` or Sentry would show)."""
    for error in failures:
        assert not leaking_locals(error), leaking_locals(error)
        assert not isinstance(error, SecretCacheError), f"a driver failure became {type(error).__name__}"
        kind = f"{type(error).__module__}.{type(error).__name__}"
        assert isinstance(error, driver_errors()), f"unexpected {kind}"
        chain: BaseException | None = error
        while chain is not None:
            assert CANARY not in str(chain), f"{type(chain).__name__} shows a password"
            chain = chain.__cause__ or chain.__context__


def until_ok(op: Callable[[], None], *, attempts: int = 40) -> list[BaseException]:
    """Run ``op`` until it succeeds (bounded attempts); return the failures met on the way."""
    failures: list[BaseException] = []
    for _ in range(attempts):
        error = attempt(op)
        if error is None:
            return failures
        failures.append(error)
    raise AssertionError(f"no recovery after {attempts} attempts: {failures[-1]!r}")


def hammer(op: Callable[[], None], threads: int = 6, per_thread: int = 5) -> list[BaseException | None]:
    """Many concurrent attempts (threads), as a busy application makes during an outage."""
    results: list[BaseException | None] = []
    lock = threading.Lock()

    def body() -> None:
        for _ in range(per_thread):
            outcome = attempt(op)
            with lock:
                results.append(outcome)

    workers = [threading.Thread(target=body) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert not w.is_alive(), "a worker is stuck"
    return results


# -- dropped connections in the rotation window --------------------------------------------------------


@pytest.mark.parametrize(("engine", "factory"), [
    ("postgres", "psycopg-connect"), ("postgres", "psycopg-pool"), ("postgres", "pg-sqlalchemy"),
    ("mysql", "pymysql-connect"), ("mysql", "my-sqlalchemy"),
])
def test_connections_dropped_in_the_rotation_window_recover_with_pending_credentials_and_two_calls_at_most(
    engine: str, factory: str, world: Callable[[str], World]
) -> None:
    w = world(engine)
    app = build_app(factory, w.cache)
    strategy = PostgresSingleUser() if engine == "postgres" else MySQLSingleUser()
    seen: dict[str, Any] = {}
    try:
        for _ in range(3):
            app.op()
        before = len(w.calls)

        def in_window(step: str, token: str) -> None:
            if step != "setSecret":
                return  # the old password is dead now; AWSCURRENT still names it
            admin = lambda: admin_connect(w.server)  # noqa: E731
            drop = terminate_pg_backends if engine == "postgres" else kill_mysql_connections
            seen["dropped"] = drop(admin, w.account.username)
            seen["failures"] = until_ok(app.op)
            seen["after"] = hammer(app.op)
            seen["calls"] = len(w.calls) - before

        w.rotate(strategy, after_step=in_window)
        assert seen["dropped"] >= 1, "the fault dropped no connection: nothing was tested"
        check_driver_native(seen["failures"])
        assert len(seen["failures"]) <= 4, f"more failures than dropped connections: {seen['failures']}"
        assert all(outcome is None for outcome in seen["after"]), [o for o in seen["after"] if o]
        assert seen["calls"] <= MAX_WINDOW_CALLS, f"{seen['calls']} GetSecretValue calls: a refresh storm"
        assert until_ok(app.op) == []  # after finishSecret, as before
    finally:
        app.close()


# -- a server restart in the rotation window -----------------------------------------------------------


@pytest.mark.parametrize("factory", ["psycopg-connect", "psycopg-pool", "pg-sqlalchemy"])
def test_a_server_restart_in_the_rotation_window_costs_no_call_while_down_and_recovers(
    factory: str, world: Callable[[str], World]
) -> None:
    w = world("postgres")
    assert w.server.data_dir is not None
    restarter = PostgresRestarter(w.server.data_dir)
    app = build_app(factory, w.cache)
    seen: dict[str, Any] = {}
    try:
        app.op()
        before = len(w.calls)

        def in_window(step: str, token: str) -> None:
            if step != "setSecret":
                return
            restarter.stop()
            try:
                seen["down"] = hammer(app.op, threads=6, per_thread=3)
                seen["calls_while_down"] = len(w.calls) - before
            finally:
                restarter.start()
            seen["recovery_failures"] = until_ok(app.op)
            seen["after"] = hammer(app.op)
            seen["calls"] = len(w.calls) - before

        w.rotate(PostgresSingleUser(), after_step=in_window)
        down = seen["down"]
        assert all(outcome is not None for outcome in down), "a query succeeded while the server was down"
        check_driver_native([e for e in down if e is not None])
        assert seen["calls_while_down"] == 0, (
            f"{len(down)} failed connects while down made {seen['calls_while_down']} GetSecretValue calls: "
            "a connection error is not a refused login and must never refresh the secret")
        check_driver_native(seen["recovery_failures"])
        assert all(outcome is None for outcome in seen["after"]), [o for o in seen["after"] if o]
        assert seen["calls"] <= MAX_WINDOW_CALLS, f"{seen['calls']} GetSecretValue calls: a refresh storm"
        assert until_ok(app.op) == []
    finally:
        app.close()


def test_a_rotation_whose_database_step_meets_a_stopped_server_completes_when_retried_with_its_token(
    world: Callable[[str], World]
) -> None:
    import psycopg

    w = world("postgres")
    assert w.server.data_dir is not None
    restarter = PostgresRestarter(w.server.data_dir)
    app = build_app("psycopg-connect", w.cache)
    token = str(uuid.uuid4())

    def stop_before_set_secret(step: str, _: str) -> None:
        if step == "createSecret":
            restarter.stop()

    try:
        with pytest.raises(Exception) as info:
            w.rotate(PostgresSingleUser(), after_step=stop_before_set_secret, token=token)
        assert isinstance(info.value, psycopg.OperationalError) or isinstance(info.value.__cause__,
                                                                              psycopg.OperationalError)
        assert CANARY not in str(info.value)
        restarter.start()
        app.op()  # the old password still works: setSecret never ran
        w.rotate(PostgresSingleUser(), token=token)  # Secrets Manager retries the function: same token
        stages = w.rotation_client.describe_secret(SecretId=SECRET)["VersionIdsToStages"]
        assert "AWSCURRENT" in stages[token]
        calls = len(w.calls)
        assert until_ok(app.op) == []  # the cached, now dead, password is replaced through the policy
        assert len(w.calls) - calls <= MAX_WINDOW_CALLS
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect_as(w.account)  # the rotation really changed the password
    finally:
        app.close()
