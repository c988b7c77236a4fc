"""The cache policy, shared by SecretCache (threads) and AsyncSecretCache (asyncio).

One source of truth for freshness, stale-while-revalidate, stale-if-error, backoff and
single-flight; the two faces differ only in how they wait for a fetch (a blocking
``Future.result()`` or an awaited callback). The hit path lives in the faces and is a plain
dict lookup plus a ``time.monotonic()`` comparison: no lock, no copy, no environment read.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from time import monotonic
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias

from .backends.base import BATCH_LIMIT, SecretsBackend
from .errors import InvalidReferenceError, SecretAccessDeniedError, SecretCacheError, SecretUnavailableError
from .model import SecretValue, validate_secret_id

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from .config import CacheConfig

__all__ = ["CacheEvent", "CacheStats", "EventHook"]


def _debug(message: str, *args: object) -> None:
    """Debug logging for slow paths only; ``logging`` is imported on first use to keep import light."""
    import logging

    logging.getLogger("secretcache").debug(message, *args)

Key: TypeAlias = "str | tuple[str, str] | tuple[str, str | None, str]"
"""``secret_id`` for the default stage; ``(secret_id, stage)``; ``(secret_id, stage|None, version_id)``."""

EventKind = Literal["hit", "miss", "refresh", "stale", "error"]


class CacheStats(NamedTuple):
    """A snapshot of the cache's counters."""

    hits: int = 0
    misses: int = 0
    refreshes: int = 0
    backend_calls: int = 0
    errors: int = 0
    stale_served: int = 0


class CacheEvent(NamedTuple):
    """What the event hook receives. Carries ids and errors, never a value.

    ``kind``: ``hit`` (served from cache), ``miss`` (the caller waited for a fetch), ``refresh``
    (a fetch replaced a cached value), ``stale`` (a cached value served because the backend failed),
    ``error`` (a backend call failed). ``age`` is seconds since the served value was fetched.
    """

    kind: EventKind
    secret_id: str
    version_stage: str | None = None
    version_id: str | None = None
    error: SecretCacheError | None = None
    age: float | None = None


EventHook = Callable[[CacheEvent], None]


class Request(NamedTuple):
    """What one read asks for, and the key it is cached under."""

    key: Key
    secret_id: str
    version_stage: str | None
    version_id: str | None


class Entry:
    """A cached value and its clock readings (slots: a few dozen bytes beside the value)."""

    __slots__ = ("fresh_until", "last_read", "value")

    def __init__(self, value: SecretValue, fetched_at: float, fresh_until: float) -> None:
        self.value = value
        self.fresh_until = fresh_until
        self.last_read = fetched_at  # LRU order; starts at the fetch time

    def age(self, now: float, ttl: float) -> float | None:
        """Seconds since the fetch, give or take the ttl jitter (not stored: ~24 bytes per entry saved)."""
        return None if self.fresh_until == float("inf") else max(0.0, now - (self.fresh_until - ttl))


class _Failure:
    __slots__ = ("attempts", "error", "retry_at")

    def __init__(self, error: SecretCacheError, retry_at: float, attempts: int) -> None:
        self.error = error
        self.retry_at = retry_at
        self.attempts = attempts


class Flight:
    """One fetch in progress for a key; every caller for that key waits for its outcome.

    A minimal future (``concurrent.futures`` would cost its import on ``import secretcache``):
    threads block in ``result()``, asyncio callers register a callback.
    """

    __slots__ = ("_callbacks", "_done", "_lock", "discard", "outcome")

    def __init__(self) -> None:
        self.outcome: SecretValue | SecretCacheError | None = None
        self.discard = False  # set by invalidate(): the result is returned to waiters but not stored
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Flight], Any]] = []

    def set_result(self, outcome: SecretValue | SecretCacheError) -> None:
        with self._lock:
            self.outcome = outcome
            callbacks, self._callbacks = self._callbacks, []
            self._done.set()
        for callback in callbacks:
            callback(self)

    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> SecretValue | SecretCacheError:
        self._done.wait()
        assert self.outcome is not None
        return self.outcome

    def add_done_callback(self, callback: Callable[[Flight], Any]) -> None:
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)


