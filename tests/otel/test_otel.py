"""secretcache.otel with the OpenTelemetry SDK's in-memory metric reader and span exporter: exact counts for
scripted scenarios (a herd, an outage, a refused login), spans only for backend calls and under the
caller's span, and no secret id or value anywhere unless the caller opts in."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from secretcache import AsyncSecretCache, CacheConfig, SecretCache
from secretcache.credentials import auth_stats, login
from secretcache.otel import instrument
from secretcache.stats import BackendCall, aws_operation, outcome_of
from secretcache.testing import InMemoryBackend
from tests.fixtures.fakes import run_threads
from tests.fixtures.fix_canary import CANARY, canary_value

ID_MARK = "idmark-7c1e"
"""In the secret ids of the leak tests: ids may be logged (the suite's canary is for values), never exported."""


class Telemetry:
    """An SDK meter provider with an in-memory reader and a tracer provider with an in-memory exporter."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meters = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracers = TracerProvider()
        self.tracers.add_span_processor(SimpleSpanProcessor(self.exporter))

    def instrument(self, cache: Any, **kwargs: Any) -> Any:
        return instrument(cache, meter_provider=self.meters, tracer_provider=self.tracers, **kwargs)

    def points(self) -> dict[str, list[Any]]:
        """Every data point collected now, by instrument name."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def value(self, name: str, **attributes: str) -> Any:
        """The sum (or histogram count) of ``name``'s points whose attributes include ``attributes``."""
        total = 0
        for point in self.points().get(name, []):
            if all(point.attributes.get(k) == v for k, v in attributes.items()):
                total += point.count if hasattr(point, "bucket_counts") else point.value
        return total

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def backend_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.attributes is not None and s.attributes.get("rpc.system") == "aws-api"]

    def close(self) -> None:
        self.meters.shutdown()
        self.tracers.shutdown()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.close()


def test_a_herd_of_32_threads_makes_one_backend_call_and_one_span(telemetry: Telemetry) -> None:
    backend = InMemoryBackend({"app/key": canary_value("herd")})
    gate = backend.hold()
    with SecretCache(backend) as cache:
        telemetry.instrument(cache)
        start = threading.Barrier(32)

        def read(i: int) -> tuple[str, str]:
            start.wait(10)
            first = cache.get_secret_string("app/key")
            return first, cache.get_secret_string("app/key")  # the second read of each thread is a hit

        releaser = threading.Thread(target=lambda: (backend.wait_held(1), gate.set()), daemon=True)
        releaser.start()
        results = run_threads(32, read)
        releaser.join(10)
        assert all(isinstance(r, tuple) for r in results), results
        stats = cache.stats
        assert backend.count() == 1
        assert stats.backend_calls == 1
        assert telemetry.value("secretcache.backend.calls") == 1
        assert telemetry.value("secretcache.backend.calls", operation="GetSecretValue", outcome="ok") == 1
        assert telemetry.value("secretcache.backend.duration") == 1
        assert len(telemetry.backend_spans()) == 1
        assert telemetry.value("secretcache.requests", result="hit") == stats.hits
        assert telemetry.value("secretcache.requests", result="miss") == stats.misses
        assert stats.hits + stats.misses == 64  # every read counted once, as a hit or as a miss
        assert stats.hits >= 32  # every thread's second read at least
        assert telemetry.value("secretcache.entries") == 1


def test_an_outage_with_a_cached_value_is_counted_as_stale(telemetry: Telemetry) -> None:
    backend = InMemoryBackend({"app/key": canary_value("stale")})
    # A backoff long enough that the third read really is served from it (with none, that read would
    # start a background retry, and the counts below would depend on the worker thread's progress).
    config = CacheConfig(ttl=0, stale_while_revalidate=0, backoff_base=60, backoff_max=60)
    with SecretCache(backend, config=config) as cache:
        telemetry.instrument(cache)
        first = cache.get_secret_string("app/key")
        backend.fail_always("5xx")
        assert cache.get_secret_string("app/key") == first
        assert cache.get_secret_string("app/key") == first
        stats = cache.stats
        assert stats.stale_served == 2
        assert telemetry.value("secretcache.requests", result="stale") == 2
        # the second stale read is served from the failure's backoff, without a call
        assert backend.count() == stats.backend_calls == 2
        assert telemetry.value("secretcache.requests", result="error") == stats.errors == 1
        assert telemetry.value("secretcache.requests", result="miss") == stats.misses == 2
        assert telemetry.value("secretcache.backend.calls", outcome="unavailable") == 1
        assert telemetry.value("secretcache.backend.calls", outcome="ok") == 1
        failed = [s for s in telemetry.backend_spans() if s.status.status_code is StatusCode.ERROR]
        assert len(failed) == 1
        assert all(s.attributes is not None and s.attributes["error.type"] == "SecretUnavailableError"
                   for s in failed)


