"""redis-py clients whose logins survive password rotation, and a redis-py ``CredentialProvider``.

A Redis secret is JSON with ``password``, and optionally ``username`` (ACL users, ElastiCache RBAC),
``host``, ``port``, ``ssl`` and ``db``; ``keys=`` renames them. :class:`CredentialProvider` is redis-py's
contract taken literally: a cache read (:func:`secretcache.credentials.in_use`) mapped to the fields.
:func:`client` and :func:`async_client` build the pool as ``redis.Redis(**kwargs)`` would, with a fixed
subclass of its connection class whose ``connect_check_health`` (the one entry to a new connection)
logs in through :func:`secretcache.credentials.login`: on a refused AUTH, one shared refresh, then
AWSPENDING, then redis-py's own error with a note naming the secret.

redis-py retries ``AuthenticationError`` (a ``ConnectionError``); the policy already did the retries that
can help, so each connection's ``Retry`` is wrapped to let a refused login through at once. ``NOAUTH`` and
``NOPERM`` are not refused logins: nothing is refreshed for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

try:
    import redis
    import redis.asyncio
    from redis.credentials import CredentialProvider as _RedisCredentialProvider
    from redis.exceptions import AuthenticationError
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("secretcache.redis needs redis-py: pip install 'secretcache[redis]'") from e

from ._redis_secret import check_keys, fields_of
from .credentials import AuthPolicy, in_use, in_use_async, login, login_async
from .errors import SecretFormatError
from .model import SecretValue

if TYPE_CHECKING:
    from ._face import AnySecretCache

__all__ = ["CredentialProvider", "async_client", "build_async_client", "client", "is_login_failure"]

T = TypeVar("T")

if not all(hasattr(redis.connection.AbstractConnection, name)
           for name in ("connect_check_health", "is_connected")):  # pragma: no cover
    raise ImportError("secretcache.redis needs a newer redis-py (with Connection.connect_check_health and "
                      "is_connected; 8.x is tested): pip install -U 'secretcache[redis]'")


def is_login_failure(error: BaseException) -> bool:
    """Whether ``error`` means "AUTH refused these credentials": ``WRONGPASS`` (ACL users, Redis 6+),
    ``ERR invalid password`` (``requirepass``, older servers) or redis-py's "Invalid Username or Password".

    Not: ``NOAUTH`` (a command sent before AUTH), ``NOPERM`` (a command the user may not run), "AUTH
    called without any password configured" (the server has no password: configuration, not rotation).
    """
    code = getattr(error, "status_code", None)  # redis-py 8: the server's error code
    if not isinstance(error, AuthenticationError) or code == "NOAUTH":
        return False
    text = str(error).lower()
    return code == "WRONGPASS" or "invalid password" in text or "invalid username" in text


# -- redis-py's credential-provider interface ----------------------------------------------------------


class CredentialProvider(_RedisCredentialProvider):
    """redis-py's ``CredentialProvider`` reading ``username``/``password`` from the secret at each new
    connection (a cache hit after the first), for ``redis.Redis(credential_provider=...)``, clusters,
    Sentinel and anything else that takes one.

    It cannot see a refused AUTH, so after a rotation it serves the old password until the cache
    refreshes (or until a :func:`client` of the same cache refreshed it); :func:`client` runs the policy.
    An AWSPENDING version the policy found working is served while it is pinned.
    """

    def __init__(self, secret_id: str, *, cache: AnySecretCache | None = None,
                 keys: Mapping[str, str] | None = None) -> None:
        self.secret_id = secret_id
        self._cache = cache
        self._keys = check_keys(keys)

    def __repr__(self) -> str:
        return f"<secretcache.redis.CredentialProvider secret={self.secret_id!r}>"

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        value = in_use(self.secret_id, cache=self._cache)
        return fields_of(value, self.secret_id, self._keys).auth(None)

    async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
        value = await in_use_async(self.secret_id, cache=self._cache)
        return fields_of(value, self.secret_id, self._keys).auth(None)


class _Attempt(_RedisCredentialProvider):
    """The credentials of one login attempt, handed to redis-py's ``on_connect``; repr without them."""

    def __init__(self, auth: tuple[str] | tuple[str, str]) -> None:
        self._auth = auth

    def __repr__(self) -> str:
        return "<secretcache.redis login attempt>"

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        return self._auth

    async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
        return self._auth


# -- redis-py's retries: a refused login is final once the policy is done --------------------------------


