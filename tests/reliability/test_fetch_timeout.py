"""Every wait is bounded: ``CacheConfig.fetch_timeout`` (DESIGN.md, "Process life and answer integrity").

``fetch_timeout`` bounds the whole fetch a reader waits for, not each socket read: past it the reader gets
the stale value where ``stale_if_error`` allows, otherwise ``SecretUnavailableError``. The network case uses
the FaultProxy's ``trickle`` mode: moto's answer arrives a few bytes at a time, each pause well under
botocore's ``read_timeout`` (so botocore never times out) and the whole answer far beyond ``fetch_timeout``.
The no-network case holds an ``InMemoryBackend`` call at a gate.

These are "no unbounded wait" guarantees, so the tests bound the wait, generously: ``fetch_timeout`` plus
``MARGIN`` seconds. The outcome (stale value or error) is what they assert on.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.faults import FaultProxy
from devtools.moto_helpers import moto_server_fixture
from secretcache import AsyncSecretCache, SecretCache
from secretcache.backends.aws import AwsBackend
from secretcache.config import CacheConfig
from secretcache.errors import SecretUnavailableError
from secretcache.testing import InMemoryBackend
from tests.fixtures.fix_canary import canary_value

FETCH_TIMEOUT = 1.0
MARGIN = 6.0  # generous for a loaded machine; the trickle lasts ~20 s, so a wait bounded by it fails
READ_TIMEOUT = 3.0  # botocore's per-read timeout: above the proxy's pause between chunks
HANG_BOUND = 60.0  # a reader still waiting after this has hung: the test fails instead of stalling

moto_url = moto_server_fixture("module")


pytestmark = pytest.mark.usefixtures("no_refresh_workers_left")


def _config(fetch_timeout: float = FETCH_TIMEOUT) -> CacheConfig:
    return CacheConfig(ttl=300.0, jitter=0.0, stale_while_revalidate=0.0, stale_if_error=3600.0,
                       backoff_base=0.0, backoff_max=0.0, fetch_timeout=fetch_timeout)


def timed(read: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``read`` on a thread; its result (or exception) and the seconds it took. A hang fails the test."""
    box: list[Any] = []

    def body() -> None:
        try:
            box.append(read())
        except BaseException as e:
            box.append(e)

    started = time.monotonic()
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(HANG_BOUND)
    assert not thread.is_alive(), f"the read was still waiting after {HANG_BOUND} s"
    return box[0], time.monotonic() - started


