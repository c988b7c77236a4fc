"""Flight: one fetch of one key, which every reader of that key waits for, with a deadline.

A minimal future (``concurrent.futures`` would cost its import on ``import secretcache``): threads
wait on an event with a timeout, asyncio callers register a callback. ``seq`` is set when the
backend call starts and orders the fetches of a key; ``then`` is a fetch queued to start when this
one ends (fetches of one key never overlap, so their answers arrive in the order they were asked);
``forced`` marks a fetch a forced read waits for (the backend is told, see ``backends/base.py``);
``context`` is the ``contextvars`` context of the read that asked for it, kept only while the cache has
backend observers (so a trace span of the call has the reader's span as its parent).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import contextvars

    from ._request import Request
    from .errors import SecretCacheError
    from .model import SecretValue

__all__ = ["Flight"]


class Flight:
    """One fetch in progress (or queued) for a key."""

    __slots__ = ("_callbacks", "_done", "_lock", "context", "deadline", "discard", "forced", "outcome", "record",
                 "request", "seq", "then")

    def __init__(self, request: Request, timeout: float) -> None:
        self.request = request
        self.deadline = monotonic() + timeout  # real time: waits are bounded whatever clock the policy uses
        self.seq: int | None = None  # set when the backend call starts
        self.outcome: SecretValue | SecretCacheError | None = None
        self.discard = False  # invalidated after it started: waiters get the result, the cache does not
        self.record = True  # False: a failure of a whole batch, not recorded as this key's failure
        self.then: Flight | None = None
        self.forced = False  # a forced read (refresh(), the rotation policy) waits for it: bypass backend caches
        self.context: contextvars.Context | None = None  # the asking read's context, for backend observers
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

    def wait(self) -> bool:
        """Block until the outcome is in or the deadline passes; True when the outcome is in."""
        return self._done.wait(min(max(0.0, self.deadline - monotonic()), threading.TIMEOUT_MAX))

    def add_done_callback(self, callback: Callable[[Flight], Any]) -> None:
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)
