"""SQLAlchemy engines whose logins survive password rotation.

:func:`attach` registers a ``do_connect`` listener (SQLAlchemy's documented hook for dynamic
credentials) that logs in itself, through the rotation policy of :mod:`secretcache.credentials`, and
returns the DBAPI connection. It sees the driver's raw error, so it can retry a refused password;
anything it cannot fix reaches you as usual, wrapped in ``sqlalchemy.exc.OperationalError`` with
the driver's exception (carrying a note naming the secret) in ``.orig``.

Every pool class (QueuePool, NullPool, AsyncAdaptedQueuePool...), ``pool_pre_ping`` and
``pool_recycle`` reconnect through ``do_connect``, so they all get current credentials.
``creator=`` / ``async_creator=`` bypass ``do_connect`` and cannot be combined with this.
Host, port, database and user come from the secret unless the URL, ``connect_args`` or
another listener give them (what they give wins).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

try:
    import sqlalchemy
    from sqlalchemy import event
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "secretcache.db.sqlalchemy needs SQLAlchemy 2: pip install 'secretcache[sqlalchemy]'"
    ) from e

from ..credentials import AuthPolicy, Login, Read, drive
from ._params import AIOMYSQL, ASYNCPG, DATABASE, MYSQLDB, PSYCOPG, PYMYSQL, DriverNames, make_params_of, merged

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect, Engine
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.ext.asyncio import AsyncEngine
    from sqlalchemy.pool import ConnectionPoolEntry

    from .._face import AnySecretCache

__all__ = ["attach", "create_async_engine", "create_engine"]

_PARAM_NAMES: dict[str, DriverNames] = {
    "psycopg": PSYCOPG,
    "psycopg2": PSYCOPG,
    "psycopg2cffi": PSYCOPG,
    "mysqldb": MYSQLDB,
    "pymysql": PYMYSQL,
    "asyncpg": ASYNCPG,
    # SQLAlchemy's aiomysql and asyncmy dialects turn the URL's database into ``db=``; the secret's must use
    # the same name, or it would clash (aiomysql takes no ``database=``; asyncmy would let it win over ``db=``).
    "aiomysql": AIOMYSQL,
    "asyncmy": AIOMYSQL,
}
"""Keyword names (and TLS spelling) by DBAPI driver; the rest (pg8000) use ``database``."""

_attached: weakref.WeakSet[Any] = weakref.WeakSet()


def _read_in_greenlet(step: Read) -> Any:
    """Async engines run ``do_connect`` in a greenlet on the loop: cache work that may block uses a thread."""
    if not step.may_block:
        return step.fn()
    import asyncio

    from sqlalchemy import util

    await_ = getattr(util, "await_", None) or util.await_only  # 2.1 renamed await_only
    return await_(asyncio.to_thread(step.fn))


def attach(
    engine: Engine | AsyncEngine,
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
) -> Engine | AsyncEngine:
    """Make every new connection of ``engine`` (sync or async) log in with the secret ``secret_id``.

    Returns the engine. An engine takes one secret: attaching twice raises ``ValueError``.
    """
    # Not isinstance(AsyncEngine): importing sqlalchemy.ext.asyncio needs greenlet, which sync users may lack.
    sync_engine = cast("Engine", getattr(engine, "sync_engine", engine))
    if sync_engine in _attached:
        raise ValueError(f"engine {sync_engine!r} already logs in through secretcache")
    names = _PARAM_NAMES.get(sync_engine.dialect.driver, DATABASE)
    login = Login(secret_id, make_params_of(secret_id, names, keys), cache=cache, policy=policy)
    on_event_loop = bool(sync_engine.dialect.is_async)

    def do_connect(
        dialect: Dialect, conn_rec: ConnectionPoolEntry, cargs: list[Any], cparams: dict[str, Any]
    ) -> DBAPIConnection:
        def connect(credentials: Any) -> DBAPIConnection:
            return dialect.connect(
                *cargs, **merged(credentials.params, cparams, secret_id=secret_id, names=names, keys=keys)
            )

        if on_event_loop:
            return drive(login.flow(on_event_loop=True), connect, read=_read_in_greenlet)
        return drive(login.flow(), connect)

    event.listen(sync_engine, "do_connect", do_connect)
    _attached.add(sync_engine)
    return engine


def create_engine(
    url: str | sqlalchemy.URL,
    *,
    secret_id: str,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **engine_kwargs: Any,
) -> Engine:
    """``sqlalchemy.create_engine(url, **engine_kwargs)`` logging in with the secret ``secret_id``.

    The URL may be as bare as ``"postgresql+psycopg://"`` or ``"mysql+pymysql://"``: the rest comes
    from the secret. Parts it does give (``/appdb``, ``?sslmode=require``) win over the secret.
    """
    if "creator" in engine_kwargs:
        raise TypeError("creator= bypasses do_connect, where secretcache logs in; pass one or the other")
    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    attach(engine, secret_id, cache=cache, policy=policy, keys=keys)
    return engine


def create_async_engine(
    url: str | sqlalchemy.URL,
    *,
    secret_id: str,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **engine_kwargs: Any,
) -> AsyncEngine:
    """``sqlalchemy.ext.asyncio.create_async_engine`` logging in with the secret ``secret_id``.

    Any async dialect: ``postgresql+psycopg://``, ``postgresql+asyncpg://``, ``mysql+aiomysql://``,
    ``mysql+asyncmy://``.

    Cache hits are read on the event loop; reads that may call Secrets Manager run in a worker thread.
    """
    if "async_creator" in engine_kwargs or "creator" in engine_kwargs:
        raise TypeError("async_creator= bypasses do_connect, where secretcache logs in; pass one or other")
    from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine

    engine = sa_create_async_engine(url, **engine_kwargs)
    attach(engine, secret_id, cache=cache, policy=policy, keys=keys)
    return engine