class Refused(Exception):
    pass


def test_a_forced_refresh_after_a_refused_login_is_counted(telemetry: Telemetry) -> None:
    old, new = canary_value("old"), canary_value("new")
    backend = InMemoryBackend({"svc/db": old})
    accepted = [old]

    def connect(secret: Any) -> str:
        if secret.secret_string != accepted[0]:
            raise Refused("login refused")
        return "session"

    with SecretCache(backend, config=CacheConfig(ttl=3600)) as cache:
        telemetry.instrument(cache)
        assert login("svc/db", connect, is_auth_failure=lambda e: isinstance(e, Refused), cache=cache) == "session"
        assert telemetry.value("secretcache.login.refused") == 0
        backend.rotate("svc/db", new)
        accepted[0] = new
        assert login("svc/db", connect, is_auth_failure=lambda e: isinstance(e, Refused), cache=cache) == "session"
        policy = auth_stats("svc/db", cache=cache)
        assert (policy.auth_failures, policy.refreshes) == (1, 1)
        assert telemetry.value("secretcache.login.refused") == 1
        assert telemetry.value("secretcache.login.refreshes", stage="AWSCURRENT") == 1
        assert telemetry.value("secretcache.login.refreshes", stage="AWSPENDING") == 0
        assert telemetry.value("secretcache.login.outcomes", outcome="gave_up") == 0
        forced = [s for s in telemetry.backend_spans() if s.attributes and s.attributes["secretcache.forced"]]
        assert len(forced) == 1
        assert telemetry.value("secretcache.backend.calls") == 2


def test_a_login_with_awspending_during_a_single_user_rotation_is_counted(telemetry: Telemetry) -> None:
    old, new = canary_value("old"), canary_value("new")
    backend = InMemoryBackend({"svc/db": old})
    accepted = [old]

    def connect(secret: Any) -> str:
        if secret.secret_string != accepted[0]:
            raise Refused("login refused")
        return "session"

    with SecretCache(backend, config=CacheConfig(ttl=3600)) as cache:
        telemetry.instrument(cache)
        login("svc/db", connect, is_auth_failure=lambda e: isinstance(e, Refused), cache=cache)
        backend.put_secret("svc/db", new, stages=("AWSPENDING",))
        accepted[0] = new  # setSecret ran: the server has the new password, AWSCURRENT has not moved yet
        assert login("svc/db", connect, is_auth_failure=lambda e: isinstance(e, Refused), cache=cache) == "session"
        policy = auth_stats("svc/db", cache=cache)
        assert policy.pending_logins == 1
        assert telemetry.value("secretcache.login.outcomes", outcome="used_pending") == 1
        assert telemetry.value("secretcache.login.refreshes", stage="AWSPENDING") == policy.pending_fetches == 1
        assert telemetry.value("secretcache.login.refreshes", stage="AWSCURRENT") == policy.refreshes
        assert telemetry.value("secretcache.login.refused") == policy.auth_failures


def test_a_login_that_gives_up_is_counted(telemetry: Telemetry) -> None:
    backend = InMemoryBackend({"svc/db": canary_value("v")})

    def connect(secret: Any) -> str:
        raise Refused("login refused")

    with SecretCache(backend, config=CacheConfig(ttl=3600)) as cache:
        telemetry.instrument(cache)
        with pytest.raises(Refused):
            login("svc/db", connect, is_auth_failure=lambda e: isinstance(e, Refused), cache=cache)
        assert telemetry.value("secretcache.login.outcomes", outcome="gave_up") == 1
        assert telemetry.value("secretcache.login.refused") >= 1


