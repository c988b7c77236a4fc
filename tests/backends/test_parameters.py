"""Parameter Store through the default AwsBackend, on moto in process: GetParameter reads (SecureString,
versions, labels, the reference path to Secrets Manager), GetParameters batching, get_path paging, error
mapping, and the cache's guarantees under 32-thread herds (cold start, expiry, an SSM outage)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.moto_helpers import count_calls, inject
from secretcache import AsyncSecretCache, CacheConfig, SecretCache
from secretcache.backends import AwsBackend
from secretcache.errors import (
    InvalidReferenceError,
    SecretAccessDeniedError,
    SecretCacheError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
)
from tests.fixtures import fakes
from tests.fixtures.fix_canary import CANARY, canary_value

REGION = "us-east-1"
THREADS = 32


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def one_attempt() -> Any:
    from botocore.config import Config

    return Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    """moto in process: (an admin SSM client, an admin Secrets Manager client)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("ssm", region_name=REGION), boto3.client("secretsmanager", region_name=REGION)


@pytest.fixture
def ssm(aws: tuple[Any, Any]) -> Any:
    return aws[0]


def backend() -> AwsBackend:
    return AwsBackend(region_name=REGION, config=one_attempt())


def ssm_calls(b: AwsBackend, op: str) -> list[dict[str, Any]]:
    return count_calls(b.ssm_client_for(None), op, service="ssm")


def herd(read: Any, n: int = THREADS) -> list[Any]:
    """``read()`` on ``n`` threads released together; every result (or exception), in thread order."""
    return fakes.run_threads(n, lambda _: read(), timeout=20, together=True)


# -- reads ------------------------------------------------------------------------------------------

def test_a_secure_string_is_read_decrypted_as_a_secret_value(ssm: Any) -> None:
    value = canary_value("secure")
    ssm.put_parameter(Name="/app/db-url", Value=value, Type="SecureString")
    b = backend()
    calls = ssm_calls(b, "GetParameter")
    with SecretCache(b) as cache:
        got = cache.get_secret_value("ssm:/app/db-url")
        assert cache.get("ssm:/app/db-url") == value
    assert calls == [{"Name": "/app/db-url", "WithDecryption": True}]
    assert got.name == "/app/db-url"
    assert got.arn == f"arn:aws:ssm:{REGION}:123456789012:parameter/app/db-url"
    assert got.version_id == "1"
    assert got.secret_string == value
    assert CANARY not in repr(got)
    assert CANARY not in str(got)


def test_plain_names_string_lists_json_keys_and_parameter_arns(ssm: Any) -> None:
    ssm.put_parameter(Name="plain", Value="a,b,c", Type="StringList")
    ssm.put_parameter(Name="/app/json", Value=json.dumps({"user": "app", "port": 5432}), Type="SecureString")
    with SecretCache(backend()) as cache:
        assert cache.get("ssm:plain") == "a,b,c"  # a StringList as SSM returns it
        assert cache.get("ssm:/app/json#user") == "app"
        assert cache.get("ssm:/app/json#port") == "5432"
        arn = cache.get_secret_value("ssm:/app/json").arn
        assert arn is not None
        assert cache.get(f"{arn}#user") == "app"
        assert cache.get_secret_json(arn) == {"user": "app", "port": 5432}


def test_versions_and_labels_are_ssm_selectors(ssm: Any) -> None:
    ssm.put_parameter(Name="/app/flag", Value="v1", Type="String")
    ssm.put_parameter(Name="/app/flag", Value="v2", Type="String", Overwrite=True)
    ssm.put_parameter(Name="/app/flag", Value="v3", Type="String", Overwrite=True)
    ssm.label_parameter_version(Name="/app/flag", ParameterVersion=2, Labels=["blue"])
    b = backend()
    calls = ssm_calls(b, "GetParameter")
    with SecretCache(b) as cache:
        latest = cache.get_secret_value("ssm:/app/flag")
        assert (latest.secret_string, latest.version_id) == ("v3", "3")
        first = cache.get_secret_value("ssm:/app/flag", version_id="1")
        assert (first.secret_string, first.version_id) == ("v1", "1")
        blue = cache.get_secret_value("ssm:/app/flag", version_stage="blue")
        assert (blue.secret_string, blue.version_id) == ("v2", "2")
        assert "blue" in blue.version_stages
        # the reference forms say the same
        assert cache.get("ssm:/app/flag:1") == "v1"
        assert cache.get("ssm:/app/flag:blue") == "v2"
        assert cache.get("{{resolve:ssm:/app/flag:1}}") == "v1"
        assert cache.get("{{resolve:ssm-secure:/app/flag}}") == "v3"
        # AWSCURRENT is the latest version (parameters have no stages), under the same key
        assert cache.get_secret_value("ssm:/app/flag", version_stage="AWSCURRENT") is latest
    assert [c["Name"] for c in calls] == ["/app/flag", "/app/flag:1", "/app/flag:blue"]


