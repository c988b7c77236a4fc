"""SecretCache.get_many / AsyncSecretCache.get_many: one batch for what is not cached, failures kept apart."""

from __future__ import annotations

import pytest

from secretcache import AsyncSecretCache, CacheConfig, SecretCache
from secretcache.errors import SecretAccessDeniedError, SecretNotFoundError
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value


def backend_with(n: int) -> tuple[InMemoryBackend, dict[str, str]]:
    values = {f"app/s{i}": canary_value(f"many{i}") for i in range(n)}
    return InMemoryBackend(values), values


def test_values_of_many_secrets_come_from_one_batch_call_per_twenty() -> None:
    backend, values = backend_with(25)
    with SecretCache(backend) as cache:
        got = cache.get_many(list(values))
        assert {i: v.secret_string for i, v in got.items()} == values
        assert list(got) == list(values)  # in the order asked
        assert backend.calls["BatchGetSecretValue"] == 2
        assert backend.calls["GetSecretValue"] == 0
        # now cached: served without any call
        assert cache.get_many(list(values))["app/s3"].secret_string == values["app/s3"]
        assert cache.get_secret_string("app/s7") == values["app/s7"]
        assert backend.calls["BatchGetSecretValue"] == 2
        assert backend.calls["GetSecretValue"] == 0


def test_only_what_is_not_cached_is_fetched() -> None:
    backend, _ = backend_with(3)
    with SecretCache(backend) as cache:
        cache.get_secret_value("app/s0")
        backend.reset_calls()
        got = cache.get_many(["app/s0", "app/s1", "app/s2"])
        assert len(got) == 3
        assert backend.count("app/s0", operation="BatchGetSecretValue") == 0
        assert backend.calls["BatchGetSecretValue"] == 1


def test_failed_ids_are_left_out_without_raise_on_error() -> None:
    backend, values = backend_with(2)
    with SecretCache(backend) as cache:
        got = cache.get_many(["app/s0", "missing/one", "app/s1"], raise_on_error=False)
        assert set(got) == {"app/s0", "app/s1"}
        assert got["app/s1"].secret_string == values["app/s1"]


def test_the_first_failure_is_raised_naming_its_id() -> None:
    backend, _ = backend_with(2)
    with SecretCache(backend) as cache, pytest.raises(SecretNotFoundError) as info:
        cache.get_many(["app/s0", "missing/one", "missing/two"])
    assert info.value.secret_id == "missing/one"
    assert "missing/one" in str(info.value)


def test_a_denied_batch_falls_back_to_one_read_per_secret() -> None:
    backend, values = backend_with(3)
    backend.deny_batch = True
    with SecretCache(backend) as cache:
        got = cache.get_many(list(values))
        assert {i: v.secret_string for i, v in got.items()} == values
        assert backend.calls["GetSecretValue"] == 3


def test_a_failure_in_backoff_is_reported_without_a_call() -> None:
    backend, _ = backend_with(1)
    backend.fail_always("denied", secret_id="app/s0")
    with SecretCache(backend) as cache:
        with pytest.raises(SecretAccessDeniedError):
            cache.get_secret_value("app/s0")
        backend.reset_calls()
        assert cache.get_many(["app/s0"], raise_on_error=False) == {}
        assert sum(backend.calls.values()) == 0  # backing off: the recorded failure, no new call


def test_get_many_refuses_a_single_str() -> None:
    with SecretCache(InMemoryBackend()) as cache, pytest.raises(TypeError):
        cache.get_many("app/s0")


def test_a_non_default_stage_config_reads_each_id_at_that_stage() -> None:
    backend = InMemoryBackend()
    old = canary_value("old")
    backend.put_secret("app/r", old)
    backend.put_secret("app/r", canary_value("new"))
    with SecretCache(backend, config=CacheConfig(version_stage="AWSPREVIOUS")) as cache:
        assert cache.get_many(["app/r"])["app/r"].secret_string == old
        assert backend.calls["BatchGetSecretValue"] == 0


async def test_the_async_twin_batches_and_reports_the_same_way() -> None:
    backend, values = backend_with(3)
    cache = AsyncSecretCache(backend)
    try:
        got = await cache.get_many([*values, "missing/one"], raise_on_error=False)
        assert {i: v.secret_string for i, v in got.items()} == values
        assert backend.calls["BatchGetSecretValue"] == 1
        with pytest.raises(SecretNotFoundError) as info:
            await cache.get_many(["missing/two", "app/s0"])
        assert info.value.secret_id == "missing/two"
    finally:
        await cache.close()
