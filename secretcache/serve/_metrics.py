"""``serve --metrics``: ``GET /metrics`` in the Prometheus text format, through the official ``prometheus-client``.

What is exposed (docs/observability.md): serve's own requests by route and status and their handling time,
and the cache's metrics (the same as :mod:`secretcache.otel`'s): requests by result, entries, backend
calls by operation and outcome and their duration. Labels are bounded: a route is a pattern
(``/v1/{secretId}``), never a secret id; no value is ever seen here.

The cache's counters are read when Prometheus scrapes (a collector), so a hit pays nothing for them.
serve's own request counts and latency buckets are kept in plain dicts, one per thread (each written by its
own thread only), and summed into prometheus-client's metric families at scrape time: a request takes no
lock. Measured in serve under load, one uncontended lock per request was the largest single cost of the
counting; prometheus-client's ``Counter.inc`` and ``Histogram.observe`` take three.
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

_GET = "/secretsmanager/get"
_GET_QUERY = _GET + "?"
_GET_QUERY_LEN = len(_GET_QUERY)  # a slice and ==: cheaper than str.startswith's argument parsing
_ROUTES = {route: route for route in (_GET, "/systemsmanager/parameters/get", "/ping", METRICS_PATH)}
"""Each known path to one canonical string, so a route is found in a table by identity."""
_NOT_READS = frozenset({"/ping", METRICS_PATH})
_FIRST_BOUND = REQUEST_BUCKETS[0]
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
    route = _ROUTES.get(path)
    if route is not None:
        return route
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


Row = list[float]
"""``[seconds, bucket 0, ..., +Inf]``: a (route, status) pair's total handling time and its histogram
buckets (counts, not cumulative; their sum is the pair's request count)."""
Table = dict[str, dict[int, Row]]
"""Rows by route, then status."""
Key = tuple[str, int, bool]
"""(route, status, answered by ``peek``)."""


def _rows_of(pair: tuple[Table, Table]) -> Iterator[tuple[Key, Row]]:
    """A thread's rows by key, each copied (``dict.copy`` and a slice are atomic under the GIL), since
    the thread may be counting into them."""
    for peeked, table in enumerate(pair):
        for route, rows in table.copy().items():
            for status, row in rows.copy().items():
                yield (route, status, bool(peeked)), row[:]


def _add(total: Row, row: Row) -> None:
    for i, value in enumerate(row):
        total[i] += value


class _Requests:
    """serve's requests by route and status, and whether ``peek`` answered them, with their handling time.

    Each thread counts into tables of its own (one for requests answered by ``peek``, one for the rest),
    so a request is two dict reads (by identity: routes are canonical strings, statuses small ints) and
    two list updates, with no lock, and no dict or list made after the thread's first request: only the
    thread that owns a table writes it. A scrape sums copies of every table (``dict.copy`` and a slice are
    each atomic under the GIL), so a row is never read half-added; a scrape racing a request may see its
    bucket without its seconds, or the reverse, and the next scrape agrees. An ended thread's counts are
    folded into one table at the next scrape, so memory follows the threads alive, not every thread seen.
    """

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.width = len(bounds) + 2
        self.local = threading.local()
        """``local.tables``: the calling thread's ``(others, peeked)``, once :meth:`tables` has made them."""
        self._tables: list[tuple[threading.Thread, tuple[Table, Table]]] = []
        self._ended: dict[Key, Row] = {}  # the counts of threads that have ended
        self._tables_lock = threading.Lock()

    def tables(self) -> tuple[Table, Table]:
        """This thread's tables (made on its first request: the only time a request takes the lock)."""
        try:
            return self.local.tables  # type: ignore[no-any-return]
        except AttributeError:
            tables: tuple[Table, Table] = ({}, {})
            with self._tables_lock:
                self._tables.append((threading.current_thread(), tables))
            self.local.tables = tables
            return tables

    def new_row(self) -> Row:
        return [0.0] * self.width

    def row(self, route: str, status: int, peeked: bool) -> Row:
        """The calling thread's row for a (route, status, answered by ``peek``), made if missing."""
        rows = self.tables()[peeked].setdefault(route, {})
        row = rows.get(status)
        if row is None:
            row = rows[status] = self.new_row()
        return row

    def totals(self) -> dict[Key, Row]:
        """Every thread's rows, summed by (route, status, answered by ``peek``)."""
        totals: dict[Key, Row] = {}
        with self._tables_lock:  # scrapes only (and a thread's first request): never a request's wait
            alive: list[tuple[threading.Thread, tuple[Table, Table]]] = []
            for thread, pair in self._tables:
                if thread.is_alive():
                    alive.append((thread, pair))
                    into = totals
                else:
                    into = self._ended  # an ended thread writes no more: its counts move there, once
                for key, row in _rows_of(pair):
                    _add(into.setdefault(key, self.new_row()), row)
            self._tables = alive
            for key, row in self._ended.items():
                _add(totals.setdefault(key, self.new_row()), row)
        return totals

    def peek_hits(self) -> int:
        """Reads answered 200 by ``peek`` on the event loop: cache hits the cache itself did not count."""
        return int(sum(sum(row[1:]) for (route, status, peeked), row in self.totals().items()
                       if peeked and status == 200 and route not in _NOT_READS))

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        rows: dict[tuple[str, int], Row] = {}
        for (route, status, _), row in self.totals().items():
            _add(rows.setdefault((route, status), self.new_row()), row)
        requests = CounterMetricFamily("secretcache_serve_requests",
                                       "Requests serve answered, by route and HTTP status code",
                                       labels=["route", "status_code"])
        by_route: dict[str, Row] = {}
        for (route, status), row in sorted(rows.items()):
            requests.add_metric([route, str(status)], sum(row[1:]))
            _add(by_route.setdefault(route, self.new_row()), row)
        yield requests
        latency = HistogramMetricFamily(
            "secretcache_serve_request_duration_seconds",
            "Time serve took to answer a request once parsed (reading the cache included), by route",
            labels=["route"])
        edges = [repr(float(bound)) for bound in self.bounds] + ["+Inf"]
        for route, total in by_route.items():
            cumulative, running = [], 0.0
            for edge, count in zip(edges, total[1:], strict=True):
                running += count
                cumulative.append((edge, running))
            latency.add_metric([route], cumulative, total[0])
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
        self._requests = _Requests(REQUEST_BUCKETS)
        self._local = self._requests.local
        registry.register(_CacheCollector(cache, self._requests.peek_hits))
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
        # Every request pays what is below, so it is written out: no helper call on a read by query, no
        # lock, no dict or list made once a thread has its rows. In serve under load (bench/bench_otel.py)
        # each operation here costs several times what a microbenchmark shows; keep it this short.
        started = perf_counter()
        route = _GET if target[:_GET_QUERY_LEN] == _GET_QUERY else route_of(target, self.path_prefix)
        response: Response | None
        if route == METRICS_PATH:
            response = self._metrics(method, headers)
        else:
            response = _agent_handle(self, method, target, headers, fresh_only=fresh_only)
            if response is None:
                return None  # asked again where blocking is fine: counted then
        elapsed = perf_counter() - started
        try:  # subscripts, not .get(): the interpreter specialises them, and a row is missing once
            row = (self._local.tables[1] if fresh_only else self._local.tables[0])[route][response[0]]
        except (AttributeError, KeyError):
            row = self._requests.row(route, response[0], fresh_only)
        row[0] += elapsed
        row[1 if elapsed <= _FIRST_BOUND else bisect_left(REQUEST_BUCKETS, elapsed) + 1] += 1
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
