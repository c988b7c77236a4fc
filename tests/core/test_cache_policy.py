"""The cache policy: freshness, single-flight, stale-while-revalidate, stale-if-error, backoff,
permanent errors.

Time is a fake clock passed as ``timer=``; waiting is proven with gates and call counts, never timings.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from secretcache import (
    CacheEvent,
    SecretAccessDeniedError,
    SecretCache,
    SecretCacheError,
    SecretDecryptionError,
    SecretDeletedError,
    SecretFormatError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
)
from secretcache.config import CacheConfig
from secretcache.errors import error_for_code
from secretcache.model import SecretValue
from secretcache.testing import InMemoryBackend
from tests.fixtures.fakes import (
    FakeClock,
    PausingLock,
    run_threads,
    wait_until,
)
from tests.fixtures.fix_canary import CANARY, canary_value

pytestmark = pytest.mark.usefixtures("no_refresh_workers_left")


NAME = "app/db"
TTL, SWR, SIE, BASE, CAP = 60.0, 30.0, 600.0, 1.0, 8.0


def policy_config(**overrides: object) -> CacheConfig:
    fields: dict[str, object] = dict(
        ttl=TTL, jitter=0.0, stale_while_revalidate=SWR, stale_if_error=SIE,
        backoff_base=BASE, backoff_max=CAP,
    )
    fields.update(overrides)
    return CacheConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture
def old() -> str:
    return canary_value("old")


@pytest.fixture
def new() -> str:
    return canary_value("new")


@pytest.fixture
def backend(old: str) -> InMemoryBackend:
    return InMemoryBackend({NAME: old})


@pytest.fixture
def events() -> list[CacheEvent]:
    return []


@pytest.fixture
def cache(backend: InMemoryBackend, clock: FakeClock) -> Iterator[SecretCache]:
    with SecretCache(backend, config=policy_config(), timer=clock) as c:
        yield c


def make_cache(
    backend: InMemoryBackend, events: list[CacheEvent] | None = None, *, timer: FakeClock | None = None,
    random: Callable[[], float] | None = None, **overrides: object
) -> SecretCache:
    hook = events.append if events is not None else None
    return SecretCache(backend, config=policy_config(**overrides), on_event=hook, timer=timer, random=random)


# -- transient and permanent failures, as backends raise them -----------------------------------

def throttled(secret_id: str) -> SecretCacheError:
    return error_for_code("ThrottlingException", "Rate exceeded", secret_id=secret_id, http_status=400)


def server_error(secret_id: str) -> SecretCacheError:
    return error_for_code("InternalServiceError", "internal error", secret_id=secret_id, http_status=500)


def bad_gateway(secret_id: str) -> SecretCacheError:
    return error_for_code(None, "Bad Gateway", secret_id=secret_id, http_status=502)


def timed_out(secret_id: str) -> SecretCacheError:
    return SecretUnavailableError(f"read timeout on secret {secret_id!r}", secret_id=secret_id)


def connection_refused(secret_id: str) -> SecretCacheError:
    return SecretUnavailableError(f"could not connect reading secret {secret_id!r}", secret_id=secret_id)


def untyped_connection_reset(secret_id: str) -> Exception:
    return ConnectionResetError(104, "Connection reset by peer")  # a custom backend that raises raw errors


def untyped_timeout(secret_id: str) -> Exception:
    return TimeoutError("timed out")


TRANSIENT: list[Callable[[str], BaseException]] = [
    throttled, server_error, bad_gateway, timed_out, connection_refused,
    untyped_connection_reset, untyped_timeout,
]


def not_found(secret_id: str) -> SecretCacheError:
    return error_for_code("ResourceNotFoundException", "Secrets Manager can't find the specified secret.",
                          secret_id=secret_id)


def access_denied(secret_id: str) -> SecretCacheError:
    return error_for_code("AccessDeniedException", "not authorized to perform GetSecretValue",
                          secret_id=secret_id)


def decrypt_failed(secret_id: str) -> SecretCacheError:
    return error_for_code("DecryptionFailure", "can't decrypt the protected secret text", secret_id=secret_id)


def marked_for_deletion(secret_id: str) -> SecretCacheError:
    return error_for_code("InvalidRequestException", "You can't perform this operation on the secret because "
                          "it was marked for deletion.", secret_id=secret_id)


def moto_marked_deleted(secret_id: str) -> SecretCacheError:
    return error_for_code("InvalidRequestException", "An error occurred (InvalidRequestException): You tried "
                          "to perform the operation on a secret that's currently marked deleted.",
                          secret_id=secret_id)


PERMANENT = [
    (not_found, SecretNotFoundError),
    (access_denied, SecretAccessDeniedError),
    (decrypt_failed, SecretDecryptionError),
    (marked_for_deletion, SecretDeletedError),
    (moto_marked_deleted, SecretDeletedError),
]


def read_string(cache: SecretCache) -> str:
    return cache.get_secret_string(NAME)


def expire_fully(clock: FakeClock) -> None:
    """Past ttl + stale_while_revalidate: the next read must fetch (or serve stale on error)."""
    clock.advance(TTL + SWR + 1)


# -- freshness ------------------------------------------------------------------------------------

def test_reads_within_ttl_make_exactly_one_backend_call(cache: SecretCache, backend: InMemoryBackend,
                                                       clock: FakeClock, old: str) -> None:
    for _ in range(100):
        assert cache.get_secret_string(NAME) == old
        clock.advance(TTL / 200)
    assert backend.count(NAME) == 1
    assert cache.stats.hits == 99
    assert cache.stats.misses == 1


def test_read_past_ttl_and_swr_fetches_the_new_value_once(cache: SecretCache, backend: InMemoryBackend,
                                                         clock: FakeClock, old: str, new: str) -> None:
    assert cache.get_secret_string(NAME) == old
    backend.rotate(NAME, new)
    clock.advance(TTL - 1)
    assert cache.get_secret_string(NAME) == old  # still fresh: rotation is seen after ttl, not before
    expire_fully(clock)
    assert [cache.get_secret_string(NAME) for _ in range(10)] == [new] * 10
    assert backend.count(NAME) == 2


@pytest.mark.parametrize(("draw", "fresh_for"), [(0.0, 100.0), (1.0, 50.0), (0.5, 75.0)])
def test_jitter_shortens_each_entrys_ttl_by_at_most_the_configured_fraction(
    backend: InMemoryBackend, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, draw: float, fresh_for: float
) -> None:
    cache = make_cache(backend, ttl=100.0, jitter=0.5, stale_while_revalidate=0.0, timer=clock, random=lambda: draw)
    cache.get_secret_string(NAME)
    clock.advance(fresh_for - 0.01)
    cache.get_secret_string(NAME)
    assert backend.count(NAME) == 1
    clock.advance(0.02)
    cache.get_secret_string(NAME)
    assert backend.count(NAME) == 2


def test_ttl_zero_disables_caching_of_reads(backend: InMemoryBackend, clock: FakeClock, old: str) -> None:
    cache = make_cache(backend, ttl=0.0, timer=clock)
    assert [cache.get_secret_string(NAME) for _ in range(5)] == [old] * 5
    assert backend.count(NAME) == 5


# -- single-flight --------------------------------------------------------------------------------

def test_concurrent_misses_share_one_backend_call(
    cache: SecretCache, backend: InMemoryBackend, old: str
) -> None:
    gate = backend.hold()
    threads = 16
    results: list[object] = []

    def read(_: int) -> object:
        return cache.get_secret_value(NAME)

    runner = threading.Thread(target=lambda: results.extend(run_threads(threads, read)))
    runner.start()
    backend.wait_for_calls(1, active=True)
    wait_until(lambda: cache.stats.misses == threads, what="every reader to join the fetch")
    gate.set()
    runner.join(30)
    assert backend.count(NAME) == 1
    assert len(results) == threads
    assert all(r is results[0] for r in results)
    assert results[0].secret_string == old  # type: ignore[attr-defined]


def test_concurrent_reads_of_an_expired_value_share_one_refresh(
    cache: SecretCache, backend: InMemoryBackend, clock: FakeClock, new: str
) -> None:
    cache.get_secret_string(NAME)
    backend.rotate(NAME, new)
    expire_fully(clock)
    gate = backend.hold()
    box: list[object] = []
    runner = threading.Thread(target=lambda: box.extend(run_threads(16, lambda _: read_string(cache))))
    runner.start()
    wait_until(lambda: cache.stats.misses == 17, what="every reader to join the refresh")
    gate.set()
    runner.join(30)
    assert box == [new] * 16
    assert backend.count(NAME) == 2


def test_refresh_calls_made_while_a_fetch_runs_share_the_one_queued_behind_it(
    cache: SecretCache, backend: InMemoryBackend, new: str
) -> None:
    cache.get_secret_string(NAME)
    gate = backend.hold()
    first = threading.Thread(target=cache.refresh, args=(NAME,))
    first.start()
    wait_until(lambda: backend.active == 1, what="the first refresh's fetch to start")
    backend.rotate(NAME, new)  # after that fetch read: only a fetch started later sees it
    box: list[object] = []
    runner = threading.Thread(target=lambda: box.extend(run_threads(8, lambda _: cache.refresh(NAME))))
    runner.start()
    wait_until(lambda: cache.stats.misses == 10, what="every refresh to join a fetch")
    gate.set()
    runner.join(30)
    first.join(30)
    assert backend.count(NAME) == 3  # the first read, the running refresh, one fetch queued behind it
    assert all(v is box[0] for v in box)
    assert box[0].secret_string == new
    assert cache.get_secret_string(NAME) == new


def test_refresh_fetches_now_even_while_the_value_is_fresh(
    cache: SecretCache, backend: InMemoryBackend, new: str
) -> None:
    cache.get_secret_string(NAME)
    backend.rotate(NAME, new)
    assert cache.refresh(NAME).secret_string == new
    assert cache.get_secret_string(NAME) == new
    assert backend.count(NAME) == 2


def test_refresh_ignores_backoff_and_never_sleeps(
    cache: SecretCache, backend: InMemoryBackend, clock: FakeClock, old: str, new: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError("refresh slept")

    monkeypatch.setattr(time, "sleep", no_sleep)
    cache.get_secret_string(NAME)
    expire_fully(clock)
    backend.fail_always(throttled, secret_id=NAME)
    assert cache.get_secret_string(NAME) == old  # stale; the key now backs off
    assert backend.count(NAME) == 2
    started = clock.now
    with pytest.raises(SecretThrottledError):  # refresh asks the backend at once and reports its answer
        cache.refresh(NAME)
    assert backend.count(NAME) == 3
    backend.heal()
    backend.rotate(NAME, new)
    assert cache.refresh(NAME).secret_string == new
    assert backend.count(NAME) == 4
    assert clock.now == started  # no simulated time had to pass
    assert cache.get_secret_string(NAME) == new


def start_paused_reader(
    cache: SecretCache, read: Callable[[], object]
) -> tuple[PausingLock, threading.Thread, list[object]]:
    """A reader thread that will stop right before it takes the core's lock (after looking at the cache)."""
    box: list[object] = []

    def body() -> None:
        try:
            box.append(read())
        except BaseException as e:
            box.append(e)

    reader = threading.Thread(target=body, daemon=True)
    lock = PausingLock(cache._core._lock, reader)
    cache._core._lock = lock  # type: ignore[assignment]
    reader.start()
    assert lock.arrived.wait(10)
    return lock, reader, box


