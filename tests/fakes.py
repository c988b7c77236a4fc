"""A small scripted backend and a fake clock for the cache policy tests.

``ScriptedBackend`` answers from a tiny versioned store unless a call is scripted: per secret, a queue
of outcomes (a value, an exception to raise, or a callable returning either) consumed one per call,
then an optional standing failure. A ``threading.Event`` gate holds calls in flight deterministically,
and every call is recorded, so tests count backend calls instead of timing anything.

It has no ``describe_secret`` on purpose: a cache that called it would fail loudly.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from secretcache.errors import SecretCacheError, SecretNotFoundError
from secretcache.model import SecretValue

Outcome = Any  # str | bytes | BaseException | type[BaseException] | Callable[[str], Any]

GATE_TIMEOUT = 10.0
"""A held call gives up after this long, so a broken test fails instead of hanging the suite."""


class Call(NamedTuple):
    op: str
    secret_id: str
    version_id: str | None = None
    version_stage: str | None = None


class _Version(NamedTuple):
    version_id: str
    value: str | bytes
    stages: tuple[str, ...]


class ScriptedBackend:
    """A SecretsBackend whose every answer a test controls."""

    def __init__(self, values: dict[str, str | bytes] | None = None) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._versions: dict[str, list[_Version]] = {}
        self._scripts: dict[str, deque[Outcome]] = {}
        self._standing: dict[str, Outcome] = {}
        self._ids = itertools.count(1)
        self.calls: list[Call] = []
        self.active = 0
        """Calls currently inside ``get_secret_value`` (past recording, possibly held at the gate)."""
        self.gate: threading.Event | None = None
        for name, value in (values or {}).items():
            self.put(name, value)

    # -- the store ------------------------------------------------------------------------------

    def put(self, name: str, value: str | bytes, *, stages: Sequence[str] = ("AWSCURRENT",)) -> str:
        """Add a version with ``stages`` (moving those labels off older versions); return its id."""
        with self._lock:
            version_id = f"v{next(self._ids)}"
            versions = self._versions.setdefault(name, [])
            versions[:] = [v._replace(stages=tuple(s for s in v.stages if s not in stages)) for v in versions]
            versions.append(_Version(version_id, value, tuple(stages)))
            return version_id

    def rotate(self, name: str, value: str | bytes) -> str:
        """A new AWSCURRENT version; the old current one becomes AWSPREVIOUS (labels move as in AWS)."""
        with self._lock:
            old = next(v.version_id for v in self._versions[name] if "AWSCURRENT" in v.stages)
        new_id = self.put(name, value)
        with self._lock:
            self._versions[name] = [
                v._replace(stages=tuple(s for s in v.stages if s != "AWSPREVIOUS")
                           + (("AWSPREVIOUS",) if v.version_id == old else ()))
                for v in self._versions[name]
            ]
        return new_id

    # -- scripting ------------------------------------------------------------------------------

    def script(self, name: str, *outcomes: Outcome) -> None:
        """Answer the next calls for ``name`` with these outcomes, one per call, before the store."""
        with self._lock:
            self._scripts.setdefault(name, deque()).extend(outcomes)

    def fail(self, name: str, outcome: Outcome | None) -> None:
        """Answer every call for ``name`` with ``outcome`` (after any script) until ``fail(name, None)``."""
        with self._lock:
            if outcome is None:
                self._standing.pop(name, None)
            else:
                self._standing[name] = outcome

    def hold(self) -> threading.Event:
        """Hold every call at a gate until the returned event is set."""
        self.gate = threading.Event()
        return self.gate

    # -- observation ----------------------------------------------------------------------------

    def count(self, name: str | None = None, op: str = "get_secret_value") -> int:
        with self._lock:
            return sum(1 for c in self.calls if c.op == op and (name is None or c.secret_id == name))

    def wait_for_calls(self, n: int, *, active: bool = False, timeout: float = GATE_TIMEOUT) -> None:
        """Block until ``n`` calls were made (``active``: are in progress right now)."""
        with self._changed:
            ok = self._changed.wait_for(
                lambda: (self.active if active else len(self.calls)) >= n, timeout=timeout
            )
        assert ok, f"expected {n} backend calls, saw {len(self.calls)} ({self.active} active)"

    # -- SecretsBackend -------------------------------------------------------------------------

    def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        with self._changed:
            self.calls.append(Call("get_secret_value", secret_id, version_id, version_stage))
            self.active += 1
            self._changed.notify_all()
            queue = self._scripts.get(secret_id)
            scripted: Outcome | None = queue.popleft() if queue else self._standing.get(secret_id)
        try:
            gate = self.gate
            if gate is not None:
                assert gate.wait(GATE_TIMEOUT), "test gate never opened"
            if scripted is not None:
                return self._answer(secret_id, scripted, version_id, version_stage)
            return self._lookup(secret_id, version_id, version_stage)
        finally:
            with self._changed:
                self.active -= 1
                self._changed.notify_all()

    def batch_get_secret_values(
        self, secret_ids: Sequence[str]
    ) -> tuple[list[SecretValue], dict[str, SecretCacheError]]:
        with self._changed:
            self.calls.append(Call("batch_get_secret_values", ",".join(secret_ids)))
            self._changed.notify_all()
            denied = self._standing.get("*batch*")
        if denied is not None:
            self._answer("*batch*", denied, None, None)
        values: list[SecretValue] = []
        errors: dict[str, SecretCacheError] = {}
        for secret_id in secret_ids:
            try:
                values.append(self._lookup(secret_id, None, "AWSCURRENT"))
            except SecretCacheError as e:
                errors[secret_id] = e
        return values, errors

    # -- helpers --------------------------------------------------------------------------------

    def _answer(
        self, secret_id: str, outcome: Outcome, version_id: str | None, version_stage: str | None
    ) -> Any:
        raisable = isinstance(outcome, type) and issubclass(outcome, BaseException)
        if isinstance(outcome, BaseException) or raisable:
            raise outcome
        if isinstance(outcome, (str, bytes)):
            return make_value(secret_id, outcome, version_id=version_id or f"scripted-{len(self.calls)}")
        if isinstance(outcome, SecretValue):
            return outcome
        return self._answer(secret_id, outcome(secret_id), version_id, version_stage)

    def _lookup(self, secret_id: str, version_id: str | None, version_stage: str | None) -> SecretValue:
        with self._lock:
            versions = list(self._versions.get(secret_id, ()))
        stage = version_stage if version_stage is not None or version_id is not None else "AWSCURRENT"
        for v in versions:
            if (version_id is None or v.version_id == version_id) and (stage is None or stage in v.stages):
                return make_value(secret_id, v.value, version_id=v.version_id, stages=v.stages)
        raise SecretNotFoundError(
            f"Secrets Manager can't find the specified secret (secret {secret_id!r})",
            secret_id=secret_id, code="ResourceNotFoundException",
        )


def make_value(
    name: str, value: str | bytes, *, version_id: str = "v1", stages: Sequence[str] = ("AWSCURRENT",)
) -> SecretValue:
    arn = f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"
    if isinstance(value, bytes):
        return SecretValue(name, arn, version_id, stages, secret_binary=value)
    return SecretValue(name, arn, version_id, stages, secret_string=value)


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 10_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingLock:
    """Wraps a lock and counts acquisitions: proves the hit path takes none."""

    def __init__(self, lock: Any) -> None:
        self._inner = lock
        self.acquired = 0

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        self.acquired += 1
        return bool(self._inner.acquire(*args, **kwargs))

    def release(self) -> None:
        self._inner.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def run_threads(n: int, target: Callable[[int], Any], *, timeout: float = 30.0) -> list[Any]:
    """Run ``target(i)`` on ``n`` threads; return results (or the exception each raised) in order."""
    results: list[Any] = [None] * n

    def body(i: int) -> None:
        try:
            results[i] = target(i)
        except BaseException as e:  # returned to the test, which asserts on it
            results[i] = e

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a reader thread is stuck"
    return results


def wait_until(
    predicate: Callable[[], bool], *, timeout: float = GATE_TIMEOUT, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true: synchronisation with a background thread, never a timing assertion."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


class PausingLock:
    """Wraps the core's lock and holds one chosen thread just before it acquires it, once.

    Lets a test freeze a reader between "looked at the cache" and "took the lock" while another
    fetch completes: the interleaving in which a look-then-lock race would start a second call.
    """

    def __init__(self, lock: Any, victim: threading.Thread) -> None:
        self._inner = lock
        self._victim = victim
        self.arrived = threading.Event()
        self.go = threading.Event()

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        if threading.current_thread() is self._victim and not self.arrived.is_set():
            self.arrived.set()
            assert self.go.wait(GATE_TIMEOUT), "paused thread never released"
        return bool(self._inner.acquire(*args, **kwargs))

    def release(self) -> None:
        self._inner.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def stop_refresh_workers() -> Iterator[None]:
    """Fixture body: after the test, close every cache it made and wait for their refresh threads to end.

    Idle ``secretcache-refresh`` workers otherwise live until their cache is collected, and other
    tests (rightly) check that no refresh thread is running around them.
    """
    import weakref

    import secretcache._core

    cores: list[weakref.ref[secretcache._core.Core]] = []
    original = secretcache._core.Core.__init__

    def recording_init(self: secretcache._core.Core, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        cores.append(weakref.ref(self))

    before = set(threading.enumerate())
    secretcache._core.Core.__init__ = recording_init  # type: ignore[method-assign]
    try:
        yield
    finally:
        secretcache._core.Core.__init__ = original  # type: ignore[method-assign]
        workers = [t for t in set(threading.enumerate()) - before if t.name.startswith("secretcache-refresh")]
        if workers:
            for ref in cores:
                core = ref()
                if core is not None:  # (a collected one was closed by its cache's finalizer)
                    core.close()
            for thread in workers:
                thread.join(GATE_TIMEOUT)
