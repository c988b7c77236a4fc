"""The three libraries under test behind one small interface, each on a client of its own.

- secretcache: ``SecretCache(client=...)`` (so it goes through ``AwsBackend`` like a user's code);
- official: ``aws_secretsmanager_caching.SecretCache(config, client=...)``;
- Powertools: ``SecretsProvider(boto3_client=...)``; hits are timed through ``get_secret`` (the
  function users call, which also reads ``POWERTOOLS_PARAMETERS_MAX_AGE``), the scenarios read
  through ``provider.get`` so several providers can live side by side.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devtools.fake_client import CallCounts

SECRETCACHE, OFFICIAL, POWERTOOLS = "secretcache", "official", "powertools"
LIBS = (SECRETCACHE, OFFICIAL, POWERTOOLS)
LABELS = {SECRETCACHE: "secretcache", OFFICIAL: "official (aws-secretsmanager-caching)",
          POWERTOOLS: "Powertools parameters"}
JSON_KEY = "password"


@dataclass
class Contender:
    """One library instance: how to read, what it cost, how to time its hits."""

    lib: str
    read: Callable[[str], str]
    calls: CallCounts
    entries: Callable[[], int]
    # name -> (timeit statement, its globals), for cache-hit timing
    hit_paths: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None
    instance: Any = None


def build(lib: str, client: Any, calls: CallCounts, *, ttl: float, secretcache_config: Any = None,
          max_size: int = 1024, hit_id: str = "", max_age_default: bool = False) -> Contender:
    """A contender for ``lib`` on ``client``; ``ttl`` in seconds (an int for the official lib)."""
    if lib == SECRETCACHE:
        return _secretcache(client, calls, secretcache_config, hit_id)
    if lib == OFFICIAL:
        return _official(client, calls, int(ttl), max_size, hit_id)
    if lib == POWERTOOLS:
        return _powertools(client, calls, ttl, hit_id, max_age_default)
    raise ValueError(lib)


def _secretcache(client: Any, calls: CallCounts, config: Any, hit_id: str) -> Contender:
    from secretcache import CacheConfig, SecretCache

    cache = SecretCache(client=client, config=config or CacheConfig())  # wrapped in AwsBackend
    ref = f"{hit_id}#{JSON_KEY}"
    return Contender(
        SECRETCACHE, cache.get_secret_string, calls, lambda: len(cache.cached()),
        hit_paths={
            "string": ("f(k)", {"f": cache.get_secret_string, "k": hit_id}),
            "json": ("f(r)", {"f": cache.get, "r": ref}),
            "json_mapping": ("f(k)[key]", {"f": cache.get_secret_json, "k": hit_id, "key": JSON_KEY}),
            "value": ("f(k)", {"f": cache.get_secret_value, "k": hit_id}),
        },
        close=cache.close, instance=cache,
    )


def _official(client: Any, calls: CallCounts, ttl: int, max_size: int, hit_id: str) -> Contender:
    from aws_secretsmanager_caching import SecretCache, SecretCacheConfig

    # Defaults otherwise: retry delays 1 s x 2^n up to 3600 s, no jitter.
    config = SecretCacheConfig(secret_refresh_interval=ttl, max_cache_size=max_size)
    cache = SecretCache(config, client=client)
    return Contender(
        OFFICIAL, cache.get_secret_string, calls, lambda: len(cache._cache._cache),  # noqa: SLF001  (its size: no public API)
        hit_paths={
            "string": ("f(k)", {"f": cache.get_secret_string, "k": hit_id}),
            "json": ("loads(f(k))[key]", {"f": cache.get_secret_string, "k": hit_id, "key": JSON_KEY,
                                          "loads": json.loads}),
        },
        instance=cache,
    )


def _powertools(client: Any, calls: CallCounts, ttl: float, hit_id: str, max_age_default: bool) -> Contender:
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    provider = parameters.SecretsProvider(boto3_client=client)
    max_age = None if max_age_default else ttl

    def read(secret_id: str) -> str:
        return provider.get(secret_id, max_age=max_age)  # type: ignore[arg-type,return-value]

    def time_through_default(stmt: str, names: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        # get_secret reads DEFAULT_PROVIDERS["secrets"]: point it at this provider while timing.
        return stmt, {**names, "_providers": DEFAULT_PROVIDERS, "_provider": provider}

    return Contender(
        POWERTOOLS, read, calls, lambda: len(provider.store),
        hit_paths={
            "string": time_through_default("f(k)", {"f": parameters.get_secret, "k": hit_id}),
            "json": time_through_default(
                "f(k, transform='json')[key]", {"f": parameters.get_secret, "k": hit_id, "key": JSON_KEY}
            ),
            "provider": ("f(k)", {"f": provider.get, "k": hit_id}),
        },
        close=provider.clear_cache, instance=provider,
    )


def prepare_timing(names: dict[str, Any]) -> None:
    """Point Powertools' default provider at the contender being timed (a no-op for the others)."""
    if "_providers" in names:
        names["_providers"]["secrets"] = names["_provider"]

