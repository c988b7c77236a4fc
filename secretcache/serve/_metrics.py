"""``serve --metrics``: ``GET /metrics`` in the Prometheus text format, through the official ``prometheus-client``.

What is exposed (docs/observability.md): serve's own requests by route and status and their handling time,
and the cache's metrics (the same as :mod:`secretcache.otel`'s): requests by result, entries, backend
calls by operation and outcome and their duration. Labels are bounded: a route is a pattern
(``/v1/{secretId}``), never a secret id; no value is ever seen here.

The cache's counters are read when Prometheus scrapes (a collector), so a hit pays nothing for them.
serve's own request counts and latency buckets are kept in plain dicts under one lock and handed to
prometheus-client's metric families at scrape time: a request pays about half a microsecond, where
prometheus-client's ``Counter.inc`` and ``Histogram.observe`` (three locks, more Python) cost five times that.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..stats import BackendCall, aws_operation, outcome_of
from ._app import AgentApi, Response

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from ..cache import SecretCache
    from ..errors import SecretCacheError

__all__ = ["METRICS_PATH", "MeteredAgentApi", "route_of"]

METRICS_PATH = "/metrics"
REQUEST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
"""Bounds (seconds) of the handling-time histogram: a hit is answered in tens of microseconds, a miss
waits for Secrets Manager (tens of milliseconds, up to ``fetch_timeout``)."""
BACKEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

_ROUTES = frozenset({"/secretsmanager/get", "/systemsmanager/parameters/get", "/ping", METRICS_PATH})
_NOT_READS = frozenset({"/ping", METRICS_PATH})
_agent_handle = AgentApi.handle  # called as a function: no super() lookup per request


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as e:
        raise ImportError("serve --metrics needs the [metrics] extra: pip install 'secretcache[metrics]'") from e
    return prometheus_client


def route_of(target: str, path_prefix: str = "/v1/") -> str:
    """The route label of a request target: a known path, ``/v1/{secretId}`` for path-style reads, else
    ``other`` (whatever was asked: a label never holds what a client typed)."""
    path = target.partition("?")[0]
    if path in _ROUTES:
        return path
    if path.startswith(path_prefix):
        return path_prefix + "{secretId}"
    return "other"


class _CacheCollector:
    """The cache's counters, read at scrape time; ``peek_hits()`` adds the hits a front end answered with
    ``peek`` (uvicorn's event loop answers hits that way, and ``peek`` counts nothing)."""

    def __init__(self, cache: SecretCache, peek_hits: Callable[[], int]) -> None:
        self.cache = cache
        self.peek_hits = peek_hits

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only (the registry then never calls collect() at register)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self.cache.stats
        requests = CounterMetricFamily(
            "secretcache_requests", "Reads served by the cache, by result (hit: from memory; miss: waited for "
            "a fetch; stale: cached value served while Secrets Manager failed; error: fetches that failed)",
            labels=["result"])
        for result, count in (("hit", stats.hits + self.peek_hits()), ("miss", stats.misses),
                              ("stale", stats.stale_served), ("error", stats.errors)):
            requests.add_metric([result], count)
        yield requests
        yield GaugeMetricFamily("secretcache_entries", "Values cached right now", value=self.cache.size)


class _Requests:
    """serve's requests by (route, status) with their handling time, for the collector.

    One row per (route, status): ``[count, seconds, bucket 0, ..., +Inf]`` (buckets not cumulative), so
    a request is one dict read and three list updates under one lock (in ``MeteredAgentApi.handle``).
    """

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.lock = threading.Lock()
        self.rows: dict[tuple[str, int], list[float]] = {}

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        with self.lock:
            rows = {key: list(row) for key, row in self.rows.items()}
        requests = CounterMetricFamily("secretcache_serve_requests",
                                       "Requests serve answered, by route and HTTP status code",
                                       labels=["route", "status_code"])
        by_route: dict[str, list[float]] = {}
        for (route, status), row in sorted(rows.items()):
            requests.add_metric([route, str(status)], row[0])
            total = by_route.setdefault(route, [0.0] * len(row))
            for i, value in enumerate(row):
                total[i] += value
        yield requests
        latency = HistogramMetricFamily(
            "secretcache_serve_request_duration_seconds",
            "Time serve took to answer a request once parsed (reading the cache included), by route",
            labels=["route"])
        edges = [repr(float(bound)) for bound in self.bounds] + ["+Inf"]
        for route, total in by_route.items():
            cumulative, running = [], 0.0
            for edge, count in zip(edges, total[2:], strict=True):
                running += count
                cumulative.append((edge, running))
            latency.add_metric([route], cumulative, total[1])
        yield latency


class MeteredAgentApi(AgentApi):
    """:class:`AgentApi` that also answers ``GET /metrics`` (no token, like ``/ping``) and counts every request."""

    def __init__(self, cache: SecretCache, *args: Any, **kwargs: Any) -> None:
        super().__init__(cache, *args, **kwargs)
        prom = _prometheus()
        from prometheus_client import gc_collector, platform_collector, process_collector

        self.registry = registry = prom.CollectorRegistry(auto_describe=True)
        process_collector.ProcessCollector(registry=registry)
        platform_collector.PlatformCollector(registry=registry)
        gc_collector.GCCollector(registry=registry)
        self._peek_hits = 0  # only the event loop's thread answers with fresh_only: no lock needed
        registry.register(_CacheCollector(cache, lambda: self._peek_hits))
        self._requests = _Requests(REQUEST_BUCKETS)
        self._path_route = self.path_prefix + "{secretId}"
        registry.register(self._requests)
        self._backend_calls = prom.Counter(
            "secretcache_backend_calls", "Calls the cache made to its backend, by operation and outcome",
            ["operation", "outcome"], registry=registry)
        self._backend_duration = prom.Histogram(
            "secretcache_backend_duration_seconds", "Duration of the cache's backend calls, by operation",
            ["operation"], registry=registry, buckets=BACKEND_BUCKETS)
        self._generate = prom.generate_latest
        self._content_type: str = prom.CONTENT_TYPE_LATEST
        self.remove_observer = cache.add_backend_observer(self._observe)

    def handle(self, method: str, target: str, headers: Callable[[str], str | None], *,
               fresh_only: bool = False) -> Response | None:
        # Every request pays what is below: written out (no helper calls), it costs about 1 us.
        started = perf_counter()
        path = target.partition("?")[0]
        response: Response | None
        if path == METRICS_PATH:
            response = self._metrics(method, headers)
        else:
            response = _agent_handle(self, method, target, headers, fresh_only=fresh_only)
            if response is None:
                return None  # asked again where blocking is fine: counted then
        elapsed = perf_counter() - started
        # the route label, as route_of() computes it
        route = path if path in _ROUTES else self._path_route if path.startswith(self.path_prefix) else "other"
        status = response.status
        if fresh_only and status == 200 and route not in _NOT_READS:
            self._peek_hits += 1  # answered from the cache by peek: a hit the cache did not count
        slot = bisect_left(REQUEST_BUCKETS, elapsed) + 2
        table = self._requests
        with table.lock:
            row = table.rows.get((route, status))
            if row is None:
                row = table.rows[(route, status)] = [0.0] * (len(REQUEST_BUCKETS) + 3)
            row[0] += 1
            row[1] += elapsed
            row[slot] += 1
        return response

    def _metrics(self, method: str, headers: Callable[[str], str | None]) -> Response:
        if headers("x-forwarded-for") is not None:  # the same rules as /ping: no token, no forwarding
            return Response(400, b"Forwarded")
        if method != "GET":
            return Response(405, b"Not allowed")
        return Response(200, self._generate(self.registry), self._content_type)

    def _observe(self, call: BackendCall) -> Callable[[SecretCacheError | None], None]:
        operation = aws_operation(call)[1]
        started = perf_counter()

        def done(error: SecretCacheError | None) -> None:
            self._backend_duration.labels(operation).observe(perf_counter() - started)
            self._backend_calls.labels(operation, outcome_of(error)).inc()

        return done