def test_a_reader_that_looked_before_a_fetch_finished_uses_its_value_instead_of_fetching_again(
    cache: SecretCache, backend: InMemoryBackend, old: str
) -> None:
    gate = backend.hold()
    leader = threading.Thread(target=lambda: cache.get_secret_string(NAME))
    leader.start()
    backend.wait_for_calls(1, active=True)
    lock, reader, box = start_paused_reader(cache, lambda: cache.get_secret_string(NAME))
    gate.set()
    leader.join(10)  # the fetch is stored and its flight gone; the paused reader saw neither
    lock.go.set()
    reader.join(10)
    assert box == [old]
    assert backend.count(NAME) == 1


def test_a_reader_that_looked_before_a_fetch_failed_honours_the_new_backoff(
    cache: SecretCache, backend: InMemoryBackend
) -> None:
    backend.fail_always(throttled, secret_id=NAME)
    gate = backend.hold()
    def lead() -> None:
        with pytest.raises(SecretThrottledError):
            cache.get_secret_string(NAME)

    leader = threading.Thread(target=lead)
    leader.start()
    backend.wait_for_calls(1, active=True)
    lock, reader, box = start_paused_reader(cache, lambda: cache.get_secret_string(NAME))
    gate.set()
    leader.join(10)
    lock.go.set()
    reader.join(10)
    assert len(box) == 1
    assert isinstance(box[0], SecretThrottledError)
    assert backend.count(NAME) == 1


