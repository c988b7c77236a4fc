"""OpenTelemetry metrics and traces of a cache: what it served, what it saved, what it called.

``instrument(cache)`` (the ``[otel]`` extra: ``opentelemetry-api``; bring your own SDK and exporter) adds:

- ``secretcache.requests`` {``result`` = ``hit`` | ``miss`` | ``stale`` | ``error``}, ``secretcache.entries``
  and the rotation policy's ``secretcache.login.*`` counters: observable instruments, read from the
  cache's own counters when the SDK collects, so a hit costs exactly what it costs uninstrumented;
- ``secretcache.backend.calls`` {``operation``, ``outcome``} and ``secretcache.backend.duration``
  (histogram, seconds), and one CLIENT span per backend call (``rpc.system=aws-api``, ``rpc.service``,
  ``rpc.method``) whose parent is the span current in the read that asked for it. None per hit.

Attributes are bounded (no secret id, name or value) unless ``record_secret_ids=True`` puts the ids
on spans and on the backend-call metrics; a value is never seen here at all (observers get ids only).
See docs/observability.md for what each instrument means and the panels to build from them.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .stats import BackendCall, aws_operation, outcome_of

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.trace import Tracer, TracerProvider

    from .aio import AsyncSecretCache
    from .cache import SecretCache
    from .errors import SecretCacheError

__all__ = ["DURATION_BUCKETS", "Instrumentation", "instrument"]

SCOPE = "secretcache"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""Bucket bounds (seconds) advised for ``secretcache.backend.duration``: a Secrets Manager call takes tens
of milliseconds, a throttled or retried one seconds."""


def _api() -> Any:
    try:
        from opentelemetry import metrics, trace
    except ImportError as e:
        raise ImportError("secretcache.otel needs the [otel] extra: pip install 'secretcache[otel]'") from e
    return metrics, trace


