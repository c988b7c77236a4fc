"""secretcache.db.redshift and secretcache.rotation.redshift: the real ``redshift_connector`` against the
project's scram-sha-256 PostgreSQL cluster, through the test-only loopback proxy of
``devtools/redshift_proxy.py`` (Redshift-only startup parameters dropped, ``server_version`` rewritten)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
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
    strategy_for,
)
from secretcache.rotation.redshift import check_redshift_password
from secretcache.testing import InMemoryBackend
from tests.canary import CANARY
from tests.db.test_db_rotation_load import (
    MASTER,
    OPS_PER_GAP,
    ROTATIONS,
    SECRET,
    WORKERS,
    App,
    Run,
    assert_survived,
    rotate_under_load,
    secrets_manager,
)

NO_TLS = {"ssl": False, "timeout": 10}


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


def redshift_app(cache: SecretCache) -> App:
    def op() -> None:
        conn = sc_redshift.connect(SECRET, cache=cache, **NO_TLS)
        try:
            assert query(conn) == 1
        finally:
            conn.close()

    def hold() -> Callable[[], None]:
        conn = sc_redshift.connect(SECRET, cache=cache, **NO_TLS)
        lock = threading.Lock()

        def use() -> None:
            with lock:
                assert query(conn) == 1

        return use

    def whoami() -> str:
        conn = sc_redshift.connect(SECRET, cache=cache, **NO_TLS)
        try:
            return str(query(conn, "SELECT current_user"))
        finally:
            conn.close()

    return App(op=op, hold=hold, whoami=whoami)


@pytest.mark.parametrize("scheme", ["single", "alternating"])
def test_eight_workers_across_ten_rotations_fail_no_query(redshift_run: Callable[[str], Run], scheme: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="secretcache")
    run = redshift_run(scheme)
    load, users = rotate_under_load(run, redshift_app(run.cache))
    stats = auth_stats(SECRET, cache=run.cache)
    print(f"\nredshift_connector, {scheme}, {WORKERS} workers, {ROTATIONS} rotations: {load.ok} queries, "
          f"{len(load.failures)} failed, GetSecretValue per rotation {run.calls_per_rotation}, {stats}")
    assert_survived(run, load)
    assert load.ok > ROTATIONS * OPS_PER_GAP
    if scheme == "alternating":
        assert users == {run.account.username, run.account.username + "_clone"}
    else:
        assert stats.auth_failures >= 1
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
            from secretcache.rotation import rotate_secret_now

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
