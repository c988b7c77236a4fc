"""Concurrency: many threads reading, refreshing and invalidating with a tiny ttl and max_size; asyncio
tasks sharing gated fetches without blocking the loop; cancellation of one waiter."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest

from secretcache import (
    AsyncSecretCache,
    SecretCache,
    SecretCacheError,
    SecretFormatError,
    SecretThrottledError,
    SecretUnavailableError,
)
from secretcache.config import CacheConfig
from secretcache.model import SecretValue
from secretcache.testing import InMemoryBackend
from tests.fixtures.fakes import run_threads, wait_until

pytestmark = pytest.mark.usefixtures("no_refresh_workers_left")


KEYS = [f"stress/{i}" for i in range(20)]


class MintingBackend:
    """Every call mints a new value ``<id>|<n>`` (recorded), and about 1 call in 10 fails transiently."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = itertools.count()
        self.minted: dict[str, set[str]] = defaultdict(set)
        self.calls = 0

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        with self._lock:
            self.calls += 1
            n = next(self._n)
            if n % 10 == 7:
                raise SecretThrottledError(f"throttled (secret {secret_id!r})", secret_id=secret_id)
            value = f"{secret_id}|{n}"
            self.minted[secret_id].add(value)
        if n % 3 == 0:
            threading.Event().wait(0.0001)  # let other threads in while this fetch is "in flight"
        return SecretValue(secret_id, None, f"v{n}", (version_stage or "AWSCURRENT",), secret_string=value)

    def batch_get_secret_values(
        self, secret_ids: Sequence[str]
    ) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
        return [self.get_secret_value(i) for i in secret_ids], {}


def test_thread_stress_reads_refreshes_and_invalidations_stay_consistent() -> None:
    backend = MintingBackend()
    cache = SecretCache(backend, config=CacheConfig(
        ttl=0.001, jitter=0.5, stale_while_revalidate=0.001, stale_if_error=0.01, max_size=4,
        backoff_base=0.0005, backoff_max=0.002,
    ))
    returned: list[tuple[str, str]] = []
    unexpected: list[BaseException] = []

    def worker(seed: int) -> int:
        rng = random.Random(seed)
        seen: list[tuple[str, str]] = []
        for _ in range(1500):
            key = rng.choice(KEYS)
            op = rng.random()
            try:
                if op < 0.55:
                    seen.append((key, cache.get_secret_string(key)))
                elif op < 0.70:
                    seen.append((key, cache.get(key)))
                elif op < 0.78:
                    previous = cache.get_secret_value(key, version_stage="AWSPREVIOUS")
                    seen.append((key, previous.secret_string or ""))
                elif op < 0.86:
                    seen.append((key, cache.refresh(key).secret_string or ""))
                elif op < 0.95:
                    cache.invalidate(key)
                elif op < 0.99:
                    cache.mark_stale()
                else:
                    cache.invalidate()
            except SecretUnavailableError:
                pass  # transient failure with nothing (fresh enough) to serve: an expected, typed outcome
            except BaseException as e:
                unexpected.append(e)
        returned.extend(seen)
        return len(seen)

    counts = run_threads(16, worker, timeout=120)
    assert all(isinstance(c, int) for c in counts), counts
    assert unexpected == []
    assert sum(counts) > 16 * 1000
    for key, value in returned:
        assert value.startswith(f"{key}|"), (key, value)  # never another key's value
        assert value in backend.minted[key]
    wait_until(lambda: not cache._core._flights, what="background refreshes to finish")
    assert len(cache._core.entries) <= 4
    assert backend.calls > 100  # the tiny ttl really made them refresh
    cache.close()


def test_thread_stress_on_one_hot_key_single_flights_every_fetch() -> None:
    """32 threads hammer one key whose every fetch is slow: calls stay far below reads."""
    backend = InMemoryBackend({"hot": "v"})
    cache = SecretCache(backend, config=CacheConfig(ttl=0.0, backoff_base=0.0, backoff_max=0.0))
    gate = backend.hold()
    results: list[Any] = []
    def read_all() -> None:
        results.extend(run_threads(32, lambda _: cache.get_secret_string("hot")))

    runner = threading.Thread(target=read_all)
    runner.start()
    wait_until(lambda: cache.stats.misses == 32, what="every reader to join the one fetch")
    gate.set()
    runner.join(30)
    assert results == ["v"] * 32
    assert backend.count("hot") == 1


