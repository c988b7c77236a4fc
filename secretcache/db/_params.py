"""RDS-shaped database secrets to driver keyword arguments.

A database secret is a JSON object with the fields Secrets Manager's RDS integration writes:
``engine``, ``host``, ``port``, ``username``, ``password``, ``dbname`` (``masterarn`` and others are
ignored). ``username`` and ``password`` are required; ``host`` too unless the caller gives one;
``port`` and ``dbname`` are optional. Whatever the caller passes explicitly (URL parts, keyword
arguments, a conninfo string) wins over the secret. Errors name the secret and the field, never a value.

The optional ``ssl`` key is read as AWS's rotation functions read it (their ``get_ssl_config``): ``true``
or ``"true"`` (any case) requires TLS, ``false`` or ``"false"`` turns it off, and anything else (absent,
another string, another type) means "try TLS, fall back to plain", which is what the drivers do by
default, so nothing is passed then. Each driver says how to express it (:attr:`DriverNames.tls`); a
caller who sets any TLS option of the driver (:attr:`DriverNames.tls_options`) decides alone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..errors import SecretFormatError
from ..model import SecretValue
from ..refs import shown_key

__all__ = ["FIELDS", "DriverNames", "check_keys", "make_params_of", "merged", "secret_params", "ssl_setting"]

FIELDS = ("host", "port", "username", "password", "dbname")
"""The RDS fields a connection uses (``engine`` is informational)."""
_KNOWN_FIELDS = (*FIELDS, "engine", "ssl")


def ssl_setting(raw: object) -> bool | None:
    """The secret's ``ssl`` value as AWS's rotation functions read it: True (TLS required), False (no
    TLS), or None (absent or not understood: try TLS, fall back to plain, the drivers' default)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        return {"true": True, "false": False}.get(raw.lower())
    return None


def _psycopg_tls(required: bool) -> dict[str, Any]:
    return {"sslmode": "require" if required else "disable"}  # libpq's default, "prefer", is the fallback


def _pymysql_tls(required: bool) -> dict[str, Any]:
    # A non-empty ``ssl`` dict makes PyMySQL require TLS; without a CA it does not verify the certificate
    # (libpq's "require"). Its default without options is "preferred", the fallback.
    return {"ssl": {"check_hostname": False}} if required else {"ssl_disabled": True}


def _mysqldb_tls(required: bool) -> dict[str, Any]:
    return {"ssl_mode": "REQUIRED" if required else "DISABLED"}


def _asyncpg_tls(required: bool) -> dict[str, Any]:
    return {"ssl": "require" if required else "disable"}  # asyncpg's default, "prefer", is the fallback


def _aiomysql_tls(required: bool) -> dict[str, Any]:
    # aiomysql and asyncmy use TLS only when given an SSLContext (no "preferred" mode): required means an
    # encrypting, unverified context (libpq's "require"); off is their default, so nothing is passed.
    if not required:
        return {}
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # nosec B504 - "require": encrypt; verification needs the caller's CA
    return {"ssl": context}


class DriverNames(NamedTuple):
    """The keyword argument a driver uses for each RDS field, and how it spells the secret's ``ssl``."""

    host: str = "host"
    port: str = "port"
    username: str = "user"
    password: str = "password"
    dbname: str = "dbname"
    port_as_int: bool = True
    tls: Callable[[bool], Mapping[str, Any]] | None = None
    """The hook for the ``ssl`` key: the driver's keyword arguments requiring TLS (``tls(True)``) or turning
    it off (``tls(False)``); None ignores the key. Its keys must be among :attr:`tls_options`."""
    tls_options: tuple[str, ...] = ()
    """The driver's TLS keyword arguments: when the caller passes any of them, the secret's ``ssl`` is not used."""


PSYCOPG = DriverNames(
    tls=_psycopg_tls, tls_options=("sslmode", "requiressl", "sslrootcert", "sslcert", "sslkey", "sslnegotiation"),
)
PYMYSQL = DriverNames(
    dbname="database", tls=_pymysql_tls,
    tls_options=("ssl", "ssl_ca", "ssl_cert", "ssl_key", "ssl_disabled", "ssl_verify_cert", "ssl_verify_identity"),
)
MYSQLDB = DriverNames(  # "passwd" is a parameter name  # nosec B106
    password="passwd", dbname="db", tls=_mysqldb_tls, tls_options=("ssl", "ssl_mode"),
)
DATABASE = DriverNames(dbname="database")  # pg8000, and the default for drivers not named here
ASYNCPG = DriverNames(  # asyncpg.connect(user=, password=, host=, port=, database=, ssl=)
    dbname="database", tls=_asyncpg_tls, tls_options=("ssl", "direct_tls"),
)
AIOMYSQL = DriverNames(  # aiomysql (no `database`), asyncmy (`db` as SQLAlchemy's URLs give it)
    dbname="db", tls=_aiomysql_tls, tls_options=("ssl",),
)


def check_keys(keys: Mapping[str, str] | None) -> dict[str, str]:
    """Validate a ``keys={"username": "user", ...}`` mapping: RDS field -> the JSON key the secret uses."""
    if keys is None:
        return {}
    if not isinstance(keys, Mapping):
        raise TypeError(f"keys must be a mapping of RDS field to JSON key, got {type(keys).__name__}")
    unknown = sorted(set(keys) - set(_KNOWN_FIELDS))
    if unknown:
        raise ValueError(f"keys: unknown field(s) {unknown}; expected some of {list(_KNOWN_FIELDS)}")
    for field, key in keys.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"keys[{field!r}] must be a non-empty str")
    return dict(keys)


