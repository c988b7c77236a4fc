"""What a cache reports about itself: counters (:class:`CacheStats`) and events (:class:`CacheEvent`).

Both carry ids, counts and errors, never a value. Loaded with ``import secretcache``: no heavy imports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from .errors import SecretCacheError

__all__ = ["CacheEvent", "CacheStats", "EventHook", "EventKind"]

EventKind = Literal["hit", "miss", "refresh", "stale", "error"]


class CacheStats(NamedTuple):
    """A snapshot of a cache's counters since it was created."""

    hits: int = 0
    misses: int = 0
    refreshes: int = 0
    backend_calls: int = 0
    errors: int = 0
    stale_served: int = 0


class CacheEvent(NamedTuple):
    """What the event hook receives. Carries ids and errors, never a value.

    ``kind``: ``hit`` (served from cache), ``miss`` (the caller waited for a fetch), ``refresh``
    (a fetch replaced a cached value), ``stale`` (a cached value served because the backend failed),
    ``error`` (a backend call failed). ``age`` is seconds since the served value was fetched.
    """

    kind: EventKind
    secret_id: str
    version_stage: str | None = None
    version_id: str | None = None
    error: SecretCacheError | None = None
    age: float | None = None


EventHook = Callable[[CacheEvent], None]
"""Called synchronously on the reading (or refreshing) thread; exceptions it raises are logged, not raised."""