def test_a_reader_that_saw_the_old_entry_does_not_start_a_second_background_refresh(
    cache: SecretCache, backend: InMemoryBackend, clock: FakeClock, new: str
) -> None:
    cache.get_secret_string(NAME)
    backend.rotate(NAME, new)
    clock.advance(TTL + 1)
    lock, reader, box = start_paused_reader(cache, lambda: cache.get_secret_string(NAME))
    cache.get_secret_string(NAME)  # this reader starts the background refresh
    wait_until(lambda: cache.get_secret_string(NAME) == new, what="the refreshed value")
    lock.go.set()
    reader.join(10)
    wait_until(lambda: backend.active == 0)
    assert box == [new]
    assert backend.count(NAME) == 2


class Abort(BaseException):
    """Stands for KeyboardInterrupt / SystemExit / a greenlet timeout raised inside a backend call."""


def test_a_base_exception_in_a_fetch_releases_the_waiters_and_the_key(
    cache: SecretCache, backend: InMemoryBackend, clock: FakeClock, old: str
) -> None:
    backend.script(NAME, Abort())
    gate = backend.hold()
    box: list[object] = []
    runner = threading.Thread(target=lambda: box.extend(run_threads(4, lambda _: read_string(cache))))
    runner.start()
    wait_until(lambda: cache.stats.misses == 4, what="every reader to join the fetch")
    gate.set()
    runner.join(30)
    assert not runner.is_alive()
    # the fetch ran on the cache's worker: it logs the interruption there, and every reader gets a typed error
    assert len(box) == 4
    assert all(isinstance(r, SecretUnavailableError) and isinstance(r.__cause__, SecretUnavailableError)
               for r in box)
    clock.advance(CAP)
    assert cache.get_secret_string(NAME) == old  # the key is not stuck behind a dead fetch
    assert backend.count(NAME) == 2


