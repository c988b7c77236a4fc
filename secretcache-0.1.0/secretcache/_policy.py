"""The cache policy as pure functions: what to do with a read, when a value expires, how long to back off.

No clock, no random, no locks, no I/O: callers pass ``now`` and a random draw in, so the rules can be
read (and tested) on their own, and the faces inject their clock as cachetools' ``TTLCache(timer=)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from .config import CacheConfig
    from .errors import SecretCacheError
    from .model import SecretValue

__all__ = ["FETCH", "RAISE", "SERVE", "STALE", "Decision", "Entry", "Failure", "backoff_until", "decide",
           "fresh_until"]

NEVER: Final = float("inf")


class Entry:
    """A cached value, when it stops being fresh and when it was last read (LRU order).

    Slots: a few dozen bytes beside the value. (No fetch sequence is kept per entry: fetches of a key
    never overlap, so each one stored is newer than the entry it replaces.)
    """

    __slots__ = ("fresh_until", "last_read", "value")

    def __init__(self, value: SecretValue, fetched_at: float, fresh_until: float) -> None:
        self.value = value
        self.fresh_until = fresh_until
        self.last_read = fetched_at  # LRU order; starts at the fetch time

    def age(self, now: float, ttl: float) -> float | None:
        """Seconds since the fetch, give or take the ttl jitter (not stored: ~24 bytes per entry saved)."""
        return None if self.fresh_until == NEVER else max(0.0, now - (self.fresh_until - ttl))


class Failure:
    """The last failed fetch of a key: its error, when the next attempt may start, and how many in a row."""

    __slots__ = ("attempts", "error", "retry_at", "transient")

    def __init__(self, error: SecretCacheError, retry_at: float, attempts: int, transient: bool) -> None:
        self.error = error
        self.retry_at = retry_at
        self.attempts = attempts
        self.transient = transient


class Decision(NamedTuple):
    """What a read does (``action``) and whether it starts a refresh of the key (``refresh``)."""

    action: str
    refresh: bool


SERVE: Final = "serve"  # return the cached value as a hit
STALE: Final = "stale"  # return the cached value as stale: the backend has been failing
RAISE: Final = "raise"  # backing off with nothing to serve: raise the last error
FETCH: Final = "fetch"  # wait for a fetch (lead it or join the one in flight)

_HIT = Decision(SERVE, False)
_REVALIDATE = Decision(SERVE, True)
_STALE = Decision(STALE, False)
_STALE_RETRY = Decision(STALE, True)
_RAISE = Decision(RAISE, False)
_FETCH = Decision(FETCH, True)


def may_serve_stale(entry: Entry, now: float, config: CacheConfig) -> bool:
    """Whether ``entry`` is within ``stale_if_error`` past its ttl."""
    limit = config.stale_if_error
    return limit is None or now < entry.fresh_until + limit


def decide(entry: Entry | None, failure: Failure | None, now: float, config: CacheConfig) -> Decision:
    """The rule for one read of a key, given what the cache holds for it.

    Fresh: a hit. A permanent failure is never hidden behind a stale value: it raises while backing off,
    then fetches. After transient failures a cached value is served as stale (within stale_if_error)
    while one background retry runs each time the backoff allows. Past ttl but within
    stale_while_revalidate: served at once while one refresh runs. Otherwise: fetch and wait.
    """
    if entry is not None and now < entry.fresh_until:
        return _HIT
    backing_off = failure is not None and now < failure.retry_at
    if failure is not None and not failure.transient:
        return _RAISE if backing_off else _FETCH
    if entry is not None:
        if failure is not None and may_serve_stale(entry, now, config):
            return _STALE if backing_off else _STALE_RETRY
        if config.ttl > 0 and now < entry.fresh_until + config.stale_while_revalidate:
            return _HIT if backing_off else _REVALIDATE
    return _RAISE if backing_off else _FETCH


def fresh_until(now: float, config: CacheConfig, draw: float, *, by_version: bool) -> float:
    """When a value fetched at ``now`` expires: never for a VersionId (immutable), else ttl less jitter."""
    if by_version:
        return NEVER
    return now + config.ttl * (1.0 - draw * config.jitter)


def backoff_until(now: float, attempts: int, config: CacheConfig, draw: float) -> float:
    """When the next attempt may start after ``attempts`` failures in a row.

    Exponential with full jitter above ``backoff_base``: never sooner than the base (which bounds the
    backend calls per key), never later than ``backoff_max`` (which bounds the recovery lag).
    """
    base, cap = config.backoff_base, config.backoff_max
    ceiling = min(cap, base * 2.0 ** min(attempts - 1, 62))
    return now + base + (ceiling - base) * draw
