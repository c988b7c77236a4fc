"""Every rotation strategy against moto (in process) and the real servers, with passwords enforced.

Server fixtures come from tests/fixtures/fix_servers.py (they mark these tests ``integration`` and fail when a server is
missing); moto's G1 gap is patched by tests/conftest.py's autouse ``_moto_g1_patch``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from secretcache.demo.localdb import DbAccount, DbServer, connect_as, set_password
from secretcache.rotation import (
    STEPS,
    DatabaseStrategy,
    MySQLAlternatingUsers,
    MySQLSingleUser,
    PostgresAlternatingUsers,
    PostgresSingleUser,
    RotationError,
    RotationHandler,
    protocol,
    rotate_secret_now,
)


def assert_refused(account: DbAccount, password: str, username: str | None = None) -> None:
    with pytest.raises(Exception) as info:
        connect_as(account, password, username=username)
    if account.engine == "postgres":
        assert "password authentication failed" in str(info.value)
    else:
        assert info.value.args[0] == 1045


def whoami(account: DbAccount, secret: dict[str, Any]) -> str:
    with contextlib.closing(connect_as(account, secret["password"], username=secret["username"])) as conn, \
            conn.cursor() as cur:
        cur.execute("SELECT current_user" if account.engine == "postgres" else "SELECT CURRENT_USER()")
        return str(cur.fetchone()[0]).split("@")[0]


def single(engine: str) -> DatabaseStrategy:
    return PostgresSingleUser() if engine == "postgres" else MySQLSingleUser()


def alternating(engine: str) -> DatabaseStrategy:
    return PostgresAlternatingUsers() if engine == "postgres" else MySQLAlternatingUsers()


@pytest.fixture
def sm() -> Iterator[Any]:
    import boto3
    import moto

    with moto.mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture
def app_secret(sm: Any, db_account: DbAccount) -> str:
    sm.create_secret(Name="app/db", SecretString=json.dumps(db_account.as_secret()))
    return "app/db"


@pytest.fixture
def alt_secret(sm: Any, db_account: DbAccount, db_master_account: DbAccount) -> str:
    master = sm.create_secret(Name="app/master", SecretString=json.dumps(db_master_account.as_secret()))
    sm.create_secret(Name="app/db", SecretString=json.dumps(db_account.as_secret(masterarn=master["ARN"])))
    return "app/db"


def current(sm: Any, secret_id: str, **kwargs: str) -> dict[str, Any]:
    return json.loads(sm.get_secret_value(SecretId=secret_id, **kwargs)["SecretString"])


# -- single user ------------------------------------------------------------------------------------------


def test_single_user_rotation_kills_the_old_password_and_keeps_open_sessions(
    sm: Any, app_secret: str, db_account: DbAccount
) -> None:
    strategy = single(db_account.engine)
    session = connect_as(db_account)
    try:
        for _ in range(3):
            old = current(sm, app_secret)
            token = rotate_secret_now(sm, app_secret, strategy)
            new = current(sm, app_secret)
            assert sm.get_secret_value(SecretId=app_secret)["VersionId"] == token
            assert new["password"] != old["password"]
            for field in ("username", "host", "port", "dbname"):
                assert new[field] == old[field]
            assert whoami(db_account, new) == db_account.username
            assert_refused(db_account, old["password"])
            with session.cursor() as cur:  # opened before the first rotation, still alive
                cur.execute("SELECT 1")
        labels = sm.describe_secret(SecretId=app_secret)["VersionIdsToStages"]
        assert set(labels[token]) == {"AWSCURRENT", "AWSPENDING"}
        assert sorted(label for stages in labels.values() for label in stages) == [
            "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"]
    finally:
        session.close()


def test_single_user_window_old_password_dead_before_current_moves(
    sm: Any, app_secret: str, db_account: DbAccount
) -> None:
    old = current(sm, app_secret)
    seen: list[str] = []

    def in_window(step: str, token: str) -> None:
        if step != "setSecret":
            return
        assert current(sm, app_secret) == old  # AWSCURRENT not moved yet ...
        assert_refused(db_account, old["password"])  # ... but its password is already dead
        pending = current(sm, app_secret, VersionStage="AWSPENDING")
        assert whoami(db_account, pending) == db_account.username  # AWSPENDING is what works now
        seen.append(token)

    token = rotate_secret_now(sm, app_secret, single(db_account.engine), after_step=in_window)
    assert seen == [token]


def test_single_user_steps_are_idempotent_on_the_database(
    sm: Any, app_secret: str, db_account: DbAccount, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="secretcache.rotation")
    handler = RotationHandler(sm, single(db_account.engine), check_rotation_enabled=False)
    token = "e" * 32 + "-twice"
    for step in STEPS:
        handler.run_step(step, app_secret, token, new_version=True)
        handler.run_step(step, app_secret, token, new_version=True)
    assert "setSecret: the pending password of" in caplog.text  # the second setSecret did nothing
    assert "already AWSCURRENT" in caplog.text
    assert whoami(db_account, current(sm, app_secret)) == db_account.username


def test_single_user_falls_back_to_the_previous_password(
    db_server: DbServer, sm: Any, app_secret: str, db_account: DbAccount
) -> None:
    strategy = single(db_account.engine)
    rotate_secret_now(sm, app_secret, strategy)
    previous = current(sm, app_secret, VersionStage="AWSPREVIOUS")
    set_password(db_server, db_account.username, previous["password"])  # e.g. a restored backup
    rotate_secret_now(sm, app_secret, strategy)
    assert whoami(db_account, current(sm, app_secret)) == db_account.username


def test_single_user_stops_when_no_version_logs_in(
    db_server: DbServer, sm: Any, app_secret: str, db_account: DbAccount
) -> None:
    before = sm.get_secret_value(SecretId=app_secret)["VersionId"]
    set_password(db_server, db_account.username, "Unknown0ToSecretsManager")
    with pytest.raises(RotationError, match="cannot log in to the database as") as info:
        rotate_secret_now(sm, app_secret, single(db_account.engine))
    assert sm.get_secret_value(SecretId=app_secret)["VersionId"] == before
    pending = current(sm, app_secret, VersionStage="AWSPENDING")
    assert pending["password"] not in str(info.value)


def test_single_user_refuses_a_pending_version_for_another_user(
    sm: Any, app_secret: str, db_account: DbAccount
) -> None:
    secret = current(sm, app_secret)
    token = "f" * 32 + "-other"
    sm.put_secret_value(SecretId=app_secret, ClientRequestToken=token, VersionStages=["AWSPENDING"],
                        SecretString=json.dumps({**secret, "username": "someone_else",
                                                 "password": "Xx1!xxxxxx"}))
    handler = RotationHandler(sm, single(db_account.engine), check_rotation_enabled=False)
    with pytest.raises(RotationError, match="changes 'username'"):
        handler.run_step("setSecret", app_secret, token)


# -- alternating users ------------------------------------------------------------------------------------


def test_alternating_users_flip_and_the_previous_user_keeps_working(
    db_server: DbServer, sm: Any, alt_secret: str, db_account: DbAccount
) -> None:
    strategy = alternating(db_account.engine)
    base, clone = db_account.username, db_account.username + "_clone"
    with contextlib.closing(connect_as(db_account)) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept (n INT)")
        cur.execute("INSERT INTO kept VALUES (7)")
    history = [current(sm, alt_secret)]
    for expected in (clone, base, clone):
        rotate_secret_now(sm, alt_secret, strategy)
        new = current(sm, alt_secret)
        history.append(new)
        assert new["username"] == expected
        assert whoami(db_account, new) == expected
        previous = current(sm, alt_secret, VersionStage="AWSPREVIOUS")
        assert previous == history[-2]
        assert whoami(db_account, previous) == previous["username"]  # AWSPREVIOUS still logs in
        with contextlib.closing(connect_as(db_account, new["password"], username=new["username"])) as conn, \
                conn.cursor() as cur:
            cur.execute("SELECT n FROM kept")  # the clone has the user's rights
            assert cur.fetchone()[0] == 7
    # The password a user had two rotations ago was replaced when that user came round again.
    assert_refused(db_account, history[0]["password"], username=base)
    assert_refused(db_account, history[1]["password"], username=clone)


def test_alternating_steps_are_idempotent(sm: Any, alt_secret: str, db_account: DbAccount) -> None:
    handler = RotationHandler(sm, alternating(db_account.engine), check_rotation_enabled=False)
    token = "0" * 32 + "-alt-twice"
    for step in STEPS:
        handler.run_step(step, alt_secret, token, new_version=True)
        handler.run_step(step, alt_secret, token, new_version=True)
    new = current(sm, alt_secret)
    assert new["username"] == db_account.username + "_clone"
    assert whoami(db_account, new) == new["username"]


def test_alternating_refuses_when_the_current_credentials_do_not_log_in(
    db_server: DbServer, sm: Any, alt_secret: str, db_account: DbAccount
) -> None:
    set_password(db_server, db_account.username, "Unknown0ToSecretsManager")
    with pytest.raises(RotationError, match=r"current credentials .* do not log in"):
        rotate_secret_now(sm, alt_secret, alternating(db_account.engine))


def test_alternating_refuses_an_admin_secret_for_another_server(
    sm: Any, db_account: DbAccount, db_master_account: DbAccount
) -> None:
    elsewhere = {**db_master_account.as_secret(), "host": "127.0.0.2"}
    master = sm.create_secret(Name="app/master", SecretString=json.dumps(elsewhere))
    sm.create_secret(Name="app/db", SecretString=json.dumps(db_account.as_secret(masterarn=master["ARN"])))
    with pytest.raises(RotationError, match="is for another server"):
        rotate_secret_now(sm, "app/db", alternating(db_account.engine))


def test_alternating_needs_a_masterarn(sm: Any, app_secret: str, db_account: DbAccount) -> None:
    with pytest.raises(RotationError, match="needs 'masterarn'"):
        rotate_secret_now(sm, app_secret, alternating(db_account.engine))


# -- TLS, Lambda entry point, hygiene --------------------------------------------------------------------


def test_required_tls_is_never_downgraded(sm: Any, app_secret: str, db_account: DbAccount) -> None:
    strategy = (PostgresSingleUser if db_account.engine == "postgres" else MySQLSingleUser)(tls="require")
    before = sm.get_secret_value(SecretId=app_secret)["VersionId"]
    with pytest.raises(Exception, match=r"(?i)ssl|tls"):  # the test servers have no TLS
        rotate_secret_now(sm, app_secret, strategy)
    assert sm.get_secret_value(SecretId=app_secret)["VersionId"] == before
    assert whoami(db_account, current(sm, app_secret)) == db_account.username  # nothing was changed


def test_secret_ssl_false_allows_plaintext_even_when_tls_is_required(
    sm: Any, db_account: DbAccount
) -> None:
    sm.create_secret(Name="app/db", SecretString=json.dumps(db_account.as_secret(ssl="false")))
    strategy = (PostgresSingleUser if db_account.engine == "postgres" else MySQLSingleUser)(tls="require")
    rotate_secret_now(sm, "app/db", strategy)
    assert whoami(db_account, current(sm, "app/db")) == db_account.username


def test_mysql_logins_share_one_unverified_tls_context_and_plaintext_disables_tls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PyMySQL is handed ``ssl_disabled`` for plaintext, and one cheap context (no CA store load) for TLS."""
    import ssl

    import pymysql

    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(pymysql, "connect", lambda **kwargs: seen.append(kwargs))
    secret = {"engine": "mariadb", "host": "127.0.0.1", "username": "app", "password": "pw"}
    strategy = MySQLSingleUser()
    strategy._open(secret, "disable")
    strategy._open(secret, "prefer")
    strategy._open(secret, "prefer")

    assert seen[0]["ssl_disabled"] is True
    assert "ssl" not in seen[0]
    context = seen[1]["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert seen[2]["ssl"] is context
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)


