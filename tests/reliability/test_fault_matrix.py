"""The fault matrix: every fault the AWS side can throw at the cache x when it strikes x sync / async.

A real ``AwsBackend`` (boto3, one HTTP attempt) talks to moto's HTTP server through
:class:`devtools.faults.FaultProxy`, which replaces chosen requests with a fault. The clock the cache's policy
reads is fake, so ttl, stale windows and backoff are crossed exactly. Each case runs three steps:

1. the fault strikes (reads, or ``refresh()``),
2. the same again at once, the fault still on (proves backoff: never a second call),
3. the fault is gone; after the backoff window, the cache recovers (background retries are awaited).

The expected outcome of each step is written in ``OUTCOMES`` for (phase, kind of fault), the kind and
typed error of each fault in ``FAULTS``; the test asserts the value served (and whether it was fresh,
cached or stale), the exact error class and code, and the API calls counted both by the proxy and by
``cache.stats.backend_calls``. docs/reliability.md reproduces these tables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NamedTuple

import pytest

from devtools.faults import FaultProxy
from devtools.moto_helpers import moto_server_fixture
from secretcache import AsyncSecretCache, SecretCache
from secretcache.backends.aws import AwsBackend
from secretcache.config import CacheConfig
from secretcache.errors import (
    SecretAccessDeniedError,
    SecretCacheError,
    SecretDecryptionError,
    SecretDeletedError,
    SecretNotFoundError,
    SecretThrottledError,
    SecretUnavailableError,
)
from tests.fixtures.fakes import FakeClock, wait_until
from tests.fixtures.fix_canary import CANARY, canary_value

pytestmark = pytest.mark.integration

TTL, SWR, SIE, BASE, CAP = 60.0, 30.0, 600.0, 1.0, 8.0
HANG_TIMEOUT = 1.0  # the read timeout that ends a ``hang`` fault: short, so the hang cases stay quick
READ_TIMEOUT = 5.0  # every other case: far above moto's answer time on a loaded machine (0.25 s once was not)

moto_url = moto_server_fixture("module")

# -- the faults ------------------------------------------------------------------------------------

TRANSIENT, PERMANENT, BENIGN = "transient", "permanent", "benign"


class Fault(NamedTuple):
    kind: str
    error: type[SecretCacheError] | None  # the exact class a caller sees
    code: str | None  # its .code


FAULTS: dict[str, Fault] = {
    # mode                          kind        typed error (exact class)  .code
    "throttle":                  Fault(TRANSIENT, SecretThrottledError,    "ThrottlingException"),
    "5xx":                       Fault(TRANSIENT, SecretUnavailableError,  "InternalServiceError"),
    "503":                       Fault(TRANSIENT, SecretUnavailableError,  "ServiceUnavailable"),
    "502-html":                  Fault(TRANSIENT, SecretUnavailableError,  "502"),
    "hang":                      Fault(TRANSIENT, SecretUnavailableError,  None),  # ReadTimeoutError
    "fin":                       Fault(TRANSIENT, SecretUnavailableError,  None),  # ConnectionClosedError
    "rst":                       Fault(TRANSIENT, SecretUnavailableError,  None),  # ConnectionClosedError
    "truncate":                  Fault(TRANSIENT, SecretUnavailableError,  None),  # answer without a value
    "garbled":                   Fault(TRANSIENT, SecretUnavailableError,  None),  # 200, body not JSON
    "ResourceNotFoundException": Fault(PERMANENT, SecretNotFoundError,     "ResourceNotFoundException"),
    "AccessDeniedException":     Fault(PERMANENT, SecretAccessDeniedError, "AccessDeniedException"),
    "DecryptionFailure":         Fault(PERMANENT, SecretDecryptionError,   "DecryptionFailure"),
    "InvalidRequestException":   Fault(PERMANENT, SecretDeletedError,      "InvalidRequestException"),
    "InvalidParameterException": Fault(PERMANENT, SecretCacheError,        "InvalidParameterException"),
    "slow":                      Fault(BENIGN,    None,                    None),  # 50 ms, under the timeout
}

# -- the outcomes ----------------------------------------------------------------------------------


class Step(NamedTuple):
    """What one step yields: ``value`` ("v1"/"v2") served ``how``, or the fault's typed error; API calls made.

    ``how``: ``fresh`` (just fetched), ``hit`` (from cache, no call), ``stale`` (cached value served
    because the backend failed: ``stats.stale_served`` + 1), ``cached`` (within stale-while-revalidate:
    served at once, a background refresh runs). ``background``: the step started a background fetch,
    awaited before counting calls.
    """

    value: str | None
    how: str
    calls: int
    background: bool = False


def err(calls: int) -> Step:
    return Step(None, "error", calls)


def fresh(value: str) -> Step:
    return Step(value, "fresh", 1)


def hit(value: str) -> Step:
    return Step(value, "hit", 0)


def stale(value: str, calls: int = 0, *, background: bool = False) -> Step:
    return Step(value, "stale", calls, background)


def stale_retry(value: str) -> Step:
    """The cached value served stale while one background retry (an API call) runs."""
    return Step(value, "stale", 1, background=True)


def cached(value: str) -> Step:
    return Step(value, "cached", 1, background=True)


# Phases: cold = nothing cached. warm = v1 cached and expired (past ttl + stale_while_revalidate), v2
# written meanwhile. refresh = v1 cached inside the stale-while-revalidate window (a read starts a
# background refresh), v2 written. refresh() = v1 cached and fresh, v2 written, cache.refresh() called.
# rotation = v1 cached and expired, a rotation begun (v2 is AWSPENDING); step 2 finishes it (AWSCURRENT
# moves to v2) while the fault lasts.
OUTCOMES: dict[tuple[str, str], tuple[Step, Step, Step]] = {
    # (phase,      kind)         step 1: fault strikes   step 2: at once, again   step 3: fault gone
    ("cold",      TRANSIENT): (err(1),                  err(0),                  fresh("v1")),
    ("cold",      PERMANENT): (err(1),                  err(0),                  fresh("v1")),
    ("cold",      BENIGN):    (fresh("v1"),             hit("v1"),               hit("v1")),
    ("warm",      TRANSIENT): (stale("v1", 1),          stale("v1"),             stale_retry("v1")),
    ("warm",      PERMANENT): (err(1),                  err(0),                  fresh("v2")),
    ("warm",      BENIGN):    (fresh("v2"),             hit("v2"),               hit("v2")),
    ("refresh",   TRANSIENT): (cached("v1"),            stale("v1"),             stale_retry("v1")),
    ("refresh",   PERMANENT): (cached("v1"),            err(0),                  fresh("v2")),
    ("refresh",   BENIGN):    (cached("v1"),            hit("v2"),               hit("v2")),
    ("refresh()", TRANSIENT): (err(1),                  hit("v1"),               fresh("v2")),
    ("refresh()", PERMANENT): (err(1),                  hit("v1"),               fresh("v2")),
    ("refresh()", BENIGN):    (fresh("v2"),             hit("v2"),               fresh("v2")),
    ("rotation",  TRANSIENT): (stale("v1", 1),          stale("v1"),             stale_retry("v1")),
    ("rotation",  PERMANENT): (err(1),                  err(0),                  fresh("v2")),
    ("rotation",  BENIGN):    (fresh("v1"),             hit("v1"),               fresh("v2")),
}
"""After step 3 every case ends with one more read that must serve the newest value without a call."""

PHASES = ("cold", "warm", "refresh", "refresh()", "rotation")
CASES = [(fault, phase) for phase in PHASES for fault in FAULTS]


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_url) as p:
        yield p


@pytest.fixture(scope="module")
def admin(moto_url: str) -> Any:
    """A client straight to moto (no proxy, no faults) that writes the secrets."""
    import boto3

    return boto3.client("secretsmanager", endpoint_url=moto_url, region_name="us-east-1")


@pytest.fixture(scope="module")
def backend(proxy: FaultProxy) -> AwsBackend:
    """One backend (one boto3 client) for the module: building a client costs more than a matrix case."""
    return fast_backend(proxy.url)


@pytest.fixture(scope="module")
def hang_backend(proxy: FaultProxy) -> AwsBackend:
    """The backend for cases where the fault is a hang: its read timeout is what ends the hang."""
    return fast_backend(proxy.url, read_timeout=HANG_TIMEOUT)


def fast_backend(endpoint_url: str, read_timeout: float = READ_TIMEOUT, **retries: Any) -> AwsBackend:
    from botocore.config import Config

    config = Config(retries=retries or {"mode": "standard", "total_max_attempts": 1},
                    read_timeout=read_timeout, connect_timeout=5)
    return AwsBackend(endpoint_url=endpoint_url, region_name="us-east-1", config=config)


def matrix_config() -> CacheConfig:
    return CacheConfig(ttl=TTL, jitter=0.0, stale_while_revalidate=SWR, stale_if_error=SIE,
                       backoff_base=BASE, backoff_max=CAP)


class Face:
    """The sync or async cache behind one awaitable interface, so both faces run the same steps."""

    def __init__(self, kind: str, backend: AwsBackend, clock: FakeClock) -> None:
        self.kind = kind
        if kind == "sync":
            self.cache: Any = SecretCache(backend, config=matrix_config(), timer=clock)
        else:
            self.cache = AsyncSecretCache(backend, config=matrix_config(), timer=clock)

    async def read(self, secret_id: str) -> str:
        if self.kind == "sync":
            return self.cache.get_secret_string(secret_id)  # type: ignore[no-any-return]
        return await self.cache.get_secret_string(secret_id)  # type: ignore[no-any-return]

    async def refresh(self, secret_id: str) -> str:
        if self.kind == "sync":
            return self.cache.refresh(secret_id).secret_string  # type: ignore[no-any-return]
        return (await self.cache.refresh(secret_id)).secret_string  # type: ignore[no-any-return]

    async def close(self) -> None:
        if self.kind == "sync":
            self.cache.close()
        else:
            await self.cache.close()


class Case:
    """One secret with two versions, one cache, and the bookkeeping to check a step."""

    def __init__(self, proxy: FaultProxy, admin: Any, clock: FakeClock, face: Face, name: str) -> None:
        self.proxy, self.admin, self.clock, self.face, self.name = proxy, admin, clock, face, name
        self.values = {"v1": canary_value("v1"), "v2": canary_value("v2")}
        admin.create_secret(Name=name, SecretString=self.values["v1"])
        proxy.targets = {name}

    def stats(self) -> Any:
        return self.face.cache.stats

    def calls(self) -> int:
        return self.proxy.count("GetSecretValue", self.name)

    def settle(self, before: Any) -> None:
        """Wait until the background fetch a step started has finished (its outcome is recorded)."""
        def done() -> bool:
            now = self.stats()
            return now.errors + now.refreshes > before.errors + before.refreshes

        wait_until(done, timeout=10, what="the background refresh")

    async def check(self, step: Step, fault: Fault, action: Callable[[], Awaitable[str]], label: str) -> None:
        before_stats, before_calls = self.stats(), self.calls()
        if step.how == "error":
            assert fault.error is not None
            with pytest.raises(SecretCacheError) as info:
                await action()
            error = info.value
            expected = fault.error.__name__
            assert type(error) is fault.error, f"{label}: {type(error).__name__}, expected {expected}"
            assert error.code == fault.code, label
            assert error.secret_id == self.name, label
            assert error.__cause__ is not None, f"{label}: the backend's error must be chained"
            assert CANARY not in str(error)
            assert CANARY not in repr(error)
        else:
            served = await action()
            assert served == self.values[step.value or ""], f"{label}: served the wrong version"
        if step.background:
            self.settle(before_stats)
        after = self.stats()
        assert self.calls() - before_calls == step.calls, f"{label}: API calls seen by the proxy"
        assert after.backend_calls - before_stats.backend_calls == step.calls, f"{label}: stats.backend_calls"
        assert after.stale_served - before_stats.stale_served == (1 if step.how == "stale" else 0), label


# -- the matrix ------------------------------------------------------------------------------------


@pytest.mark.parametrize("face_kind", ["sync", "async"])
@pytest.mark.parametrize(("fault_mode", "phase"), CASES, ids=[f"{p}-{f}" for f, p in CASES])
async def test_fault_matrix(
    fault_mode: str, phase: str, face_kind: str, proxy: FaultProxy, admin: Any, backend: AwsBackend,
    hang_backend: AwsBackend,
) -> None:
    fault = FAULTS[fault_mode]
    step1, step2, step3 = OUTCOMES[(phase, fault.kind)]
    clock = FakeClock()
    face = Face(face_kind, hang_backend if fault_mode == "hang" else backend, clock)
    name = f"matrix/{face_kind}/{phase.strip('()')}{'-call' if phase.endswith(')') else ''}/{fault_mode}"
    case = Case(proxy, admin, clock, face, name)
    read: Callable[[], Awaitable[str]] = lambda: face.read(name)  # noqa: E731
    try:
        # -- set the phase up (no fault yet)
        if phase != "cold":
            assert await face.read(name) == case.values["v1"]
            if phase == "rotation":
                pending = admin.put_secret_value(SecretId=name, SecretString=case.values["v2"],
                                                 VersionStages=["AWSPENDING"])["VersionId"]
            else:
                admin.put_secret_value(SecretId=name, SecretString=case.values["v2"])
            expire = {"warm": TTL + SWR + 1, "rotation": TTL + SWR + 1, "refresh": TTL + 1}
            clock.advance(expire.get(phase, 0))
        first = face.refresh if phase == "refresh()" else face.read

        # -- step 1: the fault strikes
        proxy.fail(fault_mode)
        await case.check(step1, fault, lambda: first(name), f"{phase}/{fault_mode} step 1")

        # -- step 2: again at once, the fault still on (a rotation finishes meanwhile)
        if phase == "rotation":
            current = next(v["VersionId"] for v in admin.list_secret_version_ids(SecretId=name)["Versions"]
                           if "AWSCURRENT" in v["VersionStages"])
            admin.update_secret_version_stage(SecretId=name, VersionStage="AWSCURRENT",
                                              MoveToVersionId=pending, RemoveFromVersionId=current)
        await case.check(step2, fault, read, f"{phase}/{fault_mode} step 2")

        # -- step 3: the fault is gone; past the backoff window (and for rotation, past the ttl)
        proxy.clear()
        clock.advance(CAP + 1 + (TTL + SWR if phase == "rotation" else 0))
        await case.check(step3, fault, lambda: first(name), f"{phase}/{fault_mode} step 3")

        # -- finally: the newest value, served from the cache
        newest = "v1" if phase == "cold" else "v2"
        calls = case.calls()
        assert await face.read(name) == case.values[newest]
        assert case.calls() == calls, "the recovered value must be served from the cache"
    finally:
        proxy.clear()
        proxy.targets = None
        await face.close()


def test_the_matrix_covers_every_fault_and_phase() -> None:
    """Matrix size: 15 faults x 5 phases x 2 faces; every (phase, kind) has its written outcome."""
    assert len(CASES) * 2 == 150
    assert {(phase, f.kind) for phase in PHASES for f in FAULTS.values()} == set(OUTCOMES)


# -- botocore's own retries on ---------------------------------------------------------------------


def test_with_botocore_standard_retries_a_transient_burst_is_absorbed_in_one_backend_call(
    proxy: FaultProxy, admin: Any
) -> None:
    name = "matrix/retries/absorbed"
    value = canary_value("retries")
    admin.create_secret(Name=name, SecretString=value)
    proxy.targets = {name}
    try:
        retrying = fast_backend(proxy.url, mode="standard", total_max_attempts=3)
        cache = SecretCache(retrying, config=matrix_config())
        proxy.script("5xx", "rst")  # two failed HTTP attempts, then moto answers
        assert cache.get_secret_string(name) == value
        assert proxy.count("GetSecretValue", name) == 3  # botocore retried twice...
        assert cache.stats.backend_calls == 1  # ...inside one backend call
        assert cache.stats.errors == 0

        proxy.fail("503")  # every attempt fails: botocore gives up after 3, the cache raises once
        with pytest.raises(SecretUnavailableError) as info:
            cache.refresh(name)
        assert info.value.code == "ServiceUnavailable"
        assert proxy.count("GetSecretValue", name) == 6
        assert cache.stats.backend_calls == 2
        assert cache.get_secret_string(name) == value  # the fresh value is still served
        cache.close()
    finally:
        proxy.clear()
        proxy.targets = None


def test_with_botocore_standard_retries_a_throttle_then_success_is_one_backend_call(
    proxy: FaultProxy, admin: Any
) -> None:
    name = "matrix/retries/throttle"
    value = canary_value("throttle")
    admin.create_secret(Name=name, SecretString=value)
    proxy.targets = {name}
    try:
        retrying = fast_backend(proxy.url, mode="standard", total_max_attempts=2)
        cache = SecretCache(retrying, config=matrix_config())
        proxy.script("throttle")
        assert cache.get_secret_string(name) == value
        assert proxy.count("GetSecretValue", name) == 2
        assert cache.stats.backend_calls == 1
        assert cache.stats.errors == 0
        cache.close()
    finally:
        proxy.clear()
        proxy.targets = None


# -- prefetch under faults -------------------------------------------------------------------------


def test_prefetch_falls_back_to_one_read_per_secret_when_the_batch_call_is_denied(
    proxy: FaultProxy, admin: Any, backend: AwsBackend
) -> None:
    names = [f"matrix/prefetch/denied/{i}" for i in range(3)]
    values = {n: canary_value(f"pf{i}") for i, n in enumerate(names)}
    for n, v in values.items():
        admin.create_secret(Name=n, SecretString=v)
    proxy.reset_counts()
    try:
        cache = SecretCache(backend, config=matrix_config())
        proxy.script("AccessDeniedException")  # IAM allows GetSecretValue but not BatchGetSecretValue
        assert cache.prefetch(names) == {}
        assert proxy.count("BatchGetSecretValue") == 1
        assert sum(proxy.count("GetSecretValue", n) for n in names) == 3
        assert [cache.get_secret_string(n) for n in names] == [values[n] for n in names]
        assert sum(proxy.count("GetSecretValue", n) for n in names) == 3  # all served from the cache now
        cache.close()
    finally:
        proxy.clear()


@pytest.mark.parametrize(("mode", "error"), [
    ("throttle", SecretThrottledError), ("5xx", SecretUnavailableError), ("rst", SecretUnavailableError),
])
def test_prefetch_reports_a_transient_batch_failure_per_secret_without_adding_calls(
    mode: str, error: type[SecretCacheError], proxy: FaultProxy, admin: Any, backend: AwsBackend
) -> None:
    """A throttled or unreachable service gets no N single calls on top: each id reports the failure."""
    names = [f"matrix/prefetch/{mode}/{i}" for i in range(3)]
    for i, n in enumerate(names):
        admin.create_secret(Name=n, SecretString=canary_value(f"pt{i}"))
    proxy.reset_counts()
    try:
        cache = SecretCache(backend, config=matrix_config())
        proxy.script(mode)
        failures = cache.prefetch(names)
        assert set(failures) == set(names)
        assert all(type(e) is error and e.secret_id == n for n, e in failures.items())
        assert proxy.count("BatchGetSecretValue") == 1
        assert proxy.count("GetSecretValue") == 0
        assert cache.get_secret_string(names[0])  # nothing was cached or backed off: a read fetches
        cache.close()
    finally:
        proxy.clear()


def test_prefetch_reports_each_failure_by_id_and_never_raises(
    proxy: FaultProxy, admin: Any, backend: AwsBackend
) -> None:
    names = [f"matrix/prefetch-fail/{i}" for i in range(2)]
    for n in names:
        admin.create_secret(Name=n, SecretString=canary_value("pff"))
    try:
        cache = SecretCache(backend, config=matrix_config())
        proxy.fail("503")  # the batch call and every fallback read
        failures = cache.prefetch(names)
        assert set(failures) == set(names)
        assert all(type(e) is SecretUnavailableError for e in failures.values())
        cache.close()
    finally:
        proxy.clear()


async def test_async_faces_never_block_the_event_loop_while_a_fetch_hangs(
    proxy: FaultProxy, admin: Any, hang_backend: AwsBackend
) -> None:
    """While one secret's fetch hangs in a worker thread, the loop keeps running other coroutines."""
    name = "matrix/async/hang-isolation"
    admin.create_secret(Name=name, SecretString=canary_value("iso"))
    proxy.targets = {name}
    cache = AsyncSecretCache(hang_backend, config=matrix_config())
    try:
        proxy.fail("hang")
        task = asyncio.ensure_future(cache.get_secret_string(name))
        ticks = 0
        while not task.done():
            ticks += 1
            await asyncio.sleep(0)
        with pytest.raises(SecretUnavailableError):
            await task
        assert ticks > 10, "the event loop was blocked while the fetch hung"
    finally:
        proxy.clear()
        proxy.targets = None
        await cache.close()
