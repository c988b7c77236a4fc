"""Answers are checked (DESIGN.md, "Process life and answer integrity").

An answer whose ``Name``/``ARN`` does not match the id asked for (a name, a partial ARN or a full ARN), or
whose ``VersionId`` differs from a requested ``version_id``, is a transient ``SecretUnavailableError``: never
cached, never returned. A cold read raises it (naming the id asked); a warm one serves the right secret's
stale value. BatchGetSecretValue answers naming other secrets are not stored under the ids asked.

Over HTTP, :class:`devtools.faults.FaultProxy`'s ``rewrite`` mode crosses moto's answers as a socket shared
between processes would; a custom ``SecretsBackend`` does the same without a network.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from devtools.faults import FaultProxy
from devtools.moto_helpers import moto_server_fixture
from secretcache import AsyncSecretCache, SecretCache
from secretcache.backends.aws import AwsBackend
from secretcache.config import CacheConfig
from secretcache.errors import SecretCacheError, SecretUnavailableError
from secretcache.model import SecretValue
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value

moto_url = moto_server_fixture("module")

CROSSED = ("Name", "ARN", "SecretString", "VersionId")  # the whole answer of another secret
RENAMED = ("Name", "ARN")  # the right value under another secret's name
ARN_ONLY = ("ARN",)


pytestmark = pytest.mark.usefixtures("no_refresh_workers_left")


def _config() -> CacheConfig:
    # No backoff: a read right after a refused answer tries again, so each step is one API call.
    return CacheConfig(ttl=300.0, jitter=0.0, stale_while_revalidate=0.0, stale_if_error=3600.0,
                       backoff_base=0.0, backoff_max=0.0)


def id_of(form: str, name: str, arn: str) -> str:
    return {"name": name, "full-arn": arn, "partial-arn": arn[:-7]}[form]


# -- over HTTP, through the proxy's rewrite mode ---------------------------------------------------------


class World:
    def __init__(self, moto: str, proxy: FaultProxy) -> None:
        import boto3

        self.proxy = proxy
        self.admin = boto3.client("secretsmanager", endpoint_url=moto, region_name="us-east-1")
        self.values: dict[str, str] = {}
        self.arns: dict[str, str] = {}
        self.versions: dict[str, list[str]] = {}

    def secret(self, name: str) -> str:
        if name not in self.values:
            value = canary_value(name)
            answer = self.admin.create_secret(Name=name, SecretString=value)
            self.values[name], self.arns[name] = value, answer["ARN"]
            self.versions[name] = [answer["VersionId"]]
        return name

    def whose(self, value: str | None) -> str:
        return next((n for n, v in self.values.items() if v == value), "<no known secret>")

    def cache(self, kind: str = "sync") -> Any:
        from botocore.config import Config

        backend = AwsBackend(endpoint_url=self.proxy.url, region_name="us-east-1", config=Config(
            retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=5))
        cls = SecretCache if kind == "sync" else AsyncSecretCache
        return cls(backend, config=_config())


@pytest.fixture(scope="module")
def world(moto_url: str) -> Iterator[World]:
    with FaultProxy(moto_url) as proxy:
        yield World(moto_url, proxy)


@pytest.fixture
def proxy(world: World) -> Iterator[FaultProxy]:
    yield world.proxy
    world.proxy.clear()
    world.proxy.targets = None
    world.proxy.rewrite({})


FORMS = ["name", "full-arn", "partial-arn"]
REWRITES = {"crossed": CROSSED, "renamed": RENAMED, "arn-only": ARN_ONLY}
CASES = [(form, how) for form in FORMS for how in REWRITES if not (form == "name" and how == "arn-only")]


@pytest.mark.integration
@pytest.mark.parametrize("form", FORMS)
def test_right_answers_are_accepted_for_every_id_form(world: World, proxy: FaultProxy, form: str) -> None:
    name = world.secret("check/right")
    cache = world.cache()
    asked = id_of(form, name, world.arns[name])
    assert cache.get_secret_string(asked) == world.values[name]
    assert cache.refresh(asked).secret_string == world.values[name]
    cache.close()


@pytest.mark.integration
@pytest.mark.parametrize(("form", "how"), CASES)
def test_cold_read_answered_for_another_secret_raises_and_caches_nothing(
    world: World, proxy: FaultProxy, form: str, how: str
) -> None:
    name, other = world.secret(f"check/cold-{form}-{how}"), world.secret("check/other")
    asked = id_of(form, name, world.arns[name])
    cache = world.cache()
    proxy.targets = {asked}
    proxy.rewrite({asked: other}, fields=REWRITES[how])
    proxy.fail("rewrite")
    for _ in range(2):
        outcome = _outcome(cache, asked)
        assert isinstance(outcome, SecretUnavailableError), \
            f"{how} answer for a {form} id: got {world.whose(outcome) if isinstance(outcome, str) else outcome!r}"
        assert outcome.secret_id == asked
    assert cache.peek(asked) is None, "a crossed answer was cached under the id asked"
    assert cache.peek(other) is None, "a crossed answer was cached under the other secret's name"
    proxy.clear()
    assert cache.get_secret_string(asked) == world.values[name]  # the right answer is taken at once
    cache.close()


def _outcome(cache: SecretCache, secret_id: str) -> str | BaseException:
    try:
        return cache.get_secret_string(secret_id)
    except Exception as e:
        return e


@pytest.mark.integration
@pytest.mark.parametrize(("form", "how"), CASES)
def test_warm_read_answered_for_another_secret_serves_the_right_stale_value(
    world: World, proxy: FaultProxy, form: str, how: str
) -> None:
    name, other = world.secret(f"check/warm-{form}-{how}"), world.secret("check/other")
    asked = id_of(form, name, world.arns[name])
    cache = world.cache()
    assert cache.get_secret_string(asked) == world.values[name]
    cache.mark_stale()  # past ttl + stale_while_revalidate: the next read fetches
    proxy.targets = {asked}
    proxy.rewrite({asked: other}, fields=REWRITES[how])
    proxy.fail("rewrite")
    stale_before = cache.stats.stale_served
    for _ in range(2):
        got = cache.get_secret_string(asked)
        assert got == world.values[name], f"{how} answer for a {form} id: served the value of {world.whose(got)}"
    assert cache.stats.stale_served > stale_before, "the crossed answer was taken as a fresh value"
    assert proxy.count("GetSecretValue", asked) >= 1
    proxy.clear()
    assert cache.refresh(asked).secret_string == world.values[name]
    cache.close()


@pytest.mark.integration
async def test_async_cold_read_answered_for_another_secret_raises(world: World, proxy: FaultProxy) -> None:
    name, other = world.secret("check/async"), world.secret("check/other")
    cache = world.cache("async")
    proxy.targets = {name}
    proxy.rewrite({name: other}, fields=CROSSED)
    proxy.fail("rewrite")
    with pytest.raises(SecretUnavailableError) as info:
        await cache.get_secret_string(name)
    assert info.value.secret_id == name
    assert cache.peek(name) is None
    proxy.clear()
    assert await cache.get_secret_string(name) == world.values[name]
    await cache.close()


@pytest.mark.integration
@pytest.mark.parametrize("form", FORMS)
def test_version_id_answered_with_another_version_is_refused(
    world: World, proxy: FaultProxy, form: str
) -> None:
    name = world.secret(f"check/version-{form}")
    first = world.versions[name][0]
    newer = canary_value(f"{name}-v2")
    world.admin.put_secret_value(SecretId=name, SecretString=newer)  # AWSCURRENT moves to a new version
    asked = id_of(form, name, world.arns[name])
    cache = world.cache()
    proxy.targets = {asked}
    proxy.rewrite({asked: name}, fields=("VersionId", "SecretString"))  # the AWSCURRENT answer instead
    proxy.fail("rewrite")
    with pytest.raises(SecretUnavailableError) as info:
        cache.get_secret_value(asked, version_id=first)
    assert info.value.secret_id == asked
    assert cache.peek(asked, version_id=first) is None
    proxy.clear()
    value = cache.get_secret_value(asked, version_id=first)
    assert value.version_id == first
    assert value.secret_string == world.values[name]
    cache.close()


@pytest.mark.integration
@pytest.mark.parametrize("how", ["crossed", "renamed"])
@pytest.mark.parametrize("form", FORMS)
def test_batch_answers_naming_other_secrets_are_not_stored_under_the_ids_asked(
    world: World, proxy: FaultProxy, form: str, how: str
) -> None:
    alpha = world.secret(f"check/batch-{form}-{how}")
    beta, gamma = world.secret("check/batch-beta"), world.secret("check/batch-gamma")
    asked = [id_of(form, alpha, world.arns[alpha]), beta]
    cache = world.cache()
    proxy.rewrite({alpha: gamma}, fields=REWRITES[how])  # alpha's entry answers as gamma
    proxy.script("rewrite")  # the batch call only; a follow-up single read of alpha gets moto's answer
    failures = cache.prefetch(asked)
    assert set(failures) <= {asked[0]}
    assert all(isinstance(e, SecretCacheError) for e in failures.values())
    peeked = cache.peek(asked[0])
    assert peeked is None or peeked.secret_string == world.values[alpha], \
        f"stored under {asked[0]!r}: the value of {world.whose(peeked.secret_string)}"
    assert cache.peek(gamma) is None or cache.peek(gamma).secret_string == world.values[gamma], \
        "alpha's value was stored under gamma's name"
    assert cache.get_secret_string(beta) == world.values[beta]
    proxy.clear()
    assert cache.get_secret_string(asked[0]) == world.values[alpha]
    cache.close()


# -- without a network: a backend that answers with the wrong secret -------------------------------------


class CrossingBackend:
    """An ``InMemoryBackend`` whose answers for the ids in ``cross`` are another secret's (or version's)."""

    def __init__(self, values: dict[str, str]) -> None:
        self.store = InMemoryBackend(values)
        self.cross: dict[str, str] = {}  # id asked -> the secret whose answer is returned
        self.wrong_version: set[str] = set()  # ids whose version_id reads return AWSCURRENT instead
        self.calls = 0

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        self.calls += 1
        if secret_id in self.cross:
            return self.store.get_secret_value(self.cross[secret_id])
        if version_id is not None and secret_id in self.wrong_version:
            return self.store.get_secret_value(secret_id)
        return self.store.get_secret_value(secret_id, version_id=version_id, version_stage=version_stage)

    def batch_get_secret_values(
        self, secret_ids: Sequence[str]
    ) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
        return self.store.batch_get_secret_values([self.cross.get(i, i) for i in secret_ids])


@pytest.fixture
def crossing() -> tuple[CrossingBackend, dict[str, str]]:
    values = {name: canary_value(name) for name in ("unit/alpha", "unit/beta")}
    return CrossingBackend(values), values


@pytest.mark.parametrize("form", FORMS)
def test_unit_a_value_named_differently_is_refused_cold_and_served_stale_warm(
    crossing: tuple[CrossingBackend, dict[str, str]], form: str
) -> None:
    backend, values = crossing
    asked = id_of(form, "unit/alpha", backend.store.arn("unit/alpha"))
    cache = SecretCache(backend, config=_config())
    backend.cross[asked] = "unit/beta"
    with pytest.raises(SecretUnavailableError) as info:
        cache.get_secret_string(asked)
    assert info.value.secret_id == asked
    assert cache.peek(asked) is None
    del backend.cross[asked]
    assert cache.get_secret_string(asked) == values["unit/alpha"]
    cache.mark_stale()
    backend.cross[asked] = "unit/beta"
    assert cache.get_secret_string(asked) == values["unit/alpha"], "the other secret's value was served"
    assert cache.stats.stale_served >= 1
    with pytest.raises(SecretUnavailableError):
        cache.refresh(asked)  # a forced read never falls back to the stale value, nor takes the wrong one
    assert cache.get_secret_string(asked) == values["unit/alpha"]
    cache.close()


def test_unit_right_answers_are_accepted_for_every_id_form(
    crossing: tuple[CrossingBackend, dict[str, str]]
) -> None:
    backend, values = crossing
    arn = backend.store.arn("unit/alpha")
    cache = SecretCache(backend, config=_config())
    for asked in ("unit/alpha", arn, arn[:-7]):
        assert cache.get_secret_string(asked) == values["unit/alpha"]
        assert cache.refresh(asked).secret_string == values["unit/alpha"]
    cache.close()


def test_unit_version_id_answered_with_another_version_is_refused(
    crossing: tuple[CrossingBackend, dict[str, str]]
) -> None:
    backend, values = crossing
    first = backend.store.get_secret_value("unit/alpha").version_id
    assert first is not None
    backend.store.put_secret("unit/alpha", canary_value("alpha-v2"))
    cache = SecretCache(backend, config=_config())
    backend.wrong_version.add("unit/alpha")
    with pytest.raises(SecretUnavailableError) as info:
        cache.get_secret_value("unit/alpha", version_id=first)
    assert info.value.secret_id == "unit/alpha"
    assert cache.peek("unit/alpha", version_id=first) is None
    backend.wrong_version.clear()
    assert cache.get_secret_value("unit/alpha", version_id=first).secret_string == values["unit/alpha"]
    cache.close()


async def test_unit_async_value_named_differently_is_refused(
    crossing: tuple[CrossingBackend, dict[str, str]]
) -> None:
    backend, values = crossing
    cache = AsyncSecretCache(backend, config=_config())
    backend.cross["unit/alpha"] = "unit/beta"
    with pytest.raises(SecretUnavailableError):
        await cache.get_secret_string("unit/alpha")
    assert cache.peek("unit/alpha") is None
    backend.cross.clear()
    assert await cache.get_secret_string("unit/alpha") == values["unit/alpha"]
    await cache.close()