def test_spans_only_for_backend_calls_and_under_the_callers_span(telemetry: Telemetry) -> None:
    backend = InMemoryBackend({"app/a": canary_value("a"), "app/b": canary_value("b")})
    tracer = telemetry.tracers.get_tracer("app")
    with SecretCache(backend) as cache:
        telemetry.instrument(cache)
        with tracer.start_as_current_span("handler") as handler:
            cache.get_secret_string("app/a")
            for _ in range(100):
                cache.get_secret_string("app/a")
                cache.get_secret_value("app/a")
                cache.get("app/a")
        cache.prefetch(["app/b"])
    spans = telemetry.backend_spans()
    assert [s.name for s in spans] == ["Secrets Manager.GetSecretValue", "Secrets Manager.BatchGetSecretValue"]
    get, batch = spans
    assert get.kind is SpanKind.CLIENT
    assert get.attributes is not None
    assert (get.attributes["rpc.system"], get.attributes["rpc.service"], get.attributes["rpc.method"]) == (
        "aws-api", "Secrets Manager", "GetSecretValue")
    assert get.parent is not None
    assert get.parent.span_id == handler.get_span_context().span_id  # fetched on a worker thread, still a child
    assert get.context.trace_id == handler.get_span_context().trace_id
    assert batch.parent is None  # no span was current when prefetch ran
    assert batch.attributes is not None
    assert batch.attributes["rpc.method"] == "BatchGetSecretValue"
    assert len(telemetry.spans()) == 3  # the two backend calls and the handler: none per hit


def test_the_async_face_is_instrumented_the_same_way(telemetry: Telemetry) -> None:
    backend = InMemoryBackend({"app/a": canary_value("a")})
    tracer = telemetry.tracers.get_tracer("app")

    async def main() -> None:
        async with AsyncSecretCache(backend) as cache:
            telemetry.instrument(cache)
            with tracer.start_as_current_span("request") as request:
                for _ in range(10):
                    await cache.get_secret_string("app/a")
            stats = cache.stats
            assert (stats.hits, stats.misses) == (9, 1)
            assert telemetry.value("secretcache.requests", result="hit") == 9
            assert telemetry.value("secretcache.requests", result="miss") == 1
            [span] = telemetry.backend_spans()
            assert span.parent is not None
            assert span.parent.span_id == request.get_span_context().span_id

    asyncio.run(main())


def test_a_botocore_like_span_inside_the_backend_call_nests_under_ours(telemetry: Telemetry) -> None:
    """The backend runs with our span current, so an instrumented client's span is its child."""
    tracer = telemetry.tracers.get_tracer("botocore-like")

    class Traced(InMemoryBackend):
        def get_secret_value(self, secret_id: str, **kwargs: Any) -> Any:
            with tracer.start_as_current_span("inner"):
                return super().get_secret_value(secret_id, **kwargs)

    with SecretCache(Traced({"app/a": canary_value("a")})) as cache:
        telemetry.instrument(cache)
        cache.get_secret_string("app/a")
    inner = next(s for s in telemetry.spans() if s.name == "inner")
    [ours] = telemetry.backend_spans()
    assert inner.parent is not None
    assert inner.parent.span_id == ours.context.span_id


def _everything(telemetry: Telemetry) -> str:
    """Every metric attribute, span name and span attribute, as text."""
    parts: list[str] = []
    for name, points in telemetry.points().items():
        parts.append(name)
        parts.extend(repr(dict(p.attributes)) for p in points)
    for span in telemetry.spans():
        parts.append(span.name)
        parts.append(repr(dict(span.attributes or {})))
        parts.append(repr(span.status.description))
        parts.extend(repr(dict(e.attributes or {})) for e in span.events)
    return "\n".join(parts)


def _scenario(telemetry: Telemetry, secret_id: str, **kwargs: Any) -> str:
    value = canary_value("value")
    backend = InMemoryBackend({secret_id: value})
    config = CacheConfig(ttl=0, stale_while_revalidate=0, backoff_base=0, backoff_max=0)
    with SecretCache(backend, config=config) as cache:
        telemetry.instrument(cache, **kwargs)
        assert cache.get_secret_string(secret_id) == value
        backend.fail_next("denied")
        with pytest.raises(Exception, match=r"denied|Access"):
            cache.get_secret_string(secret_id)
        backend.fail_next("5xx")
        cache.get_secret_string(secret_id)  # stale
        cache.refresh(secret_id)
        cache.prefetch([secret_id, "missing/" + ID_MARK])
    text = _everything(telemetry)
    assert value not in text  # never a value, opted in or not
    assert CANARY not in text
    return text


