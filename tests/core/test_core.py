"""The core's moving parts (secretcache/_core.py, _worker.py): who starts threads, which stage is asked,
what a fork keeps, and the public face of its types."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Sequence
from typing import Any

import secretcache
from secretcache import CacheConfig, SecretCache, SecretNotFoundError, SecretValue
from secretcache.errors import SecretCacheError
from secretcache.testing import InMemoryBackend
from tests.fixtures.fakes import FakeClock, wait_until


class Recording:
    """An InMemoryBackend that also records the stage each GetSecretValue asked for."""

    def __init__(self, inner: InMemoryBackend) -> None:
        self.inner = inner
        self.asked: list[tuple[str, str | None]] = []

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        self.asked.append((secret_id, version_stage))
        return self.inner.get_secret_value(secret_id, version_id=version_id, version_stage=version_stage)

    def batch_get_secret_values(
        self, secret_ids: Sequence[str]
    ) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
        return self.inner.batch_get_secret_values(secret_ids)


def test_a_refresh_trigger_only_enqueues_work_for_the_worker_the_first_fetch_started() -> None:
    clock = FakeClock()
    store = InMemoryBackend({"app/a": "1"})
    cache = SecretCache(store, config=CacheConfig(ttl=10.0, jitter=0.0), timer=clock)
    assert cache.get_secret_string("app/a") == "1"  # the first fetch starts the cache's worker
    threads = set(threading.enumerate())
    gate = store.hold()
    clock.advance(11.0)
    assert cache.get_secret_string("app/a") == "1"  # the trigger: served at once, refresh enqueued
    store.wait_held(1)
    assert set(threading.enumerate()) == threads  # the refresh runs on the worker that already existed
    gate.set()
    wait_until(lambda: store.calls["GetSecretValue"] == 2 and cache.stats.refreshes == 1)
    cache.close()


def test_prefetch_and_its_fallback_ask_for_awscurrent_by_name_whatever_the_default_stage() -> None:
    store = InMemoryBackend({"app/a": "current"})
    store.deny_batch = True  # the fallback: one GetSecretValue per id
    recording = Recording(store)
    cache = SecretCache(recording, config=CacheConfig(version_stage="AWSPREVIOUS"))  # type: ignore[arg-type]
    assert cache.prefetch(["app/a"]) == {}
    assert recording.asked == [("app/a", "AWSCURRENT")]
    assert cache.get_secret_string("app/a", version_stage="AWSCURRENT") == "current"  # stored there: a hit
    assert len(recording.asked) == 1
    cache.close()


def test_after_a_fork_the_core_keeps_entries_and_drops_flights_lock_and_worker() -> None:
    store = InMemoryBackend({"app/a": "1", "app/b": "2"})
    cache = SecretCache(store)
    cache.get_secret_string("app/a")
    gate = store.hold(secret_id="app/b")
    reader = threading.Thread(target=cache.get_secret_string, args=("app/b",), daemon=True)
    reader.start()
    store.wait_held(1)
    core = cache._core
    lock, worker = core._lock, core._worker
    core.after_fork()  # what os.register_at_fork runs in a child
    assert core._lock is not lock
    assert core._worker is not worker
    assert not core._flights  # the parent's fetch of app/b is not waited for here
    assert "app/a" in core.entries
    gate.set()
    reader.join(10)
    assert cache.get_secret_string("app/b") == "2"
    cache.close()
    core.after_fork()
    assert core.closed  # a closed cache stays closed in the child


def test_public_classes_show_their_public_path_and_pickle_through_it() -> None:
    for name in secretcache.__all__:
        obj: Any = getattr(secretcache, name)
        if isinstance(obj, type):
            assert obj.__module__ == "secretcache", name
    error = pickle.loads(pickle.dumps(SecretNotFoundError("gone", secret_id="app/x", code="ResourceNotFoundException")))
    assert (type(error), error.secret_id, error.code) == (SecretNotFoundError, "app/x", "ResourceNotFoundException")
    value = pickle.loads(pickle.dumps(SecretValue("app/x", secret_string="v")))
    assert value.secret_string == "v"
    assert repr(secretcache.CacheStats()).startswith("CacheStats(")