def test_the_reference_path_returns_the_secrets_value_and_version(aws: tuple[Any, Any]) -> None:
    _ssm, sm = aws
    value = canary_value("referenced")
    sm.create_secret(Name="prod/db", SecretString=value)
    expected = sm.get_secret_value(SecretId="prod/db")
    with SecretCache(backend()) as cache:
        got = cache.get_secret_value("ssm:/aws/reference/secretsmanager/prod/db")
        direct = cache.get_secret_value("prod/db")
    assert got.secret_string == expected["SecretString"] == direct.secret_string
    assert got.version_id == expected["VersionId"] == direct.version_id
    assert "AWSCURRENT" in got.version_stages
    assert got.name == "/aws/reference/secretsmanager/prod/db"


def test_secrets_and_parameters_share_one_cache_apart(aws: tuple[Any, Any]) -> None:
    ssm, sm = aws
    sm.create_secret(Name="app/db", SecretString="from-secrets-manager")
    ssm.put_parameter(Name="/app/db", Value="from-parameter-store", Type="String")
    with SecretCache(backend()) as cache:
        assert cache.get("app/db") == "from-secrets-manager"
        assert cache.get("ssm:/app/db") == "from-parameter-store"
        cache.invalidate("ssm:/app/db")
        assert cache.peek("app/db") is not None
        assert cache.peek("ssm:/app/db") is None


# -- errors -----------------------------------------------------------------------------------------

def test_errors_map_into_the_hierarchy(ssm: Any) -> None:
    ssm.put_parameter(Name="/app/x", Value="v", Type="String")
    b = backend()
    with pytest.raises(SecretNotFoundError) as missing:
        b.get_secret_value("ssm:/app/missing")
    assert missing.value.code == "ParameterNotFound"
    assert missing.value.secret_id == "ssm:/app/missing"
    with pytest.raises(SecretNotFoundError) as version:
        b.get_secret_value("ssm:/app/x", version_id="9")
    assert version.value.code == "ParameterVersionNotFound"
    client = b.ssm_client_for(None)
    inject(client, "denied", op="GetParameter", service="ssm")
    with pytest.raises(SecretAccessDeniedError):
        b.get_secret_value("ssm:/app/x")
    inject(client, "throttle", op="GetParameter", service="ssm")
    with pytest.raises(SecretThrottledError):
        b.get_secret_value("ssm:/app/x")
    inject(client, "5xx", op="GetParameter", service="ssm")
    with pytest.raises(SecretUnavailableError):
        b.get_secret_value("ssm:/app/x")
    inject(client, "conn", op="GetParameter", service="ssm")
    with pytest.raises(SecretUnavailableError):
        b.get_secret_value("ssm:/app/x")


@pytest.mark.parametrize("reference", ["ssm:", "ssm:a/b", "ssm:/a/", "ssm:/a:", "ssm:/a#",
                                       "arn:aws:ssm:us-east-1:1:parameter/x", "{{resolve:ssm:/a:blue}}"])
def test_a_malformed_parameter_reference_is_refused_naming_it(reference: str) -> None:
    with SecretCache(backend()) as cache, pytest.raises(InvalidReferenceError) as e:
        cache.get(reference)
    assert reference[:20] in str(e.value)


def test_a_version_that_is_not_a_number_is_refused_before_any_call() -> None:
    with SecretCache(backend()) as cache, pytest.raises(InvalidReferenceError):
        cache.get_secret_value("ssm:/app/x", version_id="not-a-number")


# -- herds ------------------------------------------------------------------------------------------

