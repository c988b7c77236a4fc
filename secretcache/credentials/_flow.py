"""The steps a rotation-policy flow yields, and the executors that carry them out (sync, async).

A flow (:meth:`secretcache.credentials.Login.flow`) is a generator free of I/O: it yields :class:`Read`
(cache work) and :class:`Connect` (one driver login) and gets back their results, as httpx's auth flows
do; :func:`drive` and :func:`drive_async` do the I/O. The flow's return value is the connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, NamedTuple, TypeAlias, TypeVar

from ..model import SecretValue

__all__ = ["Connect", "Credentials", "Flow", "Read", "add_note", "drive", "drive_async", "short"]

T = TypeVar("T")


def short(value: SecretValue) -> str:
    """A version id as notes and logs show it (8 characters)."""
    return (value.version_id or "?")[:8]


class Credentials:
    """One set of login credentials: driver keyword arguments from one version of the secret.

    Its repr names the stage and version, never the values.
    """

    __slots__ = ("params", "source", "stage", "value")

    def __init__(self, value: SecretValue, stage: str, source: str, params: Mapping[str, Any]) -> None:
        self.value = value
        self.stage = stage
        self.source = source
        self.params = params

    def __repr__(self) -> str:
        return f"<Credentials {self.stage} version {short(self.value)} ({self.source})>"

    def describe(self) -> str:
        return f"{self.stage} {short(self.value)} ({self.source})"


class Read(NamedTuple):
    """Step: cache work. ``may_block``: async drivers run it in a worker thread."""

    fn: Callable[[], Credentials | None]
    may_block: bool


class Connect(NamedTuple):
    """Step: log in with these credentials; send back the connection, or the exception raised."""

    credentials: Credentials


Step: TypeAlias = "Read | Connect"
Flow: TypeAlias = Generator[Step, Any, Any]


def add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)`` on Python 3.11+; on 3.10 the same ``__notes__`` list (newer tools show it)."""
    adder = getattr(error, "add_note", None)
    if adder is not None:
        adder(note)
        return
    notes = getattr(error, "__notes__", None)
    if not isinstance(notes, list):
        notes = []
        try:
            error.__notes__ = notes  # type: ignore[attr-defined]
        except AttributeError:
            return
    notes.append(note)


def drive(
    flow: Flow,
    connect: Callable[[Credentials], T],
    read: Callable[[Read], Credentials | None] | None = None,
) -> T:
    """Carry out a flow on this thread: reads inline (or through ``read``), logins through ``connect``."""
    try:
        step = next(flow)
        while True:
            reply: object
            if isinstance(step, Read):
                reply = step.fn() if read is None else read(step)
            else:
                try:
                    reply = connect(step.credentials)
                except Exception as e:  # handed to the policy, which re-raises what it does not handle
                    reply = e
            step = flow.send(reply)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()


async def drive_async(flow: Flow, connect: Callable[[Credentials], Awaitable[T]]) -> T:
    """Carry out a flow on an event loop: cache work that may block runs in a worker thread."""
    import asyncio

    try:
        step = next(flow)
        while True:
            reply: object
            if isinstance(step, Read):
                reply = await asyncio.to_thread(step.fn) if step.may_block else step.fn()
            else:
                try:
                    reply = await connect(step.credentials)
                except Exception as e:
                    reply = e
            step = flow.send(reply)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()
