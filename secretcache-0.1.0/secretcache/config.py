"""CacheConfig: the knobs of the cache policy, validated once at construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CacheConfig"]


def _non_negative(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"CacheConfig.{name} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int past float range: math.isnan() would raise, and so would the clock math
        raise ValueError(f"CacheConfig.{name} is too large (beyond the float range)") from None
    if math.isnan(number) or number < 0:
        raise ValueError(f"CacheConfig.{name} must be >= 0, got {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class CacheConfig:
    """How long values stay fresh, how stale they may be served, and how failures back off.

    Times are seconds (floats welcome). Invalid values raise ``ValueError`` here, not at first use.
    """

    ttl: float = 300.0
    """Seconds a stage-addressed value is fresh; ``0`` disables caching of reads."""
    jitter: float = 0.1
    """Each entry's ttl is shortened by a random fraction up to this, so fleets do not refresh in step."""
    stale_while_revalidate: float = 60.0
    """Seconds past ttl during which a read returns the cached value at once while one refresh runs."""
    stale_if_error: float | None = 86400.0
    """Seconds past ttl during which a cached value is served when refreshing fails transiently."""
    max_size: int = 1024
    """Entries kept; the least recently used is evicted."""
    version_stage: str = "AWSCURRENT"
    """Stage read when none is given."""
    backoff_base: float = 1.0
    """First delay after a failed fetch for a key."""
    backoff_max: float = 30.0
    """Cap on the delay between attempts for a failing key; bounds recovery lag after an outage."""
    background_refresh: bool = True
    """False makes the reader that finds a value past ttl wait for its refresh (Lambda, where threads
    freeze between invocations), instead of refreshing in the background."""
    fetch_timeout: float = 10.0
    """Seconds a reader waits for a whole fetch (not one socket read); then it gets the stale value where
    ``stale_if_error`` allows, else :class:`~secretcache.errors.SecretUnavailableError`. The fetch goes on."""

    def __post_init__(self) -> None:
        _non_negative("ttl", self.ttl)
        _non_negative("jitter", self.jitter)
        if self.jitter >= 1:
            raise ValueError(f"CacheConfig.jitter must be < 1 (a fraction of ttl), got {self.jitter!r}")
        _non_negative("stale_while_revalidate", self.stale_while_revalidate)
        _non_negative("stale_if_error", self.stale_if_error, allow_none=True)
        if isinstance(self.max_size, bool) or not isinstance(self.max_size, int) or self.max_size < 1:
            raise ValueError(f"CacheConfig.max_size must be an int >= 1, got {self.max_size!r}")
        if not isinstance(self.version_stage, str) or not self.version_stage:
            raise ValueError("CacheConfig.version_stage must be a non-empty string")
        _non_negative("backoff_base", self.backoff_base)
        _non_negative("backoff_max", self.backoff_max)
        if self.backoff_base > self.backoff_max:
            raise ValueError(
                f"CacheConfig.backoff_base ({self.backoff_base!r}) must not exceed backoff_max ({self.backoff_max!r})"
            )
        if not isinstance(self.background_refresh, bool):
            raise ValueError("CacheConfig.background_refresh must be a bool")
        _non_negative("fetch_timeout", self.fetch_timeout)
        if self.fetch_timeout == 0:
            raise ValueError("CacheConfig.fetch_timeout must be > 0")
        for name in ("ttl", "backoff_base", "backoff_max", "stale_while_revalidate", "fetch_timeout"):
            if math.isinf(getattr(self, name)) and name != "ttl":
                raise ValueError(f"CacheConfig.{name} must be finite")
