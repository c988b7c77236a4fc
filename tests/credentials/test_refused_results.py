"""A login whose refusal is a result, not an exception (an HTTP 401 response): the policy handles it as a
refused login (refresh, AWSPENDING, give up) and, when it gives up, the flow returns the last result as it
came instead of raising."""

from __future__ import annotations

from secretcache import SecretCache
from secretcache.credentials import AuthPolicy, Login, auth_stats, drive
from secretcache.model import SecretValue
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value

SECRET = "api/token"


def test_a_refused_result_runs_the_policy_and_the_new_version_is_used() -> None:
    backend = InMemoryBackend({SECRET: canary_value("old")})
    with SecretCache(backend) as cache:
        old = cache.get_secret_string(SECRET)
        new = canary_value("new")
        backend.rotate(SECRET, new)  # the cache still holds the old version
        sent: list[str] = []

        def send(value: SecretValue) -> str:
            sent.append(value.text())
            return "200 OK" if value.text() == new else "401 Unauthorized"

        login = Login(SECRET, lambda v: {}, cache=cache, refused=lambda result: result.startswith("401"))
        assert drive(login.flow(), lambda credentials: send(credentials.value)) == "200 OK"
        assert sent == [old, new]
        assert auth_stats(SECRET, cache=cache).refreshes == 1
        assert auth_stats(SECRET, cache=cache).auth_failures == 1


def test_when_every_version_is_refused_the_last_result_is_returned_not_raised() -> None:
    backend = InMemoryBackend({SECRET: canary_value("only")})
    with SecretCache(backend) as cache:
        results = iter(["401 first", "401 second", "401 third"])
        login = Login(SECRET, lambda v: {}, cache=cache, policy=AuthPolicy(min_refresh_interval=0),
                      refused=lambda result: result.startswith("401"))
        assert drive(login.flow(), lambda credentials: next(results)) == "401 first"  # refresh brought no news
        stats = auth_stats(SECRET, cache=cache)
        assert (stats.auth_failures, stats.gave_up) == (1, 1)


def test_an_exception_is_still_read_by_detect_when_refused_results_are_declared() -> None:
    backend = InMemoryBackend({SECRET: canary_value("v")})
    with SecretCache(backend) as cache:
        login = Login(SECRET, lambda v: {}, cache=cache, detect=lambda e: False, refused=lambda r: False)

        def boom(credentials: object) -> str:
            raise ConnectionResetError("not a refusal")

        try:
            drive(login.flow(), boom)
        except ConnectionResetError:
            pass
        else:  # pragma: no cover
            raise AssertionError("the error was swallowed")
        assert auth_stats(SECRET, cache=cache).auth_failures == 0
