"""End to end: real databases under load while secretcache.rotation rotates the password, zero failures.

Eight workers (threads; asyncio tasks for asyncpg and the async engines) open fresh connections and run a query in a
loop through one factory, while the rotation framework (``rotate_secret_now``, the code a rotation Lambda
runs) rotates the secret in moto (in process) and the real server ten times. The application's cache has a
ttl far longer than the test, so only the rotation policy can keep it working. Asserted per run:

- zero failed operations;
- API calls (GetSecretValue from the application's cache) per rotation <= 3, not one per failing connect;
- refused logins bounded by the connects in flight (<= workers + 1 per rotation);
- a connection opened before the first rotation still works after the last; fresh ones log in.

Single-user and alternating-users rotations, on PostgreSQL and MariaDB, for every factory that applies.
The last tests hold the single-user window open (old password dead, AWSCURRENT not moved) with the
framework's ``after_step`` hook and run traffic through it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from secretcache import SecretCache
from secretcache.config import CacheConfig
from secretcache.db import auth_stats
from secretcache.demo.localdb import DbAccount
from secretcache.rotation import (
    MySQLAlternatingUsers,
    MySQLSingleUser,
    PostgresAlternatingUsers,
    PostgresSingleUser,
    rotate_secret_now,
)

WORKERS = 8
ROTATIONS = 10
MIN_GAP = 0.3
"""Seconds between rotations at least (pacing only, never asserted): traffic sees each new password."""
OPS_PER_GAP = 2 * WORKERS
"""Operations that must complete between two rotations (pacing by behaviour, not by the clock)."""
WAIT = 60.0
SECRET = "app/db"
MASTER = "app/db-master"
QUERY = "SELECT 1"

# -- the application side: one factory, eight workers --------------------------------------------------


@dataclass
class App:
    """What a factory builds: ``op`` opens a fresh connection, queries, closes; ``hold`` opens one to keep."""

    op: Callable[[], None] | None = None
    aop: Callable[[], Any] | None = None  # async twin of op (a coroutine function)
    astart: Callable[[], Any] | None = None  # coroutine functions run on the workers' loop before and after
    astop: Callable[[], Any] | None = None
    hold: Callable[[], Callable[[], None]] = lambda: (lambda: None)
    whoami: Callable[[], str] = lambda: ""
    close: Callable[[], None] = lambda: None


def _pg_whoami(conn: Any) -> str:
    return str(conn.execute("SELECT current_user").fetchone()[0])


def _my_query(conn: Any, sql: str = QUERY) -> Any:
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def sa_app(url: str, cache: SecretCache, **options: Any) -> App:
    from sqlalchemy import text

    from secretcache.db.sqlalchemy import create_engine

    engine = create_engine(url, secret_id=SECRET, cache=cache, **options)
    counter = iter(range(1 << 62))
    who = "SELECT current_user" if url.startswith("postgresql") else MY_WHOAMI

    def op() -> None:
        with engine.connect() as conn:
            assert conn.execute(text(QUERY)).scalar() == 1
            if next(counter) % 2:
                conn.invalidate()  # the next checkout logs in anew (through do_connect)

    def hold() -> Callable[[], None]:
        conn = engine.connect()
        return lambda: conn.execute(text(QUERY)).scalar()

    def whoami() -> str:
        with engine.connect() as conn:
            conn.invalidate()
        with engine.connect() as conn:
            return str(conn.execute(text(who)).scalar())

    return App(op=op, hold=hold, whoami=whoami, close=engine.dispose)


def sa_async_app(url: str, cache: SecretCache) -> App:
    from sqlalchemy import pool, text

    from secretcache.db.sqlalchemy import create_async_engine

    engine = create_async_engine(url, secret_id=SECRET, cache=cache, poolclass=pool.NullPool)

    async def aop() -> None:
        async with engine.connect() as conn:
            assert (await conn.execute(text(QUERY))).scalar() == 1

    return App(aop=aop, close=lambda: asyncio.run(engine.dispose()))


def asyncpg_app(cache: SecretCache) -> App:
    from secretcache.db import asyncpg as sc_asyncpg

    async def aop() -> None:
        conn = await sc_asyncpg.connect(SECRET, cache=cache)
        try:
            assert await conn.fetchval(QUERY) == 1
        finally:
            await conn.close()

    return App(aop=aop)


def asyncpg_pool_app(cache: SecretCache) -> App:
    from secretcache.db import asyncpg as sc_asyncpg

    pools: list[Any] = []

    async def astart() -> None:  # the pool belongs to the workers' loop
        # max_queries=2: every other release closes the connection; the next acquire (or the pool's
        # maintenance task keeping min_size) logs in anew through secretcache.
        pools.append(await sc_asyncpg.create_pool(SECRET, cache=cache, min_size=2, max_size=WORKERS,
                                                  max_queries=2))

    async def aop() -> None:
        async with pools[0].acquire() as conn:
            assert await conn.fetchval(QUERY) == 1

    async def astop() -> None:
        await pools[0].close()

    return App(aop=aop, astart=astart, astop=astop)


def psycopg_app(cache: SecretCache) -> App:
    from secretcache.db import psycopg as sc_psycopg

    def op() -> None:
        with sc_psycopg.connect(SECRET, cache=cache) as conn:
            conn.execute(QUERY)

    def hold() -> Callable[[], None]:
        conn = sc_psycopg.connect(SECRET, cache=cache)
        return lambda: conn.execute(QUERY)

    def whoami() -> str:
        with sc_psycopg.connect(SECRET, cache=cache) as conn:
            return _pg_whoami(conn)

    return App(op=op, hold=hold, whoami=whoami)


def psycopg_pool_app(cache: SecretCache) -> App:
    from secretcache.db import psycopg as sc_psycopg

    pool = sc_psycopg.connection_pool(SECRET, cache=cache, min_size=2, max_size=WORKERS, timeout=20,
                                      open=True)
    counter = iter(range(1 << 62))

    def op() -> None:
        with pool.connection() as conn:
            conn.execute(QUERY)
            if next(counter) % 2:
                conn.close()  # the pool discards it and refills in its background workers: new logins

    def hold() -> Callable[[], None]:
        conn = pool.getconn()
        return lambda: conn.execute(QUERY)

    def whoami() -> str:
        with pool.connection() as conn:
            conn.close()
        with pool.connection() as conn:
            return _pg_whoami(conn)

    return App(op=op, hold=hold, whoami=whoami, close=pool.close)


def pymysql_app(cache: SecretCache) -> App:
    from secretcache.db import pymysql as sc_pymysql

    def op() -> None:
        conn = sc_pymysql.connect(SECRET, cache=cache, **NO_TLS)
        with conn:
            assert _my_query(conn) == 1

    def hold() -> Callable[[], None]:
        conn = sc_pymysql.connect(SECRET, cache=cache, **NO_TLS)
        return lambda: _my_query(conn)

    def whoami() -> str:
        conn = sc_pymysql.connect(SECRET, cache=cache, **NO_TLS)
        with conn:
            return str(_my_query(conn, MY_WHOAMI))

    return App(op=op, hold=hold, whoami=whoami)


def build_app(factory: str, cache: SecretCache) -> App:
    from sqlalchemy import pool

    builders: dict[str, Callable[[], App]] = {
        "pg-sa-queuepool": lambda: sa_app("postgresql+psycopg://", cache, pool_pre_ping=True,
                                          pool_recycle=3600),
        "pg-sa-nullpool": lambda: sa_app("postgresql+psycopg://", cache, poolclass=pool.NullPool),
        "pg-sa-async": lambda: sa_async_app("postgresql+psycopg://", cache),
        "pg-sa-asyncpg": lambda: sa_async_app("postgresql+asyncpg://", cache),
        "pg-asyncpg-connect": lambda: asyncpg_app(cache),
        "pg-asyncpg-pool": lambda: asyncpg_pool_app(cache),
        "pg-psycopg-connect": lambda: psycopg_app(cache),
        "pg-psycopg-pool": lambda: psycopg_pool_app(cache),
        "my-sa-queuepool": lambda: sa_app("mysql+pymysql://", cache, pool_pre_ping=True, pool_recycle=3600,
                                          connect_args=NO_TLS),
        "my-sa-nullpool": lambda: sa_app("mysql+pymysql://", cache, poolclass=pool.NullPool,
                                         connect_args=NO_TLS),
        "my-pymysql-connect": lambda: pymysql_app(cache),
        "my-sa-aiomysql": lambda: sa_async_app("mysql+aiomysql://", cache),
        "my-sa-asyncmy": lambda: sa_async_app("mysql+asyncmy://", cache),
    }
    return builders[factory]()


NO_TLS = {"ssl_disabled": True}
"""PyMySQL >= 1.2 otherwise tries TLS with a new SSL context per connect (~30 ms CPU); the server has none."""

PG_FACTORIES = ["pg-sa-queuepool", "pg-sa-nullpool", "pg-sa-async", "pg-psycopg-connect", "pg-psycopg-pool",
                "pg-sa-asyncpg", "pg-asyncpg-connect", "pg-asyncpg-pool"]
MY_FACTORIES = ["my-sa-queuepool", "my-sa-nullpool", "my-pymysql-connect", "my-sa-aiomysql", "my-sa-asyncmy"]
WINDOW_FACTORIES = ["pg-sa-nullpool", "pg-psycopg-pool", "pg-sa-async", "my-pymysql-connect", "pg-asyncpg-pool",
                    "my-sa-aiomysql"]
MY_WHOAMI = "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)"


@dataclass
class Load:
    """Eight workers running ``app.op`` (threads) or ``app.aop`` (tasks on one event loop) until stopped."""

    app: App
    ok: int = 0
    failures: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def _record(self, error: BaseException | None) -> None:
        with self.lock:
            if error is None:
                self.ok += 1
            else:
                self.failures.append(error)

    def _thread(self) -> None:
        assert self.app.op is not None
        while not self.stop.is_set():
            try:
                self.app.op()
            except Exception as e:
                self._record(e)
            else:
                self._record(None)

    async def _tasks(self) -> None:
        assert self.app.aop is not None
        aop = self.app.aop

        async def task() -> None:
            while not self.stop.is_set():
                try:
                    await aop()
                except Exception as e:
                    self._record(e)
                else:
                    self._record(None)

        if self.app.astart is not None:
            await self.app.astart()
        try:
            await asyncio.gather(*(task() for _ in range(WORKERS)))
        finally:
            if self.app.astop is not None:
                await self.app.astop()

    def start(self) -> None:
        if self.app.aop is not None:
            self.threads = [threading.Thread(target=asyncio.run, args=(self._tasks(),), daemon=True)]
        else:
            self.threads = [threading.Thread(target=self._thread, daemon=True) for _ in range(WORKERS)]
        for t in self.threads:
            t.start()

    @property
    def done(self) -> int:
        with self.lock:
            return self.ok + len(self.failures)

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + WAIT
        while self.done < n:
            assert time.monotonic() < deadline, f"workers stalled at {self.done} operations (wanted {n})"
            assert all(t.is_alive() for t in self.threads), "a worker died"
            time.sleep(0.005)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(WAIT)
            assert not t.is_alive(), "a worker is stuck"


# -- the rotation side: moto in process and the framework ----------------------------------------------


@contextmanager
def secrets_manager() -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def strategy_for(engine: str, scheme: str) -> Any:
    strategies = {
        ("postgres", "single"): PostgresSingleUser, ("postgres", "alternating"): PostgresAlternatingUsers,
        ("mysql", "single"): MySQLSingleUser, ("mysql", "alternating"): MySQLAlternatingUsers,
    }
    return strategies[engine, scheme](tls="disable")  # the test servers have no TLS (loopback only)


def create_secret(client: Any, account: DbAccount, master: DbAccount | None) -> None:
    extra: dict[str, Any] = {}
    if master is not None:
        arn = client.create_secret(Name=MASTER, SecretString=json.dumps(master.as_secret()))["ARN"]
        extra["masterarn"] = arn
    client.create_secret(Name=SECRET, SecretString=json.dumps(account.as_secret(**extra)))


@dataclass
class Run:
    client: Any
    cache: SecretCache
    account: DbAccount
    strategy: Any
    calls_per_rotation: list[int] = field(default_factory=list)

    def rotate(self, after_step: Callable[[str, str], None] | None = None) -> str:
        token: str = rotate_secret_now(self.client, SECRET, self.strategy, after_step=after_step)
        return token


@pytest.fixture
def run_for(request: pytest.FixtureRequest) -> Iterator[Callable[[str, str], Run]]:
    """Build (engine, scheme)'s world: accounts on the real server, the secret in moto, a long-ttl cache."""
    contexts: list[Any] = []
    caches: list[SecretCache] = []

    def build(engine: str, scheme: str) -> Run:
        prefix = "pg" if engine == "postgres" else "mysql"
        account: DbAccount = request.getfixturevalue(f"{prefix}_account")
        master = request.getfixturevalue(f"{prefix}_master_account") if scheme == "alternating" else None
        context = secrets_manager()
        client = context.__enter__()
        contexts.append(context)
        create_secret(client, account, master)
        cache = SecretCache(client=client, config=CacheConfig(ttl=3600))
        caches.append(cache)
        return Run(client, cache, account, strategy_for(engine, scheme))

    yield build
    for cache in caches:
        cache.close()
    for context in reversed(contexts):
        context.__exit__(None, None, None)


