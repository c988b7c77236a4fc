"""redis-py clients whose logins survive password rotation, and a redis-py ``CredentialProvider``.

A Redis secret is JSON with ``password``, and optionally ``username`` (ACL users, ElastiCache RBAC),
``host``, ``port``, ``ssl`` and ``db``; ``keys=`` renames them. :func:`client` and :func:`async_client`
build the pool the way ``redis.Redis(**kwargs)`` would, then give it a connection class whose
``connect_check_health`` (the one entry to a new connection: pool checkouts and redis-py's own
reconnects) logs in through :func:`secretcache.credentials.login`: on a refused AUTH, one shared
refresh, then AWSPENDING, then redis-py's own error with a note naming the secret.

redis-py counts ``AuthenticationError`` as a ``ConnectionError`` and retries it (ten times by default,
with back-off); the policy already did the retries that can help, so the connection's ``Retry`` is
wrapped to let a refused login through at once. ``NOAUTH`` (a command before AUTH) and ``NOPERM``
(a command the ACL forbids) are not refused logins: nothing is refreshed for them.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

try:
    import redis
    import redis.asyncio
    from redis.credentials import CredentialProvider as _RedisCredentialProvider
    from redis.exceptions import AuthenticationError
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("secretcache.redis needs redis-py: pip install 'secretcache[redis]'") from e

from .credentials import AuthPolicy, login, login_async
from .errors import SecretFormatError
from .model import SecretValue, _shown_key

if TYPE_CHECKING:
    from .aio import AsyncSecretCache
    from .cache import SecretCache

__all__ = ["CredentialProvider", "async_client", "build_async_client", "client", "is_login_failure"]

FIELDS = ("username", "password", "host", "port", "ssl", "db")
T = TypeVar("T")

if not hasattr(redis.connection.AbstractConnection, "connect_check_health"):  # pragma: no cover
    raise ImportError("secretcache.redis needs a newer redis-py (with Connection.connect_check_health; "
                      "8.x is tested): pip install -U 'secretcache[redis]'")


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


# -- the secret ------------------------------------------------------------------------------------------


class _Fields(NamedTuple):
    username: str | None
    password: str
    host: str | None
    port: int | None
    ssl: bool | None
    db: int | None

    def __repr__(self) -> str:
        return f"<redis secret fields user={self.username!r} host={self.host!r}>"

    def auth(self, username: str | None) -> tuple[str] | tuple[str, str]:
        """redis-py's credentials: ``(username, password)``, or ``(password,)`` for the default user."""
        user = username or self.username
        return (user, self.password) if user else (self.password,)


