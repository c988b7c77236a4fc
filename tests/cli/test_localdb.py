"""The local servers really enforce passwords, so the rotation tests built on them prove something."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import pytest

from secretcache.credentials._detect import MYSQL_ACCESS_DENIED, is_auth_failure
from secretcache.demo import localdb
from secretcache.demo.localdb import (
    DbAccount,
    DbServer,
    connect_as,
    create_account,
    drop_account,
    mysql_admin_from_env,
    set_password,
    start_mariadb,
    start_postgres,
)


def assert_auth_error(engine: str, exc: BaseException) -> None:
    if engine == "postgres":
        import psycopg

        assert type(exc) is psycopg.OperationalError
        assert "password authentication failed" in str(exc)
    else:
        import pymysql

        assert isinstance(exc, pymysql.err.OperationalError)
        # 1045 as a rule; MariaDB answers an unknown user with 1698 at times (seen in a CI run)
        assert exc.args[0] in MYSQL_ACCESS_DENIED
    assert is_auth_failure(exc)  # what the rotation policy will see


def query_one(conn: object) -> object:
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT 1")
        return cur.fetchone()[0]


def test_wrong_password_fails_with_the_drivers_auth_error(db_account: DbAccount) -> None:
    with pytest.raises(Exception) as info:
        connect_as(db_account, "not-the-password")
    assert_auth_error(db_account.engine, info.value)


def test_right_password_connects_as_the_account_to_its_database(db_account: DbAccount) -> None:
    with contextlib.closing(connect_as(db_account)) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user" if db_account.engine == "postgres" else "SELECT CURRENT_USER()")
        user = cur.fetchone()[0]
        cur.execute("SELECT current_database()" if db_account.engine == "postgres" else "SELECT DATABASE()")
        database = cur.fetchone()[0]
    assert user.split("@")[0] == db_account.username
    assert database == db_account.dbname


def test_set_password_kills_the_old_password_but_not_open_connections(
    db_server: DbServer, db_account: DbAccount
) -> None:
    before = connect_as(db_account)
    try:
        set_password(db_server, db_account.username, "Rotated0Password1")
        with pytest.raises(Exception) as info:
            connect_as(db_account)
        assert_auth_error(db_account.engine, info.value)
        with contextlib.closing(connect_as(db_account, "Rotated0Password1")) as after:
            assert query_one(after) == 1
        assert query_one(before) == 1  # an existing session survives the password change
    finally:
        before.close()


def test_repeated_wrong_passwords_do_not_lock_the_account_out(db_account: DbAccount) -> None:
    for _ in range(12):
        with pytest.raises(Exception) as info:
            connect_as(db_account, "wrong")
        assert_auth_error(db_account.engine, info.value)
    with contextlib.closing(connect_as(db_account)) as conn:
        assert query_one(conn) == 1


def test_dropped_account_can_no_longer_log_in(db_server: DbServer) -> None:
    account = create_account(db_server)
    drop_account(db_server, account)
    with pytest.raises(Exception) as info:
        connect_as(account)
    assert_auth_error(account.engine, info.value)  # an unknown user looks exactly like a wrong password


def test_master_account_can_create_users(db_server: DbServer, db_master_account: DbAccount) -> None:
    probe = f"{db_master_account.username}_p"
    with contextlib.closing(connect_as(db_master_account)) as conn, conn.cursor() as cur:
        if db_server.engine == "postgres":
            cur.execute(f'CREATE ROLE "{probe}" LOGIN PASSWORD \'Probe0Password1\'')
            cur.execute(f'DROP ROLE "{probe}"')
        else:
            cur.execute("CREATE USER %s@'%%' IDENTIFIED BY 'Probe0Password1'", (probe,))
            cur.execute("DROP USER %s@'%%'", (probe,))


def test_account_secret_has_the_rds_shape(db_server: DbServer, db_account: DbAccount) -> None:
    secret = db_account.as_secret()
    assert set(secret) == {"engine", "host", "port", "username", "password", "dbname"}
    assert secret["engine"] == ("postgres" if db_server.engine == "postgres" else "mariadb")
    assert (secret["host"], secret["port"]) == (db_server.host, db_server.port)
    assert db_account.as_secret(masterarn="arn:x")["masterarn"] == "arn:x"


def test_server_tests_are_marked_integration(request: pytest.FixtureRequest, db_account: DbAccount) -> None:
    assert request.node.get_closest_marker("integration") is not None


@pytest.mark.integration
def test_private_postgres_listens_on_loopback_only_and_stop_removes_it() -> None:
    server = start_postgres()
    data_dir = Path(server.data_dir or "")
    assert data_dir.is_dir()
    assert server.host == "127.0.0.1"
    server.stop()
    server.stop()  # idempotent
    assert not data_dir.exists()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", server.port)) != 0


@pytest.mark.integration
def test_private_mariadb_enforces_passwords_and_stop_removes_it() -> None:
    server = start_mariadb()
    data_dir = Path(server.data_dir or "")
    try:
        account = create_account(server)
        set_password(server, account.username, "Rotated0Password1")
        with pytest.raises(Exception) as info:
            connect_as(account)
        assert_auth_error("mysql", info.value)
        with contextlib.closing(connect_as(account, "Rotated0Password1")) as conn:
            assert query_one(conn) == 1
    finally:
        server.stop()
    assert not data_dir.exists()


def test_reprs_never_show_passwords() -> None:
    server = DbServer("postgres", "127.0.0.1", 1, "postgres", "Canary0AdminPw", "postgres")
    account = DbAccount("mysql", "127.0.0.1", 1, "u", "Canary0UserPw", "u")
    assert "Canary0AdminPw" not in repr(server)
    assert "Canary0UserPw" not in repr(account) + str(account)


def test_missing_postgres_binaries_raise_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localdb, "_pg_bindir", lambda: None)
    with pytest.raises(RuntimeError, match=r"apt-get install postgresql.*--dsn"):
        start_postgres()


def test_unreachable_mysql_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: nothing answers there
        monkeypatch.setitem(os.environ, "SECRETCACHE_TEST_MYSQL_PORT", str(port))
        monkeypatch.setitem(os.environ, "SECRETCACHE_TEST_MYSQL_PASSWORD", "Canary0NotShown")
        with pytest.raises(RuntimeError, match="SECRETCACHE_TEST_MYSQL_HOST") as info:
            mysql_admin_from_env()
    assert "Canary0NotShown" not in str(info.value)


def test_unusual_user_names_are_refused() -> None:
    server = DbServer("mysql", "127.0.0.1", 1, "root", "", "mysql")
    with pytest.raises(ValueError, match="unsupported database user name"):
        set_password(server, "x'; DROP USER root; --", "pw")