def test_no_secret_id_or_value_in_any_attribute_or_span_name_by_default(telemetry: Telemetry) -> None:
    secret_id = f"prod/{ID_MARK}/db"
    text = _scenario(telemetry, secret_id)
    assert "secretcache.backend.calls" in text  # the scan saw the instruments...
    assert "Secrets Manager.GetSecretValue" in text  # ...and the spans
    assert ID_MARK not in text


def test_secret_ids_appear_only_when_opted_in(telemetry: Telemetry) -> None:
    secret_id = f"prod/{ID_MARK}/db"
    text = _scenario(telemetry, secret_id, record_secret_ids=True)
    assert secret_id in text
    gets = [s for s in telemetry.backend_spans() if s.attributes and s.attributes["rpc.method"] == "GetSecretValue"]
    span = gets[0]
    assert span.attributes is not None
    assert list(span.attributes["secretcache.secret_ids"]) == [secret_id]


def test_caches_on_one_provider_are_summed_and_uninstrument_stops(telemetry: Telemetry) -> None:
    one, two = InMemoryBackend({"a": canary_value("a")}), InMemoryBackend({"a": canary_value("a")})
    with SecretCache(one) as first, SecretCache(two) as second:
        handle = telemetry.instrument(first)
        telemetry.instrument(second)
        with pytest.raises(ValueError, match="already instrumented"):
            telemetry.instrument(first)
        for cache in (first, second, first):
            cache.get_secret_string("a")
        assert telemetry.value("secretcache.requests", result="miss") == 2
        assert telemetry.value("secretcache.requests", result="hit") == 1
        assert telemetry.value("secretcache.entries") == 2
        handle.uninstrument()
        first.invalidate()
        first.get_secret_string("a")
        assert telemetry.value("secretcache.backend.calls") == 2  # the third call was not observed
        assert len(telemetry.backend_spans()) == 2
        assert telemetry.value("secretcache.entries") == 1  # only the second cache is counted now


def test_a_broken_observer_never_breaks_a_read(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[BackendCall] = []

    def broken(call: BackendCall) -> Any:
        seen.append(call)

        def after(error: Any) -> None:
            raise RuntimeError("after")

        if len(seen) == 1:
            raise RuntimeError("before")
        return after

    backend = InMemoryBackend({"a": canary_value("a")})
    with SecretCache(backend, config=CacheConfig(ttl=0, stale_while_revalidate=0)) as cache:
        remove = cache.add_backend_observer(broken)
        with caplog.at_level(logging.WARNING, logger="secretcache"):
            cache.get_secret_string("a")
            cache.get_secret_string("a")
        remove()
        cache.get_secret_string("a")
    assert [c.method for c in seen] == ["get_secret_value", "get_secret_value"]
    assert seen[0].secret_ids == ("a",)
    assert sum("backend observer raised" in r.getMessage() for r in caplog.records) == 2
    with pytest.raises(TypeError, match="callable"):
        SecretCache(backend).add_backend_observer("not callable")  # type: ignore[arg-type]


def test_instrument_refuses_what_is_not_a_cache() -> None:
    with pytest.raises(TypeError, match="SecretCache"):
        instrument(object())  # type: ignore[arg-type]


def test_operations_and_outcomes_are_bounded_labels() -> None:
    from secretcache.errors import SecretNotFoundError, SecretThrottledError

    backend = InMemoryBackend()

    def call(method: Any, *ids: str) -> BackendCall:
        return BackendCall(method, ids, None, None, False, backend)

    assert aws_operation(call("get_secret_value", "prod/db")) == ("Secrets Manager", "GetSecretValue")
    assert aws_operation(call("refresh_secret_value", "prod/db")) == ("Secrets Manager", "GetSecretValue")
    assert aws_operation(call("batch_get_secret_values", "a", "b")) == ("Secrets Manager", "BatchGetSecretValue")
    assert aws_operation(call("get_secret_value", "ssm:/app/url")) == ("SSM", "GetParameter")
    arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/app/url"
    assert aws_operation(call("get_secret_value", arn)) == ("SSM", "GetParameter")
    assert outcome_of(None) == "ok"
    assert outcome_of(SecretThrottledError("x")) == "throttled"
    assert outcome_of(SecretNotFoundError("x")) == "not_found"