def _check_keys(keys: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    if keys is None:
        return ()
    if not isinstance(keys, Mapping):
        raise TypeError(f"keys must be a mapping of field to JSON key, got {type(keys).__name__}")
    unknown = sorted(set(keys) - set(FIELDS))
    if unknown:
        raise ValueError(f"keys: unknown field(s) {unknown}; expected some of {list(FIELDS)}")
    if not all(isinstance(k, str) and k for k in keys.values()):
        raise ValueError("keys: every JSON key must be a non-empty str")
    return tuple(sorted(keys.items()))


def _number(raw: object) -> int | None:
    if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not str(raw).strip().isdigit():
        return None
    return int(raw)


def _flag(raw: object) -> bool | None:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    return None


def _parse(value: SecretValue, secret_id: str, keys: tuple[tuple[str, str], ...]) -> tuple[str, _Fields | None]:
    """("", fields) or (problem, None): returned, not raised, so no traceback frame holds the secret."""
    data, names = value.json(), dict(keys)
    found: dict[str, Any] = {}
    for field in FIELDS:
        key = names.get(field, field)
        raw = data.get(key)
        if raw is None or raw == "":
            found[field] = None
            continue
        parsed = _number(raw) if field in ("port", "db") else _flag(raw) if field == "ssl" else \
            raw if isinstance(raw, str) else None
        if parsed is None:
            kind = {"port": "a number", "db": "a number", "ssl": "true or false"}.get(field, "a string")
            return f"redis secret {secret_id!r}: field {field!r} (JSON key {_shown_key(key)}) is not {kind}", None
        found[field] = parsed
    if found["password"] is None:
        key = names.get("password", "password")
        return f"redis secret {secret_id!r}: field 'password' (JSON key {_shown_key(key)}) is missing or empty", None
    return "", _Fields(**found)


def _fields(value: SecretValue, secret_id: str, keys: tuple[tuple[str, str], ...]) -> _Fields:
    """The secret's fields, checked: :class:`SecretFormatError` names the secret and the field, never a value."""
    problem, fields = _parse(value, secret_id, keys)
    if fields is None:
        raise SecretFormatError(problem, secret_id=secret_id)
    return fields


def _same(value: SecretValue) -> SecretValue:
    return value


async def _same_async(value: SecretValue) -> SecretValue:
    return value


def _never(error: BaseException) -> bool:
    return False


# -- redis-py's credential-provider interface ----------------------------------------------------------


class CredentialProvider(_RedisCredentialProvider):
    """redis-py's ``CredentialProvider`` reading ``username``/``password`` from the secret at each new
    connection (a cache hit after the first), for ``redis.Redis(credential_provider=...)``, clusters,
    Sentinel and anything else that takes one.

    It cannot see a refused AUTH, so after a rotation it serves the old password until the cache
    refreshes (or until a :func:`client` of the same cache refreshed it); :func:`client` runs the policy.
    An AWSPENDING version the policy found working is served while it is pinned.
    """

    def __init__(self, secret_id: str, *, cache: SecretCache | AsyncSecretCache | None = None,
                 keys: Mapping[str, str] | None = None) -> None:
        self.secret_id = secret_id
        self._cache = cache
        self._keys = _check_keys(keys)

    def __repr__(self) -> str:
        return f"<secretcache.redis.CredentialProvider secret={self.secret_id!r}>"

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        value = login(self.secret_id, _same, is_auth_failure=_never, cache=self._cache)
        return _fields(value, self.secret_id, self._keys).auth(None)

    async def get_credentials_async(self) -> tuple[str] | tuple[str, str]:
        value = await login_async(self.secret_id, _same_async, is_auth_failure=_never, cache=self._cache)
        return _fields(value, self.secret_id, self._keys).auth(None)


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


class _Refused(Exception):
    """Carries a refused login through redis-py's ``Retry`` (which retries every ``ConnectionError``)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__("refused login")
        self.error = error


def _guarded(do: Callable[[], T]) -> Callable[[], T]:
    def guarded() -> T:
        try:
            return do()
        except AuthenticationError as e:
            if is_login_failure(e):
                raise _Refused(e) from None
            raise
    return guarded


def _guarded_async(do: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    async def guarded() -> T:
        try:
            return await do()
        except AuthenticationError as e:
            if is_login_failure(e):
                raise _Refused(e) from None
            raise
    return guarded


_final_classes: dict[tuple[type[Any], bool], type[Any]] = {}


def _final_logins_class(base: type[Any], is_async: bool) -> type[Any]:
    made = _final_classes.get((base, is_async))
    if made is not None:
        return made
    if is_async:
        async def call_with_retry(self: Any, do: Any, fail: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return await base.call_with_retry(self, _guarded_async(do), fail, *args, **kwargs)
            except _Refused as r:
                raise r.error from r.error.__cause__
    else:
        def call_with_retry(self: Any, do: Any, fail: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            try:
                return base.call_with_retry(self, _guarded(do), fail, *args, **kwargs)
            except _Refused as r:
                raise r.error from r.error.__cause__

    made = _final_classes[(base, is_async)] = type(
        f"LoginFinal{base.__name__}", (base,), {"call_with_retry": call_with_retry, "_secretcache_final": True}
    )
    return made


def _final_logins(retry: Any, is_async: bool) -> Any:
    """A copy of redis-py's ``Retry`` that retries what it did, except a refused login."""
    if retry is None or getattr(type(retry), "_secretcache_final", False):
        return retry
    wrapped = copy.copy(retry)
    wrapped.__class__ = _final_logins_class(type(retry), is_async)
    return wrapped


# -- connections that log in through the policy --------------------------------------------------------


class _Login(NamedTuple):
    secret_id: str
    cache: Any
    policy: AuthPolicy | None
    keys: tuple[tuple[str, str], ...]


_rotating_classes: weakref.WeakValueDictionary[tuple[Any, ...], type[Any]] = weakref.WeakValueDictionary()


def _rotating(base: type[Any], how: _Login, is_async: bool) -> type[Any]:
    """A subclass of redis-py's connection class ``base`` whose new connections log in through the policy.

    Shared by the clients of one (secret, cache, policy, keys): making a class costs more than a client
    (~170 us). The key holds the cache's id, valid while the class (which holds the cache) lives.
    """
    key = (base, is_async, how.secret_id, id(how.cache), how.policy, how.keys)
    made = _rotating_classes.get(key)
    if made is None:
        made = _rotating_classes[key] = _make_rotating(base, how, is_async)
    return made


def _make_rotating(base: type[Any], how: _Login, is_async: bool) -> type[Any]:

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, *args, **kwargs)
        self.retry = _final_logins(self.retry, is_async)

    def credentials(self: Any, value: SecretValue) -> _Attempt:
        return _Attempt(_fields(value, how.secret_id, how.keys).auth(self.username))

    if is_async:
        async def connect_check_health(self: Any, check_health: bool = True,
                                       retry_socket_connect: bool = True) -> None:
            if self.is_connected:
                return

            async def attempt(value: SecretValue) -> None:
                self.credential_provider = credentials(self, value)
                await base.connect_check_health(self, check_health, retry_socket_connect)

            await login_async(how.secret_id, attempt, is_auth_failure=is_login_failure, cache=how.cache,
                              policy=how.policy)
    else:
        def connect_check_health(self: Any, check_health: bool = True,  # type: ignore[misc]
                                 retry_socket_connect: bool = True) -> None:
            if self._sock:
                return

            def attempt(value: SecretValue) -> None:
                self.credential_provider = credentials(self, value)
                base.connect_check_health(self, check_health, retry_socket_connect)

            login(how.secret_id, attempt, is_auth_failure=is_login_failure, cache=how.cache, policy=how.policy)

    return type(f"Rotating{base.__name__}", (base,), {
        "__init__": __init__, "connect_check_health": connect_check_health, "__module__": __name__,
    })


