"""secretcache.db.redshift and secretcache.rotation.redshift: the real ``redshift_connector`` against the
project's scram-sha-256 PostgreSQL cluster, through the test-only loopback proxy of
``devtools/redshift_proxy.py`` (Redshift-only startup parameters dropped, ``server_version`` rewritten)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import redshift_connector

from devtools.redshift_proxy import RedshiftProxy
from secretcache import SecretCache
from secretcache.config import CacheConfig
from secretcache.credentials import auth_stats
from secretcache.db import redshift as sc_redshift
from secretcache.demo.localdb import DbAccount, DbServer, admin_connect, set_password
from secretcache.errors import SecretFormatError
from secretcache.rotation import (
    PasswordPolicy,
    RedshiftAlternatingUsers,
    RedshiftSingleUser,
    StepContext,
    rotate_secret_now,
    strategy_for,
)
from secretcache.rotation.redshift import check_redshift_password
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import CANARY

NO_TLS = {"ssl": False, "timeout": 10}
SECRET = "app/redshift"
MASTER = "app/redshift-master"
WORKERS = 8
ROTATIONS = 10
OPS_PER_GAP = 2 * WORKERS
"""Queries that must complete between two rotations (pacing by behaviour, not by the clock)."""
MIN_GAP = 0.3
"""Seconds between rotations at least (pacing only, never asserted)."""
WAIT = 60.0


@contextmanager
def secrets_manager() -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


@dataclass
class Workers:
    """Eight threads running ``op`` (open a connection, query, close) until stopped; failures kept."""

    op: Callable[[], None]
    ok: int = 0
    failures: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.op()
            except Exception as e:
                with self.lock:
                    self.failures.append(e)
            else:
                with self.lock:
                    self.ok += 1

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(WORKERS)]
        for t in self.threads:
            t.start()

    @property
    def done(self) -> int:
        with self.lock:
            return self.ok + len(self.failures)

    def wait_for(self, n: int) -> None:
        deadline = time.monotonic() + WAIT
        while self.done < n:
            assert time.monotonic() < deadline, f"workers stalled at {self.done} queries (wanted {n})"
            time.sleep(0.005)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(WAIT)
            assert not t.is_alive(), "a worker is stuck"


@dataclass
class Run:
    client: Any
    cache: SecretCache
    account: DbAccount
    strategy: Any


@pytest.fixture
def proxy(pg_server: DbServer) -> Iterator[RedshiftProxy]:
    with RedshiftProxy(pg_server.host, pg_server.port) as p:
        yield p


def redshift_secret(account: DbAccount, proxy: RedshiftProxy, **extra: Any) -> dict[str, Any]:
    return {**account.as_secret(**extra), "engine": "redshift", "host": "127.0.0.1", "port": proxy.port,
            "dbClusterIdentifier": "test-cluster"}


def query(conn: Any, sql: str = "SELECT 1") -> Any:
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        return cursor.fetchone()[0]
    finally:
        cursor.close()


# -- the factory ----------------------------------------------------------------------------------------

def test_connect_reads_the_redshift_secret(pg_account: DbAccount, proxy: RedshiftProxy) -> None:
    backend = InMemoryBackend()
    backend.put_secret(SECRET, json.dumps(redshift_secret(pg_account, proxy)))
    with SecretCache(backend) as cache:
        conn = sc_redshift.connect(SECRET, cache=cache, **NO_TLS)
        try:
            assert query(conn, "SELECT current_user") == pg_account.username
            assert query(conn, "SELECT current_database()") == pg_account.dbname
        finally:
            conn.close()
    assert proxy.connections == 1


def test_a_rotated_password_is_followed_with_one_refresh(
        pg_server: DbServer, pg_account: DbAccount, proxy: RedshiftProxy, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, redshift_connector's included
    backend = InMemoryBackend()
    secret = redshift_secret(pg_account, proxy)
    backend.put_secret(SECRET, json.dumps(secret))
    with SecretCache(backend, config=CacheConfig(ttl=3600)) as cache:
        sc_redshift.connect(SECRET, cache=cache, **NO_TLS).close()
        new = "Rotated1" + CANARY[:8].replace("'", "x") + "z9"
        set_password(pg_server, pg_account.username, new)
        backend.put_secret(SECRET, json.dumps({**secret, "password": new}))
        backend.reset_calls()
        conn = sc_redshift.connect(SECRET, cache=cache, **NO_TLS)
        assert query(conn) == 1
        conn.close()
        assert backend.calls["GetSecretValue"] == 1
        stats = auth_stats(SECRET, cache=cache)
        assert stats.auth_failures == 1
        assert stats.refreshes == 1
    assert caplog.records
    assert all(CANARY not in r.getMessage() for r in caplog.records)


def test_a_password_nobody_has_gives_the_drivers_error_with_a_note(pg_account: DbAccount,
                                                                   proxy: RedshiftProxy) -> None:
    backend = InMemoryBackend()
    backend.put_secret(SECRET, json.dumps({**redshift_secret(pg_account, proxy), "password": CANARY}))
    with SecretCache(backend) as cache, pytest.raises(redshift_connector.ProgrammingError) as caught:
        sc_redshift.connect(SECRET, cache=cache, **NO_TLS)
    notes = " ".join(getattr(caught.value, "__notes__", []))
    assert SECRET in notes
    assert CANARY not in notes
    assert CANARY not in str(caught.value)
    assert sc_redshift.is_refused_login(caught.value)


def test_other_errors_are_not_rotation(pg_account: DbAccount, proxy: RedshiftProxy) -> None:
    backend = InMemoryBackend()
    backend.put_secret(SECRET, json.dumps({**redshift_secret(pg_account, proxy), "dbname": "no_such_db"}))
    with SecretCache(backend) as cache:
        with pytest.raises(redshift_connector.Error) as caught:
            sc_redshift.connect(SECRET, cache=cache, **NO_TLS)
        assert not sc_redshift.is_refused_login(caught.value)
        assert backend.calls["GetSecretValue"] == 1  # no forced refresh
    backend.put_secret(SECRET, json.dumps({"host": "h", "username": "u", "dbname": "d"}))
    with SecretCache(backend) as cache, pytest.raises(SecretFormatError, match="password"):
        sc_redshift.connect(SECRET, cache=cache, **NO_TLS)


def test_arguments_win_over_the_secret(pg_account: DbAccount, proxy: RedshiftProxy) -> None:
    backend = InMemoryBackend()
    backend.put_secret(SECRET, json.dumps({**redshift_secret(pg_account, proxy), "port": 1, "dbname": "nope"}))
    with SecretCache(backend) as cache:
        conn = sc_redshift.connect(SECRET, cache=cache, port=proxy.port, database=pg_account.dbname, **NO_TLS)
        assert query(conn) == 1
        conn.close()


# -- rotation strategies --------------------------------------------------------------------------------

def test_redshift_password_rules() -> None:
    for _ in range(200):
        check_redshift_password(RedshiftSingleUser().password_policy.generate())
    for bad in ("Short1", "alllowercase1", "ALLUPPER1", "NoDigitsHere", "Has'Quote1", "Has@At1x", "Has Space1",
                "A1" + "a" * 63):
        with pytest.raises(ValueError, match="Redshift"):
            check_redshift_password(bad)
    with pytest.raises(ValueError, match="Redshift"):
        RedshiftSingleUser(password_policy=PasswordPolicy(length=80))
    with pytest.raises(ValueError, match="Redshift"):
        RedshiftSingleUser(password_policy=PasswordPolicy(exclude_numbers=True))
    loose = RedshiftSingleUser(password_policy=PasswordPolicy(exclude_characters=""))
    assert set("'\"\\/@") <= set(loose.password_policy.exclude_characters)
    assert isinstance(strategy_for({"engine": "redshift"}, "single"), RedshiftSingleUser)
    assert isinstance(strategy_for({"engine": "redshift", "masterarn": "arn"}), RedshiftAlternatingUsers)


def test_a_password_with_percent_signs_is_set_as_written(pg_account: DbAccount, proxy: RedshiftProxy) -> None:
    strategy = RedshiftSingleUser(tls="disable")
    secret = redshift_secret(pg_account, proxy)
    pending = {**secret, "password": "Ab1%s%%x%d!"}
    strategy.set_secret(StepContext(SECRET, "token", secret, pending, lambda: None, lambda arn: {}))
    strategy.test_secret(pending)
    with pytest.raises(redshift_connector.ProgrammingError):
        strategy.connect(secret)  # the old password is gone


@pytest.fixture
def redshift_run(request: pytest.FixtureRequest, proxy: RedshiftProxy) -> Iterator[Callable[[str], Run]]:
    contexts: list[Any] = []
    caches: list[SecretCache] = []

    def build(scheme: str) -> Run:
        account: DbAccount = request.getfixturevalue("pg_account")
        context = secrets_manager()
        client = context.__enter__()
        contexts.append(context)
        extra: dict[str, Any] = {}
        if scheme == "alternating":
            master: DbAccount = request.getfixturevalue("pg_master_account")
            extra["masterarn"] = client.create_secret(
                Name=MASTER, SecretString=json.dumps(redshift_secret(master, proxy)))["ARN"]
        client.create_secret(Name=SECRET, SecretString=json.dumps(redshift_secret(account, proxy, **extra)))
        cache = SecretCache(client=client, config=CacheConfig(ttl=3600))
        caches.append(cache)
        strategy = (RedshiftSingleUser if scheme == "single" else RedshiftAlternatingUsers)(tls="disable")
        return Run(client, cache, account, strategy)

    yield build
    for cache in caches:
        cache.close()
    for context in reversed(contexts):
        context.__exit__(None, None, None)


def op(cache: SecretCache) -> None:
    conn = sc_redshift.connect(SECRET, cache=cache, **NO_TLS)
    try:
        assert query(conn) == 1
    finally:
        conn.close()


def whoami(cache: SecretCache) -> str:
    conn = sc_redshift.connect(SECRET, cache=cache, **NO_TLS)
    try:
        return str(query(conn, "SELECT current_user"))
    finally:
        conn.close()


@pytest.mark.parametrize("scheme", ["single", "alternating"])
def test_eight_workers_across_ten_rotations_fail_no_query(redshift_run: Callable[[str], Run], scheme: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """The real redshift_connector, 8 threads connecting and querying, 10 rotations by our strategy (the
    code a rotation Lambda runs) against the real server, the application's cache ttl one hour."""
    caplog.set_level(logging.DEBUG, logger="secretcache")
    run = redshift_run(scheme)
    held = sc_redshift.connect(SECRET, cache=run.cache, **NO_TLS)  # opened before the first rotation
    workers = Workers(lambda: op(run.cache))
    users: set[str] = set()
    calls: list[int] = []
    workers.start()
    try:
        workers.wait_for(OPS_PER_GAP)
        for _ in range(ROTATIONS):
            before = run.cache.stats.backend_calls
            started = time.monotonic()
            rotate_secret_now(run.client, SECRET, run.strategy)
            workers.wait_for(workers.done + OPS_PER_GAP)
            time.sleep(max(0.0, MIN_GAP - (time.monotonic() - started)))
            users.add(whoami(run.cache))
            calls.append(run.cache.stats.backend_calls - before)
    finally:
        workers.finish()
    assert query(held) == 1  # still works after the last rotation
    held.close()
    stats = auth_stats(SECRET, cache=run.cache)
    print(f"\nredshift_connector, {scheme}, {WORKERS} workers, {ROTATIONS} rotations: {workers.ok} queries, "
          f"{len(workers.failures)} failed, GetSecretValue per rotation {calls}, {stats}")
    assert workers.failures == [], f"{len(workers.failures)} failed, first: {workers.failures[0]!r}"
    assert workers.ok > ROTATIONS * OPS_PER_GAP
    assert max(calls) <= 3, calls
    assert stats.gave_up == 0
    if scheme == "alternating":
        assert users == {run.account.username, run.account.username + "_clone"}  # new sessions moved over
    else:
        assert stats.auth_failures >= 1  # the old password really died
    assert all(CANARY not in r.getMessage() for r in caplog.records)


