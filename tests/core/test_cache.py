"""SecretCache: the hit path, reads and references, versions, bad input, invalidate/LRU/mark_stale,
stats and events, prefetch, lifecycle. What it shares with AsyncSecretCache (typed reads, reference forms,
format and input errors, versions, invalidate, mark_stale, prefetch) runs on both faces in test_faces.py.
Policy details (SWR, backoff, stale-if-error) are in test_cache_policy.py; concurrency in
test_cache_concurrency.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from secretcache import (
    CacheEvent,
    InvalidReferenceError,
    SecretCache,
    SecretDeletedError,
    SecretFormatError,
    SecretNotFoundError,
    SecretValue,
)
from secretcache.testing import InMemoryBackend
from tests.fixtures.fakes import (
    CountingLock,
    FakeClock,
    wait_until,
)
from tests.fixtures.fix_cache import SWR, TTL, config
from tests.fixtures.fix_canary import CANARY, canary_value

pytestmark = pytest.mark.usefixtures("no_refresh_workers_left")


@pytest.fixture
def cache(store: InMemoryBackend, clock: FakeClock) -> Iterator[SecretCache]:
    with SecretCache(store, config=config(), timer=clock) as c:
        yield c


def gets(store: InMemoryBackend) -> int:
    return store.calls["GetSecretValue"]


# -- the hit path -----------------------------------------------------------------------------------

HIT_READS = [
    ("get_secret_value", lambda c, vid: c.get_secret_value("app/db")),
    ("get_secret_string", lambda c, vid: c.get_secret_string("app/db")),
    ("get id", lambda c, vid: c.get("app/db")),
    ("get id#key", lambda c, vid: c.get("app/db#password")),
    ("get_secret_json", lambda c, vid: c.get_secret_json("app/db")),
    ("explicit AWSCURRENT", lambda c, vid: c.get_secret_value("app/db", version_stage="AWSCURRENT")),
    ("AWSPREVIOUS", lambda c, vid: c.get_secret_value("app/db", version_stage="AWSPREVIOUS")),
    ("version_id", lambda c, vid: c.get_secret_value("app/db", version_id=vid)),
    ("binary", lambda c, vid: c.get_secret_binary("app/blob")),
]


@pytest.mark.parametrize("with_hook", [False, True], ids=["no-hook", "event-hook"])
@pytest.mark.parametrize(("label", "read"), HIT_READS, ids=[label for label, _ in HIT_READS])
def test_hit_path_takes_no_lock(store: InMemoryBackend, clock: FakeClock, label: str, read: Any,
                                with_hook: bool) -> None:
    store.rotate("app/db", json.dumps({"password": canary_value("new")}))
    version_id = store.version_stages("app/db")
    vid = next(v for v, stages in version_id.items() if "AWSCURRENT" in stages)
    events: list[CacheEvent] = []
    cache = SecretCache(store, config=config(), on_event=events.append if with_hook else None, timer=clock)
    read(cache, vid)
    counting = CountingLock(cache._core._lock)
    cache._core._lock = counting  # type: ignore[assignment]
    calls = gets(store)
    for _ in range(200):
        read(cache, vid)
        clock.advance(0.01)
    assert counting.acquired == 0
    assert gets(store) == calls
    if with_hook:
        assert sum(e.kind == "hit" for e in events) == 200


class _NoEnviron(Mapping[str, str]):
    """An environment that fails the test on any read."""

    def __getitem__(self, key: str) -> str:
        raise AssertionError(f"environment read on the hit path ({key!r})")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("environment read on the hit path")

    def __len__(self) -> int:
        raise AssertionError("environment read on the hit path")

    def get(self, key: str, default: Any = None) -> Any:
        raise AssertionError(f"environment read on the hit path ({key!r})")


def test_hit_path_reads_no_environment_variable(cache: SecretCache, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.get_secret_string("app/db")
    with monkeypatch.context() as m:
        m.setattr(os, "environ", _NoEnviron())
        m.setattr(os, "getenv", lambda *a, **k: pytest.fail("os.getenv on the hit path"))
        for _ in range(100):
            cache.get_secret_string("app/db")
            cache.get("app/db#password")
            cache.get_secret_value("app/db")
    assert cache.stats.hits == 300


def test_one_get_secret_value_per_key_per_refresh_and_no_other_operation(
    cache: SecretCache, store: InMemoryBackend, clock: FakeClock
) -> None:
    for _period in range(3):
        for _ in range(50):
            cache.get_secret_string("app/db")
            cache.get("app/db#password")
            clock.advance(0.1)
        clock.advance(TTL + SWR)
    assert dict(store.calls) == {"GetSecretValue": 3}


def test_against_moto_only_get_secret_value_is_called_once_per_refresh(clock: FakeClock) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        client.create_secret(Name="app/moto", SecretString=canary_value("moto"))
        operations: list[str] = []
        client.meta.events.register("before-call.secrets-manager",
                                    lambda model, **_: operations.append(model.name), unique_id="count-all")
        cache = SecretCache(client=client, config=config(), timer=clock)
        for _ in range(100):
            cache.get_secret_string("app/moto")
        clock.advance(TTL + SWR + 1)
        for _ in range(100):
            cache.get("app/moto")
        assert operations == ["GetSecretValue", "GetSecretValue"]


# -- reads and reference forms ----------------------------------------------------------------------

def test_json_key_values_render_as_json(store: InMemoryBackend, clock: FakeClock) -> None:
    shape = {"n": 1000000, "t": True, "o": {"a": 1}, "l": [1, "x"], "z": None}
    store.put_secret("app/shape", json.dumps(shape))
    cache = SecretCache(store, config=config(), timer=clock)
    assert [cache.get(f"app/shape#{k}") for k in "ntolz"] == ["1000000", "true", '{"a":1}', '[1,"x"]', "null"]


def test_invalid_json_error_names_the_position_and_breaks_the_chain(cache: SecretCache) -> None:
    with pytest.raises(SecretFormatError) as info:
        cache.get_secret_json("app/text")
    assert "line 1" in str(info.value)
    assert "column" in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None  # the decode error (its .doc is the secret) is not reachable


def test_oversize_value_raises_format_error_naming_the_size_not_the_value(clock: FakeClock) -> None:
    backend = InMemoryBackend()
    huge = canary_value("big") * 3000
    backend.script("app/huge", lambda sid: SecretValue(sid, secret_string=huge))
    cache = SecretCache(backend, config=config(), timer=clock)
    with pytest.raises(SecretFormatError) as info:
        cache.get_secret_string("app/huge")
    assert "app/huge" in str(info.value)
    assert "65536" in str(info.value)
    assert CANARY not in str(info.value)
    assert CANARY not in repr(info.value)


def test_format_errors_do_not_make_the_cache_fetch_again(cache: SecretCache, store: InMemoryBackend) -> None:
    for _ in range(5):
        with pytest.raises(SecretFormatError):
            cache.get_secret_string("app/blob")
        with pytest.raises(SecretFormatError):
            cache.get("app/db#nope")
    assert gets(store) == 2


# -- versions -----------------------------------------------------------------------------------------

def test_version_id_entries_are_evicted_only_by_lru(store: InMemoryBackend, clock: FakeClock) -> None:
    cache = SecretCache(store, config=config(max_size=2), timer=clock)
    vid = next(iter(store.version_stages("app/db")))
    cache.get_secret_value("app/db", version_id=vid)
    clock.advance(1)
    cache.get_secret_string("app/api-key")
    clock.advance(1)
    cache.get_secret_binary("app/blob")  # evicts the least recently read: the version entry
    assert gets(store) == 3
    cache.get_secret_value("app/db", version_id=vid)
    assert gets(store) == 4


def test_configured_default_stage_is_read_when_none_is_given(
    store: InMemoryBackend, clock: FakeClock
) -> None:
    store.put_secret("app/db", json.dumps({"password": "pending"}), stages=("AWSPENDING",))
    cache = SecretCache(store, config=config(version_stage="AWSPENDING"), timer=clock)
    assert cache.get("app/db#password") == "pending"
    assert cache.get_secret_value("app/db", version_stage="AWSCURRENT").version_stages == ("AWSCURRENT",)


# -- bad input ----------------------------------------------------------------------------------------

def test_a_long_pasted_reference_is_shown_bounded(cache: SecretCache) -> None:
    blob = "!" + "x" * 5000  # a reference is no secret, but a pasted blob must not flood the message
    with pytest.raises(InvalidReferenceError) as info:
        cache.get(blob)
    assert len(str(info.value)) < 400
    assert "!xxx" in str(info.value)


# -- invalidate, LRU, mark_stale ---------------------------------------------------------------------------

def test_invalidate_also_forgets_a_failure(clock: FakeClock) -> None:
    backend = InMemoryBackend({"app/x": "v"})
    backend.script("app/x", SecretNotFoundError("gone (secret 'app/x')", secret_id="app/x"))
    cache = SecretCache(backend, config=config(), timer=clock)
    with pytest.raises(SecretNotFoundError):
        cache.get_secret_string("app/x")
    cache.invalidate("app/x")  # e.g. the secret was just created: no need to wait for the backoff
    assert cache.get_secret_string("app/x") == "v"


def test_a_fetch_in_flight_during_invalidate_does_not_reinsert_its_result(clock: FakeClock) -> None:
    backend = InMemoryBackend({"app/x": canary_value("x")})
    cache = SecretCache(backend, config=config(), timer=clock)
    gate = backend.hold()
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(cache.get_secret_string("app/x")))
    reader.start()
    backend.wait_for_calls(1, active=True)
    cache.invalidate("app/x")
    gate.set()
    reader.join(10)
    assert len(got) == 1  # the waiting reader still gets its answer...
    assert cache._core.entries == {}  # ...but the cache does not keep it
    cache.get_secret_string("app/x")
    assert backend.count("app/x") == 2


def test_a_background_refresh_in_flight_during_invalidate_does_not_reinsert(clock: FakeClock) -> None:
    backend = InMemoryBackend({"app/x": canary_value("x")})
    cache = SecretCache(backend, config=config(), timer=clock)
    cache.get_secret_string("app/x")
    clock.advance(TTL + 1)
    gate = backend.hold()
    cache.get_secret_string("app/x")  # starts the background refresh
    backend.wait_for_calls(1, active=True)
    cache.invalidate()
    gate.set()
    wait_until(lambda: backend.active == 0)
    assert len(cache._core.entries) == 0


def test_lru_evicts_the_least_recently_read_entry(store: InMemoryBackend, clock: FakeClock) -> None:
    cache = SecretCache(store, config=config(max_size=3), timer=clock)
    for name in ("app/db", "app/api-key", "app/text"):
        cache.get_secret_value(name)
        clock.advance(1)
    cache.get_secret_value("app/db")  # read again: now app/api-key is the least recently read
    clock.advance(1)
    cache.get_secret_value("app/blob")
    assert gets(store) == 4
    assert len(cache._core.entries) == 3
    for name in ("app/db", "app/text", "app/blob"):
        cache.get_secret_value(name)
    assert gets(store) == 4
    cache.get_secret_value("app/api-key")
    assert gets(store) == 5
    assert len(cache._core.entries) == 3


def test_entries_never_exceed_max_size(store: InMemoryBackend, clock: FakeClock) -> None:
    for i in range(50):
        store.put_secret(f"bulk/{i}", f"v{i}")
    cache = SecretCache(store, config=config(max_size=7), timer=clock)
    for i in range(50):
        assert cache.get_secret_string(f"bulk/{i}") == f"v{i}"
        assert len(cache._core.entries) <= 7
        clock.advance(0.5)


# -- stats, events, repr -------------------------------------------------------------------------------------

def test_stats_count_every_outcome(clock: FakeClock) -> None:
    from secretcache import SecretThrottledError

    backend = InMemoryBackend({"a": "1", "b": "2"})
    cache = SecretCache(backend, config=config(), timer=clock)
    cache.get_secret_string("a")  # miss
    cache.get_secret_string("a")  # hit
    cache.get_secret_value("a", version_stage="AWSCURRENT")  # hit through the core
    cache.refresh("a")  # refresh: a miss that replaces a value
    clock.advance(TTL + SWR + 1)
    backend.fail_always(lambda sid: SecretThrottledError("slow down (secret 'a')", secret_id=sid), secret_id="a")
    cache.get_secret_string("a")  # miss, error, stale
    with pytest.raises(SecretNotFoundError):
        cache.get_secret_string("nope")  # miss, error
    stats = cache.stats
    assert stats._asdict() == {"hits": 2, "misses": 4, "refreshes": 1, "backend_calls": 4, "errors": 2,
                               "stale_served": 1}


def test_event_hook_receives_each_kind_with_ids_and_no_values(clock: FakeClock) -> None:
    from secretcache import SecretThrottledError

    value = canary_value("ev")
    backend = InMemoryBackend({"a": value})
    events: list[CacheEvent] = []
    cache = SecretCache(backend, config=config(), on_event=events.append, timer=clock)
    cache.get_secret_string("a")
    clock.advance(5)
    cache.get_secret_string("a")
    cache.refresh("a")
    clock.advance(TTL + SWR + 1)
    backend.fail_always(lambda sid: SecretThrottledError("slow down (secret 'a')", secret_id=sid), secret_id="a")
    cache.get_secret_string("a")
    kinds = [e.kind for e in events]
    assert kinds == ["miss", "hit", "miss", "refresh", "miss", "error", "stale"]
    hit = events[1]
    assert hit.secret_id == "a"
    assert hit.version_stage == "AWSCURRENT"
    assert hit.age == pytest.approx(5)
    assert isinstance(events[-1].error, SecretThrottledError)
    assert events[-1].age == pytest.approx(TTL + SWR + 1)
    assert all(value not in repr(e) for e in events)


def test_a_raising_event_hook_never_breaks_a_read(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="secretcache")

    def broken(event: CacheEvent) -> None:
        raise RuntimeError(f"hook broke on {event.kind}")

    backend = InMemoryBackend({"a": canary_value("hook")})
    cache = SecretCache(backend, config=config(), on_event=broken, timer=clock)
    assert cache.get_secret_string("a").startswith(CANARY)
    assert cache.get_secret_string("a").startswith(CANARY)
    assert cache.refresh("a").secret_string.startswith(CANARY)  # type: ignore[union-attr]
    assert "event hook raised" in caplog.text
    assert CANARY not in caplog.text


def test_repr_and_str_never_show_a_value(cache: SecretCache, password: str) -> None:
    value = cache.get_secret_value("app/db")
    blob = cache.get_secret_value("app/blob")
    event = CacheEvent("hit", "app/db", "AWSCURRENT", value.version_id, None, 1.0)
    for text in (repr(cache), str(cache), repr(value), str(value), repr(blob), str(blob), repr(event),
                 str(cache.stats), repr(cache.config)):
        assert password not in text
        assert CANARY not in text
    assert "redacted" in repr(value)
    assert "app/db" in repr(value)


# -- prefetch ----------------------------------------------------------------------------------------------

def bulk_store(n: int) -> InMemoryBackend:
    return InMemoryBackend({f"bulk/{i}": f"value-{i}" for i in range(n)})


def test_prefetch_follows_pages_within_a_chunk(clock: FakeClock) -> None:
    store = bulk_store(20)
    store.batch_page_size = 7
    cache = SecretCache(store, config=config(), timer=clock)
    assert cache.prefetch([f"bulk/{i}" for i in range(20)]) == {}
    assert store.calls["BatchGetSecretValue"] == 3
    assert cache.get_secret_string("bulk/19") == "value-19"
    assert store.calls["GetSecretValue"] == 0


def test_prefetch_returns_per_secret_errors_by_id(clock: FakeClock) -> None:
    store = bulk_store(3)
    store.put_secret("gone", "x")
    store.delete_secret("gone")
    cache = SecretCache(store, config=config(), timer=clock)
    failures = cache.prefetch(["bulk/0", "missing", "bulk/1", "gone", "bulk/2"])
    assert set(failures) == {"missing", "gone"}
    assert isinstance(failures["missing"], SecretNotFoundError)
    assert isinstance(failures["gone"], SecretDeletedError)
    assert failures["missing"].secret_id == "missing"
    assert cache.get_secret_string("bulk/1") == "value-1"
    assert store.calls["GetSecretValue"] == 0


def test_prefetch_by_arn_and_partial_arn_serves_reads_by_the_same_ids(clock: FakeClock) -> None:
    store = bulk_store(2)
    arn = store.arn("bulk/0")
    partial = store.arn("bulk/1")[:-7]
    cache = SecretCache(store, config=config(), timer=clock)
    assert cache.prefetch([arn, partial]) == {}
    assert cache.get_secret_string(arn) == "value-0"
    assert cache.get_secret_string(partial) == "value-1"
    assert store.calls["GetSecretValue"] == 0


def test_prefetch_of_nothing_makes_no_call_and_duplicates_are_fetched_once(clock: FakeClock) -> None:
    store = bulk_store(2)
    cache = SecretCache(store, config=config(), timer=clock)
    assert cache.prefetch([]) == {}
    assert store.calls["BatchGetSecretValue"] == 0
    assert cache.prefetch(["bulk/0", "bulk/0", "bulk/1"]) == {}
    assert store.calls["BatchGetSecretValue"] == 1


# -- lifecycle and the default backend ---------------------------------------------------------------------

def test_close_stops_the_workers_and_later_reads_still_fetch(clock: FakeClock) -> None:
    backend = InMemoryBackend({"a": "1"})
    with SecretCache(backend, config=config(), timer=clock) as cache:
        cache.get_secret_string("a")
        clock.advance(TTL + 1)
        cache.get_secret_string("a")  # a background refresh on the cache's worker
        wait_until(lambda: backend.active == 0 and backend.count("a") == 2)
        worker = cache._core._worker
        assert worker._threads >= 1
    wait_until(lambda: worker._threads == 0, what="the workers to end after close()")
    backend.rotate("a", "2")
    clock.advance(TTL + 1)
    calls = backend.count("a")
    assert cache.get_secret_string("a") == "1"  # within stale_while_revalidate: served, no refresh after close
    assert backend.count("a") == calls
    clock.advance(TTL + SWR)
    assert cache.get_secret_string("a") == "2"  # past it: this reader's fetch, on a thread of its own
    cache.close()  # idempotent


def test_a_dropped_cache_is_collected_and_its_workers_end(clock: FakeClock) -> None:
    import gc
    import weakref

    backend = InMemoryBackend({"a": "1"})
    cache = SecretCache(backend, config=config(), timer=clock)
    cache.get_secret_string("a")
    clock.advance(TTL + 1)
    cache.get_secret_string("a")
    wait_until(lambda: backend.active == 0)
    ref = weakref.ref(cache)
    del cache
    gc.collect()
    assert ref() is None


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_client_argument_builds_the_aws_backend_lazily_without_importing_boto3_early() -> None:
    out = run_python("""
        import sys
        from secretcache import SecretCache

        class FakeClient:
            def get_secret_value(self, **kw):
                return {"Name": kw["SecretId"], "ARN": None, "VersionId": "v1",
                        "VersionStages": ["AWSCURRENT"], "SecretString": "s3cr3t"}

        cache = SecretCache(client=FakeClient())
        print("aws-module-at-init", "secretcache.backends.aws" in sys.modules)
        print("boto3-at-init", "boto3" in sys.modules)
        assert cache.get_secret_string("app/x") == "s3cr3t"
        print("backend", type(cache.backend).__name__)
        print("boto3-after-fetch", "boto3" in sys.modules)

        default = SecretCache()
        print("boto3-default-init", "boto3" in sys.modules)
        default.backend.client  # the boto3 client is made on first use
        print("boto3-default-client", "boto3" in sys.modules)
    """)
    assert out.split() == ["aws-module-at-init", "False", "boto3-at-init", "False", "backend", "AwsBackend",
                           "boto3-after-fetch", "False", "boto3-default-init", "False",
                           "boto3-default-client", "True"]


@pytest.mark.parametrize("face", ["SecretCache", "AsyncSecretCache"])
@pytest.mark.parametrize(("kwargs", "hint"), [
    ({"session": object()}, "(AwsBackend(session=...))"),
    ({"region_name": "eu-west-1", "endpoint_url": "http://x"}, "(AwsBackend(region_name=..., endpoint_url=...))"),
    ({"ttl": 60}, "(config=CacheConfig(ttl=...))"),
    ({"nonsense": 1}, "takes backend, config=, client="),
])
def test_an_unknown_keyword_names_the_public_class_and_where_it_belongs(
    face: str, kwargs: dict[str, Any], hint: str
) -> None:
    import secretcache

    cls = getattr(secretcache, face)
    with pytest.raises(TypeError) as info:
        cls(**kwargs)
    message = str(info.value)
    assert message.startswith(f"{face}() got an unexpected keyword argument")
    assert (f"{face}{hint}" if hint.startswith("(") else hint) in message
    assert "_Face" not in message
    for name in kwargs:
        assert repr(name) in message