class _RefusedLogin(Exception):
    """Carries a refused login through redis-py's ``Retry`` (which retries every ``ConnectionError``)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _refusal_passes(do: Callable[[], T]) -> Callable[[], T]:
    def attempt() -> T:
        try:
            return do()
        except AuthenticationError as e:
            if is_login_failure(e):
                raise _RefusedLogin(e) from None
            raise
    return attempt


def _refusal_passes_async(do: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    async def attempt() -> T:
        try:
            return await do()
        except AuthenticationError as e:
            if is_login_failure(e):
                raise _RefusedLogin(e) from None
            raise
    return attempt


class _FinalLogins:
    """A connection's ``Retry``, retrying what it did except a refused login; every other attribute is the
    wrapped ``Retry``'s (``get_retries``, ``update_supported_errors``, ...)."""

    def __init__(self, retry: Any) -> None:
        self.wrapped = retry

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def call_with_retry(self, do: Callable[[], T], fail: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return self.wrapped.call_with_retry(_refusal_passes(do), fail, *args, **kwargs)  # type: ignore[no-any-return]
        except _RefusedLogin as r:
            raise r.error from r.error.__cause__


class _FinalLoginsAsync(_FinalLogins):
    async def call_with_retry(self, do: Any, fail: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return await self.wrapped.call_with_retry(_refusal_passes_async(do), fail, *args, **kwargs)
        except _RefusedLogin as r:
            raise r.error from r.error.__cause__


# -- connections that log in through the policy --------------------------------------------------------


class _Target(NamedTuple):
    """Which secret a client's connections log in with, through which cache and policy, read how."""

    secret_id: str
    cache: Any
    policy: AuthPolicy | None
    keys: tuple[tuple[str, str], ...]

    def attempt(self, value: SecretValue, username: str | None) -> _Attempt:
        return _Attempt(fields_of(value, self.secret_id, self.keys).auth(username))


class _RotatingLogin(redis.connection.AbstractConnection):
    """Mixed into redis-py's blocking connection classes: a new connection logs in through the policy."""

    def __init__(self, *args: Any, secretcache_target: _Target, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.secretcache_target = secretcache_target
        self.retry = None if self.retry is None else _FinalLogins(self.retry)  # type: ignore[assignment]

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self.is_connected:
            return
        target, connect = self.secretcache_target, super().connect_check_health

        def attempt(value: SecretValue) -> None:
            self.credential_provider = target.attempt(value, self.username)
            connect(check_health, retry_socket_connect)

        login(target.secret_id, attempt, is_auth_failure=is_login_failure, cache=target.cache, policy=target.policy)


class _RotatingLoginAsync(redis.asyncio.connection.AbstractConnection):
    """Mixed into redis-py's asyncio connection classes: the twin of :class:`_RotatingLogin`."""

    def __init__(self, *args: Any, secretcache_target: _Target, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.secretcache_target = secretcache_target
        self.retry = None if self.retry is None else _FinalLoginsAsync(self.retry)  # type: ignore[assignment]

    async def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self.is_connected:
            return
        target, connect = self.secretcache_target, super().connect_check_health

        async def attempt(value: SecretValue) -> None:
            self.credential_provider = target.attempt(value, self.username)
            await connect(check_health, retry_socket_connect)

        await login_async(target.secret_id, attempt, is_auth_failure=is_login_failure, cache=target.cache,
                          policy=target.policy)


class RotatingConnection(_RotatingLogin, redis.Connection): ...


class RotatingSSLConnection(_RotatingLogin, redis.SSLConnection): ...


class AsyncRotatingConnection(_RotatingLoginAsync, redis.asyncio.Connection): ...


class AsyncRotatingSSLConnection(_RotatingLoginAsync, redis.asyncio.SSLConnection): ...


_ROTATING: dict[type[Any], type[Any]] = {
    redis.Connection: RotatingConnection,
    redis.SSLConnection: RotatingSSLConnection,
    redis.asyncio.Connection: AsyncRotatingConnection,
    redis.asyncio.SSLConnection: AsyncRotatingSSLConnection,
}


def _log_in_through_policy(pool: Any, target: _Target) -> None:
    """Give a pool redis-py just built our subclass of its connection class, and the target to log in with."""
    rotating = _ROTATING.get(pool.connection_class)
    if rotating is None:
        raise TypeError(f"secretcache.redis logs in with redis-py's Connection or SSLConnection, not "
                        f"{pool.connection_class.__name__}")
    pool.connection_class = rotating
    pool.connection_kwargs["secretcache_target"] = target  # each new connection receives it


def _checked(secret_id: str, cache: Any, policy: AuthPolicy | None, keys: Mapping[str, str] | None,
             kwargs: dict[str, Any]) -> _Target:
    """Check the caller's arguments (no I/O)."""
    for name in ("password", "credential_provider", "connection_pool", "unix_socket_path"):
        if kwargs.get(name) is not None:
            raise TypeError(f"{name}= cannot be combined with a secret: the secret gives the credentials and host")
    if policy is not None and not isinstance(policy, AuthPolicy):
        raise TypeError(f"policy must be an AuthPolicy, got {type(policy).__name__}")
    return _Target(secret_id, cache, policy, check_keys(keys))


def _prepared(secret_id: str, cache: Any, policy: AuthPolicy | None, keys: Mapping[str, str] | None,
              kwargs: dict[str, Any], value: SecretValue | None = None) -> _Target:
    """Check the caller's arguments and fill host, port, ssl and db from the secret (the caller's win);
    ``value`` is the secret when the caller already read it (else it is read here, blocking)."""
    target = _checked(secret_id, cache, policy, keys, kwargs)
    if value is None:
        value = in_use(secret_id, cache=cache)
    fields = fields_of(value, secret_id, target.keys)
    for name in ("host", "port", "ssl", "db"):
        if kwargs.get(name) is None and getattr(fields, name) is not None:
            kwargs[name] = getattr(fields, name)
    if kwargs.get("host") is None:
        raise SecretFormatError(f"redis secret {secret_id!r}: no 'host' in the secret and no host= argument",
                                secret_id=secret_id)
    return target


def client(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **redis_kwargs: Any,
) -> redis.Redis:
    """A ``redis.Redis`` whose every new connection logs in with the secret's current credentials.

    ``redis_kwargs`` go to ``redis.Redis`` (``decode_responses``, ``socket_timeout``, ``max_connections``,
    ``single_connection_client``, ``ssl_ca_certs``, ...); ``host``, ``port``, ``ssl``, ``db`` and
    ``username`` you pass win over the secret's. The secret is read once here (host, port, ssl, db) and
    at each new connection (the credentials, a cache hit but after a rotation). ``cache=None`` uses the
    module-level cache.
    """
    single = redis_kwargs.pop("single_connection_client", False)
    target = _prepared(secret_id, cache, policy, keys, redis_kwargs)
    made = redis.Redis(**redis_kwargs)  # redis-py builds the pool from its own arguments; no connection yet
    pool = made.connection_pool
    _log_in_through_policy(pool, target)
    if not single:
        return made
    made.auto_close_connection_pool = False  # handed over to the single-connection client
    single_client = redis.Redis(connection_pool=pool, single_connection_client=True)
    single_client.auto_close_connection_pool = True
    return single_client


def async_client(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **redis_kwargs: Any,
) -> redis.asyncio.Redis:
    """The asyncio twin of :func:`client`: a ``redis.asyncio.Redis``.

    Built synchronously, as ``redis.asyncio.Redis`` is, with one read of the secret (host, port, ssl,
    db). That read blocks when the cache does not hold the secret yet: on a running event loop, use
    ``await``:func:`build_async_client` instead, whose read never blocks the loop (or build clients at
    start-up, or after ``await cache.prefetch([...])``). Logins on new connections read the cache on
    the event loop when it is a hit, in a worker thread otherwise.
    """
    target = _prepared(secret_id, cache, policy, keys, redis_kwargs)
    return _async_made(target, redis_kwargs)


async def build_async_client(
    secret_id: str,
    *,
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **redis_kwargs: Any,
) -> redis.asyncio.Redis:
    """:func:`async_client` for code on an event loop: ``client = await build_async_client("prod/cache")``.

    The one read of the secret at build time is a cache hit on the loop, or runs in a worker thread on a
    miss, so the loop never waits for Secrets Manager (redis-py's own constructors do no I/O either).
    """
    _checked(secret_id, cache, policy, keys, redis_kwargs)  # wrong arguments fail before any read
    value = await in_use_async(secret_id, cache=cache)
    target = _prepared(secret_id, cache, policy, keys, redis_kwargs, value)
    return _async_made(target, redis_kwargs)


def _async_made(target: _Target, redis_kwargs: dict[str, Any]) -> redis.asyncio.Redis:
    made = redis.asyncio.Redis(**redis_kwargs)  # connects lazily, single_connection_client included
    _log_in_through_policy(made.connection_pool, target)
    return made
