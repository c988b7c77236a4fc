"""AsyncSecretCache: the same cache for asyncio code, never blocking the event loop.

It runs the same policy object as :class:`~secretcache.SecretCache` (freshness, backoff,
single-flight); only the waiting differs: a fetch runs in a worker thread and callers await it.
Hits are served inline, without leaving the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from time import monotonic
from types import TracebackType
from typing import Any

from ._face import BaseSecretCache, id_list
from ._flight import Flight
from ._paths import PathListing, path_request
from ._request import Request
from .errors import InvalidReferenceError, SecretCacheError
from .model import SecretRef, SecretValue
from .refs import find_references, is_template, render_template

__all__ = ["AsyncSecretCache"]


async def _wait(flight: Flight) -> bool:
    """Await a shared fetch until its deadline; True when it ended in time.

    This caller's cancellation or timeout never cancels the fetch for the others.
    """
    if flight.done():
        return True
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def deliver(done: Flight) -> None:
        def settle() -> None:
            if not waiter.done():
                waiter.set_result(None)

        # RuntimeError: this waiter's event loop has closed, nobody is left to wake there. Raising
        # would stop the flight from waking the waiters registered after this one (on other loops).
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)

    flight.add_done_callback(deliver)
    try:
        await asyncio.wait_for(waiter, max(0.0, flight.deadline - monotonic()))
    except asyncio.TimeoutError:
        return flight.done()
    return True


class AsyncSecretCache(BaseSecretCache):
    """The asyncio twin of :class:`~secretcache.SecretCache`: same arguments, methods as coroutines."""

    _repr_name = "AsyncSecretCache"

    async def _read(self, request: Request, *, force: bool = False) -> SecretValue:
        """The slow path: the policy decides; a fetch runs on the cache's worker and is awaited at most
        ``fetch_timeout``. Never blocks the event loop (at most a dict write under a lock)."""
        core = self._core
        started = core.begin(request, force=force, may_block=False)
        if isinstance(started, SecretValue):
            return started
        return core.conclude(request, started, await _wait(started.flight), allow_stale=not force)

    async def get_secret_value(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> SecretValue:
        """The cached :class:`SecretValue` for ``secret_id`` at a stage (default AWSCURRENT) or VersionId."""
        if version_id is None and version_stage is None and (value := self._fresh(secret_id)) is not None:
            return value
        return await self._read(self._core.request(secret_id, version_id, version_stage))

    async def get_secret_string(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> str:
        """The SecretString; :class:`SecretFormatError` for a binary secret."""
        value = await self.get_secret_value(secret_id, version_id=version_id, version_stage=version_stage)
        return value.text()

    async def get_secret_binary(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> bytes:
        """The SecretBinary; :class:`SecretFormatError` for a string secret."""
        value = await self.get_secret_value(secret_id, version_id=version_id, version_stage=version_stage)
        return value.binary()

    async def get_secret_json(
        self, secret_id: str, *, version_id: str | None = None, version_stage: str | None = None
    ) -> dict[str, Any]:
        """The value parsed as a JSON object: your own copy, parsed once per version."""
        value = await self.get_secret_value(secret_id, version_id=version_id, version_stage=version_stage)
        return value.json()

    async def get(self, reference: str) -> str:
        """Resolve any reference form, as :meth:`SecretCache.get`."""
        try:
            ref = SecretRef.parse(reference)
        except InvalidReferenceError:
            if isinstance(reference, str) and is_template(reference):
                resolved = {str(r): await self.resolve(r) for r in find_references(reference)}
                return render_template(reference, lambda r: resolved[str(r)])
            raise
        return await self.resolve(ref)

    async def resolve(self, ref: SecretRef) -> str:
        """The string a parsed reference points at."""
        value = await self.get_secret_value(ref.secret_id, version_id=ref.version_id, version_stage=ref.version_stage)
        return value.text(ref.json_key)

    async def get_path(self, path: str, *, recursive: bool = True) -> dict[str, SecretValue]:
        """Every parameter under a Parameter Store hierarchy, keyed ``"ssm:" + name``: ``get_path("ssm:/app/prod/")``.

        One GetParametersByPath walk (all pages, decrypted) per ttl, shared by concurrent callers and
        cached like any read (stale-while-revalidate, stale-if-error, backoff); the parameters it finds
        are cached too, so reading one of them afterwards is a hit. ``recursive=False`` reads one level.
        """
        listing = await self._read(path_request(path, recursive))
        assert isinstance(listing, PathListing)
        return listing.by_id()

    async def prefetch(self, secret_ids: Iterable[str]) -> dict[str, SecretCacheError]:
        """Warm the cache with BatchGetSecretValue (20 per call); return the failures by id."""
        core = self._core
        waits = core.begin_prefetch(id_list(secret_ids))
        failures = {i: core.prefetch_failure(i, flight, await _wait(flight)) for i, flight in waits.items()}
        return {i: error for i, error in failures.items() if error is not None}

    async def get_many(self, secret_ids: Iterable[str], *, raise_on_error: bool = True) -> dict[str, SecretValue]:
        """The values of many secrets at the default stage, by id, through the cache (as
        :meth:`SecretCache.get_many`: one batch fetch for what is not cached)."""
        core = self._core
        plan = core.plan_batch(id_list(secret_ids))
        outcomes = {i: core.many_outcome(i, flight, await _wait(flight)) for i, flight in plan.waits.items()}
        values: dict[str, SecretValue] = {}
        for secret_id in plan.ids:
            outcome = outcomes.get(secret_id)
            if outcome is None:
                try:
                    outcome = await self.get_secret_value(secret_id)
                except SecretCacheError as e:
                    outcome = e
            if isinstance(outcome, SecretValue):
                values[secret_id] = outcome
            elif raise_on_error:
                raise outcome
        return values

    async def refresh(self, secret_id: str, *, version_stage: str | None = None) -> SecretValue:
        """Fetch now, ignoring ttl and backoff, from a fetch that started after this call (as
        :meth:`SecretCache.refresh`)."""
        return await self._read(self._core.request(secret_id, None, version_stage), force=True)

    async def close(self) -> None:
        """Stop the background threads (idempotent); as :meth:`SecretCache.close`."""
        self._core.close()

    async def __aenter__(self) -> AsyncSecretCache:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