def test_32_threads_at_a_cold_start_make_one_get_parameter(ssm: Any) -> None:
    ssm.put_parameter(Name="/app/herd", Value="v", Type="SecureString")
    b = backend()
    calls = ssm_calls(b, "GetParameter")
    gate = threading.Event()
    inject(b.ssm_client_for(None), gate, op="GetParameter", service="ssm")  # the call waits for the herd
    with SecretCache(b) as cache:
        threading.Timer(0.3, gate.set).start()
        results = herd(lambda: cache.get("ssm:/app/herd"))
    assert results == ["v"] * THREADS
    assert len(calls) == 1


def test_at_expiry_one_call_runs_and_nobody_blocks(ssm: Any) -> None:
    ssm.put_parameter(Name="/app/expiry", Value="old", Type="String")
    b = backend()
    calls = ssm_calls(b, "GetParameter")
    clock = Clock()
    config = CacheConfig(ttl=60, jitter=0, stale_while_revalidate=60)
    with SecretCache(b, config=config, timer=clock) as cache:
        assert cache.get("ssm:/app/expiry") == "old"
        ssm.put_parameter(Name="/app/expiry", Value="new", Type="String", Overwrite=True)
        gate = threading.Event()
        inject(b.ssm_client_for(None), gate, op="GetParameter", service="ssm")  # the refresh is held
        clock.now += 61
        try:
            results = herd(lambda: cache.get("ssm:/app/expiry"))  # returns while the refresh is held
            assert results == ["old"] * THREADS
            # The refresh runs on the cache's worker: the readers may return before it reaches the call.
            fakes.wait_until(lambda: len(calls) >= 2, what="the background refresh's GetParameter")
            assert len(calls) == 2  # the first read and one refresh
        finally:
            gate.set()
        for _ in range(200):
            if cache.peek("ssm:/app/expiry") is not None and cache.get("ssm:/app/expiry") == "new":
                break
            threading.Event().wait(0.05)
        assert cache.get("ssm:/app/expiry") == "new"
    assert len(calls) == 2


def test_an_ssm_outage_serves_the_cached_value_with_one_call_per_backoff_step(ssm: Any) -> None:
    ssm.put_parameter(Name="/app/outage", Value="cached", Type="String")
    b = backend()
    calls = ssm_calls(b, "GetParameter")
    clock = Clock()
    config = CacheConfig(ttl=60, jitter=0, stale_while_revalidate=0, background_refresh=False,
                         backoff_base=10, backoff_max=10)
    with SecretCache(b, config=config, timer=clock, random=lambda: 0.0) as cache:
        assert cache.get("ssm:/app/outage") == "cached"
        inject(b.ssm_client_for(None), op="GetParameter", service="ssm", then="5xx")
        clock.now += 61
        for step in range(1, 4):
            results = herd(lambda: cache.get("ssm:/app/outage"))
            assert results == ["cached"] * THREADS
            assert len(calls) == 1 + step  # one call for this backoff step, whoever asked
            clock.now += 10.5  # the next step
        assert cache.stats.stale_served >= 3 * THREADS - 3


# -- batching ---------------------------------------------------------------------------------------

def test_25_parameters_through_get_many_take_3_get_parameters_calls(ssm: Any) -> None:
    for i in range(25):
        ssm.put_parameter(Name=f"/many/p{i:02}", Value=f"v{i}", Type="SecureString")
    b = backend()
    batch = ssm_calls(b, "GetParameters")
    single = ssm_calls(b, "GetParameter")
    ids = [f"ssm:/many/p{i:02}" for i in range(25)]
    with SecretCache(b) as cache:
        values = cache.get_many(ids)
        assert [v.secret_string for v in values.values()] == [f"v{i}" for i in range(25)]
        assert list(values) == ids
        assert all(call["WithDecryption"] for call in batch)
        assert sorted(len(call["Names"]) for call in batch) == [5, 10, 10]
        assert cache.get("ssm:/many/p07") == "v7"  # cached by the batch
    assert len(batch) == 3
    assert single == []


def test_an_invalid_name_in_a_batch_fails_alone(ssm: Any) -> None:
    for i in range(4):
        ssm.put_parameter(Name=f"/some/p{i}", Value=f"v{i}", Type="String")
    b = backend()
    batch = ssm_calls(b, "GetParameters")
    ids = [f"ssm:/some/p{i}" for i in range(4)] + ["ssm:/some/missing"]
    with SecretCache(b) as cache:
        values = cache.get_many(ids, raise_on_error=False)
        assert sorted(values) == ids[:4]
        with pytest.raises(SecretNotFoundError) as e:
            cache.get_many(ids)
        assert e.value.secret_id == "ssm:/some/missing"
        assert len(batch) == 1  # the second get_many was answered from the cache and the backoff
        failures = cache.prefetch(ids)  # prefetch always asks (it warms): one more call
        assert list(failures) == ["ssm:/some/missing"]
        assert isinstance(failures["ssm:/some/missing"], SecretNotFoundError)
    assert len(batch) == 2


