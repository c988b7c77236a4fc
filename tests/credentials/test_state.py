"""secretcache.credentials._state: the rotation policy's per-secret state lives on the cache that owns it."""

from __future__ import annotations

import gc
import json
import typing
import weakref
from typing import Any

import secretcache.credentials._policy as auth
from secretcache import AsyncSecretCache, SecretCache
from secretcache.cache import blocking_cache
from secretcache.config import CacheConfig
from secretcache.credentials import Login, _state, auth_stats, drive, login
from secretcache.db._params import PSYCOPG, make_params_of
from secretcache.model import SecretValue
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value

SECRET = "app/db"


def rds(password: str) -> str:
    return json.dumps({"host": "db", "username": "app", "password": password})


def test_no_module_level_registry_holds_caches() -> None:
    assert not any(isinstance(v, (weakref.WeakKeyDictionary, dict)) and not k.isupper() and not k.startswith("__")
                   for k, v in vars(auth).items() if k.startswith("_"))
    assert not hasattr(auth, "_states")


def test_the_counters_are_named_as_auth_stats_fields() -> None:
    assert list(typing.get_args(_state.Counter)) == list(_state.AuthStats._fields)  # the names callers count by
    state = _state.SecretState()
    state.count("refreshes")
    state.count("refreshes")
    state.count("gave_up")
    assert state.stats() == _state.AuthStats(refreshes=2, gave_up=1)


def test_the_state_lives_on_the_cache_core_and_dies_with_the_cache() -> None:
    cache = SecretCache(InMemoryBackend({SECRET: rds(canary_value("pw"))}))
    state = auth.state_for(cache, SECRET)
    assert cache.state_for(_state._States, _state._States).by_secret[SECRET] is state
    assert auth.state_for(cache, SECRET) is state  # made once
    assert auth.state_for(SecretCache(InMemoryBackend()), SECRET) is not state  # per cache
    gone = weakref.ref(state)
    cache.close()
    del cache, state
    gc.collect()
    assert gone() is None


def test_an_async_cache_and_its_blocking_face_share_one_state() -> None:
    cache = AsyncSecretCache(InMemoryBackend({SECRET: rds(canary_value("pw"))}))
    twin = SecretCache.blocking(cache)
    assert twin.state_for(_state._States, _state._States) is cache.state_for(_state._States, _state._States)
    assert auth.state_for(twin, SECRET) is auth.state_for(cache, SECRET)
    assert SecretCache.blocking(twin) is twin
    assert blocking_cache(twin) is twin


def test_after_fork_the_state_keeps_its_memory_with_fresh_locks() -> None:
    with SecretCache(InMemoryBackend({SECRET: rds(canary_value("pw"))})) as cache:
        state = auth.state_for(cache, SECRET)
        state.count("auth_failures")
        lock, fetch_lock = state.lock, state.fetch_locks["AWSCURRENT"]
        lock.acquire()  # as if a parent thread held it when the process forked
        cache._core.after_fork()
        assert auth.state_for(cache, SECRET) is state
        assert state.lock is not lock
        assert state.fetch_locks["AWSCURRENT"] is not fetch_lock
        assert state.stats().auth_failures == 1  # the child would not deadlock reading it
        lock.release()


def test_a_real_fork_while_a_parent_thread_holds_the_policys_locks_leaves_the_child_able_to_log_in() -> None:
    """os.fork() with another thread inside the policy's locks: the child's login (refused once, so it
    takes the forced-refresh lock too) completes, with the parent's memory of the secret."""
    import threading

    from tests.fixtures.forking import fork_child, reap

    old, new = canary_value("old"), canary_value("new")
    backend = InMemoryBackend({SECRET: rds(old)})
    cache = SecretCache(backend, config=CacheConfig(ttl=3600))
    assert cache.get(f"{SECRET}#password") == old  # cached in the parent before the fork
    state = auth.state_for(cache, SECRET)
    state.count("auth_failures")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with state.lock, state.fetch_locks["AWSCURRENT"]:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(10)
    backend.put_secret(SECRET, rds(new))  # the cached version is now refused

    def child() -> dict[str, Any]:
        def connect(value: SecretValue) -> str:
            if value.json()["password"] != new:
                raise PermissionError("refused")
            return "logged in"

        result = login(SECRET, connect, is_auth_failure=lambda e: isinstance(e, PermissionError), cache=cache)
        return {"result": result, "stats": auth_stats(SECRET, cache=cache)._asdict()}

    try:
        pid, fd = fork_child(child)
        report = reap(pid, fd, bound=20)
    finally:
        release.set()
        holder.join(10)
        cache.close()
    assert report.get("result") == "logged in", report
    assert report["stats"]["auth_failures"] == 2  # the parent's one, remembered, and the child's
    assert report["stats"]["refreshes"] == 1


def test_a_version_is_parsed_once_for_every_login_with_the_same_cache() -> None:
    parsed: list[SecretValue] = []
    params_of = make_params_of(SECRET, PSYCOPG, None)

    def counting(value: SecretValue) -> dict[str, Any]:
        parsed.append(value)
        return params_of(value)

    with SecretCache(InMemoryBackend({SECRET: rds(canary_value("pw"))}), config=CacheConfig(ttl=3600)) as cache:
        seen = [drive(Login(SECRET, counting, cache=cache).flow(), lambda c: c) for _ in range(5)]
    assert len(parsed) == 1
    assert all(c is seen[0] for c in seen)  # the hit path makes no new object


def test_login_through_an_async_cache_counts_in_the_same_stats() -> None:
    cache = AsyncSecretCache(InMemoryBackend({"svc": canary_value("v")}))
    login("svc", lambda s: s, is_auth_failure=lambda e: False, cache=cache)
    assert auth_stats("svc", cache=cache) == auth_stats("svc", cache=SecretCache.blocking(cache))
    assert cache.stats.misses == 1