# -- stale-while-revalidate -----------------------------------------------------------------------

def test_readers_within_swr_get_the_cached_value_while_one_background_refresh_is_held(
    cache: SecretCache, backend: InMemoryBackend, clock: FakeClock, old: str, new: str
) -> None:
    cache.get_secret_string(NAME)
    backend.rotate(NAME, new)
    clock.advance(TTL + 1)
    gate = backend.hold()
    # Every read returns at once while the refresh is held: had any waited, this thread would block.
    assert [cache.get_secret_string(NAME) for _ in range(50)] == [old] * 50
    backend.wait_for_calls(1, active=True)
    assert backend.count(NAME) == 2  # one background refresh, however many readers
    clock.advance(SWR - 2)  # still inside the window
    assert cache.get_secret_string(NAME) == old
    gate.set()
    wait_until(lambda: cache.get_secret_string(NAME) == new, what="the refreshed value")
    assert backend.count(NAME) == 2
    assert cache.stats.refreshes == 1


def test_swr_background_refresh_runs_on_a_worker_thread(
    cache: SecretCache, backend: InMemoryBackend, clock: FakeClock
) -> None:
    cache.get_secret_string(NAME)
    clock.advance(TTL + 1)
    seen: list[str] = []
    backend.script(NAME, lambda sid: seen.append(threading.current_thread().name))  # then the store answers
    cache.get_secret_string(NAME)
    backend.wait_for_calls(2)
    wait_until(lambda: bool(seen))
    assert seen[0].startswith("secretcache-refresh")


def test_inline_swr_makes_the_triggering_reader_wait_for_the_refresh_while_others_get_the_stale_value(
    backend: InMemoryBackend, clock: FakeClock, old: str, new: str
) -> None:
    cache = make_cache(backend, background_refresh=False, timer=clock)
    cache.get_secret_string(NAME)
    backend.rotate(NAME, new)
    clock.advance(TTL + 1)
    gate = backend.hold()
    box: list[object] = []
    trigger = threading.Thread(target=lambda: box.append(cache.get_secret_string(NAME)))
    trigger.start()
    backend.wait_for_calls(1, active=True)
    assert [cache.get_secret_string(NAME) for _ in range(20)] == [old] * 20
    assert backend.count(NAME) == 2
    gate.set()
    trigger.join(30)
    assert box == [new]  # the triggering reader waited for the refresh and got its result
    assert cache.get_secret_string(NAME) == new
    assert backend.count(NAME) == 2


def test_a_fresh_refresh_result_is_not_refetched_by_readers_that_saw_the_old_entry(
    cache: SecretCache, backend: InMemoryBackend, clock: FakeClock, new: str
) -> None:
    cache.get_secret_string(NAME)
    backend.rotate(NAME, new)
    clock.advance(TTL + 1)
    cache.get_secret_string(NAME)  # starts the background refresh
    wait_until(lambda: cache.get_secret_string(NAME) == new)
    for _ in range(20):
        cache.get_secret_string(NAME)
    assert backend.count(NAME) == 2


# -- transient failures: stale-if-error, backoff, recovery --------------------------------------

@pytest.mark.parametrize("failure", TRANSIENT, ids=lambda f: f.__name__)
def test_transient_failure_serves_the_cached_value_counts_and_announces_it(
    backend: InMemoryBackend, clock: FakeClock, events: list[CacheEvent], old: str,
    failure: Callable[[str], BaseException],
) -> None:
    cache = make_cache(backend, events, timer=clock)
    cache.get_secret_string(NAME)
    expire_fully(clock)
    backend.fail_always(failure, secret_id=NAME)
    assert cache.get_secret_string(NAME) == old
    assert cache.stats.stale_served == 1
    assert cache.stats.errors == 1
    stale = [e for e in events if e.kind == "stale"]
    assert len(stale) == 1
    assert isinstance(stale[0].error, SecretUnavailableError)
    assert stale[0].secret_id == NAME
    assert stale[0].age == pytest.approx(TTL + SWR + 1)
    errors = [e for e in events if e.kind == "error"]
    assert len(errors) == 1
    assert isinstance(errors[0].error, SecretUnavailableError)
    for _ in range(10):  # backing off: served from the cache without asking the backend
        assert cache.get_secret_string(NAME) == old
    assert backend.count(NAME) == 2
    assert cache.stats.stale_served == 11