class _Meters:
    """The instruments of one OpenTelemetry ``Meter`` and the caches they report.

    A meter gives one instrument per name: every cache instrumented on it shares them, and the
    observable callbacks sum the caches' counters (an attribute per cache would be one more label
    nobody bounds).
    """

    def __init__(self, meter: Meter) -> None:
        self.lock = threading.Lock()
        self.handles: tuple[Instrumentation, ...] = ()
        meter.create_observable_counter(
            "secretcache.requests", [self._requests], unit="{request}",
            description="Reads served by the cache, by result: hit (from memory), miss (waited for a fetch), "
                        "stale (cached value served while Secrets Manager failed), error (fetches that failed)",
        )
        meter.create_observable_up_down_counter(
            "secretcache.entries", [self._entries], unit="{entry}", description="Values cached right now",
        )
        meter.create_observable_counter(
            "secretcache.login.refreshes", [self._login_refreshes], unit="{call}",
            description="Forced fetches the rotation policy made after a refused login, by stage "
                        "(AWSCURRENT: refreshed; AWSPENDING: the pending version read)",
        )
        meter.create_observable_counter(
            "secretcache.login.refused", [self._login_refused], unit="{login}",
            description="Logins the server refused with the cached credentials (each counted once)",
        )
        meter.create_observable_counter(
            "secretcache.login.outcomes", [self._login_outcomes], unit="{login}",
            description="How refused logins ended when not by a refresh: used_pending (logged in with "
                        "AWSPENDING), gave_up (the driver's error raised after trying everything)",
        )
        self.calls = meter.create_counter(
            "secretcache.backend.calls", unit="{call}",
            description="Calls the cache made to its backend (Secrets Manager, Parameter Store, the agent), "
                        "by operation and outcome",
        )
        self.duration = meter.create_histogram(
            "secretcache.backend.duration", unit="s", description="Duration of the cache's backend calls",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def add(self, handle: Instrumentation) -> None:
        with self.lock:
            if any(h.cache is handle.cache for h in self.handles):
                raise ValueError("this cache is already instrumented with this meter provider")
            self.handles = (*self.handles, handle)

    def remove(self, handle: Instrumentation) -> None:
        with self.lock:
            self.handles = tuple(h for h in self.handles if h is not handle)

    # -- observable callbacks: the SDK calls them at collection time ---------------------------------

    def _requests(self, options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        hits = misses = stale = errors = 0
        for handle in self.handles:
            stats = handle.cache.stats
            hits += stats.hits
            misses += stats.misses
            stale += stats.stale_served
            errors += stats.errors
        if self.handles:
            yield Observation(hits, {"result": "hit"})
            yield Observation(misses, {"result": "miss"})
            yield Observation(stale, {"result": "stale"})
            yield Observation(errors, {"result": "error"})

    def _entries(self, options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        if self.handles:
            yield Observation(sum(handle.cache.size for handle in self.handles))

    def _login_totals(self) -> dict[str, int] | None:
        if not self.handles:
            return None
        totals = {"auth_failures": 0, "refreshes": 0, "pending_fetches": 0, "pending_logins": 0, "gave_up": 0}
        for handle in self.handles:
            for name, count in handle.login_stats().items():
                totals[name] = totals.get(name, 0) + count
        return totals

    def _login_refreshes(self, options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        totals = self._login_totals()
        if totals is not None:
            yield Observation(totals["refreshes"], {"stage": "AWSCURRENT"})
            yield Observation(totals["pending_fetches"], {"stage": "AWSPENDING"})

    def _login_refused(self, options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        totals = self._login_totals()
        if totals is not None:
            yield Observation(totals["auth_failures"])

    def _login_outcomes(self, options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        totals = self._login_totals()
        if totals is not None:
            yield Observation(totals["pending_logins"], {"outcome": "used_pending"})
            yield Observation(totals["gave_up"], {"outcome": "gave_up"})


_METERS: weakref.WeakKeyDictionary[Any, _Meters] = weakref.WeakKeyDictionary()
_METERS_LOCK = threading.Lock()


def _meters_for(meter: Meter) -> _Meters:
    with _METERS_LOCK:
        meters = _METERS.get(meter)
        if meters is None:
            meters = _METERS[meter] = _Meters(meter)
        return meters


class Instrumentation:
    """What :func:`instrument` returns: ``uninstrument()`` (or leaving a ``with`` block) stops it."""

    def __init__(self, cache: SecretCache | AsyncSecretCache, meters: _Meters, tracer: Tracer,
                 record_secret_ids: bool) -> None:
        self.cache = cache
        self._meters = meters
        self._tracer = tracer
        self._record_ids = record_secret_ids
        self._login_ids: set[str] = set()
        """Ids of forced fetches: the secrets the rotation policy may hold counters for (it only forces
        fetches after a refused login, and ``refresh()`` calls land here too, with zero counters)."""
        self._remove_observer: Callable[[], None] | None = None
        meters.add(self)  # raises if this cache already reports to these meters
        self._remove_observer = cache.add_backend_observer(self._observe)

    def uninstrument(self) -> None:
        """Stop: no more spans or backend-call metrics; this cache's counts leave the observable totals."""
        if self._remove_observer is not None:
            self._remove_observer()
            self._remove_observer = None
        self._meters.remove(self)

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstrument()

    def __repr__(self) -> str:
        return f"<Instrumentation of {type(self.cache).__name__} record_secret_ids={self._record_ids}>"

    def login_stats(self) -> dict[str, int]:
        """The rotation policy's counters for this cache, summed over the secrets it forced fetches of."""
        totals: dict[str, int] = {}
        if not self._login_ids:
            return totals
        from .credentials import auth_stats

        for secret_id in list(self._login_ids):
            for name, count in auth_stats(secret_id, cache=self.cache)._asdict().items():
                totals[name] = totals.get(name, 0) + count
        return totals

    # -- the backend observer: on the thread making the call, in the asking read's context ----------

    def _observe(self, call: BackendCall) -> Callable[[SecretCacheError | None], None]:
        from opentelemetry import context as otel_context
        from opentelemetry import trace  # already loaded by instrument(): a dict lookup

        if call.forced:
            self._login_ids.update(call.secret_ids)
        service, operation = aws_operation(call)
        attributes: dict[str, Any] = {"rpc.system": "aws-api", "rpc.service": service, "rpc.method": operation,
                                      "secretcache.backend": type(call.backend).__name__,
                                      "secretcache.forced": call.forced}
        if call.version_stage is not None:
            attributes["secretcache.version_stage"] = call.version_stage
        if self._record_ids:
            attributes["secretcache.secret_ids"] = list(call.secret_ids)
        span = self._tracer.start_span(f"{service}.{operation}", kind=trace.SpanKind.CLIENT, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span))  # a botocore span nests under ours
        started = perf_counter()

        def done(error: SecretCacheError | None) -> None:
            elapsed = perf_counter() - started
            outcome = outcome_of(error)
            otel_context.detach(token)
            if error is not None:
                # The type only: an error's message names the secret.
                span.set_attribute("error.type", type(error).__name__)
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
            span.set_attribute("secretcache.outcome", outcome)
            span.end()
            labels: dict[str, Any] = {"operation": operation, "outcome": outcome}
            if self._record_ids and len(call.secret_ids) == 1:
                labels["secret_id"] = call.secret_ids[0]
            self._meters.calls.add(1, labels)
            self._meters.duration.record(elapsed, labels)

        return done


def instrument(
    cache: SecretCache | AsyncSecretCache,
    *,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
    record_secret_ids: bool = False,
) -> Instrumentation:
    """Report ``cache``'s metrics and trace its backend calls through OpenTelemetry.

    ``meter_provider`` / ``tracer_provider`` default to the global ones (``opentelemetry.metrics`` /
    ``opentelemetry.trace``: no-ops until an SDK is configured). Works on both faces
    (:class:`~secretcache.SecretCache` and :class:`~secretcache.AsyncSecretCache`). Several caches may be
    instrumented on one provider (their counts are summed); one cache once per provider (ValueError).
    ``record_secret_ids=True`` adds the secret ids to spans (``secretcache.secret_ids``) and to the
    backend-call metrics (``secret_id``): unbounded cardinality, and names that may say more than they
    should; off by default. Returns an :class:`Instrumentation`; ``uninstrument()`` undoes it.
    """
    from .stats import CacheStats

    if not hasattr(cache, "add_backend_observer") or not isinstance(getattr(cache, "stats", None), CacheStats):
        raise TypeError(f"instrument() takes a SecretCache or an AsyncSecretCache, got {type(cache).__name__}")
    metrics, trace = _api()
    from ._version import __version__

    meter = (meter_provider or metrics.get_meter_provider()).get_meter(SCOPE, __version__)
    tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(SCOPE, __version__)
    return Instrumentation(cache, _meters_for(meter), tracer, bool(record_secret_ids))
