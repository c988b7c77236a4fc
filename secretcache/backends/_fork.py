"""Backends after ``os.fork()``: the child gets its own clients, connections and locks.

A child forked after a backend fetched (gunicorn ``--preload``, Celery prefork, ``multiprocessing``
with the fork start method) inherits the parent's boto3 client with its keep-alive sockets, and any
lock a parent thread held at the instant of the fork, held forever. Two processes writing requests on
one socket read each other's answers (a secret meant for one process delivered to the other, or a
garbled stream), and a lock held by a thread that does not exist in the child deadlocks it.

So every live backend is tracked in a :class:`weakref.WeakSet` (a dropped backend is not kept alive)
and one ``os.register_at_fork(after_in_child=...)`` hook, registered once per process, calls each
one's ``_after_fork_in_child()`` in the child, before any of the child's code runs.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol

__all__ = ["ForkAware", "track"]


class ForkAware(Protocol):
    def _after_fork_in_child(self) -> None:
        """Drop or reset whatever the parent's process shares with this one (sockets, locks)."""


_live: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_registered = False
_lock = threading.Lock()


def track(backend: ForkAware) -> None:
    """Reset ``backend`` in every child forked from now on, for as long as it lives."""
    global _registered
    with _lock:
        if not _registered and hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _registered = True
        _live.add(backend)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it in track() at the instant of the fork
    for backend in list(_live):
        backend._after_fork_in_child()
