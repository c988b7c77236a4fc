"""Versions never go backwards (DESIGN.md, "Process life and answer integrity").

A cached entry is only replaced by a value whose fetch started after the entry's fetch started; prefetch,
invalidate and overlapping fetches cannot bring back an older version; ``refresh()`` returns a value fetched
by a call that started after ``refresh()`` was called. Each reader therefore sees, per secret, versions that
never decrease, and never another secret's value.

The backend here rotates at random and fails at random: a call reads the secret's counter when it starts
(rotating it first, sometimes), and answers after a random pause, so overlapping fetches finish out of
order. Every value is ``"<secret>:<n>"`` with ``n`` the counter, so "older" is a comparison of integers.
Seeds are fixed; the interleavings are the scheduler's, and the checks hold for every one of them.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Sequence

import pytest

from secretcache import AsyncSecretCache, SecretCache
from secretcache.config import CacheConfig
from secretcache.errors import SecretCacheError, SecretUnavailableError
from secretcache.model import SecretValue
from tests.fixtures.fakes import run_threads, wait_until

NAMES = [f"mono/{i}" for i in range(4)]
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf"


pytestmark = pytest.mark.usefixtures("no_refresh_workers_left")


class RotatingBackend:
    """A thread-safe ``SecretsBackend`` whose secrets rotate and fail at random, answering out of order.

    ``held``: when set, the next call takes the first event of this list and waits for it after reading
    the counter (a fetch in flight with a known, old version).
    """

    def __init__(self, names: Sequence[str], *, seed: int, rotate: float = 0.3, fail: float = 0.1,
                 pause: float = 0.002) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.n = dict.fromkeys(names, 1)
        self.rotate_rate, self.fail_rate, self.pause = rotate, fail, pause
        self.held: list[threading.Event] = []
        self.started = threading.Semaphore(0)  # released once per call, after it read its counter

    def current(self, name: str) -> int:
        with self._lock:
            return self.n[name]

    def bump(self, name: str) -> int:
        with self._lock:
            self.n[name] += 1
            return self.n[name]

    def _start(self, names: Sequence[str]) -> tuple[dict[str, int], bool, float, threading.Event | None]:
        with self._lock:
            for name in names:
                if self._rng.random() < self.rotate_rate:
                    self.n[name] += 1
            seen = {name: self.n[name] for name in names}
            fail = self._rng.random() < self.fail_rate
            pause = self._rng.random() * self.pause
            gate = self.held.pop(0) if self.held else None
        self.started.release()
        return seen, fail, pause, gate

    @staticmethod
    def value(name: str, n: int) -> SecretValue:
        return SecretValue(name, ARN.format(name), f"{name}-version-{n:08d}", ("AWSCURRENT",),
                           secret_string=f"{name}:{n}")

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        assert version_id is None, "this backend serves AWSCURRENT only"
        assert version_stage in (None, "AWSCURRENT"), "this backend serves AWSCURRENT only"
        seen, fail, pause, gate = self._start([secret_id])
        if gate is not None:
            assert gate.wait(20), "a held fetch was never released"
        threading.Event().wait(pause)  # the answer travels; later calls may overtake this one
        if fail:
            raise SecretUnavailableError(f"injected failure (secret {secret_id!r})", secret_id=secret_id)
        return self.value(secret_id, seen[secret_id])

    def batch_get_secret_values(
        self, secret_ids: Sequence[str]
    ) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
        seen, fail, pause, gate = self._start(list(secret_ids))
        if gate is not None:
            assert gate.wait(20), "a held batch was never released"
        threading.Event().wait(pause)
        if fail:
            raise SecretUnavailableError("injected failure of a whole batch call")
        values, errors = [], {}
        for i, name in enumerate(secret_ids):
            if i == 0 and pause < self.pause * self.fail_rate:  # now and then one id fails on its own
                errors[name] = SecretUnavailableError(f"injected (secret {name!r})", secret_id=name)
            else:
                values.append(self.value(name, seen[name]))
        return values, errors


def _config() -> CacheConfig:
    return CacheConfig(ttl=0.002, jitter=0.5, stale_while_revalidate=0.004, stale_if_error=60.0,
                       backoff_base=0.0, backoff_max=0.001)


class Observer:
    """One reader's view: the highest version seen per secret, and every violation of the contract."""

    def __init__(self, who: str) -> None:
        self.who = who
        self.highest: dict[str, int] = {}
        self.problems: list[str] = []

    def saw(self, asked: str, value: str | None, how: str, *, at_least: int = 0) -> None:
        if value is None:
            return
        name, _, n_text = value.rpartition(":")
        if name != asked:
            self.problems.append(f"{self.who}: {how}({asked!r}) returned the value of {name!r}")
            return
        n = int(n_text)
        if n < self.highest.get(asked, 0):
            self.problems.append(f"{self.who}: {how}({asked!r}) went back to {n} after {self.highest[asked]}")
        if n < at_least:
            self.problems.append(f"{self.who}: refresh({asked!r}) returned {n}, fetched before the call "
                                 f"(the backend was at {at_least} when refresh() was called)")
        self.highest[asked] = max(n, self.highest.get(asked, 0))

    def failed(self, how: str, error: BaseException) -> None:
        if not isinstance(error, SecretUnavailableError):  # the only kind of failure this backend makes
            self.problems.append(f"{self.who}: {how} raised {type(error).__name__}: {error}")