def _chained(error: SecretCacheError, secret_id: str) -> SecretCacheError:
    """A fresh copy of ``error`` for one secret, chained to it."""
    copy = error.copy()
    copy.secret_id = secret_id
    copy.__cause__ = error
    return copy


def _random() -> float:
    import random  # on the fetch path only: keeps ``import secretcache`` light

    return random.random()  # retry jitter, not a secret  # nosec B311


def _wrap_unexpected(error: BaseException, secret_id: str) -> SecretCacheError:
    # A custom backend raised something untyped. Its text may hold anything, so name only its type.
    wrapped = SecretUnavailableError(
        f"backend failed reading secret {secret_id!r}: {type(error).__name__}", secret_id=secret_id
    )
    wrapped.__cause__ = error
    return wrapped


def _background_run(core_ref: weakref.ref[Core], request: Request, flight: Flight) -> None:
    core = core_ref()
    if core is None:  # the cache was dropped: nobody is left to read the result
        flight.set_result(SecretUnavailableError("cache closed", secret_id=request.secret_id))
        return
    core.run(request, flight)


class Core:
    """Entries, failures and fetches in flight for one cache, and the rules that connect them."""

    def __init__(
        self,
        backend: SecretsBackend | Callable[[], SecretsBackend],
        config: CacheConfig,
        on_event: EventHook | None,
    ) -> None:
        self.config = config
        self.entries: dict[Key, Entry] = {}
        self._failures: dict[Key, _Failure] = {}
        self._flights: dict[Key, Flight] = {}
        self._lock = threading.Lock()
        self._backend: SecretsBackend | None = None
        self._backend_factory: Callable[[], SecretsBackend] | None = None
        if isinstance(backend, SecretsBackend):
            self._backend = backend
        else:
            self._backend_factory = backend
        self._on_event = on_event
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        self.hits = self.misses = self.refreshes = self.backend_calls = self.errors = self.stale_served = 0

    # -- requests -------------------------------------------------------------------------------

    def request(self, secret_id: str, version_id: str | None, version_stage: str | None) -> Request:
        """Validate a read and compute its key."""
        validate_secret_id(secret_id)
        if version_id is not None and (not isinstance(version_id, str) or not version_id):
            raise InvalidReferenceError(
                f"secret {secret_id!r}: version_id must be a non-empty str", secret_id=secret_id
            )
        if version_stage is not None and (not isinstance(version_stage, str) or not version_stage):
            raise InvalidReferenceError(
                f"secret {secret_id!r}: version_stage must be a non-empty str", secret_id=secret_id
            )
        key: Key
        if version_id is not None:
            key = (secret_id, version_stage, version_id)
        elif version_stage is None or version_stage == self.config.version_stage:
            key = secret_id
        else:
            key = (secret_id, version_stage)
        stage = version_stage if version_stage is not None or version_id is not None else self.config.version_stage
        return Request(key, secret_id, stage, version_id)

    @property
    def backend(self) -> SecretsBackend:
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    assert self._backend_factory is not None
                    self._backend = self._backend_factory()
        return self._backend

    # -- the policy -----------------------------------------------------------------------------

    def begin(
        self, request: Request, *, force: bool = False, may_block: bool = True
    ) -> SecretValue | tuple[Flight, bool]:
        """Serve ``request`` from the cache if the policy allows; else the fetch to wait on.

        Returns the value, or ``(flight, leader)``: the leader must run the fetch (``run``), every
        caller then waits for ``flight.result()`` and passes the outcome to ``settle``. Raises a fresh
        error while a failing key is backing off and there is nothing to serve. ``may_block=False``
        (the asyncio face) sends even an inline-configured revalidation to a worker thread.
        """
        while True:
            now = monotonic()
            entry = self.entries.get(request.key)
            failure = self._failures.get(request.key)
            if not force:
                served = self._serve(request, entry, failure, now, may_block)
                if served is not None:
                    return served
            with self._lock:
                flight = self._flights.get(request.key)
                if flight is not None:
                    return flight, False
                unchanged = self.entries.get(request.key) is entry and self._failures.get(request.key) is failure
                if force or unchanged:
                    flight = self._flights[request.key] = Flight()
                    return flight, True
            # A fetch finished between our look and the lock: decide again with its outcome, so a
            # fresh value or a new backoff is honoured instead of starting one more backend call.

    def _serve(
        self, request: Request, entry: Entry | None, failure: _Failure | None, now: float, may_block: bool
    ) -> SecretValue | None:
        """The value the policy serves without waiting for a fetch, or None (raises while backing off)."""
        if entry is not None and now < entry.fresh_until:
            return self._hit(request, entry, now)
        backing_off = failure is not None and now < failure.retry_at
        if failure is not None and not isinstance(failure.error, SecretUnavailableError):
            if backing_off:
                raise failure.error.copy() from failure.error  # permanent: never hidden behind a stale value
        elif entry is not None:
            if failure is not None and self._may_serve_stale(entry, now):
                # The backend has been failing: retry in the background, serve what we have meanwhile
                # (counted and announced as stale, also inside the stale-while-revalidate window).
                outcome = self._revalidate(request, entry, may_block)
                if isinstance(outcome, SecretValue):
                    return outcome
                return self._serve_failure(request, entry, outcome or failure.error, now)
            if self.config.ttl > 0 and now < entry.fresh_until + self.config.stale_while_revalidate:
                outcome = self._revalidate(request, entry, may_block)
                if isinstance(outcome, SecretUnavailableError) and self._may_serve_stale(entry, now):
                    return self._serve_failure(request, entry, outcome, now)  # the inline refresh failed
                if isinstance(outcome, SecretCacheError) and not isinstance(outcome, SecretUnavailableError):
                    raise outcome.copy() from outcome
                return self._hit(request, self.entries.get(request.key, entry), now)
        if backing_off:
            assert failure is not None
            return self._serve_failure(request, entry, failure.error, now)  # raises: nothing to serve
        return None

    def peek(self, request: Request) -> SecretValue | None:
        """The cached value if it is within ttl, else None: no I/O, no lock, no counters."""
        entry = self.entries.get(request.key)
        return entry.value if entry is not None and monotonic() < entry.fresh_until else None

    def _hit(self, request: Request, entry: Entry, now: float) -> SecretValue:
        entry.last_read = now
        self.hits += 1
        if self._on_event is not None:
            self._emit("hit", request, age=entry.age(now, self.config.ttl))
        return entry.value

    def _revalidate(
        self, request: Request, entry: Entry, may_block: bool
    ) -> SecretValue | SecretCacheError | None:
        """Start one refresh of ``entry``, a value past its ttl that may still be served.

        Returns the outcome when the refresh ran inline (``background_refresh=False``) or had just
        finished (another reader's refresh replaced ``entry``), else None.
        """
        failure = self._failures.get(request.key)
        if failure is not None and monotonic() < failure.retry_at:
            return None  # backing off after a transient failure: keep serving what we have
        with self._lock:
            current = self.entries.get(request.key)
            if current is not entry:  # refreshed (or invalidated) since the caller looked
                return current.value if current is not None else None
            if request.key in self._flights or self._failures.get(request.key) is not failure:
                return None
            flight = self._flights[request.key] = Flight()
        if not may_block or (self.config.background_refresh and not self._closed):
            self._pool().submit(_background_run, weakref.ref(self), request, flight)
            return None
        self.run(request, flight)  # inline: this reader pays for the refresh; concurrent readers do not wait
        return flight.result()

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="secretcache-refresh")
        return self._executor

    def run(self, request: Request, flight: Flight) -> None:
        """Fetch ``request`` from the backend, record the outcome and release the waiters."""
        self.backend_calls += 1
        outcome: SecretValue | SecretCacheError
        try:
            outcome = self.backend.get_secret_value(
                request.secret_id, version_id=request.version_id, version_stage=request.version_stage
            )
        except SecretCacheError as e:
            outcome = e
        except Exception as e:
            outcome = _wrap_unexpected(e, request.secret_id)
        except BaseException as e:
            # KeyboardInterrupt, SystemExit, a greenlet timeout...: still release the waiters and the
            # key (a flight left in place would block this key forever), then let it propagate.
            outcome = _wrap_unexpected(e, request.secret_id)
            self._finish(request, flight, outcome)
            raise
        self._finish(request, flight, outcome)

    def _finish(self, request: Request, flight: Flight, outcome: SecretValue | SecretCacheError) -> None:
        refreshed = False
        with self._lock:
            if self._flights.get(request.key) is flight:
                del self._flights[request.key]
            if not flight.discard:
                if isinstance(outcome, SecretValue):
                    refreshed = self._store(request, outcome)
                else:
                    self._record_failure(request, outcome)
        if refreshed:
            _debug("refreshed secret %r", request.secret_id)
            self._emit("refresh", request)
        if isinstance(outcome, SecretCacheError):
            self.errors += 1
            _debug("fetch of secret %r failed: %s", request.secret_id, type(outcome).__name__)
            self._emit("error", request, error=outcome)
        flight.set_result(outcome)

    def _store(self, request: Request, value: SecretValue) -> bool:
        """Insert under the lock; True when it replaced a cached value (a refresh)."""
        now = monotonic()
        config = self.config
        if request.version_id is not None:
            fresh_until = float("inf")  # a version's value is immutable: only LRU evicts it
        else:
            fresh_until = now + config.ttl * (1.0 - _random() * config.jitter)
        old = self.entries.get(request.key)
        self.entries[request.key] = Entry(value, now, fresh_until)
        self._failures.pop(request.key, None)
        if old is not None:
            self.refreshes += 1
        if len(self.entries) > config.max_size:
            # Exact LRU by last read time. The scan runs only on an insert past capacity (after a
            # backend call), so the hit path can stay a plain dict read with no reordering.
            victim = min(self.entries.items(), key=lambda item: item[1].last_read)[0]
            del self.entries[victim]
        return old is not None

    def _record_failure(self, request: Request, error: SecretCacheError) -> None:
        previous = self._failures.get(request.key)
        attempts = previous.attempts + 1 if previous is not None else 1
        base, cap = self.config.backoff_base, self.config.backoff_max
        ceiling = min(cap, base * 2.0 ** min(attempts - 1, 62))
        retry_at = monotonic() + base + (ceiling - base) * _random()  # jittered, never below base: bounds calls
        self._failures[request.key] = _Failure(error, retry_at, attempts)
        if len(self._failures) > self.config.max_size:
            del self._failures[next(iter(self._failures))]

    def settle(
        self, request: Request, outcome: SecretValue | SecretCacheError, *, allow_stale: bool = True
    ) -> SecretValue:
        """Turn a fetch outcome into what this caller gets: the value, a stale value, or a fresh error."""
        if isinstance(outcome, SecretValue):
            return outcome
        entry = self.entries.get(request.key) if allow_stale else None
        return self._serve_failure(request, entry, outcome, monotonic())

    def _may_serve_stale(self, entry: Entry, now: float) -> bool:
        limit = self.config.stale_if_error
        return limit is None or now < entry.fresh_until + limit

    def _serve_failure(
        self, request: Request, entry: Entry | None, error: SecretCacheError, now: float
    ) -> SecretValue:
        """Serve the cached value for a transient error within stale_if_error; else raise a fresh copy."""
        if entry is not None and isinstance(error, SecretUnavailableError) and self._may_serve_stale(entry, now):
            self.stale_served += 1
            _debug("serving stale secret %r: %s", request.secret_id, type(error).__name__)
            self._emit("stale", request, error=error, age=entry.age(now, self.config.ttl))
            return entry.value
        raise error.copy() from error

    def note_miss(self, request: Request) -> None:
        self.misses += 1
        _debug("cache miss for secret %r (stage %s)", request.secret_id, request.version_stage)
        self._emit("miss", request)

    def get_blocking(self, request: Request, *, force: bool = False) -> SecretValue:
        """The thread face of the policy: serve, or lead/join the fetch and wait for it."""
        started = self.begin(request, force=force)
        if isinstance(started, SecretValue):
            return started
        flight, leader = started
        self.note_miss(request)
        if leader:
            self.run(request, flight)
        return self.settle(request, flight.result(), allow_stale=not force)

    # -- maintenance ----------------------------------------------------------------------------

    def invalidate(self, secret_id: str | None) -> None:
        with self._lock:
            if secret_id is None:
                keys: Iterable[Key] = list(self.entries) + list(self._failures) + list(self._flights)
            else:
                keys = [
                    k for k in (*self.entries, *self._failures, *self._flights)
                    if k == secret_id or (isinstance(k, tuple) and k[0] == secret_id)
                ]
            for key in set(keys):
                self.entries.pop(key, None)
                self._failures.pop(key, None)
                flight = self._flights.pop(key, None)
                if flight is not None:
                    flight.discard = True

    def mark_stale(self) -> None:
        """Make every stage-addressed entry due for a blocking refresh (e.g. after a SnapStart restore)."""
        due = monotonic() - self.config.stale_while_revalidate
        for entry in list(self.entries.values()):
            if entry.fresh_until != float("inf"):
                entry.fresh_until = min(entry.fresh_until, due)

    def store_batch(self, ids: list[str], values: list[SecretValue]) -> list[str]:
        """Store AWSCURRENT values from a batch call under the ids asked for; return the ids not matched."""
        by_name: dict[str, SecretValue] = {}
        for value in values:
            by_name[value.name] = value
            if value.arn:
                by_name[value.arn] = value
                by_name[value.arn[:-7]] = value  # partial ARN: the full one without "-XXXXXX"
        missing: list[str] = []
        for secret_id in ids:
            found = by_name.get(secret_id)
            if found is None:
                missing.append(secret_id)
                continue
            with self._lock:
                self._store(self.request(secret_id, None, "AWSCURRENT"), found)
        return missing

    def prefetch(self, secret_ids: Iterable[str]) -> dict[str, SecretCacheError]:
        ids = list(dict.fromkeys(secret_ids))
        failures: dict[str, SecretCacheError] = {}
        for secret_id in ids:
            validate_secret_id(secret_id)
        if not ids:
            return failures
        self.backend_calls += -(-len(ids) // BATCH_LIMIT)
        try:
            values, errors = self.backend.batch_get_secret_values(ids)
        except SecretAccessDeniedError:
            # BatchGetSecretValue not allowed by IAM (a common policy): fall back to one
            # GetSecretValue per secret, which keeps the backoff and stale rules.
            _debug("batch prefetch denied; falling back to GetSecretValue per secret")
            for secret_id in ids:
                try:
                    self.get_blocking(self.request(secret_id, None, None))
                except SecretCacheError as err:
                    failures[secret_id] = err
            return failures
        except SecretCacheError as e:
            # Throttled or unavailable as a whole: N single calls would only add load. Report it per id.
            self.errors += 1
            return {secret_id: _chained(e, secret_id) for secret_id in ids}
        for secret_id, error in errors.items():
            self.errors += 1
            failures[secret_id] = error
        for secret_id in self.store_batch([i for i in ids if i not in errors], values):
            try:  # the batch answer named it differently than we did: fetch it on its own
                self.get_blocking(self.request(secret_id, None, None))
            except SecretCacheError as err:
                failures[secret_id] = err
        return failures

    def stats(self, extra_hits: int = 0) -> CacheStats:
        return CacheStats(
            hits=self.hits + extra_hits,
            misses=self.misses,
            refreshes=self.refreshes,
            backend_calls=self.backend_calls,
            errors=self.errors,
            stale_served=self.stale_served,
        )

    def close(self) -> None:
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=False)

    # -- events ---------------------------------------------------------------------------------

    def _emit(
        self, kind: EventKind, request: Request, *, error: SecretCacheError | None = None, age: float | None = None
    ) -> None:
        hook = self._on_event
        if hook is None:
            return
        try:
            hook(CacheEvent(kind, request.secret_id, request.version_stage, request.version_id, error, age))
        except Exception:  # a broken hook must never break a read
            import logging

            logging.getLogger("secretcache").warning("event hook raised on a %r event", kind, exc_info=True)
