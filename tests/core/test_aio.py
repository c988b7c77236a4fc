"""AsyncSecretCache: the same API as coroutines, the same policy object, never blocking the event loop.

The behaviour it shares with SecretCache runs on both faces in test_faces.py; here is what is async's own."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import secretcache._core
from secretcache import (
    AsyncSecretCache,
    CacheEvent,
    SecretCache,
    SecretThrottledError,
    SecretUnavailableError,
)
from secretcache.config import CacheConfig
from secretcache.testing import InMemoryBackend
from tests.fixtures.fakes import FakeClock
from tests.fixtures.fix_cache import SWR, TTL, config
from tests.fixtures.fix_canary import CANARY, canary_value

pytestmark = pytest.mark.usefixtures("no_refresh_workers_left")


async def wait_for(predicate: Any, what: str = "condition") -> None:
    """Yield to the loop until ``predicate()`` holds (bounded: a broken test fails, never hangs)."""
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


# -- the API --------------------------------------------------------------------------------------

async def test_stats_and_events(clock: FakeClock) -> None:
    backend = InMemoryBackend({"a": canary_value("ev")})
    events: list[CacheEvent] = []
    cache = AsyncSecretCache(backend, config=config(), on_event=events.append, timer=clock)
    await cache.get_secret_string("a")
    await cache.get_secret_string("a")
    await cache.refresh("a")
    clock.advance(TTL + SWR + 1)
    backend.fail_always(lambda sid: SecretThrottledError("slow down (secret 'a')", secret_id=sid), secret_id="a")
    assert (await cache.get_secret_string("a")).startswith(CANARY)  # stale
    assert [e.kind for e in events] == ["miss", "hit", "miss", "refresh", "miss", "error", "stale"]
    assert cache.stats._asdict() == {"hits": 1, "misses": 3, "refreshes": 1, "backend_calls": 3, "errors": 1,
                                     "stale_served": 1}
    assert CANARY not in repr(cache)
    assert all(CANARY not in repr(e) for e in events)


async def test_async_and_thread_faces_share_one_policy_implementation(store: InMemoryBackend) -> None:
    async_cache = AsyncSecretCache(store)
    thread_cache = SecretCache(store)
    assert type(async_cache._core) is type(thread_cache._core) is secretcache._core.Core
    assert async_cache.config == thread_cache.config == CacheConfig()


# -- policy through the async face ------------------------------------------------------------------

async def test_transient_failure_serves_stale_then_backs_off_without_calls(clock: FakeClock) -> None:
    backend = InMemoryBackend({"a": "cached"})
    cache = AsyncSecretCache(backend, config=config(), timer=clock)
    await cache.get_secret_string("a")
    clock.advance(TTL + SWR + 1)
    backend.fail_always(lambda sid: SecretUnavailableError(f"5xx (secret {sid!r})", secret_id=sid), secret_id="a")
    assert [await cache.get_secret_string("a") for _ in range(10)] == ["cached"] * 10
    assert backend.count("a") == 2
    assert cache.stats.stale_served == 10
    cache.invalidate()
    with pytest.raises(SecretUnavailableError) as info:
        await cache.get_secret_string("a")
    assert isinstance(info.value.__cause__, SecretUnavailableError)
    assert info.value is not info.value.__cause__


async def test_swr_readers_do_not_wait_for_a_held_refresh_even_when_inline_is_configured(
    clock: FakeClock,
) -> None:
    backend = InMemoryBackend({"a": "old"})
    for background in (True, False):
        cache = AsyncSecretCache(backend, config=config(background_refresh=background), timer=clock)
        await cache.get_secret_string("a")
        backend.put_secret("a", "new")
        clock.advance(TTL + 1)
        gate = backend.hold()
        # The event loop must not wait on the held call: with background_refresh=False the async face
        # still sends the refresh to a worker thread (there is no "inline" on an event loop).
        assert [await cache.get_secret_string("a") for _ in range(20)] == ["old"] * 20
        await wait_for(lambda: backend.active == 1, "the refresh to be held")
        gate.set()
        await wait_for(lambda c=cache: c._core.entries["a"].value.secret_string == "new",
                       "the refreshed value")
        assert await cache.get_secret_string("a") == "new"
        backend.put_secret("a", "old")


async def test_refresh_ignores_backoff(clock: FakeClock) -> None:
    backend = InMemoryBackend({"a": "1"})
    cache = AsyncSecretCache(backend, config=config(), timer=clock)
    backend.script("a", SecretThrottledError("throttled (secret 'a')", secret_id="a"))
    with pytest.raises(SecretThrottledError):
        await cache.get_secret_string("a")
    with pytest.raises(SecretThrottledError):
        await cache.get_secret_string("a")  # backing off: no call
    assert backend.count("a") == 1
    assert (await cache.refresh("a")).secret_string == "1"
    assert backend.count("a") == 2


async def test_close_and_async_context_manager(clock: FakeClock) -> None:
    backend = InMemoryBackend({"a": "1"})
    async with AsyncSecretCache(backend, config=config(), timer=clock) as cache:
        assert await cache.get_secret_string("a") == "1"
    assert cache._core.closed
    assert await cache.get_secret_string("a") == "1"  # reads still work after close


def test_a_waiter_on_a_closed_event_loop_does_not_strand_waiters_on_other_loops() -> None:
    """Two loops wait on one shared fetch; the first loop is closed before the fetch ends."""
    backend = InMemoryBackend({"a": "v"})
    cache = AsyncSecretCache(backend, config=config())
    gate = backend.hold()
    first = asyncio.new_event_loop()
    task = first.create_task(cache.get_secret_string("a"))
    first.run_until_complete(asyncio.sleep(0))
    backend.wait_for_calls(1, active=True)
    task.cancel()
    first.run_until_complete(asyncio.gather(task, return_exceptions=True))
    first.close()

    async def second_loop() -> str:
        waiting = asyncio.ensure_future(cache.get_secret_string("a"))
        await asyncio.sleep(0)
        gate.set()
        return await asyncio.wait_for(waiting, 10)

    second = asyncio.new_event_loop()
    try:
        assert second.run_until_complete(second_loop()) == "v"
    finally:
        second.close()
    assert backend.count("a") == 1


async def test_fetches_run_off_the_event_loop_thread(clock: FakeClock) -> None:
    backend = InMemoryBackend({"a": "v"})
    seen: list[str] = []
    backend.script("a", lambda sid: seen.append(threading.current_thread().name))  # then the store answers
    cache = AsyncSecretCache(backend, config=config(), timer=clock)
    assert await cache.get_secret_string("a") == "v"
    assert seen
    assert seen[0] != threading.current_thread().name