def rotate_under_load(run: Run, app: App) -> tuple[Load, set[str]]:
    """Ten rotations while eight workers hammer ``app``; returns the load and the users seen logging in."""
    load = Load(app)
    users: set[str] = set()
    held = app.hold()
    load.start()
    try:
        load.wait_for(OPS_PER_GAP)
        for _ in range(ROTATIONS):
            before = run.cache.stats.backend_calls
            started = time.monotonic()
            run.rotate()
            load.wait_for(load.done + OPS_PER_GAP)
            time.sleep(max(0.0, MIN_GAP - (time.monotonic() - started)))
            users.add(app.whoami())
            run.calls_per_rotation.append(run.cache.stats.backend_calls - before)
    finally:
        load.finish()
    held()  # opened before the first rotation: still works after the last
    return load, users


def assert_survived(run: Run, load: Load) -> None:
    assert load.failures == [], f"{len(load.failures)} failed operations, first: {load.failures[0]!r}"
    assert load.ok > ROTATIONS * OPS_PER_GAP
    assert max(run.calls_per_rotation) <= 3, run.calls_per_rotation
    stats = auth_stats(SECRET, cache=run.cache)
    assert stats.gave_up == 0
    assert stats.auth_failures <= ROTATIONS * (WORKERS + 1), stats


