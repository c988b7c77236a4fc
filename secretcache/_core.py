"""Core: the state of one cache and the moves between its states, shared by both faces.

Size: one object's state and every move between its states (reads, fetches, prefetch, invalidate,
fork), kept together so that the invariants below can be checked in one file.

What is cached (entries), what failed (failures, with their backoff), what is being fetched (flights)
and the counters live here; the rules live in :mod:`._policy`; the threads live in :mod:`._worker`.
:class:`~secretcache.SecretCache` waits for a flight by blocking, :class:`~secretcache.AsyncSecretCache`
by awaiting it; everything else is this one object.

Three invariants hold under ``_lock``:

- fetches of one key never overlap (one flight per key; a read that may not join the running one
  queues the next behind it, and ``prefetch`` leaves keys in flight to their fetch), so an entry is
  only replaced by a fetch that started after it ended: a version once served never goes back;
- every fetch runs on a worker thread (inline only when no thread can be had), so every reader's wait
  ends by ``fetch_timeout``;
- after ``os.fork()`` the child keeps the entries and forgets the parent's flights, lock and threads.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from time import monotonic
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar, cast

from ._flight import Flight
from ._paths import PATH_MARKS, PathListing, is_path_request
from ._policy import FETCH, RAISE, SERVE, Entry, Failure, backoff_until, decide, fresh_until, may_serve_stale
from ._request import Key, Request, check_answer, key_parts, make_request
from ._worker import Worker
from .backends.base import BATCH_LIMIT, ForcedReads, SecretsBackend
from .errors import AssumeRoleError, SecretAccessDeniedError, SecretCacheError, SecretUnavailableError
from .model import SecretValue, validate_secret_id
from .parameters import PREFIX, is_parameter
from .stats import BackendCall, BackendMethod, BackendObserver, CacheEvent, CacheStats, EventHook, EventKind

if TYPE_CHECKING:
    from .config import CacheConfig

__all__ = ["BatchPlan", "CachedRead", "Core", "ForkAware", "Wait"]

Outcome = SecretValue | SecretCacheError
_T = TypeVar("_T")


def _debug(message: str, *args: object) -> None:
    """Debug logging for slow paths only; ``logging`` is imported on first use to keep import light."""
    import logging

    logging.getLogger("secretcache").debug(message, *args)


def _warn_observer(message: str, method: str) -> None:
    import logging

    logging.getLogger("secretcache").warning(message, method, exc_info=True)


def _default_random() -> float:
    import random  # on the fetch path only: keeps ``import secretcache`` light

    return random.random()  # ttl and retry jitter, not a secret  # nosec B311


def _chained(error: SecretCacheError, secret_id: str) -> SecretCacheError:
    """A fresh copy of ``error`` for one secret, chained to it."""
    copy = error.copy()
    copy.secret_id = secret_id
    copy.__cause__ = error
    return copy


def _wrap_unexpected(error: BaseException, secret_id: str) -> SecretCacheError:
    # A custom backend raised something untyped. Its text may hold anything, so name only its type.
    wrapped = SecretUnavailableError(
        f"backend failed reading secret {secret_id!r}: {type(error).__name__}", secret_id=secret_id
    )
    wrapped.__cause__ = error
    return wrapped


def timed_out(request: Request, timeout: float) -> SecretUnavailableError:
    """The error of a reader whose fetch outlived ``fetch_timeout`` (the fetch itself goes on)."""
    return SecretUnavailableError(
        f"fetching secret {request.secret_id!r} took longer than fetch_timeout ({timeout:g} s)",
        secret_id=request.secret_id,
    )


class ForkAware(Protocol):
    """What :meth:`Core.state_for` keeps: state that renews its locks in a forked child."""

    def after_fork(self) -> None: ...


_S = TypeVar("_S", bound=ForkAware)


class CachedRead(NamedTuple):
    """One cached entry as a listener sees it: the secret id it was read by, the stage asked for (None:
    the configured default), the version id asked for (None unless read by VersionId), and the value."""

    secret_id: str
    version_stage: str | None
    version_id: str | None
    value: SecretValue


class BatchPlan(NamedTuple):
    """A ``get_many``: the ids in the order given (no repeats), and the flights of those fetched together."""

    ids: list[str]
    waits: dict[str, Flight]


class Wait(NamedTuple):
    """A read that must wait for ``flight``; ``miss`` is False for an inline revalidation (a hit if it works)."""

    flight: Flight
    miss: bool


_LIVE: weakref.WeakSet[Core] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for core in list(_LIVE):
        core.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Core:
    """Entries, failures and fetches in flight for one cache, and the moves between them."""

    def __init__(
        self,
        backend: SecretsBackend | Callable[[], SecretsBackend],
        config: CacheConfig,
        on_event: EventHook | None,
        *,
        timer: Callable[[], float] | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.timer: Callable[[], float] = timer or monotonic
        self._random = random or _default_random
        self.entries: dict[Key, Entry] = {}
        self._failures: dict[Key, Failure] = {}
        self._flights: dict[Key, Flight] = {}
        self._lock = threading.Lock()
        self._seq = 0  # counts backend calls started; orders the fetches of a key
        self._backend: SecretsBackend | None = None
        self._backend_factory: Callable[[], SecretsBackend] | None = None
        if isinstance(backend, SecretsBackend):
            self._backend = backend
        else:
            self._backend_factory = backend
        self._on_event = on_event
        self._worker = Worker()
        self.hits = self.misses = self.refreshes = self.backend_calls = self.errors = self.stale_served = 0
        self.observers: tuple[BackendObserver, ...] = ()
        """Told of every backend call (:meth:`add_observer`); empty, they cost one attribute read per fetch."""
        self._owned: dict[object, ForkAware] = {}  # state_for: per owner, made on first use
        _LIVE.add(self)

    def request(self, secret_id: str, version_id: str | None, version_stage: str | None) -> Request:
        """Validate a read and compute its key."""
        return make_request(secret_id, version_id, version_stage, self.config.version_stage)

    @property
    def backend(self) -> SecretsBackend:
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    assert self._backend_factory is not None
                    self._backend = self._backend_factory()
        return self._backend

    @property
    def closed(self) -> bool:
        return self._worker.closed

    # -- reads ----------------------------------------------------------------------------------

    def begin(self, request: Request, *, force: bool = False, may_block: bool = True) -> SecretValue | Wait:
        """Serve ``request`` from the cache if the policy allows, else the fetch to wait for.

        Raises a fresh error while a failing key backs off with nothing to serve. ``may_block=False``
        (the asyncio face) sends even a ``background_refresh=False`` revalidation to a worker.
        """
        if force:
            forced = self._flight_for(request, None, None, force=True)
            assert forced is not None
            self.note_miss(request)
            return Wait(forced, True)
        while True:
            now = self.timer()
            entry = self.entries.get(request.key)
            failure = self._failures.get(request.key)
            action, refresh = decide(entry, failure, now, self.config)
            if action is FETCH:
                flight = self._flight_for(request, entry, failure)
                if flight is None:
                    continue  # a fetch finished between our look and the lock: decide again with its outcome
                self.note_miss(request)
                return Wait(flight, True)
            if action is RAISE:
                assert failure is not None
                raise failure.error.copy() from failure.error
            assert entry is not None
            if refresh:
                flight = self._start_refresh(request, entry, failure)
                if flight is not None:
                    if may_block and not self.config.background_refresh:
                        # inline (Lambda): this reader waits for the refresh; concurrent readers do not
                        self._dispatch(flight)
                        return Wait(flight, False)
                    if not self._worker.submit(self._run, flight, grow=False):
                        self._run(flight)  # no thread to be had (interpreter exit): this reader pays
                elif self.entries.get(request.key) is not entry:
                    continue  # refreshed (or invalidated) since we looked: serve what is there now
            if action is SERVE:
                return self._hit(request, entry, now)
            assert failure is not None
            return self._stale(request, entry, failure.error, now)

    def _flight_for(
        self, request: Request, entry: Entry | None, failure: Failure | None, *, force: bool = False
    ) -> Flight | None:
        """The flight to wait for: the one in flight if this read may join it, else a new one.

        None when the key's state changed since the caller looked (decide again). A read may join a
        flight that has not started its backend call, or one that has and was not invalidated since
        (``refresh`` only one that started after it was called). Otherwise the new flight is queued
        behind the running one, so the two never overlap.
        """
        new = self._new_flight(request)
        new.forced = force
        with self._lock:
            current = self._flights.get(request.key)
            if current is not None:
                if current.seq is None or not (current.discard or force):
                    if force:  # not started yet (a forced read joins no started one): it becomes forced
                        current.forced = True
                    return current
                if current.then is not None:  # already queued behind it, not started: as new as we need
                    current.then.forced |= force
                    return current.then
                current.then = self._flights[request.key] = new
                return new  # started by `_finish` of the running one
            if not force and self._changed(request, entry, failure):
                return None
            self._flights[request.key] = new
        self._dispatch(new)
        return new

    def _start_refresh(self, request: Request, entry: Entry, failure: Failure | None) -> Flight | None:
        """Register one refresh of a value that is still served, or None when one is in flight already
        (or the key changed since the caller looked, or the cache is closed: no refresh then)."""
        if request.key in self._flights or self._worker.closed:
            return None
        new = self._new_flight(request)
        with self._lock:
            if request.key in self._flights or self._changed(request, entry, failure):
                return None
            self._flights[request.key] = new
        return new

    def _new_flight(self, request: Request) -> Flight:
        flight = Flight(request, self.config.fetch_timeout)
        if self.observers:  # the reader's context, so an observer's span of the call is the reader's child
            import contextvars

            flight.context = contextvars.copy_context()
        return flight

    def _changed(self, request: Request, entry: Entry | None, failure: Failure | None) -> bool:
        """Whether the key's entry or failure is no longer what the caller decided on."""
        return self.entries.get(request.key) is not entry or self._failures.get(request.key) is not failure

    def _dispatch(self, flight: Flight) -> None:
        """Run a flight on a worker thread; on this thread when no worker can be had (after close, at exit)."""
        if not self._worker.submit(self._run, flight):
            self._run(flight)

    def _run(self, flight: Flight) -> None:
        """Fetch for ``flight`` from the backend, check the answer, record the outcome, release the waiters."""
        request = flight.request
        with self._lock:
            self._seq += 1
            flight.seq = self._seq
        self.backend_calls += 1
        outcome: Outcome
        try:
            backend = self.backend
            # A forced read must not get a backend's own cached answer (the agent's): tell backends that can hear it.
            read: Callable[[], SecretValue]
            method: BackendMethod
            if is_path_request(request):
                method = "get_parameters_by_path"
                read = functools.partial(_read_path, backend, request)
            else:
                forced = flight.forced and isinstance(backend, ForcedReads)
                method = "refresh_secret_value" if forced else "get_secret_value"
                read = functools.partial(
                    backend.refresh_secret_value if forced else backend.get_secret_value,  # type: ignore[attr-defined]
                    request.secret_id, version_id=request.version_id, version_stage=request.version_stage)
            if self.observers:
                call = BackendCall(method, (request.secret_id,), request.version_id, request.version_stage,
                                   flight.forced, backend)
                value = self._observed(flight, call, read)
            else:
                value = read()
            # A crossed answer is dropped here: never stored, never returned.
            outcome = check_answer(request, value) or value
        except SecretCacheError as e:
            outcome = e
        except Exception as e:
            outcome = _wrap_unexpected(e, request.secret_id)
        except BaseException as e:
            # KeyboardInterrupt, SystemExit, a greenlet timeout...: still release the waiters and the
            # key (a flight left in place would block this key forever), then let it propagate.
            self._finish(flight, _wrap_unexpected(e, request.secret_id))
            raise
        self._finish(flight, outcome)

    def _finish(self, flight: Flight, outcome: Outcome) -> None:
        """Record a fetch's outcome (unless invalidated since it started), wake its waiters, start the
        fetch queued behind it."""
        request = flight.request
        refreshed = False
        with self._lock:
            if self._flights.get(request.key) is flight:
                del self._flights[request.key]
            if not flight.discard:  # fetches of a key never overlap: this one is newer than the entry
                if isinstance(outcome, SecretValue):
                    refreshed = self._store(request, outcome)
                elif flight.record:
                    self._record_failure(request, outcome)
        if refreshed:
            _debug("refreshed secret %r", request.secret_id)
            self._emit("refresh", request)
        if isinstance(outcome, SecretCacheError):
            self.errors += 1
            _debug("fetch of secret %r failed: %s", request.secret_id, type(outcome).__name__)
            self._emit("error", request, error=outcome)
        flight.set_result(outcome)
        if flight.then is not None:
            self._dispatch(flight.then)

    def _store(self, request: Request, value: SecretValue) -> bool:
        """Insert under the lock; True when it replaced a cached value (a refresh)."""
        now = self.timer()
        config = self.config
        until = fresh_until(now, config, self._random(), by_version=request.version_id is not None)
        old = self.entries.get(request.key)
        self.entries[request.key] = Entry(value, now, until)
        self._failures.pop(request.key, None)
        if old is not None:
            self.refreshes += 1
        if isinstance(value, PathListing):
            self._store_listed(value, now, until)
        while len(self.entries) > config.max_size:
            # Exact LRU by last read time. The scan runs only on an insert past capacity (after a
            # backend call), so the hit path can stay a plain dict read with no reordering.
            victim = min(self.entries.items(), key=lambda item: item[1].last_read)[0]
            del self.entries[victim]
        return old is not None

    def _store_listed(self, listing: PathListing, now: float, until: float) -> None:
        """Store a path's parameters (under the lock) with the path's freshness, so reads of them are hits.

        A parameter with a fetch of its own in flight is left to it, and a cached version is never
        replaced by an older one (parameter versions are increasing numbers), so versions never go back.
        """
        for value in listing.parameters:
            key = PREFIX + value.name
            if key in self._flights:
                continue
            old = self.entries.get(key)
            if old is not None and _version_number(old.value) > _version_number(value):
                continue
            self.entries[key] = Entry(value, now, until)
            self._failures.pop(key, None)

    def _record_failure(self, request: Request, error: SecretCacheError) -> None:
        previous = self._failures.get(request.key)
        attempts = previous.attempts + 1 if previous is not None else 1
        retry_at = backoff_until(self.timer(), attempts, self.config, self._random())
        self._failures[request.key] = Failure(error, retry_at, attempts, isinstance(error, SecretUnavailableError))
        if len(self._failures) > self.config.max_size:
            del self._failures[next(iter(self._failures))]

    def conclude(self, request: Request, wait: Wait, done: bool, *, allow_stale: bool = True) -> SecretValue:
        """What a reader that waited for ``wait`` gets (``done``: the flight ended before the deadline)."""
        outcome = self.outcome(wait.flight, done)
        if not wait.miss and isinstance(outcome, SecretValue):
            self.hits += 1  # an inline revalidation that worked is a hit, as it would be in the background
        return self.settle(request, outcome, allow_stale=allow_stale)

    def outcome(self, flight: Flight, done: bool) -> Outcome:
        """The flight's outcome, or the timeout error of a reader whose deadline passed first."""
        if done:
            assert flight.outcome is not None
            return flight.outcome
        return timed_out(flight.request, self.config.fetch_timeout)

    def settle(self, request: Request, outcome: Outcome, *, allow_stale: bool = True) -> SecretValue:
        """Turn a fetch outcome into what this caller gets: the value, a stale value, or a fresh error."""
        if isinstance(outcome, SecretValue):
            return outcome
        entry = self.entries.get(request.key) if allow_stale else None
        if entry is not None and isinstance(outcome, SecretUnavailableError):
            now = self.timer()
            if may_serve_stale(entry, now, self.config):
                return self._stale(request, entry, outcome, now)
        raise outcome.copy() from outcome

    def _hit(self, request: Request, entry: Entry, now: float) -> SecretValue:
        entry.last_read = now
        self.hits += 1
        if self._on_event is not None:
            self._emit("hit", request, age=entry.age(now, self.config.ttl))
        return entry.value

    def _stale(self, request: Request, entry: Entry, error: SecretCacheError, now: float) -> SecretValue:
        self.stale_served += 1
        _debug("serving stale secret %r: %s", request.secret_id, type(error).__name__)
        self._emit("stale", request, error=error, age=entry.age(now, self.config.ttl))
        return entry.value

    def note_miss(self, request: Request) -> None:
        self.misses += 1
        _debug("cache miss for secret %r (stage %s)", request.secret_id, request.version_stage)
        self._emit("miss", request)

    def peek(self, request: Request) -> SecretValue | None:
        """The cached value if it is within ttl, else None: no I/O, no lock, no counters."""
        entry = self.entries.get(request.key)
        return entry.value if entry is not None and self.timer() < entry.fresh_until else None

    # -- prefetch -------------------------------------------------------------------------------

    def begin_prefetch(self, secret_ids: Iterable[str]) -> dict[str, Flight]:
        """Start warming AWSCURRENT (asked by name, whatever ``version_stage`` is configured) with batch
        calls; return the flight each id's outcome arrives on.

        Each id gets a flight of its own, so readers join the batch instead of fetching beside it, and
        its answer is stored under the same rules as any fetch. An id already in flight is left to that
        fetch (and waited for). When the batch call is denied, each id is fetched alone.
        """
        ids = list(dict.fromkeys(secret_ids))
        for secret_id in ids:
            validate_secret_id(secret_id)
        batch: dict[str, Flight] = {}
        waits: dict[str, Flight] = {}
        with self._lock:
            self._seq += 1
            for secret_id in ids:
                request = self.request(secret_id, None, "AWSCURRENT")
                flight = self._flights.get(request.key)
                if flight is None:
                    flight = batch[secret_id] = self._flights[request.key] = self._new_flight(request)
                    flight.seq = self._seq
                waits[secret_id] = flight
        if batch and not self._worker.submit(self._run_batch, batch):
            self._run_batch(batch)
        return waits

    def prefetch_failure(self, secret_id: str, flight: Flight, done: bool) -> SecretCacheError | None:
        """How one id of a prefetch ended: None when its value is in, else its error (naming the id)."""
        outcome = self.outcome(flight, done)
        if isinstance(outcome, SecretValue):
            return None
        return outcome if outcome.secret_id == secret_id else _chained(outcome, secret_id)

    def plan_batch(self, secret_ids: Iterable[str]) -> BatchPlan:
        """The shared half of both faces' ``get_many``: the ids (in order, no repeats), and one batch fetch
        started for those that would wait for a fetch (each counted as a miss). The faces wait for the
        flights (blocking or awaiting) and read the rest one by one."""
        ids = list(dict.fromkeys(secret_ids))
        batched = self.batchable(ids)
        if not batched:
            return BatchPlan(ids, {})
        for secret_id in batched:
            self.note_miss(self.request(secret_id, None, None))
        return BatchPlan(ids, self.begin_prefetch(batched))

    def batchable(self, secret_ids: list[str]) -> list[str]:
        """The ids a ``get_many`` fetches in one batch: those whose default-stage read would wait for a
        fetch (nothing servable cached, no backoff). The others are read one by one: a hit, a stale value
        while it revalidates, or the backoff's error. Only when the default stage is AWSCURRENT, the one
        stage BatchGetSecretValue returns."""
        any_stage = self.config.version_stage == "AWSCURRENT"
        now, chosen = self.timer(), []
        for secret_id in dict.fromkeys(secret_ids):
            if not any_stage and not is_parameter(secret_id):
                continue  # (a parameter's default read is its latest version, whatever the default stage)
            request = self.request(secret_id, None, None)
            action, _ = decide(self.entries.get(request.key), self._failures.get(request.key), now, self.config)
            if action is FETCH:
                chosen.append(secret_id)
        return chosen

    def many_outcome(self, secret_id: str, flight: Flight, done: bool) -> Outcome:
        """What ``get_many`` reports for one batched id: its value (stale within ``stale_if_error``) or
        a fresh error naming the id."""
        request = self.request(secret_id, None, None)
        try:
            return self.settle(request, self.outcome(flight, done))
        except SecretCacheError as e:
            return e if e.secret_id == secret_id else _chained(e, secret_id)

    def _run_batch(self, flights: dict[str, Flight]) -> None:
        ids = list(flights)
        self.backend_calls += -(-len(ids) // BATCH_LIMIT)
        try:
            backend = self.backend
            if self.observers:
                call = BackendCall("batch_get_secret_values", tuple(ids), None, "AWSCURRENT", False, backend)
                values, errors = self._observed(next(iter(flights.values())), call,
                                                lambda: backend.batch_get_secret_values(ids))
            else:
                values, errors = backend.batch_get_secret_values(ids)
        except SecretAccessDeniedError as e:
            if isinstance(e, AssumeRoleError):
                # The role itself was refused: a GetSecretValue per secret would only ask STS again.
                for secret_id, flight in flights.items():
                    self._finish(flight, _chained(e, secret_id))
                return
            # BatchGetSecretValue not allowed by IAM (a common policy): one GetSecretValue per secret,
            # which keeps the backoff and stale rules.
            _debug("batch prefetch denied; falling back to GetSecretValue per secret")
            for flight in flights.values():
                self._dispatch(flight)
            return
        except Exception as e:
            # Throttled or unavailable as a whole: N single calls would only add load. Report it per id,
            # without recording it as each key's failure (no key failed on its own).
            whole = e if isinstance(e, SecretCacheError) else _wrap_unexpected(e, "(batch)")
            for secret_id, flight in flights.items():
                flight.record = False
                self._finish(flight, _chained(whole, secret_id))
            return
        by_id = _match_batch(ids, values)
        del values
        for secret_id, flight in flights.items():
            found = by_id.get(secret_id)
            if secret_id in errors:
                self._finish(flight, errors[secret_id])
            elif found is not None:
                self._finish(flight, found)
            else:  # the batch answered without it (or named it differently): fetch it on its own
                self._dispatch(flight)

    # -- backend observers ----------------------------------------------------------------------------

    def add_observer(self, observer: BackendObserver) -> Callable[[], None]:
        """Tell ``observer`` of every backend call from now on; return the function that stops it."""
        if not callable(observer):
            raise TypeError(f"a backend observer is a callable taking a BackendCall, got {type(observer).__name__}")
        with self._lock:
            self.observers = (*self.observers, observer)

        def remove() -> None:
            with self._lock:
                self.observers = tuple(o for o in self.observers if o is not observer)

        return remove

    def _observed(self, flight: Flight, call: BackendCall, fn: Callable[[], _T]) -> _T:
        """``fn()`` (the backend call) with the observers told before and after, in the asking read's context."""
        context = flight.context
        return context.run(self._observe, call, fn) if context is not None else self._observe(call, fn)

    def _observe(self, call: BackendCall, fn: Callable[[], _T]) -> _T:
        dones = []
        for observer in self.observers:
            try:
                done = observer(call)
            except Exception:  # an observer must never break a read
                _warn_observer("backend observer raised before a %s call", call.method)
            else:
                if done is not None:
                    dones.append(done)
        error: SecretCacheError | None = None
        try:
            return fn()
        except SecretCacheError as e:
            error = e
            raise
        except BaseException as e:
            error = _wrap_unexpected(e, call.secret_ids[0] if len(call.secret_ids) == 1 else "(batch)")
            raise
        finally:
            for done in reversed(dones):
                try:
                    done(error)
                except Exception:
                    _warn_observer("backend observer raised after a %s call", call.method)

    # -- maintenance ----------------------------------------------------------------------------

    def invalidate(self, secret_id: str | None) -> None:
        """Drop entries and failures; fetches already started are not stored (reads queue a new one)."""
        with self._lock:
            for key in [*self.entries, *self._failures, *self._flights]:
                if secret_id is None or key == secret_id or (isinstance(key, tuple) and key[0] == secret_id):
                    self.entries.pop(key, None)
                    self._failures.pop(key, None)
                    flight = self._flights.get(key)
                    if flight is not None and flight.seq is not None:
                        flight.discard = True

    def mark_stale(self) -> None:
        """Make every stage-addressed entry due for a blocking refresh (e.g. after a SnapStart restore)."""
        due = self.timer() - self.config.stale_while_revalidate
        for entry in list(self.entries.values()):
            if entry.fresh_until != float("inf"):
                entry.fresh_until = min(entry.fresh_until, due)

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
        """Stop the worker threads (idempotent). Later fetches run on the reading thread; no refresh in
        the background."""
        self._worker.close()

    def after_fork(self) -> None:
        """In a forked child: keep the entries; drop the parent's lock, flights and threads."""
        closed = self._worker.closed
        self._lock = threading.Lock()
        self._flights = {}
        self._worker = Worker()
        if closed:
            self._worker.close()
        for state in list(self._owned.values()):
            state.after_fork()

    def state_for(self, owner: object, make: Callable[[], _S]) -> _S:
        """State another module keeps per cache under its own ``owner`` key, made on first use (the
        rotation policy's per-secret state, :mod:`secretcache.credentials`). It lives as long as the
        cache; after a fork it gets ``after_fork()``. Two first uses at once get one state."""
        state = self._owned.get(owner)
        if state is None:
            state = self._owned.setdefault(owner, make())  # atomic: both callers get the one stored
        return cast("_S", state)

    def cached_reads(self) -> list[CachedRead]:
        """Every cached entry, whatever its age, with the read it answers (the key layout stays here)."""
        return [CachedRead(*key_parts(key), entry.value) for key, entry in list(self.entries.items())
                if not isinstance(entry.value, PathListing)]  # a get_path listing is no read of one value

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


def _read_path(backend: SecretsBackend, request: Request) -> PathListing:
    """One path read: every parameter under it, from a backend that can list a hierarchy."""
    read = getattr(backend, "get_parameters_by_path", None)
    if read is None:
        raise SecretCacheError(
            f"{type(backend).__name__} cannot list a Parameter Store path (reading {request.secret_id!r}); "
            "use AwsBackend", secret_id=request.secret_id)
    values: list[SecretValue] = read(request.secret_id, recursive=request.version_stage == PATH_MARKS[1])
    return PathListing(request.secret_id, values)


def _version_number(value: SecretValue) -> int:
    version = value.version_id
    return int(version) if version is not None and version.isdigit() else -1


def _match_batch(ids: list[str], values: list[SecretValue]) -> dict[str, SecretValue]:
    """The batch's values under the ids asked for: by name, full ARN or partial ARN (and checked so)."""
    by_name: dict[str, SecretValue] = {}
    for value in values:
        by_name[value.name] = value
        if value.arn and ":ssm:" in value.arn[:32]:  # a parameter (GetParameters), asked as ssm:NAME or its ARN
            by_name[PREFIX + value.name] = value
            by_name[value.arn] = value
        elif value.arn:
            by_name[value.arn] = value
            by_name[value.arn[:-7]] = value  # partial ARN: the full one without "-XXXXXX"
        else:
            by_name.setdefault(PREFIX + value.name, value)
    matched: dict[str, SecretValue] = {}
    for secret_id in ids:
        found = by_name.get(secret_id)
        if found is not None and check_answer(Request(secret_id, secret_id, None, None), found) is None:
            matched[secret_id] = found
    return matched
