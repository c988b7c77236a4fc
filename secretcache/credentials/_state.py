"""What the rotation policy remembers per secret, owned by the cache it reads through.

Every login with one secret in one cache shares a :class:`SecretState`: the versions refused lately,
the last forced fetch of each stage, the pinned AWSPENDING version, the parsed credentials of the last
version seen, and the counters :func:`~secretcache.credentials.auth_stats` reports. The states of a cache
are kept through the cache's ``state_for`` seam (one per core, shared by both faces), created on the
first login: they die with the cache, and a forked child keeps them with fresh locks, as it keeps the
cache's entries. No module-level registry.

No clock is read here: the policy passes ``now`` in (its tests drive time through ``_policy.monotonic``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ..errors import SecretCacheError
from ..model import SecretValue
from ._flow import Credentials

if TYPE_CHECKING:
    from .._face import AnySecretCache

__all__ = ["CURRENT", "PENDING", "AuthStats", "Counter", "Fetch", "Pin", "SecretState", "state_of", "version_key"]

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"


class AuthStats(NamedTuple):
    """What the policy did for one secret in one cache, since the cache was made."""

    auth_failures: int = 0
    """Logins refused (each counts once)."""
    refreshes: int = 0
    """Forced AWSCURRENT fetches (API calls)."""
    pending_fetches: int = 0
    """AWSPENDING fetches (API calls)."""
    pending_logins: int = 0
    """Logins that succeeded with AWSPENDING credentials (pinned or just read)."""
    gave_up: int = 0
    """Connects that raised the driver's error after trying everything."""


Counter = Literal["auth_failures", "refreshes", "pending_fetches", "pending_logins", "gave_up"]


class Fetch(NamedTuple):
    """One forced fetch of a stage: when it began (its answer is as new as that) and what it brought."""

    started: float
    outcome: SecretValue | SecretCacheError


class Pin(NamedTuple):
    value: SecretValue
    over: str | None
    """The AWSCURRENT version id that was refused when the pin was made; the pin lasts while it is current."""


def version_key(value: SecretValue) -> object:
    """What identifies a version: its id, or the object itself for backends that give none."""
    return value.version_id if value.version_id is not None else value


class SecretState:
    """What every login with one secret in one cache shares."""

    def __init__(self) -> None:
        self._new_locks()
        self.fetches: dict[str, Fetch] = {}
        self.bad: dict[object, float] = {}  # version key -> when first refused
        self.pin: Pin | None = None
        self.parsed: dict[Callable[[SecretValue], Any], Credentials] = {}
        """The one memo of parsed credentials: per ``params_of`` (one per driver and key mapping), those
        of the last version it parsed. Swapped whole per key, so readers need no lock."""
        self._counts: dict[Counter, int] = dict.fromkeys(AuthStats._fields, 0)  # type: ignore[arg-type]
        """The counters :class:`AuthStats` reports, by its field names."""

    def _new_locks(self) -> None:
        self.lock = threading.Lock()
        self.fetch_locks = {CURRENT: threading.Lock(), PENDING: threading.Lock()}

    def after_fork(self) -> None:
        """In a forked child: a parent thread may have held a lock at the fork; everything else stays."""
        self._new_locks()

    # -- counters --------------------------------------------------------------------------------------

    def count(self, name: Counter) -> None:
        with self.lock:
            self._counts[name] += 1

    def stats(self) -> AuthStats:
        with self.lock:
            return AuthStats(**self._counts)

    # -- refused versions ------------------------------------------------------------------------------

    def refused_since(self, key: object, ttl: float, now: float) -> float | None:
        since = self.bad.get(key)
        return since if since is not None and now - since < ttl else None

    def mark_refused(self, key: object, ttl: float, now: float) -> float:
        """Count a refused login and remember its version; return when that version was first refused
        (within ``ttl``)."""
        with self.lock:
            self._counts["auth_failures"] += 1
            since = self.refused_since(key, ttl, now)
            if since is None:
                since = self.bad[key] = now
                if len(self.bad) > 64:
                    self.bad = {k: t for k, t in self.bad.items() if now - t < ttl}
            return since

    # -- the parsed credentials ------------------------------------------------------------------------

    def credentials(
        self, params_of: Callable[[SecretValue], Any], value: SecretValue, stage: str, source: str
    ) -> Credentials:
        """``params_of(value)`` as :class:`Credentials`, parsed once per version (the hit path makes no
        new object). No local holds the parameters bare: a traceback's locals show only safe reprs."""
        memo = self.parsed.get(params_of)
        if memo is None or memo.value is not value:
            memo = Credentials(value, stage, source, params_of(value))
            if len(self.parsed) >= 16 and params_of not in self.parsed:
                self.parsed.clear()  # callers that make a params_of per connect: keep the memo bounded
            self.parsed[params_of] = memo
        if memo.stage == stage and memo.source == source:
            return memo
        return Credentials(value, stage, source, memo.params)


class _States:
    """The per-secret states of one cache (kept through ``cache.state_for(_States, _States)``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_secret: dict[str, SecretState] = {}

    def get(self, secret_id: str) -> SecretState:
        state = self.by_secret.get(secret_id)
        if state is None:
            with self.lock:
                state = self.by_secret.setdefault(secret_id, SecretState())
        return state

    def after_fork(self) -> None:
        self.lock = threading.Lock()
        for state in list(self.by_secret.values()):
            state.after_fork()


def state_of(cache: AnySecretCache, secret_id: str) -> SecretState:
    """The policy's state for ``secret_id`` in ``cache`` (either face over one core), made on first use."""
    return cache.state_for(_States, _States).get(secret_id)