def test_lambda_entry_point_rotates_a_real_database(
    sm: Any, app_secret: str, db_account: DbAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "_client", sm)
    monkeypatch.delenv("SECRETCACHE_ROTATION_STRATEGY", raising=False)
    old = current(sm, app_secret)
    token = "1" * 32 + "-lambda"
    with pytest.raises(sm.exceptions.ResourceNotFoundException):  # RotateSecret: placeholder, no function
        sm.rotate_secret(SecretId=app_secret, ClientRequestToken=token,
                         RotationLambdaARN="arn:aws:lambda:us-east-1:123456789012:function:none",
                         RotationRules={"AutomaticallyAfterDays": 30})
    for step in STEPS:
        protocol.handler({"SecretId": app_secret, "ClientRequestToken": token, "Step": step}, None)
    assert sm.get_secret_value(SecretId=app_secret)["VersionId"] == token
    assert whoami(db_account, current(sm, app_secret)) == db_account.username
    assert_refused(db_account, old["password"])


def test_rotation_never_logs_or_raises_passwords(
    db_server: DbServer, sm: Any, alt_secret: str, db_account: DbAccount, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="secretcache")
    tokens = [rotate_secret_now(sm, alt_secret, alternating(db_account.engine)) for _ in range(2)]
    set_password(db_server, current(sm, alt_secret)["username"], "Unknown0ToSecretsManager")
    with pytest.raises(RotationError) as info:
        rotate_secret_now(sm, alt_secret, alternating(db_account.engine))
    passwords = [current(sm, alt_secret, VersionId=t)["password"] for t in tokens] + [db_account.password]
    text = caplog.text + str(info.value) + repr(info.value)
    assert "finishSecret" in caplog.text
    for password in passwords:
        assert password not in text