def test_sync_mix_of_reads_refreshes_invalidations_and_prefetches_never_goes_backwards() -> None:
    backend = RotatingBackend(NAMES, seed=20261128)
    cache = SecretCache(backend, config=_config())
    observers = [Observer(f"thread {i}") for i in range(64)]

    def worker(i: int) -> None:
        rng, me = random.Random(1000 + i), observers[i]
        for _ in range(120):
            name, op = rng.choice(NAMES), rng.random()
            try:
                if op < 0.45:
                    me.saw(name, cache.get_secret_string(name), "get")
                elif op < 0.65:
                    floor = backend.current(name)
                    value = cache.refresh(name)
                    me.saw(name, value.secret_string, "refresh", at_least=floor)
                elif op < 0.75:
                    cache.invalidate(name)
                elif op < 0.85:
                    for failed_id, error in cache.prefetch(rng.sample(NAMES, 2)).items():
                        me.failed(f"prefetch[{failed_id}]", error)
                else:
                    peeked = cache.peek(name)
                    me.saw(name, peeked.secret_string if peeked is not None else None, "peek")
            except SecretCacheError as e:
                me.failed("read", e)

    for result in run_threads(64, worker, timeout=120):
        assert not isinstance(result, BaseException), repr(result)
    problems = [p for o in observers for p in o.problems]
    assert not problems, f"{len(problems)} violations, first ones:\n" + "\n".join(problems[:15])
    cache.close()


async def test_async_mix_of_reads_refreshes_invalidations_and_prefetches_never_goes_backwards() -> None:
    backend = RotatingBackend(NAMES, seed=424242)
    cache = AsyncSecretCache(backend, config=_config())
    observers = [Observer(f"task {i}") for i in range(16)]

    async def worker(i: int) -> None:
        rng, me = random.Random(2000 + i), observers[i]
        for _ in range(60):
            name, op = rng.choice(NAMES), rng.random()
            try:
                if op < 0.45:
                    me.saw(name, await cache.get_secret_string(name), "get")
                elif op < 0.65:
                    floor = backend.current(name)
                    value = await cache.refresh(name)
                    me.saw(name, value.secret_string, "refresh", at_least=floor)
                elif op < 0.75:
                    cache.invalidate(name)
                elif op < 0.85:
                    for failed_id, error in (await cache.prefetch(rng.sample(NAMES, 2))).items():
                        me.failed(f"prefetch[{failed_id}]", error)
                else:
                    peeked = cache.peek(name)
                    me.saw(name, peeked.secret_string if peeked is not None else None, "peek")
            except SecretCacheError as e:
                me.failed("read", e)
            if op > 0.9:
                await asyncio.sleep(0.001)

    await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(16))), 120)
    problems = [p for o in observers for p in o.problems]
    assert not problems, f"{len(problems)} violations, first ones:\n" + "\n".join(problems[:15])
    await cache.close()


# -- the same rules, one interleaving at a time ---------------------------------------------------------


def _quiet_backend() -> RotatingBackend:
    """No random rotation, failure or pause: the test moves the versions itself."""
    return RotatingBackend(NAMES, seed=1, rotate=0.0, fail=0.0, pause=0.0)


def _in_thread(target: object) -> tuple[threading.Thread, list[object]]:
    box: list[object] = []

    def body() -> None:
        try:
            box.append(target())  # type: ignore[operator]
        except BaseException as e:
            box.append(e)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, box


