"""Credentials for any client: the rotation policy of the database factories, for anything that logs in
with a secret (an HTTP API, a message broker, an SMTP server, your own driver).

``login(secret_id, connect, is_auth_failure=...)`` calls ``connect(secret)`` with the cached version of
the secret. When the client refuses it (``is_auth_failure(exc)`` is true for what ``connect`` raised),
the policy runs, as for databases (see docs/databases.md, "What happens at a rotation"):

1. one forced refresh of AWSCURRENT, shared by every login failing at that moment and rate-limited per
   secret; ``connect`` again if it brought another version;
2. else AWSPENDING once (single-user rotation between setSecret and finishSecret), pinned for later
   logins while it works and AWSCURRENT has not moved;
3. else the last exception ``connect`` raised, re-raised with a note naming the secret and the versions
   tried, never a value.

At most three calls of ``connect``. Any other exception propagates at once, with nothing retried. The
policy always reads AWSCURRENT / AWSPENDING by name, whatever ``CacheConfig.version_stage`` is.

Importing this package loads no driver and no HTTP client.

The package is the one seam every client that logs in plugs into (the database factories, the Django
engines, Redis, :class:`~secretcache.http.SecretAuth`, the rotation framework): the policy
(:class:`Login`, :class:`AuthPolicy`), its per-secret state (:class:`AuthStats`), the I/O-free flow
(:class:`Read` and :class:`Connect` steps carrying :class:`Credentials`), the refused-login detector
(:func:`is_auth_failure`) and the only two drivers of a flow, :func:`drive` (blocking) and
:func:`drive_async` (awaiting), as httpx's auth flows have exactly two. Clients import these names from
here, never from the private modules behind them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._detect import AUTH_MESSAGES, is_auth_failure
from ._flow import Connect, Credentials, Flow, Read, add_note, drive, drive_async
from ._policy import AuthPolicy, Login, auth_stats
from ._state import CURRENT, PENDING, AuthStats

if TYPE_CHECKING:
    from .._face import AnySecretCache
    from ..model import SecretValue

__all__ = [
    "AUTH_MESSAGES", "CURRENT", "PENDING", "AuthPolicy", "AuthStats", "Connect", "Credentials", "Flow", "Login",
    "Read", "add_note", "auth_stats", "drive", "drive_async", "in_use", "in_use_async", "is_auth_failure", "login",
    "login_async",
]

T = TypeVar("T")


def _no_params(value: SecretValue) -> Mapping[str, Any]:
    return {}  # ``connect`` receives the SecretValue itself and reads what it needs


def _caller_login(
    secret_id: str,
    is_auth_failure: Callable[[BaseException], bool],
    cache: AnySecretCache | None,
    policy: AuthPolicy | None,
) -> Login:
    if not callable(is_auth_failure):
        raise TypeError("is_auth_failure must be a callable taking the exception connect raised")
    return Login(secret_id, _no_params, cache=cache, policy=policy, detect=is_auth_failure,
                 logger="secretcache.credentials")


def login(
    secret_id: str,
    connect: Callable[[SecretValue], T],
    *,
    is_auth_failure: Callable[[BaseException], bool],
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
) -> T:
    """``connect(secret)`` with the cached version of ``secret_id``, through the rotation policy.

    ``cache=None`` uses the module-level default cache. Returns what ``connect`` returned.
    """
    flow = _caller_login(secret_id, is_auth_failure, cache, policy).flow()
    return drive(flow, lambda credentials: connect(credentials.value))


async def login_async(
    secret_id: str,
    connect: Callable[[SecretValue], Awaitable[T]],
    *,
    is_auth_failure: Callable[[BaseException], bool],
    cache: AnySecretCache | None = None,
    policy: AuthPolicy | None = None,
) -> T:
    """``await connect(secret)`` through the rotation policy, as :func:`login`; reads that may wait for
    Secrets Manager run in a worker thread, so the event loop never blocks."""
    flow = _caller_login(secret_id, is_auth_failure, cache, policy).flow(on_event_loop=True)
    return await drive_async(flow, lambda credentials: connect(credentials.value))


def _no_login(credentials: Credentials) -> Any:
    raise AssertionError("an in_use flow never logs in")  # pragma: no cover - the flow yields one Read only


async def _no_login_async(credentials: Credentials) -> Any:
    raise AssertionError("an in_use flow never logs in")  # pragma: no cover


def in_use(secret_id: str, *, cache: AnySecretCache | None = None) -> SecretValue:
    """The version of ``secret_id`` logins use now, read through the cache without running the policy: the
    AWSPENDING version the policy pinned during a rotation while AWSCURRENT has not moved, else AWSCURRENT.
    For code that hands credentials to a client that logs in out of our sight (redis-py's
    ``CredentialProvider``): it cannot report a refusal, but it follows what the logins that can have learnt.
    """
    return drive(Login(secret_id, _no_params, cache=cache).in_use(), _no_login)  # type: ignore[no-any-return]


async def in_use_async(secret_id: str, *, cache: AnySecretCache | None = None) -> SecretValue:
    """:func:`in_use` on an event loop: a read that may wait for Secrets Manager runs in a worker thread."""
    flow = Login(secret_id, _no_params, cache=cache).in_use(on_event_loop=True)
    return await drive_async(flow, _no_login_async)
