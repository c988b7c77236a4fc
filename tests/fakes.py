"""A fake clock, lock wrappers and thread helpers for the cache tests.

The fake store is :class:`secretcache.testing.InMemoryBackend` (scripted answers, faults, a gate,
a call log): there is no second one here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

GATE_TIMEOUT = 10.0
"""A paused thread or a poll gives up after this long, so a broken test fails instead of hanging the suite."""


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