def test_refresh_does_not_return_a_fetch_that_started_before_it() -> None:
    name = NAMES[0]
    backend = _quiet_backend()
    cache = SecretCache(backend, config=CacheConfig(ttl=300.0, jitter=0.0))
    assert cache.get_secret_string(name) == f"{name}:1"
    gate = threading.Event()
    backend.held.append(gate)
    first, _ = _in_thread(lambda: cache.refresh(name).secret_string)  # reads version 1, held
    assert backend.started.acquire(timeout=10)
    backend.bump(name)  # rotated: version 2 is current before the second refresh() is called
    second, second_box = _in_thread(lambda: cache.refresh(name).secret_string)
    # A right core starts a fetch of its own for the second refresh (at once, or once the first ends);
    # give it the chance to start at once before the held, older fetch is let go.
    backend.started.acquire(timeout=2)
    gate.set()
    for thread in (first, second):
        thread.join(20)
        assert not thread.is_alive(), "a refresh hung"
    assert second_box == [f"{name}:2"], "refresh() returned a fetch that started before it was called"
    assert cache.get_secret_string(name) == f"{name}:2", "the older fetch, finishing last, replaced the newer"
    cache.close()


def test_prefetch_joins_a_read_in_flight_instead_of_fetching_beside_it() -> None:
    # Two fetches of one key in flight at once could finish in either order; the cache never starts one.
    name = NAMES[1]
    backend = _quiet_backend()
    cache = SecretCache(backend, config=CacheConfig(ttl=300.0, jitter=0.0))
    gate = threading.Event()
    backend.held.append(gate)
    reader, box = _in_thread(lambda: cache.get_secret_string(name))  # cold read: version 1, held
    assert backend.started.acquire(timeout=10)
    backend.bump(name)
    batch, failures = _in_thread(lambda: cache.prefetch([name]))
    wait_until(lambda: cache.stats.misses == 1 and batch.is_alive(), what="the prefetch to wait for the read")
    assert cache.stats.backend_calls == 1  # no second fetch started beside the held one
    gate.set()
    reader.join(20)
    batch.join(20)
    assert box == [f"{name}:1"]
    assert failures == [{}]
    assert cache.get_secret_string(name) == f"{name}:1"  # the one fetch; a refresh brings version 2
    assert cache.refresh(name).secret_string == f"{name}:2"
    assert cache.get_secret_string(name) == f"{name}:2"
    cache.close()


def test_a_refresh_during_a_held_prefetch_queues_behind_it_and_wins() -> None:
    name = NAMES[2]
    backend = _quiet_backend()
    cache = SecretCache(backend, config=CacheConfig(ttl=300.0, jitter=0.0))
    assert cache.get_secret_string(name) == f"{name}:1"
    gate = threading.Event()
    backend.held.append(gate)
    batch, _ = _in_thread(lambda: cache.prefetch([name]))  # reads version 1, held
    assert backend.started.acquire(timeout=10)
    backend.bump(name)
    refresher, refreshed = _in_thread(lambda: cache.refresh(name).secret_string)
    wait_until(lambda: cache.stats.misses == 2, what="the refresh to queue behind the batch")
    gate.set()
    batch.join(20)
    refresher.join(20)
    assert not batch.is_alive()
    assert not refresher.is_alive()
    assert refreshed == [f"{name}:2"]  # fetched after the refresh was called
    assert cache.get_secret_string(name) == f"{name}:2", "an older batch answer brought back version 1"
    cache.close()


def test_invalidate_during_a_fetch_then_a_newer_read_is_not_undone() -> None:
    name = NAMES[3]
    backend = _quiet_backend()
    cache = SecretCache(backend, config=CacheConfig(ttl=300.0, jitter=0.0))
    gate = threading.Event()
    backend.held.append(gate)
    reader, _ = _in_thread(lambda: cache.get_secret_string(name))  # version 1, held
    assert backend.started.acquire(timeout=10)
    cache.invalidate(name)
    backend.bump(name)
    second, box = _in_thread(lambda: cache.get_secret_string(name))  # queued behind the invalidated fetch
    wait_until(lambda: cache.stats.misses == 2, what="the second read to queue")
    gate.set()
    reader.join(20)
    second.join(20)
    assert not reader.is_alive()
    assert not second.is_alive()
    assert box == [f"{name}:2"]  # a fetch that started after the invalidation
    assert cache.get_secret_string(name) == f"{name}:2", "the invalidated, older fetch was stored"
    cache.close()
