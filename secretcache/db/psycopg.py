"""psycopg 3 connections and psycopg_pool pools whose logins survive password rotation.

Every login reads the credentials through the cache and follows the rotation policy of
:mod:`secretcache.credentials`: on a refused password, one shared refresh, then AWSPENDING, then the
driver's own ``psycopg.OperationalError`` with a note naming the secret. Host, port, dbname and
user come from the secret unless you pass them (keyword arguments or a ``conninfo`` string win).

Pools get a ``connection_class`` whose ``connect`` runs the policy, so each new pooled connection,
including the pool's background refills, logs in with current credentials and retries a refused
one right there. (A callable ``kwargs=`` alone would hand the pool fresh values but cannot see a
refusal: the pool would retry with back-off and callers would see ``PoolTimeout``.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "secretcache.db.psycopg needs psycopg 3 (and psycopg_pool for pools): "
        "pip install 'secretcache[postgres]'"
    ) from e

from ..credentials import AuthPolicy, Credentials, Login, drive, drive_async
from ._params import PSYCOPG, make_params_of, merged

if TYPE_CHECKING:
    import psycopg_pool

    from .._face import AnySecretCache

__all__ = ["async_connection_pool", "connect", "connect_async", "connection_pool"]


def _rotating_login(secret_id: str, cache: AnySecretCache | None, policy: AuthPolicy | None,
           keys: Mapping[str, str] | None) -> Login:
    return Login(secret_id, make_params_of(secret_id, PSYCOPG, keys), cache=cache, policy=policy)


def _explicit(conninfo: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's parameters: a conninfo string's, overridden by keyword arguments (psycopg's own rule)."""
    return {**conninfo_to_dict(conninfo), **kwargs} if conninfo else dict(kwargs)


def _params(login: Login, credentials: Credentials, explicit: Mapping[str, Any],
            keys: Mapping[str, str] | None) -> dict[str, Any]:
    return merged(credentials.params, explicit, secret_id=login.secret_id, names=PSYCOPG, keys=keys)


def connect(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **conninfo: Any,
) -> psycopg.Connection[Any]:
    """``psycopg.connect`` with credentials (and host, port, dbname) from the secret ``secret_id``.

    ``conninfo`` takes anything ``psycopg.connect`` does (``autocommit=True``, ``row_factory=...``,
    ``sslmode="require"``, a ``conninfo="..."`` string); what you pass wins over the secret.
    ``keys`` renames the secret's JSON keys (``{"username": "user"}``); ``cache`` defaults to the
    module-level cache; ``policy`` tunes the rotation policy.
    """
    login = _rotating_login(secret_id, cache, policy, keys)
    explicit = _explicit(conninfo.pop("conninfo", ""), conninfo)
    return drive(
        login.flow(), lambda c: psycopg.Connection.connect("", **_params(login, c, explicit, keys))
    )


async def connect_async(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **conninfo: Any,
) -> psycopg.AsyncConnection[Any]:
    """The asyncio twin of :func:`connect`: ``await psycopg.AsyncConnection.connect(...)``.

    Cache hits are read on the event loop; a read that may call Secrets Manager (cold start, a
    refresh after a refused password) runs in a worker thread.
    """
    login = _rotating_login(secret_id, cache, policy, keys)
    explicit = _explicit(conninfo.pop("conninfo", ""), conninfo)
    return await drive_async(
        login.flow(on_event_loop=True),
        lambda c: psycopg.AsyncConnection.connect("", **_params(login, c, explicit, keys)),
    )


def rotating_connection_class(
    base: type[psycopg.Connection[Any]], login: Login, keys: Mapping[str, str] | None = None
) -> type[psycopg.Connection[Any]]:
    """A subclass of ``base`` whose ``connect`` logs in through ``login`` (what pools call per connection)."""

    def connect(cls: Any, /, conninfo: str = "", **kwargs: Any) -> Any:
        explicit = _explicit(conninfo, kwargs)
        parent = super(rotating, cls).connect
        return drive(login.flow(), lambda c: parent("", **_params(login, c, explicit, keys)))

    rotating: type[psycopg.Connection[Any]] = type(
        f"Rotating{base.__name__}", (base,), {"connect": classmethod(connect), "__module__": __name__}
    )
    return rotating


def rotating_async_connection_class(
    base: type[psycopg.AsyncConnection[Any]], login: Login, keys: Mapping[str, str] | None = None
) -> type[psycopg.AsyncConnection[Any]]:
    """The asyncio twin of :func:`rotating_connection_class`."""

    async def connect(cls: Any, /, conninfo: str = "", **kwargs: Any) -> Any:
        explicit = _explicit(conninfo, kwargs)
        parent = super(rotating, cls).connect
        return await drive_async(
            login.flow(on_event_loop=True), lambda c: parent("", **_params(login, c, explicit, keys))
        )

    rotating: type[psycopg.AsyncConnection[Any]] = type(
        f"Rotating{base.__name__}", (base,), {"connect": classmethod(connect), "__module__": __name__}
    )
    return rotating


def _pool_module() -> Any:
    try:
        import psycopg_pool
    except ImportError as e:
        raise ImportError("connection pools need psycopg_pool: pip install 'secretcache[postgres]'") from e
    return psycopg_pool


def connection_pool(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **pool_kwargs: Any,
) -> psycopg_pool.ConnectionPool[Any]:
    """A ``psycopg_pool.ConnectionPool`` whose every new connection logs in with current credentials.

    ``pool_kwargs`` go to ``ConnectionPool`` unchanged (``min_size``, ``max_size``, ``open``,
    ``kwargs``, ``max_lifetime``, ...); a ``connection_class`` you pass is subclassed, not replaced.
    Connections already in the pool keep working across a rotation; ``max_lifetime`` bounds how long
    they stay on superseded credentials. Use it as a context manager, or pass ``open=True``.
    """
    base = pool_kwargs.pop("connection_class", psycopg.Connection)
    login = _rotating_login(secret_id, cache, policy, keys)
    pool_cls = _pool_module().ConnectionPool
    return pool_cls(  # type: ignore[no-any-return]
        connection_class=rotating_connection_class(base, login, keys), **pool_kwargs
    )


def async_connection_pool(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **pool_kwargs: Any,
) -> psycopg_pool.AsyncConnectionPool[Any]:
    """The asyncio twin of :func:`connection_pool`: a ``psycopg_pool.AsyncConnectionPool``.

    Create it with ``open=False`` and ``await pool.open()`` (or ``async with``), as psycopg_pool advises.
    """
    base = pool_kwargs.pop("connection_class", psycopg.AsyncConnection)
    login = _rotating_login(secret_id, cache, policy, keys)
    pool_cls = _pool_module().AsyncConnectionPool
    return pool_cls(  # type: ignore[no-any-return]
        connection_class=rotating_async_connection_class(base, login, keys), **pool_kwargs
    )