@pytest.mark.parametrize("failure", TRANSIENT, ids=lambda f: f.__name__)
def test_transient_failure_with_nothing_cached_raises_unavailable_chained_to_the_backend_error(
    cache: SecretCache, backend: InMemoryBackend, failure: Callable[[str], BaseException]
) -> None:
    backend.fail_always(failure, secret_id=NAME)
    with pytest.raises(SecretUnavailableError) as info:
        cache.get_secret_string(NAME)
    chain = []
    cause = info.value.__cause__
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__
    # A typed backend error is the direct cause; an untyped one is wrapped once (naming only its type).
    assert type(chain[-1]) is type(failure(NAME))
    assert len(chain) <= 2
    assert info.value.secret_id == NAME
    assert NAME in str(info.value)


def test_throttling_keeps_its_type(cache: SecretCache, backend: InMemoryBackend) -> None:
    backend.fail_always(throttled, secret_id=NAME)
    with pytest.raises(SecretThrottledError) as info:
        cache.get_secret_string(NAME)
    assert info.value.code == "ThrottlingException"


def test_beyond_stale_if_error_a_transient_failure_raises_unavailable(
    cache: SecretCache, backend: InMemoryBackend, clock: FakeClock, old: str
) -> None:
    cache.get_secret_string(NAME)
    backend.fail_always(server_error, secret_id=NAME)
    clock.advance(TTL + SIE - 1)
    assert cache.get_secret_string(NAME) == old  # inside stale_if_error
    clock.advance(2 + CAP)  # past ttl + stale_if_error, and past the backoff
    with pytest.raises(SecretUnavailableError) as info:
        cache.get_secret_string(NAME)
    assert isinstance(info.value.__cause__, SecretUnavailableError)
    clock.advance(0.1)  # still backing off: the stored failure is raised again, fresh, without a call
    calls = backend.count(NAME)
    with pytest.raises(SecretUnavailableError):
        cache.get_secret_string(NAME)
    assert backend.count(NAME) == calls


def test_stale_if_error_none_serves_the_cached_value_for_any_outage(
    backend: InMemoryBackend, clock: FakeClock, old: str
) -> None:
    cache = make_cache(backend, stale_if_error=None, timer=clock)
    cache.get_secret_string(NAME)
    backend.fail_always(throttled, secret_id=NAME)
    clock.advance(10 * 365 * 86400.0)
    assert cache.get_secret_string(NAME) == old


def test_stale_if_error_zero_never_serves_a_value_past_its_swr_window(
    backend: InMemoryBackend, clock: FakeClock
) -> None:
    cache = make_cache(backend, stale_if_error=0.0, timer=clock)
    cache.get_secret_string(NAME)
    backend.fail_always(throttled, secret_id=NAME)
    expire_fully(clock)
    with pytest.raises(SecretThrottledError):
        cache.get_secret_string(NAME)


def test_failed_background_refresh_keeps_serving_the_cached_value_counted_as_stale(
    backend: InMemoryBackend, clock: FakeClock, events: list[CacheEvent], old: str
) -> None:
    cache = make_cache(backend, events, timer=clock)
    cache.get_secret_string(NAME)
    backend.fail_always(throttled, secret_id=NAME)
    clock.advance(TTL + 1)
    assert cache.get_secret_string(NAME) == old  # starts the background refresh, which fails
    wait_until(lambda: any(e.kind == "error" for e in events), what="the failed background refresh")
    for _ in range(5):
        assert cache.get_secret_string(NAME) == old
    assert backend.count(NAME) == 2  # backing off: no new calls
    assert cache.stats.stale_served == 5
    assert sum(e.kind == "stale" for e in events) == 5


def test_failed_inline_swr_refresh_serves_the_cached_value_counted_as_stale(
    backend: InMemoryBackend, clock: FakeClock, events: list[CacheEvent], old: str
) -> None:
    cache = make_cache(backend, events, background_refresh=False, timer=clock)
    cache.get_secret_string(NAME)
    backend.fail_always(throttled, secret_id=NAME)
    clock.advance(TTL + 1)
    assert cache.get_secret_string(NAME) == old
    assert cache.stats.stale_served == 1
    assert cache.stats.errors == 1
    assert [e.kind for e in events if e.kind in ("stale", "error")] == ["error", "stale"]