def _checked(secret_id: str, cache: Any, policy: AuthPolicy | None, keys: Mapping[str, str] | None,
             kwargs: dict[str, Any]) -> _Login:
    """Check the caller's arguments (no I/O)."""
    for name in ("password", "credential_provider", "connection_pool", "unix_socket_path"):
        if kwargs.get(name) is not None:
            raise TypeError(f"{name}= cannot be combined with a secret: the secret gives the credentials and host")
    if policy is not None and not isinstance(policy, AuthPolicy):
        raise TypeError(f"policy must be an AuthPolicy, got {type(policy).__name__}")
    return _Login(secret_id, cache, policy, _check_keys(keys))


def _prepared(secret_id: str, cache: Any, policy: AuthPolicy | None, keys: Mapping[str, str] | None,
              kwargs: dict[str, Any], value: SecretValue | None = None) -> _Login:
    """Check the caller's arguments and fill host, port, ssl and db from the secret (the caller's win);
    ``value`` is the secret when the caller already read it (else it is read here, blocking)."""
    how = _checked(secret_id, cache, policy, keys, kwargs)
    if value is None:
        value = login(secret_id, _same, is_auth_failure=_never, cache=cache)
    fields = _fields(value, secret_id, how.keys)
    for name in ("host", "port", "ssl", "db"):
        if kwargs.get(name) is None and getattr(fields, name) is not None:
            kwargs[name] = getattr(fields, name)
    if kwargs.get("host") is None:
        raise SecretFormatError(f"redis secret {secret_id!r}: no 'host' in the secret and no host= argument",
                                secret_id=secret_id)
    return how


def client(
    secret_id: str,
    *,
    cache: SecretCache | AsyncSecretCache | None = None,
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
    how = _prepared(secret_id, cache, policy, keys, redis_kwargs)
    made = redis.Redis(**redis_kwargs)  # redis-py builds the pool from its own arguments; no connection yet
    pool = made.connection_pool
    pool.connection_class = _rotating(pool.connection_class, how, is_async=False)
    if not single:
        return made
    made.auto_close_connection_pool = False  # handed over to the single-connection client
    single_client = redis.Redis(connection_pool=pool, single_connection_client=True)
    single_client.auto_close_connection_pool = True
    return single_client


def async_client(
    secret_id: str,
    *,
    cache: SecretCache | AsyncSecretCache | None = None,
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
    how = _prepared(secret_id, cache, policy, keys, redis_kwargs)
    return _async_made(how, redis_kwargs)


async def build_async_client(
    secret_id: str,
    *,
    cache: SecretCache | AsyncSecretCache | None = None,
    policy: AuthPolicy | None = None,
    keys: Mapping[str, str] | None = None,
    **redis_kwargs: Any,
) -> redis.asyncio.Redis:
    """:func:`async_client` for code on an event loop: ``client = await build_async_client("prod/cache")``.

    The one read of the secret at build time is a cache hit on the loop, or runs in a worker thread on a
    miss, so the loop never waits for Secrets Manager (redis-py's own constructors do no I/O either).
    """
    _checked(secret_id, cache, policy, keys, redis_kwargs)  # wrong arguments fail before any read
    value = await login_async(secret_id, _same_async, is_auth_failure=_never, cache=cache)
    how = _prepared(secret_id, cache, policy, keys, redis_kwargs, value)
    return _async_made(how, redis_kwargs)


def _async_made(how: _Login, redis_kwargs: dict[str, Any]) -> redis.asyncio.Redis:
    made = redis.asyncio.Redis(**redis_kwargs)  # connects lazily, single_connection_client included
    pool = made.connection_pool
    pool.connection_class = _rotating(pool.connection_class, how, is_async=True)
    return made

