"""AsyncSecretCache: the same API as coroutines, the same policy object, never blocking the event loop."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

import secretcache._core
from secretcache import (
    AsyncSecretCache,
    CacheEvent,
    InvalidReferenceError,
    SecretCache,
    SecretFormatError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
)
from secretcache.config import CacheConfig
from secretcache.testing import InMemoryBackend
from tests.cache_fixtures import SWR, TTL, config
from tests.canary import CANARY, canary_value
from tests.fakes import CountingLock, FakeClock

pytestmark = pytest.mark.usefixtures("no_refresh_workers_left")


@pytest.fixture
async def cache(store: InMemoryBackend, clock: FakeClock) -> AsyncIterator[AsyncSecretCache]:
    async with AsyncSecretCache(store, config=config(), timer=clock) as c:
        yield c


async def wait_for(predicate: Any, what: str = "condition") -> None:
    """Yield to the loop until ``predicate()`` holds (bounded: a broken test fails, never hangs)."""
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


# -- the API --------------------------------------------------------------------------------------

async def test_reads_return_the_stored_values(
    cache: AsyncSecretCache, store: InMemoryBackend, password: str
) -> None:
    value = await cache.get_secret_value("app/db")
    assert value.name == "app/db"
    assert value.arn == store.arn("app/db")
    assert json.loads(await cache.get_secret_string("app/db"))["password"] == password
    assert (await cache.get_secret_json("app/db"))["port"] == 5432
    assert await cache.get_secret_binary("app/blob") == CANARY.encode() + b"\x00\xff"
    assert await cache.get("app/db#password") == password
    assert await cache.get("{{resolve:secretsmanager:app/db:SecretString:port}}") == "5432"
    assert await cache.get(f"{store.arn('app/db')}:username::") == "app"
    url = await cache.get("pg://{{resolve:secretsmanager:app/db:SecretString:username}}:"
                          "{{resolve:secretsmanager:app/db:SecretString:password}}@h/db")
    assert url == f"pg://app:{password}@h/db"
    assert store.calls["GetSecretValue"] == 3


async def test_versions_are_separate_entries_and_version_ids_never_expire(
    cache: AsyncSecretCache, store: InMemoryBackend, clock: FakeClock
) -> None:
    old_id = next(iter(store.version_stages("app/db")))
    store.rotate("app/db", json.dumps({"password": "rotated"}))
    assert (await cache.get_secret_json("app/db"))["password"] == "rotated"
    previous = await cache.get_secret_value("app/db", version_stage="AWSPREVIOUS")
    by_id = await cache.get_secret_value("app/db", version_id=old_id)
    assert previous.version_id == by_id.version_id == old_id
    clock.advance(10 * 365 * 86400.0)
    assert await cache.get_secret_value("app/db", version_id=old_id) is by_id
    assert store.calls["GetSecretValue"] == 3


async def test_hits_take_no_lock_and_return_the_same_object(cache: AsyncSecretCache) -> None:
    first = await cache.get_secret_value("app/db")
    counting = CountingLock(cache._core._lock)
    cache._core._lock = counting  # type: ignore[assignment]
    for _ in range(100):
        assert await cache.get_secret_value("app/db") is first
        assert await cache.get_secret_value("app/db", version_stage="AWSCURRENT") is first
        await cache.get("app/db#password")
        await cache.get_secret_string("app/db")
    assert counting.acquired == 0
    assert cache.stats.hits == 400


async def test_mutating_a_returned_json_mapping_never_changes_the_cache(cache: AsyncSecretCache) -> None:
    first = await cache.get_secret_json("app/db")
    first["nested"]["k"].append(2)  # type: ignore[index]
    first["port"] = 1  # type: ignore[index]
    again = await cache.get_secret_json("app/db")
    assert again["nested"] == {"k": [1]}
    assert again["port"] == 5432


async def test_errors_are_the_same_typed_errors(cache: AsyncSecretCache) -> None:
    with pytest.raises(SecretFormatError):
        await cache.get_secret_string("app/blob")
    with pytest.raises(SecretFormatError):
        await cache.get_secret_binary("app/db")
    with pytest.raises(SecretFormatError, match="nope"):
        await cache.get("app/db#nope")
    with pytest.raises(SecretNotFoundError):
        await cache.get_secret_string("app/missing")
    for bad in (None, 3, ["app/db"], "", "bad id"):
        with pytest.raises(InvalidReferenceError):
            await cache.get_secret_value(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidReferenceError):
            await cache.get(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidReferenceError):
        await cache.get_secret_value("app/db", version_id=7)  # type: ignore[arg-type]


async def test_refresh_fetches_now_and_invalidate_drops(
    cache: AsyncSecretCache, store: InMemoryBackend
) -> None:
    await cache.get_secret_string("app/plain")
    store.rotate("app/plain", "second")
    assert (await cache.refresh("app/plain")).secret_string == "second"
    assert await cache.get_secret_string("app/plain") == "second"
    cache.invalidate("app/plain")
    await cache.get_secret_string("app/plain")
    cache.invalidate()
    await cache.get_secret_string("app/plain")
    assert store.calls["GetSecretValue"] == 4


async def test_mark_stale_makes_the_next_read_refresh(
    cache: AsyncSecretCache, store: InMemoryBackend
) -> None:
    await cache.get_secret_string("app/plain")
    store.rotate("app/plain", "second")
    cache.mark_stale()
    assert await cache.get_secret_string("app/plain") == "second"


async def test_prefetch_batches_and_falls_back(clock: FakeClock) -> None:
    store = InMemoryBackend({f"k/{i}": f"v{i}" for i in range(30)})
    cache = AsyncSecretCache(store, config=config(), timer=clock)
    assert await cache.prefetch([f"k/{i}" for i in range(30)]) == {}
    assert store.calls["BatchGetSecretValue"] == 2
    assert await cache.get_secret_string("k/29") == "v29"
    assert store.calls["GetSecretValue"] == 0
    denied = InMemoryBackend({"a": "1"})
    denied.deny_batch = True
    other = AsyncSecretCache(denied, config=config(), timer=clock)
    failures = await other.prefetch(["a", "missing"])
    assert list(failures) == ["missing"]
    assert denied.calls["GetSecretValue"] == 2
    with pytest.raises(TypeError):
        await other.prefetch("a")


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


async def test_constructor_rejects_wrong_arguments(store: InMemoryBackend) -> None:
    with pytest.raises(TypeError):
        AsyncSecretCache(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AsyncSecretCache(store, config={"ttl": 1})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AsyncSecretCache(store, client=object())  # type: ignore[arg-type]


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