def allowed_calls(window: float, base: float = BASE, cap: float = CAP) -> int:
    """Most attempts the documented schedule allows in ``window`` seconds of hammering.

    After the n-th consecutive failure the next attempt waits at least ``base`` (jitter draws
    within [base, min(cap, base * 2**(n-1))]); the shortest waits give the most attempts.
    """
    return 1 + int(window // base)


def expected_calls_at_longest_delays(window: float, base: float = BASE, cap: float = CAP) -> int:
    """Attempts in ``window`` when every jitter draw gives the longest delay: base, 2 base, ... cap."""
    calls, t, n = 1, 0.0, 1
    while True:
        t += min(cap, base * 2 ** (n - 1))
        if t > window:
            return calls
        calls, n = calls + 1, n + 1


@pytest.mark.parametrize("cached", [True, False], ids=["stale-value", "nothing-cached"])
def test_backoff_bounds_backend_calls_however_many_threads_hammer(
    backend: InMemoryBackend, clock: FakeClock, cached: bool, old: str
) -> None:
    cache = make_cache(backend, timer=clock)
    if cached:
        cache.get_secret_string(NAME)
        expire_fully(clock)
    backend.fail_always(throttled, secret_id=NAME)
    calls_before = backend.count(NAME)
    start = clock.now
    step = 0.001
    outcomes: list[str] = []

    def hammer(_: int) -> None:
        for _ in range(400):
            clock.advance(step)
            try:
                assert cache.get_secret_string(NAME) == old
                outcomes.append("stale")
            except SecretThrottledError:
                outcomes.append("raised")

    run_threads(16, hammer)
    window = clock.now - start
    # With a cached value every retry runs on the worker: the readers may finish before it calls.
    wait_until(lambda: backend.count(NAME) - calls_before >= 2, what="two backend calls")
    calls = backend.count(NAME) - calls_before
    assert len(outcomes) == 16 * 400
    assert set(outcomes) == ({"stale"} if cached else {"raised"})
    assert 2 <= calls <= allowed_calls(window), (calls, window)


def test_backoff_grows_exponentially_to_backoff_max(
    backend: InMemoryBackend, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = make_cache(backend, timer=clock, random=lambda: 0.999999)  # the longest delay each time
    backend.fail_always(server_error, secret_id=NAME)
    start = clock.now
    for _ in range(60_000):  # 60 s of reads, one per millisecond
        with pytest.raises(SecretUnavailableError):
            cache.get_secret_string(NAME)
        clock.advance(0.001)
    # Attempts at 0, 1, 3, 7, 15, 23, 31, 39, 47, 55 s: the doubling stops at backoff_max.
    assert backend.count(NAME) == expected_calls_at_longest_delays(clock.now - start) == 10


@pytest.mark.parametrize("mode", ["stale-value-background", "stale-value-inline", "nothing-cached"])
def test_recovery_within_backoff_max_once_the_backend_is_back(
    backend: InMemoryBackend, clock: FakeClock, old: str, new: str, mode: str
) -> None:
    cache = make_cache(backend, background_refresh=mode == "stale-value-background", stale_if_error=None, timer=clock)
    cached = mode != "nothing-cached"
    if cached:
        cache.get_secret_string(NAME)
        expire_fully(clock)
    backend.fail_always(throttled, secret_id=NAME)
    for _ in range(3600):  # an hour-long outage, one read a second: the delay has long reached its cap
        try:
            assert cache.get_secret_string(NAME) == old
        except SecretThrottledError:
            assert not cached
        clock.advance(1.0)
    wait_until(lambda: backend.active == 0)
    backend.heal()
    backend.rotate(NAME, new) if cached else backend.put_secret(NAME, new)
    clock.advance(CAP)
    if mode == "stale-value-background":  # the retry runs in the background; nobody waits for it
        assert cache.get_secret_string(NAME) in (old, new)
        wait_until(lambda: cache.get_secret_string(NAME) == new, what="the recovered value")
    else:
        assert cache.get_secret_string(NAME) == new


def test_during_an_outage_retries_run_in_the_background_and_nobody_waits(
    backend: InMemoryBackend, clock: FakeClock, old: str
) -> None:
    cache = make_cache(backend, timer=clock)
    cache.get_secret_string(NAME)
    expire_fully(clock)
    backend.fail_always(throttled, secret_id=NAME)
    assert cache.get_secret_string(NAME) == old  # this first failed fetch was a miss: its reader waited
    clock.advance(CAP)
    gate = backend.hold()
    # The retry is held at the gate; the reads are not.
    assert [cache.get_secret_string(NAME) for _ in range(20)] == [old] * 20
    backend.wait_for_calls(3)
    assert backend.count(NAME) == 3
    gate.set()


# -- permanent failures ---------------------------------------------------------------------------

@pytest.mark.parametrize(("failure", "error_type"), PERMANENT, ids=lambda p: getattr(p, "__name__", ""))
def test_permanent_failure_raises_at_once_and_is_never_hidden_behind_a_stale_value(
    backend: InMemoryBackend, clock: FakeClock, events: list[CacheEvent], old: str,
    failure: Callable[[str], SecretCacheError], error_type: type[SecretCacheError],
) -> None:
    cache = make_cache(backend, events, timer=clock)
    cache.get_secret_string(NAME)
    expire_fully(clock)
    backend.fail_always(failure, secret_id=NAME)
    with pytest.raises(error_type) as info:
        cache.get_secret_string(NAME)
    assert info.value.secret_id == NAME
    assert isinstance(info.value.__cause__, error_type)
    with pytest.raises(error_type):  # backing off: raised again without a call
        cache.get_secret_string(NAME)
    assert backend.count(NAME) == 2
    assert cache.stats.stale_served == 0
    assert not any(e.kind == "stale" for e in events)
    # The cached value was kept: once the failure turns transient it is served again.
    backend.fail_always(throttled, secret_id=NAME)
    clock.advance(CAP)
    assert cache.get_secret_string(NAME) == old
    assert cache.stats.stale_served == 1


@pytest.mark.parametrize(("failure", "error_type"), PERMANENT[:2], ids=["not_found", "access_denied"])
def test_permanent_failure_then_recovery_fetches_again(
    cache: SecretCache, backend: InMemoryBackend, clock: FakeClock, old: str,
    failure: Callable[[str], SecretCacheError], error_type: type[SecretCacheError],
) -> None:
    backend.script(NAME, failure)
    with pytest.raises(error_type):
        cache.get_secret_string(NAME)
    clock.advance(CAP)
    assert cache.get_secret_string(NAME) == old


def test_permanent_failure_of_a_background_refresh_is_raised_to_the_next_reader(
    backend: InMemoryBackend, clock: FakeClock, old: str, events: list[CacheEvent]
) -> None:
    cache = make_cache(backend, events, timer=clock)
    cache.get_secret_string(NAME)
    clock.advance(TTL + 1)
    backend.fail_always(access_denied, secret_id=NAME)
    assert cache.get_secret_string(NAME) == old  # nothing known yet: SWR serves, one refresh starts
    wait_until(lambda: any(e.kind == "error" for e in events))
    with pytest.raises(SecretAccessDeniedError):
        cache.get_secret_string(NAME)


def test_permanent_failure_of_an_inline_swr_refresh_is_raised_to_its_reader(
    backend: InMemoryBackend, clock: FakeClock
) -> None:
    cache = make_cache(backend, background_refresh=False, timer=clock)
    cache.get_secret_string(NAME)
    clock.advance(TTL + 1)
    backend.fail_always(marked_for_deletion, secret_id=NAME)
    with pytest.raises(SecretDeletedError):
        cache.get_secret_string(NAME)


def test_a_value_too_large_is_a_format_error_naming_the_secret(
    cache: SecretCache, backend: InMemoryBackend
) -> None:
    huge = CANARY + "x" * 70_000
    backend.script(NAME, lambda sid: SecretValue(sid, secret_string=huge))
    with pytest.raises(SecretFormatError) as info:
        cache.get_secret_string(NAME)
    assert NAME in str(info.value)
    assert CANARY not in str(info.value)
    assert CANARY not in repr(info.value)


# -- fresh exceptions and flat memory -------------------------------------------------------------

def test_every_caller_gets_a_fresh_exception_chained_to_the_one_backend_error(
    cache: SecretCache, backend: InMemoryBackend
) -> None:
    the_error = SecretAccessDeniedError("denied (secret 'app/db')", secret_id=NAME,
                                        code="AccessDeniedException")
    backend.script(NAME, the_error)
    gate = backend.hold()
    box: list[object] = []
    runner = threading.Thread(target=lambda: box.extend(run_threads(8, lambda _: read_string(cache))))
    runner.start()
    wait_until(lambda: cache.stats.misses == 8)
    gate.set()
    runner.join(30)
    later = []
    for _ in range(3):  # while backing off
        with pytest.raises(SecretAccessDeniedError) as info:
            cache.get_secret_string(NAME)
        later.append(info.value)
    raised = [*box, *later]
    assert all(isinstance(e, SecretAccessDeniedError) for e in raised)
    assert len({id(e) for e in raised}) == len(raised) == 11
    assert all(e is not the_error and e.__cause__ is the_error for e in raised)  # type: ignore[union-attr]
    assert backend.count(NAME) == 1


def traceback_depth(error: BaseException) -> int:
    depth, tb = 0, error.__traceback__
    while tb is not None:
        depth, tb = depth + 1, tb.tb_next
    return depth


def test_the_stored_cause_traceback_does_not_grow_while_callers_hit_the_failure(
    cache: SecretCache, backend: InMemoryBackend
) -> None:
    backend.fail_always(throttled, secret_id=NAME)
    with pytest.raises(SecretThrottledError) as info:
        cache.get_secret_string(NAME)
    cause = info.value.__cause__
    assert cause is not None
    depth = traceback_depth(cause)
    for _ in range(1000):
        with pytest.raises(SecretThrottledError) as again:
            cache.get_secret_string(NAME)
        assert again.value.__cause__ is cause
    assert traceback_depth(cause) == depth


@pytest.fixture
def quiet_secretcache_logger() -> Iterator[None]:
    """Stale reads log at DEBUG; pytest keeps every record of a test, which would be the growth measured."""
    logger = logging.getLogger("secretcache")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.mark.usefixtures("quiet_secretcache_logger")
@pytest.mark.parametrize("cached", [True, False], ids=["stale-value", "nothing-cached"])
def test_memory_stays_flat_during_a_long_outage(
    backend: InMemoryBackend, clock: FakeClock, cached: bool
) -> None:
    cache = make_cache(backend, timer=clock)
    if cached:
        cache.get_secret_string(NAME)
        expire_fully(clock)
    backend.fail_always(throttled, secret_id=NAME)
    reads, step = 50_000, 0.001

    def read(n: int) -> None:
        for _ in range(n):
            clock.advance(step)
            with contextlib.suppress(SecretThrottledError):
                cache.get_secret_string(NAME)

    read(20_000)  # warm up: failures recorded, background retries started, code paths exercised
    wait_until(lambda: backend.active == 0)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        read(reads)
        wait_until(lambda: backend.active == 0)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # The official library retains ~0.55 KiB per failed read (~27 MiB here); we allow a fixed 64 KiB.
    assert growth < 64 * 1024, f"grew {growth} bytes over {reads} failing reads"
    assert backend.count(NAME) <= allowed_calls((reads + 20_000) * step + 100)


# -- no value in logs, events or errors across the scenarios ---------------------------------------

def test_no_secret_value_reaches_logs_events_or_errors_across_policy_scenarios(
    backend: InMemoryBackend, clock: FakeClock, caplog: pytest.LogCaptureFixture, old: str, new: str,
) -> None:
    caplog.set_level(logging.DEBUG, logger="secretcache")
    events: list[CacheEvent] = []
    raised: list[BaseException] = []

    def hook(event: CacheEvent) -> None:
        events.append(event)
        if event.kind == "refresh":
            raise RuntimeError("a broken hook")  # its warning is logged; the read must still work

    json_name = "app/json"
    backend.put_secret(json_name, f'{{"password": "{old}", "nested": {{"k": "{old}"}}}}')
    backend.put_secret("app/bin", old.encode())
    cache = SecretCache(backend, config=policy_config(), on_event=hook, timer=clock)
    for _ in range(3):
        cache.get_secret_string(NAME)  # miss, hits
    cache.get_secret_json(json_name)
    cache.get(f"{json_name}#password")
    backend.rotate(NAME, new)
    cache.refresh(NAME)  # refresh event, raising hook
    clock.advance(TTL + 1)
    cache.get_secret_string(NAME)  # SWR background refresh
    wait_until(lambda: backend.active == 0)
    expire_fully(clock)
    backend.fail_always(throttled, secret_id=NAME)
    cache.get_secret_string(NAME)  # stale
    backend.fail_always(untyped_connection_reset, secret_id=NAME)
    clock.advance(CAP)
    cache.get_secret_string(NAME)  # stale again
    for attempt in (
        lambda: cache.get_secret_string("app/bin"),
        lambda: cache.get_secret_binary(NAME),
        lambda: cache.get(f"{json_name}#missing"),
        lambda: cache.get(f"{NAME}#password"),
        lambda: cache.get_secret_json("app/bin"),
        lambda: cache.refresh(NAME),
        lambda: cache.get_secret_string("app/none"),
    ):
        try:
            attempt()
        except SecretCacheError as e:
            raised.append(e)
    assert len(raised) == 7
    backend.fail_always(access_denied, secret_id=NAME)
    clock.advance(CAP)
    cache.get_secret_string(NAME)  # stale; the background retry meets the permanent error
    wait_until(lambda: any(isinstance(e.error, SecretAccessDeniedError) for e in events))
    with pytest.raises(SecretAccessDeniedError) as info:
        cache.get_secret_string(NAME)
    raised.append(info.value)
    kinds = {e.kind for e in events}
    assert kinds == {"hit", "miss", "refresh", "stale", "error"}
    assert "event hook raised" in caplog.text
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    assert CANARY not in caplog.text
    for error in raised:
        assert CANARY not in str(error)
        assert CANARY not in repr(error)
    for event in events:
        assert CANARY not in repr(event)
        assert CANARY not in str(event)
    assert CANARY not in repr(cache)
    assert CANARY not in repr(cache.get_secret_value(json_name))
