"""The pure policy (secretcache/_policy.py): each rule read on its own, with ``now`` and draws passed in.

No cache, no clock, no thread: the decisions are functions of what the cache holds for a key.
"""

from __future__ import annotations

import pytest

from secretcache._policy import FETCH, RAISE, SERVE, STALE, Entry, Failure, backoff_until, decide, fresh_until
from secretcache.config import CacheConfig
from secretcache.errors import SecretNotFoundError, SecretUnavailableError
from secretcache.model import SecretValue

CONFIG = CacheConfig(ttl=100.0, jitter=0.5, stale_while_revalidate=10.0, stale_if_error=50.0,
                     backoff_base=1.0, backoff_max=8.0)
VALUE = SecretValue("app/x", secret_string="v")


def entry(fresh_until: float) -> Entry:
    return Entry(VALUE, 0.0, fresh_until)


def transient(retry_at: float) -> Failure:
    return Failure(SecretUnavailableError("down", secret_id="app/x"), retry_at, 1, True)


def permanent(retry_at: float) -> Failure:
    return Failure(SecretNotFoundError("gone", secret_id="app/x"), retry_at, 1, False)


@pytest.mark.parametrize(
    ("cached", "failed", "now", "expected"),
    [
        (None, None, 0.0, (FETCH, True)),  # cold
        (entry(100.0), None, 99.9, (SERVE, False)),  # fresh: a hit
        (entry(100.0), None, 105.0, (SERVE, True)),  # within stale-while-revalidate: serve, refresh once
        (entry(100.0), None, 110.0, (FETCH, True)),  # past ttl + swr: wait for a fetch
        (entry(100.0), transient(120.0), 115.0, (STALE, False)),  # failing, backing off: stale, no call
        (entry(100.0), transient(120.0), 121.0, (STALE, True)),  # failing, backoff over: stale + one retry
        (entry(100.0), transient(200.0), 151.0, (RAISE, False)),  # past stale_if_error while backing off
        (None, transient(10.0), 5.0, (RAISE, False)),  # nothing to serve while backing off
        (None, transient(10.0), 11.0, (FETCH, True)),
        (entry(100.0), permanent(120.0), 115.0, (RAISE, False)),  # permanent: never hidden behind stale
        (entry(100.0), permanent(120.0), 121.0, (FETCH, True)),
        (entry(100.0), permanent(120.0), 50.0, (SERVE, False)),  # ...but a fresh value is still a hit
        (entry(100.0), transient(104.0), 103.0, (STALE, False)),  # a failure inside swr is served as stale
    ],
)
def test_decide(cached: Entry | None, failed: Failure | None, now: float, expected: tuple[str, bool]) -> None:
    assert tuple(decide(cached, failed, now, CONFIG)) == expected


def test_ttl_zero_serves_nothing_past_the_fetch() -> None:
    config = CacheConfig(ttl=0.0, stale_while_revalidate=10.0)
    assert decide(entry(5.0), None, 5.0, config).action is FETCH


def test_stale_if_error_none_serves_stale_for_ever() -> None:
    config = CacheConfig(ttl=1.0, stale_if_error=None)
    assert decide(entry(1.0), transient(1e12), 1e9, config).action is STALE


@pytest.mark.parametrize(("draw", "until"), [(0.0, 110.0), (0.5, 85.0), (0.999, 60.05)])
def test_jitter_shortens_the_ttl_by_at_most_its_fraction(draw: float, until: float) -> None:
    assert fresh_until(10.0, CONFIG, draw, by_version=False) == pytest.approx(until)


def test_a_version_read_never_expires() -> None:
    assert fresh_until(10.0, CONFIG, 0.3, by_version=True) == float("inf")


@pytest.mark.parametrize(("attempts", "draw", "delay"),
                         [(1, 0.0, 1.0), (1, 1.0, 1.0), (2, 1.0, 2.0), (3, 0.5, 2.5), (4, 1.0, 8.0), (60, 1.0, 8.0)])
def test_backoff_is_exponential_jittered_never_below_base_nor_above_max(attempts: int, draw: float,
                                                                        delay: float) -> None:
    assert backoff_until(100.0, attempts, CONFIG, draw) == pytest.approx(100.0 + delay)