def test_prefetch_and_get_many_mix_secrets_and_parameters(aws: tuple[Any, Any]) -> None:
    ssm, sm = aws
    sm.create_secret(Name="mix/secret", SecretString="s")
    ssm.put_parameter(Name="/mix/param", Value="p", Type="String")
    b = backend()
    secrets = count_calls(b.client, "BatchGetSecretValue")
    parameters = ssm_calls(b, "GetParameters")
    with SecretCache(b) as cache:
        assert cache.prefetch(["mix/secret", "ssm:/mix/param"]) == {}
        got = cache.get_many(["mix/secret", "ssm:/mix/param"])
        assert {k: v.secret_string for k, v in got.items()} == {"mix/secret": "s", "ssm:/mix/param": "p"}
    assert (len(secrets), len(parameters)) == (1, 1)  # one batch call per service; get_many hit the cache


# -- paths ------------------------------------------------------------------------------------------

def test_get_path_reads_every_page_once_per_ttl_and_caches_the_parameters(ssm: Any) -> None:
    for i in range(25):
        ssm.put_parameter(Name=f"/svc/prod/p{i:02}", Value=canary_value(f"p{i}"), Type="SecureString")
    ssm.put_parameter(Name="/svc/prod/nested/deep", Value="deep", Type="String")
    ssm.put_parameter(Name="/svc/other", Value="outside", Type="String")
    b = backend()
    pages = ssm_calls(b, "GetParametersByPath")
    single = ssm_calls(b, "GetParameter")
    clock = Clock()
    with SecretCache(b, config=CacheConfig(ttl=60, jitter=0), timer=clock) as cache:
        got = herd(lambda: cache.get_path("ssm:/svc/prod/"))
        assert all(r == got[0] for r in got)
        listing = got[0]
        assert len(listing) == 26
        assert "ssm:/svc/prod/nested/deep" in listing
        assert "ssm:/svc/other" not in listing
        assert listing["ssm:/svc/prod/p03"].name == "/svc/prod/p03"
        assert len(pages) == 3  # 26 parameters, 10 per page: every page once
        assert {p.get("NextToken") for p in pages} == {None, "10", "20"}
        assert all(p["Recursive"] and p["WithDecryption"] for p in pages)
        hits = cache.stats.hits
        for i in range(25):
            assert cache.get(f"ssm:/svc/prod/p{i:02}").startswith(CANARY)
        assert cache.get_path("ssm:/svc/prod/") == listing
        assert single == []
        assert len(pages) == 3
        assert cache.stats.hits == hits + 26
        clock.now += 61  # past ttl: one background walk, the cached listing served meanwhile
        assert cache.get_path("ssm:/svc/prod/") == listing
        for _ in range(200):
            if len(pages) == 6:
                break
            threading.Event().wait(0.05)
        assert len(pages) == 6
    assert single == []


def test_get_path_one_level_and_an_empty_path(ssm: Any) -> None:
    ssm.put_parameter(Name="/lvl/a", Value="a", Type="String")
    ssm.put_parameter(Name="/lvl/sub/b", Value="b", Type="String")
    with SecretCache(backend()) as cache:
        assert sorted(cache.get_path("ssm:/lvl", recursive=False)) == ["ssm:/lvl/a"]
        assert sorted(cache.get_path("ssm:/lvl/")) == ["ssm:/lvl/a", "ssm:/lvl/sub/b"]
        assert cache.get_path("ssm:/nothing/here/") == {}
        with pytest.raises(InvalidReferenceError):
            cache.get_path("/lvl/")  # the ssm: prefix says which service
        with pytest.raises(InvalidReferenceError):
            cache.get_path("ssm:lvl")


def test_get_path_errors_are_typed_and_stale_if_error_applies(ssm: Any) -> None:
    ssm.put_parameter(Name="/err/a", Value="a", Type="String")
    b = backend()
    clock = Clock()
    config = CacheConfig(ttl=60, jitter=0, stale_while_revalidate=0, background_refresh=False)
    with SecretCache(b, config=config, timer=clock) as cache:
        listing = cache.get_path("ssm:/err/")
        inject(b.ssm_client_for(None), op="GetParametersByPath", service="ssm", then="throttle")
        clock.now += 61
        assert cache.get_path("ssm:/err/") == listing  # stale while throttled
        assert cache.stats.stale_served == 1
        with pytest.raises(SecretThrottledError):
            cache.get_path("ssm:/err/other/")  # nothing cached there


