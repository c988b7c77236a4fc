"""The pytest plugin users get with secretcache: fixtures in a real pytest run (pytester)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest_plugins = ["pytester"]


def run(pytester: pytest.Pytester, source: str, *, conftest: str | None = None) -> pytest.RunResult:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    if conftest is not None:
        pytester.makeconftest(textwrap.dedent(conftest))
    pytester.makepyfile(test_user=textwrap.dedent(source))
    return pytester.runpytest("-p", "no:cacheprovider", "-q")


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    from importlib.metadata import entry_points

    assert [ep.value for ep in entry_points(group="pytest11") if ep.name == "secretcache"] == [
        "secretcache.pytest_plugin"
    ]


def test_fixtures_give_each_test_its_own_store_and_cache(pytester: pytest.Pytester) -> None:
    result = run(pytester, """
        import json
        from secretcache import SecretCache
        from secretcache.testing import InMemoryBackend

        seen = []

        def test_first(secret_backend, secret_cache):
            assert isinstance(secret_backend, InMemoryBackend)
            assert isinstance(secret_cache, SecretCache)
            assert secret_cache.backend is secret_backend
            secret_backend.put_secret("app/db", json.dumps({"password": "pw1"}))
            assert secret_cache.get("app/db#password") == "pw1"
            seen.append((secret_backend, secret_cache))

        def test_second_starts_empty(secret_backend, secret_cache):
            first_backend, first_cache = seen[0]
            assert secret_backend is not first_backend
            assert secret_cache is not first_cache
            assert secret_backend.calls == {}
            assert first_cache._core.closed  # the first test's cache was closed after it
    """)
    result.assert_outcomes(passed=2)


def test_secret_cache_refreshes_inline_by_default(pytester: pytest.Pytester) -> None:
    result = run(pytester, """
        def test_config(secret_cache):
            assert secret_cache.config.background_refresh is False
    """)
    result.assert_outcomes(passed=1)


def test_the_config_fixture_can_be_overridden_in_conftest(pytester: pytest.Pytester) -> None:
    result = run(pytester, conftest="""
        import pytest
        from secretcache import CacheConfig

        @pytest.fixture
        def secret_cache_config():
            return CacheConfig(ttl=0)
    """, source="""
        def test_every_read_fetches(secret_backend, secret_cache):
            secret_backend.put_secret("k", "v")
            secret_cache.get_secret_string("k")
            secret_cache.get_secret_string("k")
            assert secret_backend.calls["GetSecretValue"] == 2
    """)
    result.assert_outcomes(passed=1)


def test_use_secret_cache_makes_it_the_default_for_the_test_only(pytester: pytest.Pytester) -> None:
    result = run(pytester, """
        import os
        import pytest
        import secretcache
        from secretcache import inject_secret, resolve_env

        before = secretcache.set_default_cache(None)  # start from "no default yet"

        @inject_secret("app/token", into="token")
        def call_api(token):
            return token

        def test_uses_the_fixture_cache(use_secret_cache, secret_backend):
            secret_backend.put_secret("app/token", "t1")
            assert secretcache.default_cache() is use_secret_cache
            assert secretcache.get("app/token") == "t1"
            assert call_api() == "t1"
            assert resolve_env({"T": "{{resolve:secretsmanager:app/token}}"}) == {"T": "t1"}

        def test_default_is_restored_afterwards():
            assert secretcache.set_default_cache(None) is None

        @pytest.mark.usefixtures("use_secret_cache")
        def test_as_a_marker(secret_backend):
            secret_backend.put_secret("app/token", "t2")
            assert call_api() == "t2"
    """)
    result.assert_outcomes(passed=3)


def test_importing_the_plugin_loads_nothing_heavy() -> None:
    heavy = ("boto3", "botocore", "asyncio", "secretcache.testing")
    probe = ("import sys; import secretcache.pytest_plugin; "
             f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         timeout=60)
    assert out.stdout.strip() == "[]"