async def atimed(read: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        outcome = await asyncio.wait_for(read(), HANG_BOUND)
    except asyncio.TimeoutError:
        pytest.fail(f"the read was still waiting after {HANG_BOUND} s")
    except Exception as e:
        outcome = e
    return outcome, time.monotonic() - started


def test_fetch_timeout_defaults_to_ten_seconds() -> None:
    assert CacheConfig().fetch_timeout == 10.0
    assert CacheConfig(fetch_timeout=0.5).fetch_timeout == 0.5
    with pytest.raises(ValueError, match="fetch_timeout"):
        CacheConfig(fetch_timeout=-1.0)


# -- over the network: an answer that trickles in ----------------------------------------------------------


class Trickle:
    def __init__(self, moto: str, proxy: FaultProxy) -> None:
        import boto3

        self.proxy = proxy
        self.admin = boto3.client("secretsmanager", endpoint_url=moto, region_name="us-east-1")
        self.values: dict[str, str] = {}

    def secret(self, name: str) -> str:
        self.values[name] = canary_value(name)
        self.admin.create_secret(Name=name, SecretString=self.values[name])
        return name

    def backend(self) -> AwsBackend:
        from botocore.config import Config

        backend = AwsBackend(endpoint_url=self.proxy.url, region_name="us-east-1", config=Config(
            retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=READ_TIMEOUT))
        # Built now: loading botocore's models can take over FETCH_TIMEOUT on a loaded machine, and the
        # reads under test are about the answer trickling in, not about starting a client.
        backend.client_for(None)
        return backend

    def trickle(self, name: str) -> None:
        self.proxy.targets = {name}
        self.proxy.fail("trickle")


@pytest.fixture(scope="module")
def net(moto_url: str) -> Iterator[Trickle]:
    # 4 bytes every 0.25 s: a ~300-byte answer takes ~20 s, and no single read waits past 0.25 s.
    with FaultProxy(moto_url, trickle_bytes=4, trickle_pause=0.25) as proxy:
        yield Trickle(moto_url, proxy)


@pytest.fixture
def trickling(net: Trickle) -> Iterator[Trickle]:
    yield net
    net.proxy.clear()  # releases the trickling handler threads
    net.proxy.targets = None


@pytest.mark.integration
def test_warm_read_past_ttl_gets_the_stale_value_within_fetch_timeout(trickling: Trickle) -> None:
    name = trickling.secret("timeout/warm-sync")
    cache = SecretCache(trickling.backend(), config=_config())
    assert cache.get_secret_string(name) == trickling.values[name]
    cache.mark_stale()  # past ttl + stale_while_revalidate: the next read waits for a fetch
    trickling.trickle(name)
    outcome, took = timed(lambda: cache.get_secret_string(name))
    assert outcome == trickling.values[name], f"expected the stale value, got {type(outcome).__name__}"
    assert took < FETCH_TIMEOUT + MARGIN, f"the reader waited {took:.1f} s for a trickling answer"
    assert trickling.proxy.count("GetSecretValue", name) >= 1
    cache.close()


@pytest.mark.integration
def test_cold_read_raises_unavailable_within_fetch_timeout(trickling: Trickle) -> None:
    name = trickling.secret("timeout/cold-sync")
    cache = SecretCache(trickling.backend(), config=_config())
    trickling.trickle(name)
    outcome, took = timed(lambda: cache.get_secret_string(name))
    assert isinstance(outcome, SecretUnavailableError), f"got {type(outcome).__name__}"
    assert outcome.secret_id == name
    assert took < FETCH_TIMEOUT + MARGIN, f"the reader waited {took:.1f} s for a trickling answer"
    cache.close()


@pytest.mark.integration
async def test_async_warm_read_gets_the_stale_value_within_fetch_timeout(trickling: Trickle) -> None:
    name = trickling.secret("timeout/warm-async")
    cache = AsyncSecretCache(trickling.backend(), config=_config())
    assert await cache.get_secret_string(name) == trickling.values[name]
    cache.mark_stale()
    trickling.trickle(name)
    outcome, took = await atimed(lambda: cache.get_secret_string(name))
    assert outcome == trickling.values[name], f"expected the stale value, got {type(outcome).__name__}"
    assert took < FETCH_TIMEOUT + MARGIN, f"the reader waited {took:.1f} s for a trickling answer"
    await cache.close()


@pytest.mark.integration
async def test_async_cold_read_raises_unavailable_within_fetch_timeout(trickling: Trickle) -> None:
    name = trickling.secret("timeout/cold-async")
    cache = AsyncSecretCache(trickling.backend(), config=_config())
    trickling.trickle(name)
    outcome, took = await atimed(lambda: cache.get_secret_string(name))
    assert isinstance(outcome, SecretUnavailableError), f"got {type(outcome).__name__}"
    assert took < FETCH_TIMEOUT + MARGIN, f"the reader waited {took:.1f} s for a trickling answer"
    await cache.close()


# -- without a network: a call held at a gate --------------------------------------------------------------


@pytest.fixture
def held() -> Iterator[tuple[InMemoryBackend, dict[str, str]]]:
    values = {name: canary_value(name) for name in ("held/warm", "held/cold")}
    backend = InMemoryBackend(values)
    yield backend, values
    backend.heal()  # opens every gate: the held calls finish, their threads end


def test_held_call_warm_read_gets_the_stale_value_within_fetch_timeout(
    held: tuple[InMemoryBackend, dict[str, str]]
) -> None:
    backend, values = held
    cache = SecretCache(backend, config=_config(0.5))
    assert cache.get_secret_string("held/warm") == values["held/warm"]
    cache.mark_stale()
    backend.hold(secret_id="held/warm")
    outcome, took = timed(lambda: cache.get_secret_string("held/warm"))
    assert outcome == values["held/warm"], f"expected the stale value, got {type(outcome).__name__}"
    assert took < 0.5 + MARGIN
    cache.close()


def test_held_call_cold_read_raises_unavailable_within_fetch_timeout(
    held: tuple[InMemoryBackend, dict[str, str]]
) -> None:
    backend, _ = held
    cache = SecretCache(backend, config=_config(0.5))
    backend.hold(secret_id="held/cold")
    outcome, took = timed(lambda: cache.get_secret_string("held/cold"))
    assert isinstance(outcome, SecretUnavailableError), f"got {type(outcome).__name__}"
    assert outcome.secret_id == "held/cold"
    assert took < 0.5 + MARGIN
    # Every reader joining the held fetch is bounded too, not only the one that started it.
    outcomes = [timed(lambda: cache.get_secret_string("held/cold")) for _ in range(2)]
    for outcome, took in outcomes:
        assert isinstance(outcome, SecretUnavailableError), f"a joining reader got {type(outcome).__name__}"
        assert took < 0.5 + MARGIN
    cache.close()


async def test_held_call_async_reads_are_bounded(held: tuple[InMemoryBackend, dict[str, str]]) -> None:
    backend, values = held
    cache = AsyncSecretCache(backend, config=_config(0.5))
    assert await cache.get_secret_string("held/warm") == values["held/warm"]
    cache.mark_stale()
    backend.hold()
    warm, took_warm = await atimed(lambda: cache.get_secret_string("held/warm"))
    cold, took_cold = await atimed(lambda: cache.get_secret_string("held/cold"))
    assert warm == values["held/warm"], f"expected the stale value, got {type(warm).__name__}"
    assert isinstance(cold, SecretUnavailableError), f"got {type(cold).__name__}"
    assert max(took_warm, took_cold) < 0.5 + MARGIN
    await cache.close()