def test_the_async_cache_reads_parameters_and_paths(ssm: Any) -> None:
    import asyncio

    ssm.put_parameter(Name="/aio/a", Value="a", Type="String")
    ssm.put_parameter(Name="/aio/b", Value="b", Type="SecureString")

    async def main() -> None:
        async with AsyncSecretCache(backend()) as cache:
            assert await cache.get("ssm:/aio/a") == "a"
            got = await cache.get_path("ssm:/aio/")
            assert {k: v.secret_string for k, v in got.items()} == {"ssm:/aio/a": "a", "ssm:/aio/b": "b"}
            many = await cache.get_many(["ssm:/aio/a", "ssm:/aio/b"])
            assert sorted(many) == ["ssm:/aio/a", "ssm:/aio/b"]

    asyncio.run(main())


# -- canary -----------------------------------------------------------------------------------------

def test_no_parameter_value_in_any_log_record_repr_or_error(ssm: Any) -> None:
    import logging

    value = canary_value("param-log")
    ssm.put_parameter(Name="/leak/a", Value=value, Type="SecureString")
    ssm.put_parameter(Name="/leak/json", Value=json.dumps({"k": value}), Type="SecureString")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # every logger, botocore's wire logs included
    try:
        b = backend()
        with SecretCache(b) as cache:
            shown = [repr(cache), repr(b), repr(cache.get_secret_value("ssm:/leak/a"))]
            shown.append(repr(cache.get_path("ssm:/leak/")))
            shown.append(repr(cache.get_many(["ssm:/leak/a", "ssm:/leak/json"])))
            errors: list[SecretCacheError] = []
            for bad in ("ssm:/leak/a#k", "ssm:/leak/json#nope"):
                try:
                    cache.get(bad)
                except SecretCacheError as e:
                    errors.append(e)
            assert len(errors) == 2
            shown += [f"{e!r} {e!s}" for e in errors]
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    assert any("GetParameter" in r or "ssm" in r for r in records)  # the wire was logged, redacted
    for text in [*records, *shown]:
        assert CANARY not in text


# -- the Lambda helper and fork -------------------------------------------------------------------------

def test_with_secrets_prefetches_parameters_with_one_get_parameters_call(aws: tuple[Any, Any]) -> None:
    from secretcache.aws_lambda import lambda_config, with_secrets

    ssm, sm = aws
    ssm.put_parameter(Name="/fn/url", Value="https://example", Type="String")
    ssm.put_parameter(Name="/fn/db", Value=json.dumps({"password": "pw"}), Type="SecureString")
    sm.create_secret(Name="fn/key", SecretString="k")
    b = backend()
    batch = ssm_calls(b, "GetParameters")
    single = ssm_calls(b, "GetParameter")
    cache = SecretCache(b, config=lambda_config())

    @with_secrets(cache=cache, url="ssm:/fn/url", password="ssm:/fn/db#password", key="fn/key")
    def handler(event: Any, context: Any, *, url: str, password: str, key: str) -> str:
        return f"{url} {password} {key}"

    assert len(batch) == 1  # at import time (the init phase)
    assert handler({}, None) == "https://example pw k"
    assert handler({}, None) == "https://example pw k"
    assert (len(batch), len(single)) == (1, 0)
    cache.close()


def test_a_forked_child_builds_its_own_ssm_client_and_reads(ssm: Any) -> None:
    from tests.fixtures.forking import fork_child, reap

    ssm.put_parameter(Name="/fork/a", Value="a", Type="String")
    b = backend()
    parent_client = b.ssm_client_for(None)
    with SecretCache(b) as cache:
        assert cache.get("ssm:/fork/a") == "a"

        def check() -> dict[str, Any]:
            return {"own_client": b.ssm_client_for(None) is not parent_client,
                    "cached": cache.peek("ssm:/fork/a") is not None,
                    "read": b.get_secret_value("ssm:/fork/a").secret_string}

        assert reap(*fork_child(check)) == {"own_client": True, "cached": True, "read": "a"}
