"""Fixture plugin for the cache concern (loaded from tests/conftest.py): the fake clock, the cleanup of
refresh workers, and the configuration the cache tests read with.

``no_refresh_workers_left`` is not autouse: a module that makes caches with refresh workers asks for it
(``pytestmark = pytest.mark.usefixtures("no_refresh_workers_left")``), so it stays out of the
property-based tests, which must not use function-scoped fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from secretcache.config import CacheConfig
from tests.fakes import FakeClock, stop_refresh_workers

TTL, SWR, CAP = 60.0, 30.0, 8.0


def config(**overrides: Any) -> CacheConfig:
    """The cache tests' configuration: no jitter, so a fake clock decides freshness exactly."""
    fields: dict[str, Any] = dict(
        ttl=TTL, jitter=0.0, stale_while_revalidate=SWR, backoff_base=1.0, backoff_max=CAP
    )
    fields.update(overrides)
    return CacheConfig(**fields)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def no_refresh_workers_left() -> Iterator[None]:
    yield from stop_refresh_workers()
