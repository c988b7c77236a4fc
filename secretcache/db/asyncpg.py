"""asyncpg connections and pools whose logins survive password rotation.

Every login reads the credentials through the cache and follows the rotation policy of
:mod:`secretcache.credentials`: on a refused password (asyncpg's ``InvalidPasswordError``, SQLSTATE 28P01,
or ``InvalidAuthorizationSpecificationError``, 28000, unless it is a NOLOGIN role or a pg_hba rule),
one shared refresh, then AWSPENDING, then asyncpg's own exception with a note naming the secret.
Anything else (unknown database, server down, too many connections) is raised at once, without a
refresh. Host, port, database and user come from the secret unless you pass them (keyword arguments,
or a ``dsn`` URI, win).

Pools use asyncpg's ``connect=`` hook (asyncpg >= 0.30): the pool calls it for every new connection,
including the refills its maintenance task makes, so each one logs in with current credentials and
retries a refused one right there. (``Pool.set_connect_args`` with fresh values would need someone to
notice the rotation first, and a refused login would surface to the caller of ``acquire``.)
"""

from __future__ import annotations

import inspect
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

try:
    import asyncpg  # type: ignore[import-untyped]
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("secretcache.db.asyncpg needs asyncpg: pip install 'secretcache[asyncpg]'") from e

from ..credentials import AuthPolicy, Credentials, Login, drive_async
from ._params import ASYNCPG, make_params_of, merged

if TYPE_CHECKING:
    from .._face import AnySecretCache

__all__ = ["connect", "create_pool"]

_URI_NAMES = {"host": "host", "port": "port", "user": "user", "password": "password", "dbname": "database",
              "database": "database", "sslmode": "ssl", "ssl": "ssl"}  # nosec B105 - parameter names


def _rotating_login(secret_id: str, cache: AnySecretCache | None, policy: AuthPolicy | None,
           keys: Mapping[str, str] | None) -> Login:
    return Login(secret_id, make_params_of(secret_id, ASYNCPG, keys), cache=cache, policy=policy)


def _uri_gives(dsn: object) -> frozenset[str]:
    """The asyncpg parameters a ``postgresql://`` URI sets: they win over the secret's.

    asyncpg lets keyword arguments win over the URI, so the secret's values for these are not passed.
    A URI naming a host names its port too (5432 unless it says otherwise).
    """
    if not isinstance(dsn, str) or not dsn:
        return frozenset()
    parsed = urllib.parse.urlsplit(dsn)
    userinfo, _, hostspec = parsed.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    given = {name for name, present in (("user", user), ("password", password), ("database", parsed.path.strip("/")))
             if present}
    if hostspec:
        given |= {"host", "port"}
    given |= {_URI_NAMES[k] for k in urllib.parse.parse_qs(parsed.query) if k in _URI_NAMES}
    return frozenset(given)


def _params(login: Login, credentials: Credentials, given: frozenset[str], explicit: Mapping[str, Any],
            keys: Mapping[str, str] | None) -> dict[str, Any]:
    from_secret = {k: v for k, v in credentials.params.items() if k not in given}
    params = merged(from_secret, {**dict.fromkeys(given), **explicit}, secret_id=login.secret_id, names=ASYNCPG,
                    keys=keys)
    return {k: v for k, v in params.items() if k in explicit or k not in given}


async def _login_connect(login: Login, keys: Mapping[str, str] | None, base: Callable[..., Awaitable[Any]],
                         args: tuple[Any, ...], explicit: Mapping[str, Any]) -> Any:
    given = _uri_gives(args[0] if args else explicit.get("dsn"))
    return await drive_async(
        login.flow(on_event_loop=True), lambda c: base(*args, **_params(login, c, given, explicit, keys))
    )


async def connect(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> asyncpg.Connection:
    """``await asyncpg.connect(...)`` with credentials (and host, port, database) from the secret ``secret_id``.

    ``kwargs`` take anything ``asyncpg.connect`` does (``database=``, ``ssl=``, ``timeout=``,
    ``server_settings=``, ``connection_class=``, a ``dsn="postgresql://..."`` URI); what you pass wins over the
    secret. ``keys`` renames the secret's JSON keys; ``cache`` defaults to the module-level cache;
    ``policy`` tunes the rotation policy. Cache hits are read on the event loop; a read that may call
    Secrets Manager (cold start, a refresh after a refused password) runs in a worker thread.
    """
    login = _rotating_login(secret_id, cache, policy, keys)
    return await _login_connect(login, keys, asyncpg.connect, (), kwargs)


def _supports_connect_hook() -> bool:
    return "connect" in inspect.signature(asyncpg.create_pool).parameters


def create_pool(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **pool_kwargs: Any,
) -> asyncpg.Pool:
    """An ``asyncpg.Pool`` whose every new connection logs in with current credentials.

    As ``asyncpg.create_pool``: ``await create_pool(...)`` or ``async with create_pool(...) as pool``.
    ``pool_kwargs`` go to ``asyncpg.create_pool`` unchanged (``min_size``, ``max_size``, ``init``,
    ``setup``, ``reset``, ``max_inactive_connection_lifetime``, connect arguments...). A ``connect=`` you
    pass is wrapped, not replaced: it is called with the secret's credentials added to its keyword
    arguments (what the pool gives it wins). Connections already in the pool keep working across a
    rotation; ``max_queries`` and ``max_inactive_connection_lifetime`` bound how long they stay on
    superseded credentials.
    """
    if not _supports_connect_hook():
        raise ImportError("secretcache.db.asyncpg.create_pool needs asyncpg >= 0.30 (its connect= hook): "
                          "pip install -U 'secretcache[asyncpg]'")
    login = _rotating_login(secret_id, cache, policy, keys)
    base: Callable[..., Awaitable[Any]] = pool_kwargs.pop("connect", None) or asyncpg.connect

    async def connect_through_secret(*args: Any, **kwargs: Any) -> Any:
        return await _login_connect(login, keys, base, args, kwargs)

    return asyncpg.create_pool(connect=connect_through_secret, **pool_kwargs)
