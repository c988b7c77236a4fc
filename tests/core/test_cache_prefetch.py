"""prefetch's failure handling and peek: what the batch path does when the batch call itself fails."""

from __future__ import annotations

from secretcache import SecretAccessDeniedError, SecretCache, SecretThrottledError
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value


def _store(n: int) -> tuple[InMemoryBackend, list[str]]:
    backend = InMemoryBackend()
    ids = [f"app/s{i}" for i in range(n)]
    for secret_id in ids:
        backend.put_secret(secret_id, canary_value(secret_id))
    backend.reset_calls()
    return backend, ids


def test_a_denied_batch_call_falls_back_to_one_get_per_secret() -> None:
    backend, ids = _store(5)
    backend.deny_batch = True
    with SecretCache(backend) as cache:
        assert cache.prefetch(ids) == {}
        assert backend.calls["GetSecretValue"] == 5
        assert all(cache.peek(i) is not None for i in ids)


def test_a_throttled_batch_call_reports_each_id_without_multiplying_calls() -> None:
    backend, ids = _store(5)
    backend.fail_next("throttle", operation="BatchGetSecretValue")
    with SecretCache(backend) as cache:
        failures = cache.prefetch(ids)
        assert set(failures) == set(ids)
        assert all(isinstance(e, SecretThrottledError) and e.secret_id == i for i, e in failures.items())
        assert len({id(e) for e in failures.values()}) == 5  # fresh exceptions, one per id
        assert all(isinstance(e.__cause__, SecretThrottledError) for e in failures.values())
        assert backend.calls["GetSecretValue"] == 0
        assert backend.calls["BatchGetSecretValue"] == 1


def test_a_denied_get_after_a_denied_batch_is_returned_per_id() -> None:
    backend, ids = _store(2)
    backend.deny_batch = True
    backend.fail_always("AccessDeniedException", operation="GetSecretValue", secret_id=ids[0])
    with SecretCache(backend) as cache:
        failures = cache.prefetch(ids)
        assert list(failures) == [ids[0]]
        assert isinstance(failures[ids[0]], SecretAccessDeniedError)


def test_peek_never_fetches_and_sees_only_fresh_values() -> None:
    backend, ids = _store(1)
    with SecretCache(backend) as cache:
        assert cache.peek(ids[0]) is None
        assert backend.calls["GetSecretValue"] == 0
        value = cache.get_secret_value(ids[0])
        assert cache.peek(ids[0]) is value
        assert cache.peek(ids[0], version_stage="AWSPREVIOUS") is None
        cache.mark_stale()
        assert cache.peek(ids[0]) is None
        assert backend.calls["GetSecretValue"] == 1
