"""CacheConfig: the documented defaults, frozen and keyword-only, every invalid value rejected by name."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from secretcache.config import CacheConfig


def test_defaults_are_the_documented_ones() -> None:
    config = CacheConfig()
    assert dataclasses.asdict(config) == {
        "ttl": 300.0, "jitter": 0.1, "stale_while_revalidate": 60.0, "stale_if_error": 86400.0,
        "max_size": 1024,
        "version_stage": "AWSCURRENT", "backoff_base": 1.0, "backoff_max": 30.0, "background_refresh": True,
        "fetch_timeout": 10.0,
    }


def test_config_is_frozen_keyword_only_hashable_and_slotted() -> None:
    config = CacheConfig(ttl=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.ttl = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        CacheConfig(10)  # type: ignore[misc]
    assert config == CacheConfig(ttl=10)
    assert hash(config) == hash(CacheConfig(ttl=10))
    assert not hasattr(config, "__dict__")
    assert dataclasses.replace(config, jitter=0.0).jitter == 0.0
    with pytest.raises(ValueError, match="jitter"):
        dataclasses.replace(config, jitter=2.0)


def test_edge_values_that_are_valid() -> None:
    CacheConfig(ttl=0)  # caching of reads disabled
    CacheConfig(ttl=math.inf)  # never expires (only LRU)
    CacheConfig(jitter=0, stale_while_revalidate=0, stale_if_error=0)
    CacheConfig(stale_if_error=None)  # no limit
    CacheConfig(stale_if_error=math.inf)
    CacheConfig(max_size=1)
    CacheConfig(backoff_base=0, backoff_max=0)
    CacheConfig(backoff_base=5, backoff_max=5)
    CacheConfig(jitter=0.999, ttl=1)
    CacheConfig(version_stage="AWSPENDING", background_refresh=False)


NUMERIC = ["ttl", "jitter", "stale_while_revalidate", "stale_if_error", "backoff_base", "backoff_max"]
NOT_NUMBERS: list[Any] = ["1", b"1", True, False, [1], {"s": 1}, object()]


@pytest.mark.parametrize("field", NUMERIC)
@pytest.mark.parametrize("bad", [-1, -0.001, math.nan, -math.inf, *NOT_NUMBERS], ids=repr)
def test_each_numeric_field_rejects_negative_nan_and_non_numbers_by_name(field: str, bad: Any) -> None:
    with pytest.raises(ValueError, match=f"CacheConfig.{field} ") as info:
        CacheConfig(**{field: bad})
    assert not isinstance(info.value, TypeError)


@pytest.mark.parametrize("field", ["ttl", "jitter", "stale_while_revalidate", "backoff_base", "backoff_max"])
def test_none_is_not_a_number_except_for_stale_if_error(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CacheConfig(**{field: None})


@pytest.mark.parametrize("field", ["stale_while_revalidate", "backoff_base", "backoff_max"])
def test_durations_that_must_be_finite(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CacheConfig(**{field: math.inf})


@pytest.mark.parametrize("jitter", [1, 1.0, 1.5, 100])
def test_jitter_must_be_below_one(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        CacheConfig(jitter=jitter)


@pytest.mark.parametrize("max_size", [0, -1, 1.5, 2.0, "8", True, None, math.nan])
def test_max_size_must_be_a_positive_int(max_size: Any) -> None:
    with pytest.raises(ValueError, match="max_size"):
        CacheConfig(max_size=max_size)


@pytest.mark.parametrize("stage", ["", None, 5, b"AWSCURRENT", ["AWSCURRENT"]])
def test_version_stage_must_be_a_non_empty_string(stage: Any) -> None:
    with pytest.raises(ValueError, match="version_stage"):
        CacheConfig(version_stage=stage)


def test_backoff_base_must_not_exceed_backoff_max() -> None:
    with pytest.raises(ValueError, match="backoff_base") as info:
        CacheConfig(backoff_base=10, backoff_max=5)
    assert "backoff_max" in str(info.value)
    with pytest.raises(ValueError, match="backoff_base"):
        CacheConfig(backoff_base=31)  # against the default backoff_max of 30


@pytest.mark.parametrize("flag", [1, 0, "yes", None])
def test_background_refresh_must_be_a_bool(flag: Any) -> None:
    with pytest.raises(ValueError, match="background_refresh"):
        CacheConfig(background_refresh=flag)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(TypeError):
        CacheConfig(tll=5)  # type: ignore[call-arg]


@pytest.mark.parametrize("field", NUMERIC)
def test_an_int_beyond_float_range_is_rejected_by_name(field: str) -> None:
    with pytest.raises(ValueError, match=f"CacheConfig.{field} is too large"):
        CacheConfig(**{field: 10**400})


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, float("inf"), float("nan"), "10", True])
def test_fetch_timeout_must_be_a_positive_finite_number(bad: Any) -> None:
    with pytest.raises(ValueError, match="fetch_timeout"):
        CacheConfig(fetch_timeout=bad)