# -- the tests -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("factory", PG_FACTORIES + MY_FACTORIES)
def test_ten_single_user_rotations_under_load_fail_nothing(
    factory: str, run_for: Callable[[str, str], Run]
) -> None:
    run = run_for("postgres" if factory.startswith("pg") else "mysql", "single")
    app = build_app(factory, run.cache)
    try:
        load, _ = rotate_under_load(run, app)
    finally:
        app.close()
    assert_survived(run, load)
    assert auth_stats(SECRET, cache=run.cache).auth_failures >= 1  # the old password really died each time


@pytest.mark.parametrize("factory", PG_FACTORIES + MY_FACTORIES)
def test_ten_alternating_users_rotations_under_load_fail_nothing(
    factory: str, run_for: Callable[[str, str], Run]
) -> None:
    run = run_for("postgres" if factory.startswith("pg") else "mysql", "alternating")
    app = build_app(factory, run.cache)
    try:
        load, users = rotate_under_load(run, app)
    finally:
        app.close()
    assert_survived(run, load)
    if users != {""}:  # factories that can tell who logged in
        assert users == {run.account.username, run.account.username + "_clone"}  # new sessions moved over


@pytest.mark.parametrize("factory", WINDOW_FACTORIES)
def test_the_single_user_window_held_open_is_crossed_with_awspending(
    factory: str, run_for: Callable[[str, str], Run]
) -> None:
    run = run_for("postgres" if factory.startswith("pg") else "mysql", "single")
    app = build_app(factory, run.cache)
    load = Load(app)
    in_window, release = threading.Event(), threading.Event()
    rotation_error: list[BaseException] = []

    def pause_after_set_secret(step: str, token: str) -> None:
        if step == "setSecret":  # the old password is dead; AWSCURRENT still holds it
            in_window.set()
            assert release.wait(WAIT)

    def rotate() -> None:
        try:
            run.rotate(after_step=pause_after_set_secret)
        except BaseException as e:
            rotation_error.append(e)
            in_window.set()

    rotation = threading.Thread(target=rotate, daemon=True)
    try:
        held = app.hold()
        load.start()
        load.wait_for(OPS_PER_GAP)
        rotation.start()
        assert in_window.wait(WAIT)
        assert rotation_error == []
        in_window_ops = load.done
        load.wait_for(in_window_ops + 4 * WORKERS)  # traffic inside the window, new logins included
        stats = auth_stats(SECRET, cache=run.cache)
        assert stats.pending_fetches == 1  # AWSPENDING read once for the whole process
        assert stats.pending_logins >= 1
        release.set()
        rotation.join(WAIT)
        assert rotation_error == []
        load.wait_for(load.done + OPS_PER_GAP)
    finally:
        release.set()
        load.finish()
        app.close()
    held()
    assert load.failures == [], f"{len(load.failures)} failed operations, first: {load.failures[0]!r}"
    assert auth_stats(SECRET, cache=run.cache).gave_up == 0
