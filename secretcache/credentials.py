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

Importing this module loads no driver and no HTTP client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._face import sync_face
from .db._auth import AuthPolicy, AuthStats, Login, run_async, run_sync
from .db._auth import auth_stats as _auth_stats

if TYPE_CHECKING:
    from .aio import AsyncSecretCache
    from .cache import SecretCache
    from .model import SecretValue

__all__ = ["AuthPolicy", "AuthStats", "auth_stats", "login", "login_async"]

T = TypeVar("T")


def sync_cache(cache: SecretCache | AsyncSecretCache | None) -> SecretCache | None:
    """The blocking face of ``cache`` (itself for a SecretCache; for an AsyncSecretCache, a SecretCache
    over the same core), for code that reads from worker threads; ``None`` stays ``None``. The policy's
    state per secret lives on the core, so every login through either face shares it."""
    return None if cache is None else sync_face(cache)


def _no_params(value: SecretValue) -> Mapping[str, Any]:
    return {}  # ``connect`` receives the SecretValue itself and reads what it needs


def _login(
    secret_id: str,
    is_auth_failure: Callable[[BaseException], bool],
    cache: SecretCache | AsyncSecretCache | None,
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
    cache: SecretCache | AsyncSecretCache | None = None,
    policy: AuthPolicy | None = None,
) -> T:
    """``connect(secret)`` with the cached version of ``secret_id``, through the rotation policy.

    ``cache=None`` uses the module-level default cache. Returns what ``connect`` returned.
    """
    flow = _login(secret_id, is_auth_failure, cache, policy).flow()
    return run_sync(flow, lambda credentials: connect(credentials.value))


async def login_async(
    secret_id: str,
    connect: Callable[[SecretValue], Awaitable[T]],
    *,
    is_auth_failure: Callable[[BaseException], bool],
    cache: SecretCache | AsyncSecretCache | None = None,
    policy: AuthPolicy | None = None,
) -> T:
    """``await connect(secret)`` through the rotation policy, as :func:`login`; reads that may wait for
    Secrets Manager run in a worker thread, so the event loop never blocks."""
    flow = _login(secret_id, is_auth_failure, cache, policy).flow(on_event_loop=True)
    return await run_async(flow, lambda credentials: connect(credentials.value))


def auth_stats(secret_id: str, *, cache: SecretCache | AsyncSecretCache | None = None) -> AuthStats:
    """Counters of the rotation policy for ``secret_id`` in ``cache`` (default: the module-level cache)."""
    return _auth_stats(secret_id, cache=cache)
