"""secretcache.credentials: the rotation policy for any client (login / login_async)."""

from __future__ import annotations

from typing import Any

import pytest

from secretcache import AsyncSecretCache, CacheConfig, SecretCache
from secretcache.credentials import AuthPolicy, AuthStats, auth_stats, login, login_async
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import CANARY, canary_value


class Refused(Exception):
    pass


def refused(e: BaseException) -> bool:
    return isinstance(e, Refused)


class Server:
    """A client's server: accepts one password at a time; counts logins."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.logins = 0

    def connect(self, secret: Any) -> str:
        self.logins += 1
        if secret.secret_string != self.password:
            raise Refused("login refused")
        return "session"


def test_the_db_package_re_exports_the_same_policy_names() -> None:
    import secretcache.db as db

    assert db.AuthPolicy is AuthPolicy
    assert db.AuthStats is AuthStats


def test_a_refused_login_refreshes_and_logs_in_with_the_new_version() -> None:
    old, new = canary_value("old"), canary_value("new")
    backend = InMemoryBackend({"svc": old})
    server = Server(old)
    with SecretCache(backend, config=CacheConfig(ttl=3600)) as cache:
        assert login("svc", server.connect, is_auth_failure=refused, cache=cache) == "session"
        backend.rotate("svc", new)
        server.password = new
        assert login("svc", server.connect, is_auth_failure=refused, cache=cache) == "session"
        assert server.logins == 3
        assert auth_stats("svc", cache=cache) == AuthStats(auth_failures=1, refreshes=1)


def test_awspending_is_tried_and_pinned_during_single_user_rotation() -> None:
    old, new = canary_value("old"), canary_value("new")
    backend = InMemoryBackend({"svc": old})
    server = Server(old)
    with SecretCache(backend, config=CacheConfig(ttl=3600)) as cache:
        login("svc", server.connect, is_auth_failure=refused, cache=cache)
        backend.put_secret("svc", new, stages=("AWSPENDING",))
        server.password = new  # setSecret: the server has the new password, AWSCURRENT not moved yet
        assert login("svc", server.connect, is_auth_failure=refused, cache=cache) == "session"
        backend.reset_calls()
        server.logins = 0
        assert login("svc", server.connect, is_auth_failure=refused, cache=cache) == "session"
        assert server.logins == 1  # pinned: no refused login, no API call
        assert sum(backend.calls.values()) == 0
        assert auth_stats("svc", cache=cache).pending_logins == 2


def test_other_errors_propagate_at_once() -> None:
    backend = InMemoryBackend({"svc": canary_value("v")})
    calls = []

    def connect(secret: Any) -> None:
        calls.append(1)
        raise ConnectionRefusedError("down")

    with SecretCache(backend) as cache, pytest.raises(ConnectionRefusedError):
        login("svc", connect, is_auth_failure=refused, cache=cache)
    assert calls == [1]


def test_giving_up_raises_the_last_refusal_with_a_note_and_no_value() -> None:
    backend = InMemoryBackend({"svc": canary_value("v")})
    server = Server("not-the-secret")
    with SecretCache(backend) as cache, pytest.raises(Refused) as info:
        login("svc", server.connect, is_auth_failure=refused, cache=cache)
    assert server.logins <= 3
    notes = " ".join(getattr(info.value, "__notes__", []))
    assert "'svc'" in notes
    assert CANARY not in notes


def test_is_auth_failure_must_be_callable() -> None:
    with SecretCache(InMemoryBackend()) as cache, pytest.raises(TypeError):
        login("svc", lambda s: s, is_auth_failure=None, cache=cache)  # type: ignore[arg-type]


async def test_login_async_works_with_an_async_cache() -> None:
    old, new = canary_value("old"), canary_value("new")
    backend = InMemoryBackend({"svc": old})
    server = Server(old)

    async def connect(secret: Any) -> str:
        return server.connect(secret)

    cache = AsyncSecretCache(backend, config=CacheConfig(ttl=3600))
    try:
        assert await login_async("svc", connect, is_auth_failure=refused, cache=cache) == "session"
        backend.rotate("svc", new)
        server.password = new
        assert await login_async("svc", connect, is_auth_failure=refused, cache=cache) == "session"
        assert auth_stats("svc", cache=cache).refreshes == 1
        assert (await cache.get_secret_string("svc")) == new  # the forced refresh landed in the async cache
    finally:
        await cache.close()
