"""Backends after ``os.fork()``: the child gets its own clients, connections and locks.

A child forked after a backend fetched (gunicorn ``--preload``, Celery prefork, ``multiprocessing``
with the fork start method) inherits the parent's boto3 client with its keep-alive sockets, and any
lock a parent thread held at the instant of the fork, held forever. Two processes writing requests on
one socket read each other's answers (a secret meant for one process delivered to the other, or a
garbled stream), and a lock held by a thread that does not exist in the child deadlocks it.

So every live backend is tracked, with the function that resets it, in a
:class:`weakref.WeakKeyDictionary` (a dropped backend is not kept alive), and one
``os.register_at_fork(after_in_child=...)`` hook, registered once per process, calls each one's reset in
the child, before any of the child's code runs. The backend names its own reset (a method of its class,
private to it), so this module reaches into no backend.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["track"]

_live: weakref.WeakKeyDictionary[Any, Callable[[Any], None]] = weakref.WeakKeyDictionary()
_registered = False
_lock = threading.Lock()


def track(backend: object, reset: Callable[[Any], None]) -> None:
    """Call ``reset(backend)`` in every child forked from now on, for as long as ``backend`` lives; the reset
    drops or renews whatever the parent's process shares with the child (sockets, locks)."""
    global _registered
    with _lock:
        if not _registered and hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _registered = True
        _live[backend] = reset


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it in track() at the instant of the fork
    for backend, reset in list(_live.items()):
        reset(backend)