def test_alternating_clone_joins_the_users_groups(pg_server: DbServer, pg_account: DbAccount,
                                                  pg_master_account: DbAccount, proxy: RedshiftProxy) -> None:
    group = pg_account.username + "_readers"
    admin = admin_connect(pg_server)
    try:
        admin.execute(f'CREATE GROUP "{group}"')
        admin.execute(f'ALTER GROUP "{group}" ADD USER "{pg_account.username}"')
        admin.execute(f'GRANT "{group}" TO "{pg_master_account.username}" WITH ADMIN OPTION')
    finally:
        admin.close()
    try:
        with secrets_manager() as client:
            arn = client.create_secret(Name=MASTER, SecretString=json.dumps(
                redshift_secret(pg_master_account, proxy)))["ARN"]
            client.create_secret(Name=SECRET, SecretString=json.dumps(
                redshift_secret(pg_account, proxy, masterarn=arn)))
            rotate_secret_now(client, SECRET, RedshiftAlternatingUsers(tls="disable"))
            current = json.loads(client.get_secret_value(SecretId=SECRET)["SecretString"])
        assert current["username"] == pg_account.username + "_clone"
        admin = admin_connect(pg_server)
        try:
            member = admin.execute("SELECT pg_has_role(%s, %s, 'MEMBER')",
                                   (current["username"], group)).fetchone()[0]
        finally:
            admin.close()
        assert member
        clone = replace(pg_account, username=current["username"], password=current["password"])
        conn = sc_redshift.connect  # the clone logs in through the proxy with the rotated secret
        backend = InMemoryBackend()
        backend.put_secret(SECRET, json.dumps(redshift_secret(clone, proxy)))
        with SecretCache(backend) as cache:
            c = conn(SECRET, cache=cache, **NO_TLS)
            assert query(c, "SELECT current_user") == clone.username
            c.close()
    finally:
        admin = admin_connect(pg_server)
        try:
            admin.execute(f'DROP ROLE IF EXISTS "{group}"')
        finally:
            admin.close()
