"""What the FileBackend tests and bench/bench_files.py share: a clock the test moves, and a stand-in for ``os``
that counts every call the backend makes through it (``secretcache.backends.files`` does all its file I/O
through its module's ``os``, so replacing that one name sees every system call and touches nothing else)."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import secretcache.backends.files as files_module


class Clock:
    """A monotonic clock that moves only when told (thread-safe)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class CountingOs:
    """``os`` with every function call counted by name (``os.path`` and constants pass through)."""

    def __init__(self, **overrides: Callable[..., Any]) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        attr = self._overrides.get(name) or getattr(os, name)
        if not callable(attr) or isinstance(attr, type):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()


@contextmanager
def counting_os_module() -> Iterator[CountingOs]:
    """The backend module's ``os`` replaced for the duration (outside pytest: the benchmarks)."""
    counter = CountingOs()
    files_module.os = counter  # type: ignore[attr-defined,assignment]
    try:
        yield counter
    finally:
        files_module.os = os  # type: ignore[attr-defined]


@contextmanager
def counting_os(monkeypatch: pytest.MonkeyPatch, **overrides: Callable[..., Any]) -> Iterator[CountingOs]:
    """The backend module's ``os`` replaced (not the real one: other code keeps the real functions)."""
    counter = CountingOs(**overrides)
    monkeypatch.setattr(files_module, "os", counter)
    yield counter


def patch_os(monkeypatch: pytest.MonkeyPatch, **overrides: Callable[..., Any]) -> None:
    monkeypatch.setattr(files_module, "os", CountingOs(**overrides))


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``condition`` (bounded): the pacing of the concurrency tests, never an assertion on time."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True
