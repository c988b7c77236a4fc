"""RDS-shaped database secrets to driver keyword arguments.

A database secret is a JSON object with the fields Secrets Manager's RDS integration writes:
``engine``, ``host``, ``port``, ``username``, ``password``, ``dbname`` (``masterarn`` and others are
ignored). ``username`` and ``password`` are required; ``host`` too unless the caller gives one;
``port`` and ``dbname`` are optional. Whatever the caller passes explicitly (URL parts, keyword
arguments, a conninfo string) wins over the secret. Errors name the secret and the field, never a value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..errors import SecretFormatError
from ..model import SecretValue, _shown_key

__all__ = ["FIELDS", "DriverNames", "check_keys", "make_params_of", "merged", "secret_params"]

FIELDS = ("host", "port", "username", "password", "dbname")
"""The RDS fields a connection uses (``engine`` is informational)."""
_KNOWN_FIELDS = (*FIELDS, "engine")


class DriverNames(NamedTuple):
    """The keyword argument a driver uses for each RDS field."""

    host: str = "host"
    port: str = "port"
    username: str = "user"
    password: str = "password"
    dbname: str = "dbname"
    port_as_int: bool = True


PSYCOPG = DriverNames()
PYMYSQL = DriverNames(dbname="database")
MYSQLDB = DriverNames(password="passwd", dbname="db")  # a parameter name  # nosec B106
DATABASE = DriverNames(dbname="database")  # pg8000, and the default for drivers not named here
ASYNCPG = DriverNames(dbname="database")  # asyncpg.connect(user=, password=, host=, port=, database=)
AIOMYSQL = DriverNames(dbname="db")  # aiomysql (no `database`), asyncmy (`db` as SQLAlchemy's URLs give it)


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
                problem = f"database secret {secret_id!r}: field 'port' (JSON key {_shown_key(key)}) is not a number"
                return problem, None
            params[name] = int(raw) if names.port_as_int else str(int(raw))
        elif isinstance(raw, str):
            params[name] = raw
        else:
            return (
                f"database secret {secret_id!r}: field {field!r} (JSON key {_shown_key(key)}) must be a string, "
                f"got {type(raw).__name__}",
                None,
            )
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
    so the error's traceback holds no password."""
    for field in REQUIRED:
        name = getattr(names, field)
        if name not in from_secret and name not in explicit:
            key = (keys or {}).get(field, field)
            raise SecretFormatError(
                f"database secret {secret_id!r}: field {field!r} (JSON key {_shown_key(key)}) is missing or empty, "
                f"and no {name!r} argument was given",
                secret_id=secret_id,
            )
    return {**from_secret, **explicit}


class _Memo:
    """The parameters of the last version seen; a repr without them (tracebacks show locals' reprs)."""

    __slots__ = ("params", "value")

    def __init__(self, value: SecretValue, params: dict[str, Any]) -> None:
        self.value, self.params = value, params

    def __repr__(self) -> str:
        return f"<params of version {self.value.version_id!r}>"


@functools.lru_cache(maxsize=256)
def _params_of(
    secret_id: str, names: DriverNames, keys: tuple[tuple[str, str], ...]
) -> Callable[[SecretValue], dict[str, Any]]:
    checked = dict(keys)
    memo: list[_Memo | None] = [None]  # one object swapped whole: safe to share between threads

    def params_of(value: SecretValue) -> dict[str, Any]:
        last = memo[0]
        if last is None or last.value is not value:
            params = secret_params(value, secret_id=secret_id, names=names, keys=checked)
            last = memo[0] = _Memo(value, params)
        return last.params

    return params_of


def make_params_of(
    secret_id: str, names: DriverNames, keys: Mapping[str, str] | None
) -> Callable[[SecretValue], dict[str, Any]]:
    """The ``params_of`` a :class:`~secretcache.db._auth.Login` needs, for one driver.

    Shared per (secret, driver, key names) and memoised per version: a connect on a cache hit does
    not parse the secret again. Callers must not mutate the dict it returns.
    """
    return _params_of(secret_id, names, tuple(sorted(check_keys(keys).items())))
