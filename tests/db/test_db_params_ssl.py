"""The RDS secret's ``ssl`` key, read as AWS's rotation functions read it, for every driver; explicit wins."""

from __future__ import annotations

import json
from typing import Any

import pytest

from secretcache.db._params import (
    AIOMYSQL,
    ASYNCPG,
    DATABASE,
    MYSQLDB,
    PSYCOPG,
    PYMYSQL,
    DriverNames,
    make_params_of,
    merged,
    secret_params,
    ssl_setting,
)
from secretcache.model import SecretValue
from tests.fixtures.fix_canary import canary_value

SECRET = "app/db"


def value(**extra: Any) -> SecretValue:
    doc = {"host": "db", "username": "app", "password": canary_value("pw"), **extra}
    return SecretValue(name=SECRET, version_id="v1", secret_string=json.dumps(doc))


@pytest.mark.parametrize(("raw", "expected"), [
    (True, True), (False, False), ("true", True), ("TRUE", True), ("False", False), ("false", False),
    ("yes", None), ("", None), (1, None), (0, None), (None, None), ({"mode": "x"}, None),
])
def test_ssl_setting_reads_the_key_as_aws_rotation_functions_do(raw: object, expected: bool | None) -> None:
    assert ssl_setting(raw) is expected


@pytest.mark.parametrize(("names", "required", "off"), [
    (PSYCOPG, {"sslmode": "require"}, {"sslmode": "disable"}),
    (PYMYSQL, {"ssl": {"check_hostname": False}}, {"ssl_disabled": True}),
    (MYSQLDB, {"ssl_mode": "REQUIRED"}, {"ssl_mode": "DISABLED"}),
    (ASYNCPG, {"ssl": "require"}, {"ssl": "disable"}),
])
def test_each_driver_spells_the_secrets_ssl(names: DriverNames, required: dict[str, Any], off: dict[str, Any]) -> None:
    def tls_of(v: SecretValue) -> dict[str, Any]:
        params = secret_params(v, secret_id=SECRET, names=names)
        return {k: params[k] for k in params if k in names.tls_options}

    assert tls_of(value(ssl=True)) == required
    assert tls_of(value(ssl="true")) == required
    assert tls_of(value(ssl=False)) == off
    assert tls_of(value(ssl="false")) == off
    assert tls_of(value()) == {}  # absent: the driver's default, which tries TLS and falls back
    assert tls_of(value(ssl="maybe")) == {}


def test_aiomysql_and_asyncmy_get_an_encrypting_context_when_required_and_their_default_when_off() -> None:
    import ssl

    context = secret_params(value(ssl=True), secret_id=SECRET, names=AIOMYSQL)["ssl"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_NONE  # "require", as libpq means it
    assert not context.check_hostname
    assert "ssl" not in secret_params(value(ssl=False), secret_id=SECRET, names=AIOMYSQL)  # plain is their default


def test_an_asyncpg_dsn_that_sets_sslmode_wins_over_the_secret() -> None:
    from secretcache.db.asyncpg import _uri_gives

    assert "ssl" in _uri_gives("postgresql://db/app?sslmode=verify-full")
    assert "ssl" not in _uri_gives("postgresql://db/app")


def test_a_driver_without_a_hook_ignores_the_key() -> None:
    assert "ssl" not in secret_params(value(ssl=True), secret_id=SECRET, names=DATABASE)


def test_a_new_driver_plugs_in_with_the_hook() -> None:
    names = DriverNames(dbname="database", tls=lambda on: {"ssl": "require" if on else "disable"}, tls_options=("ssl",))
    assert secret_params(value(ssl=True), secret_id=SECRET, names=names)["ssl"] == "require"
    assert merged(secret_params(value(ssl=True), secret_id=SECRET, names=names), {"ssl": "verify-full"},
                  secret_id=SECRET, names=names)["ssl"] == "verify-full"


@pytest.mark.parametrize(("names", "explicit"), [
    (PSYCOPG, {"sslmode": "verify-full"}),
    (PSYCOPG, {"sslrootcert": "/etc/ca.pem"}),
    (PYMYSQL, {"ssl_ca": "/etc/ca.pem"}),
    (PYMYSQL, {"ssl_disabled": True}),
    (MYSQLDB, {"ssl": {"ca": "/etc/ca.pem"}}),
    (ASYNCPG, {"ssl": "verify-full"}),
    (AIOMYSQL, {"ssl": None}),
])
def test_any_tls_option_of_the_caller_wins_over_the_secret(names: DriverNames, explicit: dict[str, Any]) -> None:
    from_secret = secret_params(value(ssl=True), secret_id=SECRET, names=names)
    params = merged(from_secret, explicit, secret_id=SECRET, names=names)
    assert {k: params[k] for k in params if k in names.tls_options} == explicit


def test_keys_can_rename_the_ssl_key() -> None:
    params_of = make_params_of(SECRET, PSYCOPG, {"ssl": "use_tls"})
    assert params_of(value(use_tls="true"))["sslmode"] == "require"
    assert "sslmode" not in params_of(value(ssl=True))


def test_psycopg_connects_through_the_secrets_ssl_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The psycopg factory hands the mapped sslmode to the driver; the caller's conninfo wins."""
    psycopg = pytest.importorskip("psycopg")
    from secretcache import SecretCache
    from secretcache.db import psycopg as factory
    from secretcache.testing import InMemoryBackend

    seen: list[dict[str, Any]] = []

    def fake_connect(conninfo: str = "", **kwargs: Any) -> str:
        seen.append(kwargs)
        return "connection"

    monkeypatch.setattr(psycopg.Connection, "connect", staticmethod(fake_connect))
    doc = {"host": "db", "username": "app", "password": canary_value("pw"), "ssl": "true"}
    with SecretCache(InMemoryBackend({SECRET: json.dumps(doc)})) as cache:
        factory.connect(SECRET, cache=cache)
        factory.connect(SECRET, cache=cache, conninfo="sslmode=verify-ca")
    assert seen[0]["sslmode"] == "require"
    assert seen[1]["sslmode"] == "verify-ca"


# -- against the real servers ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["pg", "mysql"])
def test_real_servers_accept_ssl_false_and_a_tls_failure_is_not_a_rotation(
    request: pytest.FixtureRequest, prefix: str
) -> None:
    """``"ssl": "false"`` logs in without TLS; ``"ssl": true`` against a server without TLS fails with the
    driver's own error at once (not an authentication failure: nothing refreshed). A server with TLS
    simply connects; either way no refresh happens."""
    from secretcache import SecretCache
    from secretcache.db import auth_stats
    from secretcache.testing import InMemoryBackend

    account = request.getfixturevalue(f"{prefix}_account")
    if prefix == "pg":
        from secretcache.db.psycopg import connect
    else:
        from secretcache.db.pymysql import connect
    backend = InMemoryBackend({"plain": json.dumps(account.as_secret(ssl="false")),
                               "tls": json.dumps(account.as_secret(ssl=True))})
    with SecretCache(backend) as cache:
        connect("plain", cache=cache).close()
        errors: list[Exception] = []
        try:
            connect("tls", cache=cache).close()
        except Exception as e:  # the server has no TLS: the driver's error, raised at once
            errors.append(e)
        assert all("ssl" in str(e).lower() or "tls" in str(e).lower() for e in errors), errors
        assert auth_stats("tls", cache=cache).refreshes == 0
        assert auth_stats("plain", cache=cache).refreshes == 0