# -- asyncio ----------------------------------------------------------------------------------------

async def until(predicate: Any, what: str) -> None:
    for _ in range(10_000):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


async def test_200_tasks_share_the_gated_fetches_of_each_key_while_the_loop_keeps_running() -> None:
    keys = [f"async/{i}" for i in range(4)]
    backend = InMemoryBackend({k: f"value-of-{k}" for k in keys})
    cache = AsyncSecretCache(backend, config=CacheConfig(ttl=300))
    gate = backend.hold()
    ticks = 0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def task(i: int) -> tuple[str, str]:
        key = keys[i % len(keys)]
        if i % 5 == 0:
            value = await cache.refresh(key)
            return key, value.secret_string or ""
        if i % 5 == 1:
            return key, await cache.get(key)
        return key, await cache.get_secret_string(key)

    beat = asyncio.create_task(heartbeat())
    tasks = [asyncio.create_task(task(i)) for i in range(200)]
    await until(lambda: backend.active == len(keys), "one held fetch per key")
    await until(lambda: cache.stats.misses == 200, "every task to join a fetch")
    before = ticks
    for _ in range(50):
        await asyncio.sleep(0)
    assert ticks > before  # the loop runs while every fetch is held
    assert not any(t.done() for t in tasks)
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    stop.set()
    await beat
    assert all(value == f"value-of-{key}" for key, value in results)
    # per key: the held fetch, and at most one queued behind it for the refresh() calls made after the
    # held one started (a refresh returns a value fetched after it was called)
    assert all(1 <= backend.count(k) <= 2 for k in keys), {k: backend.count(k) for k in keys}


async def test_cancelling_one_waiting_task_does_not_cancel_the_shared_fetch() -> None:
    backend = InMemoryBackend({"a": "shared"})
    cache = AsyncSecretCache(backend, config=CacheConfig(ttl=300))
    gate = backend.hold()
    leader = asyncio.create_task(cache.get_secret_string("a"))
    followers = [asyncio.create_task(cache.get_secret_string("a")) for _ in range(5)]
    await until(lambda: cache.stats.misses == 6, "every task to join the fetch")
    leader.cancel()  # the task that started the fetch
    followers[0].cancel()
    await asyncio.gather(leader, followers[0], return_exceptions=True)
    assert leader.cancelled()
    assert followers[0].cancelled()
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(*followers[1:]), 30) == ["shared"] * 4
    assert await cache.get_secret_string("a") == "shared"  # stored for later readers too
    assert backend.count("a") == 1


async def test_async_stress_mixed_operations_with_failures() -> None:
    backend = MintingBackend()
    cache = AsyncSecretCache(backend, config=CacheConfig(ttl=0.001, stale_while_revalidate=0.001, max_size=4,
                                                          backoff_base=0.0005, backoff_max=0.002))

    async def worker(seed: int) -> list[tuple[str, str]]:
        rng = random.Random(seed)
        seen = []
        for _ in range(100):
            key = rng.choice(KEYS)
            try:
                if rng.random() < 0.8:
                    seen.append((key, await cache.get_secret_string(key)))
                else:
                    seen.append((key, (await cache.refresh(key)).secret_string or ""))
            except SecretUnavailableError:
                pass
            if rng.random() < 0.1:
                cache.invalidate(key)
        return seen

    results = await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(50))), 60)
    pairs = [p for r in results for p in r]
    assert len(pairs) > 50 * 60
    for key, value in pairs:
        assert value.startswith(f"{key}|")
        assert value in backend.minted[key]
    await until(lambda: not cache._core._flights, "fetches to finish")
    assert len(cache._core.entries) <= 4
    await cache.close()


def test_format_errors_under_concurrency_are_fresh_and_typed() -> None:
    backend = InMemoryBackend({"bin": b"\x00"})
    cache = SecretCache(backend, config=CacheConfig(ttl=300))
    results = run_threads(16, lambda _: cache.get_secret_string("bin"))
    assert all(isinstance(r, SecretFormatError) for r in results)
    assert len({id(r) for r in results}) == 16
    assert backend.count("bin") == 1
