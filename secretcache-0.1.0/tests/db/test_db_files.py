"""End to end: real PostgreSQL and MariaDB, the database secret mounted as a file (the kubelet's atomic writer
standing in for the CSI driver), eight workers opening fresh connections through the psycopg, SQLAlchemy and
PyMySQL factories while the password changes.

- **Files only**: the password changes (the old one dies), then the file is swapped. Logins that start
  before the swap can fail (the file still holds a dead password: the single-user window, which mounted
  files alone cannot cross); every operation that starts once the swap is visible to the rotation policy
  (the swap done, plus the policy's ``min_refresh_interval``, its rate limit on forced reads) succeeds:
  the first refused login re-reads the file (``refresh``) and logs in with the new password.
- **Files, then AWS** (``ChainBackend(FileBackend, AwsBackend)``): a full single-user rotation by the
  rotation framework in moto, the file swapped only after finishSecret (the reconciler's lag), traffic
  held inside the window: AWSPENDING comes from AWS through the chain; zero failed operations at all.

The application's cache has a ttl far longer than the test, so only the rotation policy can keep it working.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from devtools.atomic_writer import AtomicWriter
from secretcache import SecretCache
from secretcache.backends import ChainBackend, FileBackend
from secretcache.config import CacheConfig
from secretcache.credentials import AuthPolicy
from secretcache.db import auth_stats
from secretcache.demo.localdb import DbAccount, DbServer, set_password

pytestmark = pytest.mark.integration  # the servers are reached through getfixturevalue, unseen at collection

SECRET = "app/db"
WORKERS = 8
ROTATIONS = 4
OPS_AFTER = 2 * WORKERS
WAIT = 60.0
FACTORIES = ["pg-psycopg-connect", "pg-psycopg-pool", "pg-sa-nullpool", "pg-sa-queuepool",
             "my-pymysql-connect", "my-sa-nullpool"]
FILE = SECRET.replace("/", "_")
Mounted = tuple[DbServer, DbAccount, AtomicWriter]


# -- the application side: one factory, fresh connections ------------------------------------------------

NO_TLS = {"ssl_disabled": True}
"""The test MariaDB has no TLS; PyMySQL >= 1.2 would otherwise try it on every connect."""


class App:
    """``op`` opens a fresh connection through one factory, queries, closes; ``close`` disposes the rest."""

    def __init__(self, op: Callable[[], None], close: Callable[[], None] = lambda: None) -> None:
        self.op, self.close = op, close


def build_app(factory: str, cache: SecretCache) -> App:
    if factory == "pg-psycopg-connect":
        from secretcache.db import psycopg as sc_psycopg

        def op() -> None:
            with sc_psycopg.connect(SECRET, cache=cache) as conn:
                conn.execute("SELECT 1")

        return App(op)
    if factory == "pg-psycopg-pool":
        from secretcache.db import psycopg as sc_psycopg

        pool = sc_psycopg.connection_pool(SECRET, cache=cache, min_size=2, max_size=WORKERS, timeout=20, open=True)

        def pooled() -> None:
            with pool.connection() as conn:
                conn.execute("SELECT 1")
                conn.close()  # discarded: the pool's next connection logs in anew

        return App(pooled, pool.close)
    if factory == "my-pymysql-connect":
        from secretcache.db import pymysql as sc_pymysql

        def my_op() -> None:
            conn = sc_pymysql.connect(SECRET, cache=cache, **NO_TLS)
            with conn, conn.cursor() as cur:
                cur.execute("SELECT 1")

        return App(my_op)
    from sqlalchemy import pool as sa_pool
    from sqlalchemy import text

    from secretcache.db.sqlalchemy import create_engine

    url = "postgresql+psycopg://" if factory.startswith("pg") else "mysql+pymysql://"
    options: dict[str, Any] = {"connect_args": NO_TLS} if url.startswith("mysql") else {}
    if factory.endswith("nullpool"):
        options["poolclass"] = sa_pool.NullPool
    else:
        options.update(pool_pre_ping=True, pool_recycle=3600)
    engine = create_engine(url, secret_id=SECRET, cache=cache, **options)

    def sa_op() -> None:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            conn.invalidate()  # the next checkout logs in anew

    return App(sa_op, engine.dispose)


@contextmanager
def secrets_manager() -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def strategy_for(engine: str) -> Any:
    from secretcache.rotation import MySQLSingleUser, PostgresSingleUser

    strategy = PostgresSingleUser if engine == "postgres" else MySQLSingleUser
    return strategy(tls="disable")  # the test servers have no TLS (loopback only)


class TimedLoad:
    """Eight threads running ``app.op`` in a loop, each operation recorded with its start time."""

    def __init__(self, app: App) -> None:
        assert app.op is not None
        self.op = app.op
        self.done: list[tuple[float, BaseException | None]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(WORKERS)]

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            error: BaseException | None = None
            try:
                self.op()
            except Exception as e:
                error = e
            with self.lock:
                self.done.append((started, error))

    def __enter__(self) -> TimedLoad:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(WAIT)
        assert not any(t.is_alive() for t in self.threads), "a worker is stuck"

    def started_after(self, moment: float) -> list[BaseException | None]:
        with self.lock:
            return [error for started, error in self.done if started >= moment]

    def failures(self) -> list[BaseException]:
        with self.lock:
            return [error for _, error in self.done if error is not None]

    def wait_for_ops_started_after(self, moment: float, n: int) -> None:
        deadline = time.monotonic() + WAIT
        while len(self.started_after(moment)) < n:
            assert time.monotonic() < deadline, f"workers stalled ({len(self.done)} operations)"
            assert all(t.is_alive() for t in self.threads), "a worker died"
            time.sleep(0.005)


def engine_of(factory: str) -> str:
    return "postgres" if factory.startswith("pg") else "mysql"


@pytest.fixture
def mounted(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Mounted]:
    def build(engine: str) -> Mounted:
        prefix = "pg" if engine == "postgres" else "mysql"
        server: DbServer = request.getfixturevalue(f"{prefix}_server")
        account: DbAccount = request.getfixturevalue(f"{prefix}_account")
        writer = AtomicWriter(tmp_path / "secrets-store")
        writer.write({FILE: json.dumps(account.as_secret())})
        return server, account, writer

    return build


@pytest.fixture
def caches() -> Iterator[list[SecretCache]]:
    made: list[SecretCache] = []
    yield made
    for cache in made:
        cache.close()


@pytest.mark.parametrize("factory", FACTORIES)
def test_files_only_zero_failed_operations_once_the_swap_is_visible(
    factory: str, mounted: Callable[[str], Mounted], caches: list[SecretCache]
) -> None:
    server, account, writer = mounted(engine_of(factory))
    cache = SecretCache(FileBackend(writer.target_dir, check_interval=1.0), config=CacheConfig(ttl=3600))
    caches.append(cache)
    app = build_app(factory, cache)
    settle = AuthPolicy().min_refresh_interval
    checked = 0
    try:
        with TimedLoad(app) as load:
            load.wait_for_ops_started_after(0.0, OPS_AFTER)
            for _ in range(ROTATIONS):
                password = secrets.token_urlsafe(18)
                set_password(server, account.username, password)  # setSecret: the old password dies
                writer.write({FILE: json.dumps(account.as_secret(password=password))})  # the CSI driver's swap
                visible = time.monotonic() + settle
                load.wait_for_ops_started_after(visible, OPS_AFTER)
                after = load.started_after(visible)
                checked += len(after)
                failed = [e for e in after if e is not None]
                assert failed == [], f"{len(failed)} failed after the swap, first: {failed[0]!r}"
    finally:
        app.close()
    assert checked >= ROTATIONS * OPS_AFTER
    stats = auth_stats(SECRET, cache=cache)
    assert stats.auth_failures >= 1  # the old password really died
    assert stats.refreshes >= 1  # and the refused logins re-read the file


@pytest.mark.parametrize("factory", ["pg-psycopg-connect", "pg-sa-nullpool", "my-pymysql-connect", "my-sa-nullpool"])
def test_files_then_aws_cross_the_single_user_window_with_zero_failures(
    factory: str, mounted: Callable[[str], Mounted], caches: list[SecretCache]
) -> None:
    from secretcache.backends import AwsBackend
    from secretcache.rotation import rotate_secret_now

    engine = engine_of(factory)
    _server, account, writer = mounted(engine)
    with secrets_manager() as client:
        client.create_secret(Name=SECRET, SecretString=json.dumps(account.as_secret()))
        backend = ChainBackend(FileBackend(writer.target_dir, check_interval=1.0), AwsBackend(client=client))
        cache = SecretCache(backend, config=CacheConfig(ttl=3600))
        caches.append(cache)
        app = build_app(factory, cache)
        strategy = strategy_for(engine)
        try:
            with TimedLoad(app) as load:

                def after_step(step: str, token: str) -> None:
                    if step == "setSecret":  # the old password is dead; the file and AWSCURRENT still hold it
                        load.wait_for_ops_started_after(time.monotonic(), 2 * OPS_AFTER)
                    elif step == "finishSecret":  # AWSCURRENT moved; the mounted file lags until resynced
                        load.wait_for_ops_started_after(time.monotonic(), OPS_AFTER)
                        current = client.get_secret_value(SecretId=SECRET)["SecretString"]
                        writer.write({FILE: current})
                        load.wait_for_ops_started_after(time.monotonic(), OPS_AFTER)

                load.wait_for_ops_started_after(0.0, OPS_AFTER)
                for _ in range(ROTATIONS // 2):
                    rotate_secret_now(client, SECRET, strategy, after_step=after_step)
                failures = load.failures()
                total = len(load.done)
        finally:
            app.close()
    assert failures == [], f"{len(failures)} failed operations of {total}, first: {failures[0]!r}"
    stats = auth_stats(SECRET, cache=cache)
    assert stats.auth_failures >= 1
    assert stats.pending_logins >= 1  # AWSPENDING came from AWS through the chain
    assert stats.gave_up == 0
