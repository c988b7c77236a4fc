"""The background threads of one cache: they run its fetches, so every reader's wait can be bounded.

A reader that needs a fetch hands it to a worker and waits at most ``fetch_timeout``; a reader that
only triggers a refresh enqueues it and returns. The first thread starts with the cache's first fetch
and stays (so a trigger at expiry never pays for a thread start); more start when every thread is
busy, up to ``max_threads``, and end after ``idle_timeout`` without work. Threads hold no reference
to the cache, only to this queue. After a fork the child builds a new ``Worker``: the parent's
threads do not exist there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import queue

__all__ = ["Worker"]

Job = tuple[Callable[..., Any], tuple[Any, ...]]


class Worker:
    """A small, growing pool of daemon threads fed by one queue."""

    def __init__(self, name: str = "secretcache-refresh", *, max_threads: int = 16, idle_timeout: float = 10.0) -> None:
        self._name = name
        self._max_threads = max_threads
        self._idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Job | None] | None = None
        self._threads = 0
        self._idle = 0  # threads waiting for a job
        self._pending = 0  # jobs queued and not yet taken
        self.closed = False

    def submit(self, fn: Callable[..., Any], *args: Any, grow: bool = True) -> bool:
        """Queue ``fn(*args)`` for a worker thread; False when no thread can run it (the caller then does).

        ``grow=False`` (a refresh trigger) never starts a thread while one exists: it only enqueues, and
        after ``close()`` it is refused. A reader's fetch after ``close()`` gets a thread of its own.
        """
        with self._lock:
            closed = self.closed
        if closed:
            return grow and self._one_shot(fn, args)
        with self._lock:
            if self._queue is None:
                import queue  # with the first fetch, not with the package

                self._queue = queue.SimpleQueue()
            self._pending += 1
            start = self._threads == 0 or (grow and self._pending > self._idle and self._threads < self._max_threads)
            if start:
                permanent = self._threads == 0
                self._threads += 1
                self._idle += 1  # waiting for a job from its first instruction
        if start:
            try:
                threading.Thread(target=self._work, args=(permanent,), name=self._name, daemon=True).start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                with self._lock:
                    self._threads -= 1
                    self._idle -= 1
                    if self._threads == 0:
                        self._pending -= 1
                        return False
        assert self._queue is not None
        self._queue.put((fn, args))
        return True

    def _one_shot(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
        """After close: a thread for this one job, so a reader's wait stays bounded; none for refreshes."""
        try:
            threading.Thread(target=fn, args=args, name=self._name, daemon=True).start()
        except RuntimeError:  # interpreter shutdown: the caller runs it
            return False
        return True

    def _work(self, permanent: bool) -> None:
        assert self._queue is not None
        jobs = self._queue
        import queue

        while True:
            try:
                job = jobs.get(timeout=None if permanent else self._idle_timeout)
            except queue.Empty:
                with self._lock:
                    self._threads -= 1
                    self._idle -= 1
                return
            with self._lock:
                self._idle -= 1
                self._pending -= job is not None
            if job is None:  # close(): one sentinel per thread
                with self._lock:
                    self._threads -= 1
                return
            fn, args = job
            del job
            try:
                fn(*args)
            except BaseException:  # the job records its own outcome; a worker never dies of one
                import logging

                logging.getLogger("secretcache").exception("background fetch raised")
            del fn, args
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        """Let every thread finish its current job and end; later ``submit`` calls return False."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            threads, jobs = self._threads, self._queue
        if jobs is not None:
            for _ in range(threads):
                jobs.put(None)
