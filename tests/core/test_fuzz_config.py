"""Property tests for ``CacheConfig`` validation.

Promise checked: any combination of field values either builds a config whose fields are usable by
the policy (numbers that are non-negative, not NaN and convertible to float; finite where the policy
adds them to a clock reading) or raises ``ValueError`` at construction, never anything else and
never later, at first use.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from secretcache import SecretCache
from secretcache.config import CacheConfig
from secretcache.errors import SecretUnavailableError
from secretcache.testing import InMemoryBackend
from tests.fixtures.fuzzing import counted, examples, outcome, report_fixture

_report = report_fixture("test_fuzz_config")

numbers = st.one_of(
    st.floats(),  # NaN, +-inf, subnormals, -0.0
    st.integers(-(10**6), 10**6),
    st.integers(min_value=10**300, max_value=10**400),  # beyond float range
    st.sampled_from([0, 0.0, -0.0, 1e-320, 1e308, True, False]),
)
junk = st.one_of(st.none(), st.text(max_size=5), st.complex_numbers(), st.lists(st.integers(), max_size=2),
                 st.decimals(allow_nan=True))
anything = st.one_of(numbers, junk)

fields = st.fixed_dictionaries(
    {},
    optional={
        "ttl": anything,
        "jitter": anything,
        "stale_while_revalidate": anything,
        "stale_if_error": anything,
        "max_size": st.one_of(st.integers(-5, 10**6), st.integers(10**300, 10**400), anything),
        "version_stage": st.one_of(st.text(max_size=12), junk),
        "backoff_base": anything,
        "backoff_max": anything,
        "background_refresh": st.one_of(st.booleans(), anything),
    },
)


def _usable(value: Any, *, finite: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        as_float = float(value)
    except OverflowError:
        return False
    return not math.isnan(as_float) and as_float >= 0 and (not finite or math.isfinite(as_float))


@examples(2500)
@given(fields)
@example({"ttl": 10**400})  # regression: OverflowError from math.isnan(int)
@example({"stale_if_error": 10**400})
@example({"backoff_max": 10**400})
@example({"ttl": 10**309, "backoff_max": 10**309, "backoff_base": 1})
@counted
def test_construction_raises_only_value_error_and_accepted_configs_are_usable(kwargs: dict[str, Any]) -> None:
    config, error = outcome(lambda: CacheConfig(**kwargs), ValueError)
    if error is not None:
        assert str(error).startswith("CacheConfig.")
        return
    assert config is not None
    assert _usable(config.ttl, finite=False)
    assert 0 <= config.jitter < 1
    assert _usable(config.stale_while_revalidate, finite=True)
    assert config.stale_if_error is None or _usable(config.stale_if_error, finite=False)
    assert _usable(config.backoff_base, finite=True)
    assert _usable(config.backoff_max, finite=True)
    assert config.backoff_base <= config.backoff_max
    assert isinstance(config.max_size, int)
    assert config.max_size >= 1
    assert isinstance(config.version_stage, str)
    assert config.version_stage
    assert isinstance(config.background_refresh, bool)
    for name, value in kwargs.items():
        assert getattr(config, name) == value or (isinstance(value, float) and math.isnan(value))


@examples(300)
@given(st.floats(0, 1e6) | st.just(math.inf), st.floats(0, 0.99), st.floats(0, 1e4), st.floats(0, 1e4))
@counted
def test_an_accepted_config_runs_the_policy_without_error(
    ttl: float, jitter: float, base: float, extra: float
) -> None:
    config = CacheConfig(ttl=ttl, jitter=jitter, backoff_base=base, backoff_max=base + extra,
                         background_refresh=False)
    backend = InMemoryBackend({"app/cfg": "v"})
    cache = SecretCache(backend, config=config)
    assert cache.get_secret_string("app/cfg") == "v"
    backend.fail_always(RuntimeError("boom"), secret_id="app/cfg")  # an untyped failure: wrapped as transient
    for _ in range(3):  # a refresh never serves stale, so it raises; a read then serves the cached value
        with pytest.raises(SecretUnavailableError):
            cache.refresh("app/cfg")
        assert cache.get_secret_string("app/cfg") == "v"
    cache.close()


def test_a_config_is_frozen_and_keyword_only() -> None:
    config = CacheConfig(ttl=1)
    with pytest.raises(AttributeError):
        config.ttl = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        CacheConfig(1)  # type: ignore[misc]