def _extract(
    value: SecretValue, secret_id: str, keys: Mapping[str, str], names: DriverNames
) -> tuple[str | None, dict[str, Any] | None]:
    """(problem, None) or (None, params); returned, not raised: no traceback frame holds the secret."""
    data = value.json()  # SecretFormatError for non-JSON or binary, naming the secret, never the text
    params: dict[str, Any] = {}
    for field in FIELDS:
        key = keys.get(field, field)
        raw = data.get(key)
        if raw is None or raw == "":
            continue  # absent: the caller may give it; `merged` says so if nobody does
        name = getattr(names, field)
        if field == "port":
            if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not str(raw).strip().isdigit():
                problem = f"database secret {secret_id!r}: field 'port' (JSON key {shown_key(key)}) is not a number"
                return problem, None
            params[name] = int(raw) if names.port_as_int else str(int(raw))
        elif isinstance(raw, str):
            params[name] = raw
        else:
            return (
                f"database secret {secret_id!r}: field {field!r} (JSON key {shown_key(key)}) must be a string, "
                f"got {type(raw).__name__}",
                None,
            )
    if names.tls is not None:
        required = ssl_setting(data.get(keys.get("ssl", "ssl")))
        if required is not None:
            params.update(names.tls(required))
    return None, params


def secret_params(
    value: SecretValue, *, secret_id: str, names: DriverNames, keys: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Driver keyword arguments for the fields one version of a database secret has.

    Raises :class:`SecretFormatError` (naming the secret and the field, never a value) for a
    non-JSON or binary secret, a ``port`` that is not a number, or a field that is not a string.
    An absent or empty field is left out: :func:`merged` decides whether someone else gives it.
    """
    problem, params = _extract(value, secret_id, keys or {}, names)
    if problem is not None:
        raise SecretFormatError(problem, secret_id=secret_id)
    assert params is not None
    return params


REQUIRED = ("username", "password", "host")


def merged(
    from_secret: Mapping[str, Any],
    explicit: Mapping[str, Any],
    *,
    secret_id: str,
    names: DriverNames,
    keys: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The secret's parameters overridden by the caller's; :class:`SecretFormatError` when a required
    field (``username``, ``password``, ``host``) comes from neither. Checked before anything is built,
    so the error's traceback holds no password. A caller passing any TLS option of the driver
    (``names.tls_options``) gets none of the secret's ``ssl`` settings."""
    for field in REQUIRED:
        name = getattr(names, field)
        if name not in from_secret and name not in explicit:
            key = (keys or {}).get(field, field)
            raise SecretFormatError(
                f"database secret {secret_id!r}: field {field!r} (JSON key {shown_key(key)}) is missing or empty, "
                f"and no {name!r} argument was given",
                secret_id=secret_id,
            )
    if names.tls_options and not explicit.keys().isdisjoint(names.tls_options):
        from_secret = {k: v for k, v in from_secret.items() if k not in names.tls_options}
    return {**from_secret, **explicit}


@functools.lru_cache(maxsize=256)
def _params_of(
    secret_id: str, names: DriverNames, keys: tuple[tuple[str, str], ...]
) -> Callable[[SecretValue], dict[str, Any]]:
    checked = dict(keys)

    def params_of(value: SecretValue) -> dict[str, Any]:
        return secret_params(value, secret_id=secret_id, names=names, keys=checked)

    return params_of


def make_params_of(
    secret_id: str, names: DriverNames, keys: Mapping[str, str] | None
) -> Callable[[SecretValue], dict[str, Any]]:
    """The ``params_of`` a :class:`~secretcache.db._auth.Login` needs, for one driver.

    One function per (secret, driver, key names), so the policy's memo of parsed credentials (one per
    cache and secret, :class:`~secretcache.db._state.SecretState`) recognises it: a connect on a cache
    hit does not parse the secret again. Callers must not mutate the dict it returns.
    """
    return _params_of(secret_id, names, tuple(sorted(check_keys(keys).items())))
