"""pytest fixtures for code that uses secretcache (loaded automatically once secretcache is installed).

- ``secret_backend``: a fresh :class:`~secretcache.testing.InMemoryBackend` for each test; put the
  secrets your code reads into it (``secret_backend.put_secret("prod/db", '{"password": "x"}')``).
- ``secret_cache``: a fresh :class:`~secretcache.SecretCache` over ``secret_backend``, closed after the
  test. Its configuration is the ``secret_cache_config`` fixture: override that fixture in your
  ``conftest.py`` to change it (the default refreshes inline, so tests are deterministic).
- ``use_secret_cache``: makes ``secret_cache`` the module-level default cache for the test (what
  ``secretcache.get(...)``, ``@inject_secret`` without ``cache=`` and ``inject_env`` use), then puts
  the previous default back. Request it, or mark a whole module with
  ``pytestmark = pytest.mark.usefixtures("use_secret_cache")``.

This module imports nothing heavy: pytest loads it in every session of a project that has
secretcache installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from secretcache.cache import SecretCache
    from secretcache.config import CacheConfig
    from secretcache.testing import InMemoryBackend

__all__ = ["secret_backend", "secret_cache", "secret_cache_config", "use_secret_cache"]


@pytest.fixture
def secret_backend() -> InMemoryBackend:
    """An empty in-process Secrets Manager, private to this test."""
    from secretcache.testing import InMemoryBackend

    return InMemoryBackend()


@pytest.fixture
def secret_cache_config() -> CacheConfig:
    """The configuration of ``secret_cache``: defaults, but refreshing inline (no background threads)."""
    from secretcache.config import CacheConfig

    return CacheConfig(background_refresh=False)


@pytest.fixture
def secret_cache(secret_backend: InMemoryBackend, secret_cache_config: CacheConfig) -> Iterator[SecretCache]:
    """A cache over ``secret_backend``, private to this test and closed after it."""
    from secretcache.cache import SecretCache

    with SecretCache(secret_backend, config=secret_cache_config) as cache:
        yield cache


@pytest.fixture
def use_secret_cache(secret_cache: SecretCache) -> Iterator[SecretCache]:
    """Make ``secret_cache`` the module-level default cache during the test, then restore the previous one."""
    from secretcache.cache import set_default_cache

    previous = set_default_cache(secret_cache)
    try:
        yield secret_cache
    finally:
        set_default_cache(previous)
